package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// exampleRoot is the allowlisted path of the fuzz target: every source the
// engine captures bind-mount lives below it.
const exampleRoot = "/var/lib/example"

// FuzzRewrite checks the rewrite on anything that parses as a spec:
//
//	go test ./pkg/spec/ -run '^$' -fuzz FuzzRewrite -fuzztime 20s
func FuzzRewrite(f *testing.F) {
	for _, name := range engineConfigs {
		f.Add(readEngine(f, name))
	}
	f.Add(readAny(f, filepath.Join("testdata", "rich.config.json")))
	f.Add(futureConfig(f))
	f.Add([]byte(`{"ociVersion":"1.0.2","mounts":[{"destination":"/k","type":"bind","source":"/var/lib/example","options":["rbind","rshared"]}],"linux":{"rootfsPropagation":"rshared"}}`))
	f.Add([]byte(`{"mounts":[{"destination":"/k","source":"/var/lib/example-evil/x","options":["bind"]},{"destination":"/j","type":"bind","source":"/var/lib/example/x"}],"linux":null}`))
	// Keys Go decodes ambiguously (see TestEncodeReadsBackAsTyped).
	f.Add([]byte(`{"linux":{"rootfsPropagation":"private","rootfspropagation":"slave"}}`))

	res := prefixResolver(exampleRoot)
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := Parse(data)
		if err != nil {
			return
		}
		before := parseBytes(t, data) // an independent typed view of the input
		allowlisted := false
		for i := range before.Spec.Mounts {
			m := &before.Spec.Mounts[i]
			if _, ok, _ := res.ResolveSource(m.Source); ok && IsBind(m) {
				allowlisted = true
			}
		}
		rootfsShared := before.Spec.Linux != nil && before.Spec.Linux.RootfsPropagation == "rshared"

		rewrite(t, d, res)
		out, err := d.Encode()
		if err != nil {
			// Refusing is acceptable only for a document whose keys Go
			// decodes ambiguously (repeated, or equal but for case).
			if hasRepeatedKeys(data) {
				return
			}
			t.Fatalf("Encode: %v", err)
		}
		if !json.Valid(out) {
			t.Fatalf("Encode output is not valid JSON: %q", truncate(out))
		}
		changed, err := d.Changed()
		if err != nil {
			t.Fatal(err)
		}
		if (!changed || (!allowlisted && rootfsShared)) && !bytes.Equal(out, data) {
			t.Fatalf("nothing to change (changed=%v allowlisted=%v), yet Encode rewrote the input", changed, allowlisted)
		}

		after, err := Parse(out)
		if err != nil {
			t.Fatalf("Encode output does not parse: %v", err)
		}
		if got, want := typedJSON(t, after.Spec), typedJSON(t, d.Spec); got != want {
			t.Fatalf("the rewrite reads back as\n %s\nnot as\n %s", got, want)
		}
		for _, c := range []struct {
			what          string
			before, after any
		}{
			{"capabilities", capsOf(before.Spec), capsOf(after.Spec)},
			{"devices", devicesOf(before.Spec), devicesOf(after.Spec)},
			{"namespaces", namespacesOf(before.Spec), namespacesOf(after.Spec)},
		} {
			if b, a := typedJSON(t, c.before), typedJSON(t, c.after); b != a {
				t.Fatalf("%s changed:\n %s\n %s", c.what, b, a)
			}
		}
		if len(after.Spec.Mounts) != len(before.Spec.Mounts) {
			t.Fatalf("%d mounts became %d", len(before.Spec.Mounts), len(after.Spec.Mounts))
		}
		for i := range before.Spec.Mounts {
			want := before.Spec.Mounts[i]
			if _, ok, _ := res.ResolveSource(want.Source); ok && IsBind(&want) {
				want.Options = append(slices.DeleteFunc(slices.Clone(want.Options), func(o string) bool {
					return slices.Contains(propagationOptions, o)
				}), "rshared")
			}
			if b, a := typedJSON(t, want), typedJSON(t, after.Spec.Mounts[i]); b != a {
				t.Fatalf("mount %d: want %s, got %s", i, b, a)
			}
		}
		if after.Spec.Linux == nil || after.Spec.Linux.RootfsPropagation != "rshared" {
			t.Fatal("rootfsPropagation is not rshared")
		}
	})
}

func capsOf(s *specs.Spec) any {
	if s.Process == nil {
		return nil
	}
	return s.Process.Capabilities
}

func devicesOf(s *specs.Spec) any {
	var (
		devs []specs.LinuxDevice
		res  []specs.LinuxDeviceCgroup
	)
	if s.Linux != nil {
		devs = s.Linux.Devices
		if s.Linux.Resources != nil {
			res = s.Linux.Resources.Devices
		}
	}
	return []any{devs, res}
}

func namespacesOf(s *specs.Spec) any {
	if s.Linux == nil {
		return nil
	}
	return s.Linux.Namespaces
}

// hasRepeatedKeys reports whether some object in data has two keys that
// encoding/json matches to the same field (equal under Unicode case folding).
func hasRepeatedKeys(data []byte) bool {
	type frame struct {
		object, wantKey bool
		keys            []string
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var stack []*frame
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) || err != nil {
			return false
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.object && top.wantKey {
			if k, ok := tok.(string); ok {
				for _, seen := range top.keys {
					if strings.EqualFold(seen, k) {
						return true
					}
				}
				top.keys = append(top.keys, k)
				top.wantKey = false
				continue
			}
		}
		if top != nil && top.object {
			top.wantKey = true // this token is (or opens) the value
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{object: true, wantKey: true})
		case json.Delim('['):
			stack = append(stack, &frame{})
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
	}
}

func TestHasRepeatedKeys(t *testing.T) {
	for doc, want := range map[string]bool{
		`{"a":1,"b":{"a":2}}`:                   false,
		`{"a":1,"A":2}`:                         true,
		`{"a":1,"a":2}`:                         true,
		`{"x":[{"k":1},{"K":2}]}`:               false,
		`{"x":[{"k":1,"\u212a":2}]}`:            true, // KELVIN SIGN folds to k
		`{"x":{"y":[]},"z":{"y":{}}}`:           false,
		`{"o":{"Mounts":[],"p":{},"mounts":1}}`: true,
		`[{"a":1},{"a":1}]`:                     false,
	} {
		if got := hasRepeatedKeys([]byte(doc)); got != want {
			t.Errorf("hasRepeatedKeys(%s) = %v, want %v", doc, got, want)
		}
	}
}
