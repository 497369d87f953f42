package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
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
// modifiers change; Encode writes back only what the modifiers changed, onto
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

// Raw returns the bytes the document was parsed from.
func (d *Doc) Raw() []byte { return d.raw }

// Changed reports whether the typed view differs from what was loaded.
func (d *Doc) Changed() (bool, error) {
	cur, err := json.Marshal(d.Spec)
	if err != nil {
		return false, fmt.Errorf("encode runtime spec: %w", err)
	}
	return !bytes.Equal(cur, d.orig), nil
}

// Encode returns the document with the modifiers' changes applied to the
// original JSON. It computes the difference between the typed view as loaded
// and as it is now, and applies only that difference to the original tree: a
// field that runtime-spec v1.3.0 does not know (a newer spec, an engine
// extension) is never dropped, since it is never re-encoded from the struct.
func (d *Doc) Encode() ([]byte, error) {
	data, _, err := d.encode()
	return data, err
}

// encode is Encode that also tells whether anything changed, so that Save
// encodes the typed view once.
func (d *Doc) encode() (data []byte, changed bool, err error) {
	cur, err := json.Marshal(d.Spec)
	if err != nil {
		return nil, false, fmt.Errorf("encode runtime spec: %w", err)
	}
	if bytes.Equal(cur, d.orig) {
		return d.raw, false, nil
	}
	data, err = d.patched(cur)
	return data, err == nil, err
}

// patched applies the change from the loaded typed view to cur onto the
// original document.
func (d *Doc) patched(cur []byte) ([]byte, error) {
	var raw, old, now any
	for _, x := range []struct {
		b []byte
		v *any
	}{{d.raw, &raw}, {d.orig, &old}, {cur, &now}} {
		dec := json.NewDecoder(bytes.NewReader(x.b))
		dec.UseNumber()
		if err := dec.Decode(x.v); err != nil {
			return nil, fmt.Errorf("decode runtime spec: %w", err)
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(patch(raw, old, now)); err != nil {
		return nil, fmt.Errorf("encode runtime spec: %w", err)
	}
	// encoding/json (runc's decoder too) matches keys case-insensitively and
	// lets a repeated key fill the same value twice; a generic map keeps one
	// of them. Such a document could read back as a spec other than the one
	// that was checked, so insist that it reads back exactly.
	var back specs.Spec
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		return nil, fmt.Errorf("decode rewritten runtime spec: %w", err)
	}
	if got, err := json.Marshal(&back); err != nil || !bytes.Equal(got, cur) {
		return nil, fmt.Errorf("%w: it has repeated or case-variant keys, so the rewrite would not read back as checked; fix the engine or tool that wrote it", ErrAmbiguous)
	}
	return buf.Bytes(), nil
}

// ErrAmbiguous is returned by Encode for a config.json whose rewrite would
// not decode to the typed view that was checked and modified.
var ErrAmbiguous = errors.New("ambiguous config.json")

// patch returns raw with the change from old to now applied. old and now are
// the typed view before and after the modifiers; raw is the original
// document, a superset of old.
func patch(raw, old, now any) any {
	if reflect.DeepEqual(old, now) {
		return raw
	}
	switch n := now.(type) {
	case map[string]any:
		o, ok1 := old.(map[string]any)
		r, ok2 := raw.(map[string]any)
		if !ok1 || !ok2 {
			return now
		}
		out := make(map[string]any, len(r)+len(n))
		for k, v := range r {
			out[k] = v
		}
		for k, v := range n {
			rk := k
			if _, ok := r[k]; !ok {
				// encoding/json (runc's decoder too) matches keys without
				// regard to case: a raw key spelled unlike the typed view's
				// would also be read, before or after ours. One such key is
				// the field: take it as the base and write the canonical
				// key only. Several are left to Encode's read-back check.
				var variants []string
				for x := range r {
					if strings.EqualFold(x, k) {
						variants = append(variants, x)
					}
				}
				if len(variants) == 1 {
					rk = variants[0]
					delete(out, rk)
				}
			}
			out[k] = patch(r[rk], o[k], v)
		}
		for k := range o {
			if _, ok := n[k]; !ok {
				delete(out, k)
			}
		}
		return out
	case []any:
		o, ok1 := old.([]any)
		r, ok2 := raw.([]any)
		// Element-wise only when the list was changed in place or appended
		// to; a removal or reordering replaces the list (no modifier does
		// that to a list with unknown fields).
		if !ok1 || !ok2 || len(o) != len(r) || len(n) < len(o) {
			return now
		}
		out := make([]any, len(n))
		for i := range n {
			if i < len(o) {
				out[i] = patch(r[i], o[i], n[i])
			} else {
				out[i] = n[i]
			}
		}
		return out
	default:
		return now
	}
}
