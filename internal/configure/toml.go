package configure

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
)

// tomlTable is an ordered TOML table: scalars first when rendered, then
// subtables.
type tomlTable []tomlKV

// tomlKV is one key; Val is a string, a []string or a tomlTable.
type tomlKV struct {
	Key string
	Val any
}

// tomlEditor adds one runtime (Key in the table Locate finds) to a TOML
// file as text between two marker comments, and removes exactly those lines
// again.
type tomlEditor struct {
	// Locate returns the table that holds Key, given the file's content
	// decoded without our block, and for a file that has no key yet the
	// text to put before the entry (containerd's "version = 2").
	Locate func(doc map[string]any) (table []string, prelude string, err error)
	Key    string
	Val    any
}

// begin and end are the markers of the block, which name it, e.g.
// "runtime=shared".
func (e *tomlEditor) begin() string { return "# BEGIN runc-shared runtime=" + e.Key + ":" }
func (e *tomlEditor) end() string   { return "# END runc-shared runtime=" + e.Key }

func (e *tomlEditor) Apply(old []byte) ([]byte, error) {
	base, err := e.Revert(old)
	if err != nil {
		return nil, err
	}
	doc, err := decodeTOML(base)
	if err != nil {
		return nil, fmt.Errorf("%w; fix the file first", err)
	}
	table, prelude, err := e.Locate(doc)
	if err != nil {
		return nil, err
	}
	key := append(slices.Clone(table), e.Key)
	// The entry's value as the TOML decoder returns it. A rendering that
	// is no TOML (a runc-shared bug) fails the check of the result below.
	rendered, _ := decodeTOML([]byte(e.render(table, "")))
	want, _ := lookup(rendered, key)
	if have, ok := lookup(doc, key); ok {
		if reflect.DeepEqual(have, want) {
			return old, nil // configured by hand: leave it to its owner
		}
		return nil, fmt.Errorf("runtime=%s already has %s, not written by runc-shared: remove it or choose another --runtime-name",
			e.Key, toml.Key(key))
	}
	out := e.insert(base, table, prelude)
	got, err := decodeTOML(out)
	if err != nil {
		return nil, fmt.Errorf("adding %s would break the file (%w); add this by hand instead:\n%s",
			toml.Key(key), err, e.render(table, ""))
	}
	if have, _ := lookup(got, key); !reflect.DeepEqual(have, want) {
		return nil, fmt.Errorf("adding %s as text did not give the intended value (%v, want %v); add this by hand instead:\n%s",
			toml.Key(key), have, want, e.render(table, ""))
	}
	return out, nil
}

// Revert removes the marked block; a blank line that configure put before
// a block at the end of the file goes too. Nothing but whitespace left
// means the file was ours alone.
func (e *tomlEditor) Revert(cur []byte) ([]byte, error) {
	lines := strings.SplitAfter(string(cur), "\n")
	b, en := -1, -1
	for i, l := range lines {
		t := strings.TrimSpace(l)
		if b < 0 && strings.HasPrefix(t, e.begin()) {
			b = i
		} else if b >= 0 && t == e.end() {
			en = i
			break
		}
	}
	switch {
	case b < 0:
		return cur, nil
	case en < 0:
		return nil, fmt.Errorf("line %d opens a runc-shared block (%q) that no %q line closes; fix the file by hand", b+1, e.begin(), e.end())
	}
	rest := strings.Join(lines[en+1:], "")
	out := strings.Join(lines[:b], "")
	if strings.TrimSpace(rest) == "" && strings.HasSuffix(out, "\n\n") {
		out = out[:len(out)-1]
	}
	out += rest
	if strings.TrimSpace(out) == "" {
		return nil, nil
	}
	return []byte(out), nil
}

// insert places the block: keys of an existing table go right after its
// header; anything else is appended with its own headers (TOML lets a table
// be defined anywhere once, also after its subtables).
func (e *tomlEditor) insert(base []byte, table []string, prelude string) []byte {
	block := func(s string) string { return e.begin() + " " + markerNote + "\n" + s + e.end() + "\n" }
	if _, isTable := e.Val.(tomlTable); !isTable {
		if at := findHeader(base, table); at >= 0 {
			return slices.Concat(base[:at], []byte(block(keyValue(e.Key, e.Val))), base[at:])
		}
	}
	var b bytes.Buffer
	b.Write(base)
	if len(base) > 0 && !bytes.HasSuffix(base, []byte("\n")) {
		b.WriteByte('\n')
	}
	if len(bytes.TrimSpace(base)) > 0 {
		b.WriteByte('\n')
	}
	b.WriteString(block(e.render(table, prelude)))
	return b.Bytes()
}

const markerNote = `written by "mounter configure", removed by "mounter configure --remove"`

// render writes the entry with its table headers.
func (e *tomlEditor) render(table []string, prelude string) string {
	var b strings.Builder
	if prelude != "" {
		b.WriteString(prelude + "\n\n")
	}
	if t, ok := e.Val.(tomlTable); ok {
		renderTable(&b, append(slices.Clone(table), e.Key), t, "")
	} else {
		fmt.Fprintf(&b, "[%s]\n%s", toml.Key(table), keyValue(e.Key, e.Val))
	}
	return b.String()
}

func renderTable(b *strings.Builder, path []string, t tomlTable, indent string) {
	fmt.Fprintf(b, "%s[%s]\n", indent, toml.Key(path))
	for _, kv := range t {
		if _, sub := kv.Val.(tomlTable); !sub {
			b.WriteString(indent + "  " + keyValue(kv.Key, kv.Val))
		}
	}
	for _, kv := range t {
		if sub, ok := kv.Val.(tomlTable); ok {
			b.WriteString("\n")
			renderTable(b, append(slices.Clone(path), kv.Key), sub, indent+"  ")
		}
	}
}

// keyValue is the line `key = value` for a string or a list of strings.
func keyValue(k string, v any) string {
	line, err := toml.Marshal(map[string]any{k: v})
	if err != nil {
		panic(fmt.Sprintf("configure: no TOML rendering for %T: %v", v, err))
	}
	return string(line)
}

func decodeTOML(b []byte) (map[string]any, error) {
	doc := map[string]any{}
	if _, err := toml.NewDecoder(bytes.NewReader(b)).Decode(&doc); err != nil {
		var perr toml.ParseError
		if errors.As(err, &perr) {
			return nil, fmt.Errorf("parse TOML: line %d: %s", perr.Position.Line, perr.Message)
		}
		return nil, fmt.Errorf("parse TOML: %w", err)
	}
	return doc, nil
}

func lookup(doc map[string]any, path []string) (any, bool) {
	var v any = doc
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[k]; !ok {
			return nil, false
		}
	}
	return v, true
}

// findHeader returns the offset just after the line `[table]`, or -1.
func findHeader(data []byte, table []string) int {
	off := 0
	for _, l := range strings.SplitAfter(string(data), "\n") {
		off += len(l)
		t := strings.TrimSpace(l)
		if !strings.HasPrefix(t, "[") || strings.HasPrefix(t, "[[") {
			continue
		}
		// A standard table header alone is a TOML document of one key.
		md, err := toml.Decode(t, &map[string]any{})
		if keys := md.Keys(); err == nil && len(keys) == 1 && slices.Equal(keys[0], table) {
			if !strings.HasSuffix(l, "\n") {
				return -1 // a header on the last line without newline: append instead
			}
			return off
		}
	}
	return -1
}
