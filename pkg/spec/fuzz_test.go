package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"reflect"
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

		if err := Apply(d.Spec, (&SharedBinds{Resolver: res}).Modify, RootfsPropagation("rshared").Modify); err != nil {
			return // a spec the rewrite refuses is left alone
		}
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
		checkRewrittenMounts(t, before.Spec.Mounts, after.Spec.Mounts, res)
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

// FuzzRewriteKeepsUnknownFields checks that the rewrite is lossless by
// element identity: every field of the input that runtime-spec does not
// know appears in the output at the same place, byte for byte, where a place
// inside a list is named by the element's identity (a mount's destination, a
// hook's path and arguments), not by its index, while modifiers change,
// drop, move and append mounts and add hooks:
//
//	go test ./pkg/spec/ -run '^$' -fuzz FuzzRewriteKeepsUnknownFields -fuzztime 60s
func FuzzRewriteKeepsUnknownFields(f *testing.F) {
	for _, name := range engineConfigs {
		f.Add(readEngine(f, name), uint8(3), true)
	}
	f.Add(futureConfig(f), uint8(1), true)
	f.Add(futureConfig(f), uint8(200), false)
	f.Add(readAny(f, filepath.Join("testdata", "rich.config.json")), uint8(0), true)
	f.Add([]byte(`{"ociVersion":"1.0.2","mounts":[{"destination":"/a","type":"tmpfs","x":1},{"destination":"/k","type":"bind","source":"/var/lib/example/k","options":["rbind"],"y":"`+"\xff"+`"},{"destination":"/c","z":[1e3]}],"hooks":{"poststop":[{"path":"/h","q":{}}]}}`), uint8(0), true)

	res := prefixResolver(exampleRoot)
	f.Fuzz(func(t *testing.T, data []byte, drop uint8, move bool) {
		d, err := Parse(data)
		if err != nil || hasRepeatedKeys(data) {
			return
		}
		in, ok := unknownFields(data)
		if !ok {
			return
		}
		// Drop one mount whose destination is unique, move the allowlisted
		// binds to the end, append a mount no input has.
		var dropped []string
		if n := len(d.Spec.Mounts); n > 0 {
			m := d.Spec.Mounts[int(drop)%n]
			if countDest(d.Spec.Mounts, m.Destination) == 1 {
				dropped = []string{m.Destination}
			}
		}
		var moved []string
		if move {
			for i := range d.Spec.Mounts {
				if _, ok, _ := res.ResolveSource(d.Spec.Mounts[i].Source); ok && IsBind(&d.Spec.Mounts[i]) {
					moved = append(moved, d.Spec.Mounts[i].Destination)
				}
			}
		}
		const added = "/.runc-shared-fuzz"
		if countDest(d.Spec.Mounts, added) > 0 {
			return
		}
		if err := Apply(d.Spec,
			(&SharedBinds{Resolver: res}).Modify,
			RootfsPropagation("rshared").Modify,
			InjectHooks{Path: "/usr/local/bin/mount-hook"}.Modify,
			reshape(dropped, moved, specs.Mount{Destination: added, Type: "bind", Source: "/bundle", Options: []string{"rbind", "ro"}}),
		); err != nil {
			return // an allowlisted source the resolver refuses
		}
		out, err := d.Encode()
		if err != nil {
			t.Fatalf("Encode of a document without repeated keys: %v", err)
		}
		got, ok := unknownFields(out)
		if !ok {
			t.Fatalf("the output cannot be walked: %q", truncate(out))
		}
		for p, v := range in {
			if strings.Contains(p, "#dup") || (len(dropped) > 0 && strings.HasPrefix(p, `.mounts[destination=`+strconvQuote(dropped[0])+`]`)) {
				continue
			}
			if w, ok := got[p]; !ok {
				t.Errorf("unknown field %s = %q is gone", p, v)
			} else if w != v {
				t.Errorf("unknown field %s = %q became %q", p, v, w)
			}
		}
		for p, v := range got {
			if _, ok := in[p]; !ok && !strings.Contains(p, "#dup") {
				t.Errorf("unknown field %s = %q appeared", p, v)
			}
		}
		if t.Failed() {
			t.Logf("input  %q\noutput %q", truncate(data), truncate(out))
		}
	})
}

func countDest(ms []specs.Mount, dest string) int {
	n := 0
	for _, m := range ms {
		if m.Destination == dest {
			n++
		}
	}
	return n
}

func strconvQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// unknownFields returns the fields of the JSON document data that
// runtime-spec's types do not know, each at a path that names list elements
// of mounts and hooks by identity, with its value as written. An element
// whose identity repeats in its list is marked #dup. false means data is
// not a JSON object.
func unknownFields(data []byte) (map[string]string, bool) {
	out := map[string]string{}
	if !walkUnknown(data, reflect.TypeFor[specs.Spec](), "", out) {
		return nil, false
	}
	return out, true
}

func walkUnknown(raw []byte, typ reflect.Type, path string, out map[string]string) bool {
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	switch typ.Kind() {
	case reflect.Struct:
		var obj map[string]json.RawMessage
		if json.Unmarshal(raw, &obj) != nil || obj == nil {
			return false
		}
		for key, v := range obj {
			f, ok := jsonField(typ, key)
			if !ok {
				out[path+"."+key] = string(v)
				continue
			}
			walkUnknown(v, f.Type, path+"."+f.Name, out)
		}
	case reflect.Slice:
		var elems []json.RawMessage
		if json.Unmarshal(raw, &elems) != nil {
			return false
		}
		labels := make([]string, len(elems))
		count := map[string]int{}
		for i, e := range elems {
			labels[i] = elementLabel(e, typ.Elem(), i)
			count[labels[i]]++
		}
		for i, e := range elems {
			l := labels[i]
			if count[l] > 1 {
				l += fmt.Sprintf("#dup%d", i)
			}
			walkUnknown(e, typ.Elem(), path+"["+l+"]", out)
		}
	case reflect.Map:
		var obj map[string]json.RawMessage
		if json.Unmarshal(raw, &obj) != nil {
			return false
		}
		for key, v := range obj {
			walkUnknown(v, typ.Elem(), path+"{"+key+"}", out)
		}
	}
	return true
}

// jsonField finds the field encoding/json decodes key into: the exact name
// first, else one equal under case folding.
func jsonField(typ reflect.Type, key string) (reflect.StructField, bool) {
	var fold *reflect.StructField
	for i := range typ.NumField() {
		f := typ.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" {
			name = f.Name
		}
		if name == "-" {
			continue
		}
		f.Name = name
		if name == key {
			return f, true
		}
		if fold == nil && strings.EqualFold(name, key) {
			fold = &f
		}
	}
	if fold != nil {
		return *fold, true
	}
	return reflect.StructField{}, false
}

// elementLabel names a list element: a mount by destination, a hook by path
// and arguments, anything else by its index.
func elementLabel(raw []byte, typ reflect.Type, i int) string {
	switch typ {
	case reflect.TypeFor[specs.Mount]():
		var m specs.Mount
		if json.Unmarshal(raw, &m) == nil {
			return "destination=" + strconvQuote(m.Destination)
		}
	case reflect.TypeFor[specs.Hook]():
		var h specs.Hook
		if json.Unmarshal(raw, &h) == nil {
			return "path=" + strconvQuote(h.Path) + " args=" + strconvQuote(strings.Join(h.Args, "\x00"))
		}
	}
	return fmt.Sprint(i)
}
