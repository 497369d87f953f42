package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"reflect"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// MaxConfigSize bounds the config.json the wrapper is willing to read. Engines
// write a few kilobytes; anything near this size is hostile or broken, and
// decoding it would sit on the start path of every container.
const MaxConfigSize = 8 << 20

// ErrTooLarge is returned for a config.json above MaxConfigSize.
var ErrTooLarge = errors.New("config.json too large")

// Doc is a loaded config.json. Spec is the typed view that matchers read and
// modifiers change; Save writes back only what the modifiers changed, onto
// the original document, so fields unknown to runtime-spec survive.
type Doc struct {
	Path string
	Spec *specs.Spec

	raw  []byte
	orig []byte // the typed view as decoded, re-encoded: the base of the diff
	mode os.FileMode
}

// File is a config.json read from disk but not decoded yet.
type File struct {
	Path string
	Data []byte
	Mode os.FileMode
}

// Read reads path, refusing more than MaxConfigSize bytes.
func Read(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open bundle config: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat %s: %w", path, err)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxConfigSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > MaxConfigSize {
		return nil, fmt.Errorf("%s: %w: more than %d bytes", path, ErrTooLarge, MaxConfigSize)
	}
	return &File{Path: path, Data: data, Mode: fi.Mode().Perm()}, nil
}

// Peek decodes only what rules match on (annotations and process.env).
// Most create calls match no rule, and the wrapper runs on every one of
// them: the full decode and its re-encode cost more than the rest of the
// wrapper's work (measured by make bench, scenario 2).
func (f *File) Peek() (*specs.Spec, error) {
	var p struct {
		Annotations map[string]string `json:"annotations"`
		Process     *struct {
			Env []string `json:"env"`
		} `json:"process"`
	}
	if err := json.Unmarshal(f.Data, &p); err != nil {
		return nil, fmt.Errorf("%s: decode runtime spec: %w", f.Path, err)
	}
	s := &specs.Spec{Annotations: p.Annotations}
	if p.Process != nil {
		s.Process = &specs.Process{Env: p.Process.Env}
	}
	return s, nil
}

// PeekBinds decodes only what AllowlistedBinds reads (the mounts, and the
// annotations that name staged binds), for a reader that needs nothing else
// (the binds of a running mounter, on every routed mount): the whole
// decode and its re-encode cost that caller more than the rest of its
// routing (measured by make bench, scenario 3).
func (f *File) PeekBinds() (*specs.Spec, error) {
	var p struct {
		Annotations map[string]string `json:"annotations"`
		Mounts      []specs.Mount     `json:"mounts"`
	}
	if err := json.Unmarshal(f.Data, &p); err != nil {
		return nil, fmt.Errorf("%s: decode runtime spec: %w", f.Path, err)
	}
	return &specs.Spec{Annotations: p.Annotations, Mounts: p.Mounts}, nil
}

// Doc decodes the whole document.
func (f *File) Doc() (*Doc, error) {
	d, err := Parse(f.Data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Path, err)
	}
	d.Path = f.Path
	d.mode = f.Mode
	return d, nil
}

// Load reads and decodes path.
func Load(path string) (*Doc, error) {
	f, err := Read(path)
	if err != nil {
		return nil, err
	}
	return f.Doc()
}

// Parse decodes a config.json document.
func Parse(data []byte) (*Doc, error) {
	if len(data) > MaxConfigSize {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, MaxConfigSize)
	}
	var s specs.Spec
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("decode runtime spec: %w", err)
	}
	orig, err := json.Marshal(&s)
	if err != nil {
		return nil, fmt.Errorf("encode runtime spec: %w", err)
	}
	return &Doc{Spec: &s, raw: data, orig: orig, mode: 0o644}, nil
}

// encode returns the document with the modifiers' changes applied to the
// original JSON, or nil when there are none. It computes the difference
// between the typed view as loaded and as it is now, and applies only that
// difference to the original tree: a field that runtime-spec v1.3.0 does not
// know (a newer spec, an engine extension) is never dropped, since it is
// never re-encoded from the struct.
func (d *Doc) encode() ([]byte, error) {
	cur, err := json.Marshal(d.Spec)
	if err != nil {
		return nil, fmt.Errorf("encode runtime spec: %w", err)
	}
	if bytes.Equal(cur, d.orig) {
		return nil, nil
	}
	var old, now any
	for _, x := range []struct {
		b []byte
		v *any
	}{{d.orig, &old}, {cur, &now}} {
		dec := json.NewDecoder(bytes.NewReader(x.b))
		dec.UseNumber()
		if err := dec.Decode(x.v); err != nil {
			return nil, fmt.Errorf("decode runtime spec: %w", err)
		}
	}
	var buf bytes.Buffer
	if err := patch(&buf, bytes.TrimSpace(d.raw), old, now); err != nil {
		return nil, fmt.Errorf("encode runtime spec: %w", err)
	}
	buf.WriteByte('\n')
	// encoding/json (runc's decoder too) matches keys case-insensitively and
	// lets a repeated key fill the same value twice. Such a document could
	// read back as a spec other than the one that was checked, so insist
	// that it reads back exactly.
	var back specs.Spec
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		return nil, fmt.Errorf("decode rewritten runtime spec: %w", err)
	}
	if got, err := json.Marshal(&back); err != nil || !bytes.Equal(got, cur) {
		return nil, fmt.Errorf("%w: it has repeated or case-variant keys, so the rewrite would not read back as checked; fix the engine or tool that wrote it", ErrAmbiguous)
	}
	return buf.Bytes(), nil
}

// ErrAmbiguous is returned by Save for a config.json whose rewrite would
// not decode to the typed view that was checked and modified.
var ErrAmbiguous = errors.New("ambiguous config.json")

// patch writes raw with the change from old to now applied. old and now
// are the typed view before and after the modifiers, decoded generically;
// raw is the original JSON of the same value, a superset of old. A value
// the modifiers did not change is copied as it was read, byte for byte: a
// generic decode would turn invalid UTF-8 into U+FFFD and lose the order
// and repetitions of keys. Objects are merged key by key, lists element by
// element, where each element of now is paired with the element of old it
// came from (see pairElements), so an unknown field stays on its element
// when a modifier removes, moves or appends elements.
func patch(w *bytes.Buffer, raw []byte, old, now any) error {
	if len(raw) > 0 && reflect.DeepEqual(old, now) {
		w.Write(raw)
		return nil
	}
	switch n := now.(type) {
	case map[string]any:
		o, ok := old.(map[string]any)
		members, err := split(raw, '{')
		if !ok || err != nil {
			return writeValue(w, now)
		}
		return patchObject(w, members, o, n)
	case []any:
		o, ok := old.([]any)
		elems, err := split(raw, '[')
		// A list that decoded to another length than it has (a repeated key
		// filled it twice) is replaced; the read-back check decides.
		if !ok || err != nil || len(elems) != len(o) {
			return writeValue(w, now)
		}
		w.WriteByte('[')
		for j, i := range pairElements(o, n) {
			if j > 0 {
				w.WriteByte(',')
			}
			var raw []byte
			var old any // none for an element a modifier added: written whole
			if i >= 0 {
				raw, old = elems[i].value, o[i]
			}
			if err := patch(w, raw, old, n[j]); err != nil {
				return err
			}
		}
		w.WriteByte(']')
		return nil
	default:
		return writeValue(w, now)
	}
}

// patchObject writes an object's members in their original order, each
// field of the typed view patched in place, then the fields the modifiers
// added.
func patchObject(w *bytes.Buffer, members []member, old, now map[string]any) error {
	// encoding/json (runc's decoder too) matches a key to a field without
	// regard to case, an exact match first. The member that holds a field
	// is its last exact key, else its only case variant; with several
	// variants and no exact key none is chosen, and the read-back
	// check refuses what cannot read back as the typed view.
	chosen := map[string]int{} // typed key -> member index
	fields := slices.Collect(maps.Keys(now))
	for k := range old {
		if _, ok := now[k]; !ok {
			fields = append(fields, k)
		}
	}
	slices.Sort(fields)
	owner := make([]string, len(members)) // member index -> typed key it folds to
	for _, k := range fields {
		exact, variants := -1, []int(nil)
		for i, m := range members {
			if m.key == k {
				exact = i
			}
			if strings.EqualFold(m.key, k) {
				variants = append(variants, i)
				owner[i] = k
			}
		}
		switch {
		case exact >= 0:
			chosen[k] = exact
		case len(variants) == 1:
			chosen[k] = variants[0]
		}
	}
	w.WriteByte('{')
	start := w.Len()
	sep := func() {
		if w.Len() > start {
			w.WriteByte(',')
		}
	}
	for i, m := range members {
		k := owner[i]
		_, inNow := now[k]
		_, inOld := old[k]
		switch {
		case k != "" && chosen[k] == i && inNow:
			sep()
			if m.key == k {
				w.Write(m.rawKey)
			} else {
				// A case variant becomes the canonical key, so that no
				// other spelling can be read before or after it.
				writeValue(w, k)
			}
			w.WriteByte(':')
			if err := patch(w, m.value, old[k], now[k]); err != nil {
				return err
			}
		case k != "" && !inNow && inOld:
			// A field the modifiers removed goes in every spelling.
		default:
			// A field unknown to runtime-spec, or another spelling of a
			// field whose chosen member is written above: kept as
			// written, for the read-back check to judge.
			sep()
			w.Write(m.rawKey)
			w.WriteByte(':')
			w.Write(m.value)
		}
	}
	for _, k := range fields {
		if _, ok := chosen[k]; ok {
			continue
		}
		v, ok := now[k]
		if !ok {
			continue
		}
		sep()
		writeValue(w, k)
		w.WriteByte(':')
		if err := writeValue(w, v); err != nil {
			return err
		}
	}
	w.WriteByte('}')
	return nil
}

// pairElements returns, for each element of now, the index of the element
// of old it came from, or -1 for an element a modifier added. Unchanged
// elements pair with an equal one; changed ones with the element of the
// same identity (identity); the remaining elements that have no identity
// pair in order when as many are left on both sides, which is a list
// changed in place. Pairs keep the order of equal elements, so duplicates
// keep their unknown fields in the order they were written.
func pairElements(old, now []any) []int {
	pair := make([]int, len(now))
	used := make([]bool, len(old))
	// pairFirst pairs element j of now with the first unused element of old
	// that same accepts.
	pairFirst := func(j int, same func(i int) bool) {
		for i := range old {
			if !used[i] && same(i) {
				pair[j], used[i] = i, true
				return
			}
		}
	}
	for j := range now {
		pair[j] = -1
		pairFirst(j, func(i int) bool { return reflect.DeepEqual(old[i], now[j]) })
	}
	var restOld, restNow []int
	for j := range now {
		if pair[j] >= 0 {
			continue
		}
		if id, ok := identity(now[j]); ok {
			pairFirst(j, func(i int) bool {
				oid, ok := identity(old[i])
				return ok && oid == id
			})
		} else {
			restNow = append(restNow, j)
		}
	}
	for i := range old {
		if _, ok := identity(old[i]); !ok && !used[i] {
			restOld = append(restOld, i)
		}
	}
	if len(restOld) == len(restNow) {
		for x, j := range restNow {
			pair[j] = restOld[x]
		}
	}
	return pair
}

// identity names a list element for pairing: a mount by its destination, a
// hook by its path and arguments (a device by its path). Other elements
// have none.
func identity(v any) (string, bool) {
	m, ok := v.(map[string]any)
	if !ok {
		return "", false
	}
	var key []any
	if d, ok := m["destination"]; ok {
		key = []any{"destination", d}
	} else if p, ok := m["path"]; ok {
		key = []any{"path", p, m["args"]}
	} else {
		return "", false
	}
	b, err := json.Marshal(key)
	return string(b), err == nil
}

// writeValue writes v as JSON the way the typed view encodes it, with no
// HTML escaping and no trailing newline.
func writeValue(w *bytes.Buffer, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	w.Write(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
	return nil
}

// member is one member of a JSON object, its key and value as written, or
// one element of a JSON array (no key).
type member struct {
	key    string // decoded
	rawKey []byte
	value  []byte
}

// split splits the JSON object or array b (open is its opening delimiter)
// into its members, in order, repeated keys included.
func split(b []byte, open json.Delim) ([]member, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != open {
		return nil, errNotContainer
	}
	var out []member
	for dec.More() {
		var m member
		if open == '{' {
			start := dec.InputOffset()
			tok, err := dec.Token()
			if err != nil {
				return nil, err
			}
			key, ok := tok.(string)
			if !ok {
				return nil, errNotContainer
			}
			m.key, m.rawKey = key, bytes.TrimLeft(b[start:dec.InputOffset()], " \t\r\n,")
		}
		if err := dec.Decode((*json.RawMessage)(&m.value)); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

var errNotContainer = errors.New("not a JSON object or array")
