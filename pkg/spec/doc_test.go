package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// rewrite applies what the wrapper applies to a mounter: SharedBinds over the
// given resolver, then rshared on the rootfs.
func rewrite(t testing.TB, d *Doc, r SourceResolver) *SharedBinds {
	t.Helper()
	sb := &SharedBinds{Resolver: r}
	if err := Apply(d.Spec, sb.Modify, RootfsPropagation("rshared").Modify); err != nil {
		t.Fatalf("Modify: %v", err)
	}
	return sb
}

func encode(t testing.TB, d *Doc) []byte {
	t.Helper()
	b, err := d.Encode()
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	return b
}

func TestEncodeUnchangedIsOriginal(t *testing.T) {
	for _, name := range append(append([]string(nil), engineConfigs...), filepath.Join("testdata", "rich.config.json")) {
		t.Run(filepath.Base(name), func(t *testing.T) {
			raw := readAny(t, name)
			d := parseBytes(t, raw)
			if changed, err := d.Changed(); err != nil || changed {
				t.Fatalf("Changed = %v, %v right after Parse", changed, err)
			}
			if got := encode(t, d); !bytes.Equal(got, raw) {
				t.Fatal("Encode of an unchanged document is not the original bytes")
			}
			if !bytes.Equal(d.Raw(), raw) {
				t.Fatal("Raw is not the parsed bytes")
			}
			// Modifiers that change nothing leave it unchanged too.
			if err := (&SharedBinds{Resolver: &mapResolver{}}).Modify(d.Spec); err != nil {
				t.Fatal(err)
			}
			if got := encode(t, d); !bytes.Equal(got, raw) {
				t.Fatal("a no-op SharedBinds changed the encoding")
			}
		})
	}
}

// readAny reads an engine capture by name, or a path with a directory.
func readAny(t testing.TB, name string) []byte {
	t.Helper()
	if strings.Contains(name, string(filepath.Separator)) {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	return readEngine(t, name)
}

// TestEncodeRewriteChangesOnlyThat: the rewrite of each real engine config
// differs from the original exactly in the fields the modifiers changed.
func TestEncodeRewriteChangesOnlyThat(t *testing.T) {
	tests := []struct {
		engine   string
		resolved string // what hostSource resolves to
		bindDest string // the mount that changes; "" for none
	}{
		{engDockerMounter, hostSource, "/var/lib/kubelet"},
		{engContainerd, hostSource, "/var/lib/kubelet"},
		{engPodman, hostSource, "/var/lib/kubelet"},
		{engDockerMounter, "/srv/resolved", "/var/lib/kubelet"},
		{engPodman, "/srv/resolved", "/var/lib/kubelet"},
		{engDockerPlain, hostSource, ""},
	}
	for _, tt := range tests {
		t.Run(tt.engine+"->"+tt.resolved, func(t *testing.T) {
			raw := readEngine(t, tt.engine)
			d := parseBytes(t, raw)
			sb := rewrite(t, d, &mapResolver{allow: map[string]string{hostSource: tt.resolved}})
			out := encode(t, d)

			allowed := []string{"linux.rootfsPropagation"}
			if tt.bindDest != "" {
				i := mountIndex(t, parseBytes(t, raw).Spec, tt.bindDest)
				allowed = append(allowed, fmt.Sprintf("mounts[%d].options", i))
				if tt.resolved != hostSource {
					allowed = append(allowed, fmt.Sprintf("mounts[%d].source", i))
				}
				if len(sb.Sources) != 1 || sb.Sources[0] != tt.resolved {
					t.Errorf("Sources = %q", sb.Sources)
				}
			}
			assertOnlyChanged(t, raw, inSpecOrder(t, raw, out), allowed...)

			// What runc reads back is what the modifiers produced.
			back := parseBytes(t, out)
			if typedJSON(t, back.Spec) != typedJSON(t, d.Spec) {
				t.Error("the encoded rewrite decodes to another typed view")
			}
			if err := ValidateRewrite(back.Spec); err != nil {
				t.Errorf("ValidateRewrite: %v", err)
			}
		})
	}
}

// futureConfig is the containerd capture with fields from a future spec at
// every level the rewrite walks through.
func futureConfig(t testing.TB) []byte {
	t.Helper()
	raw := string(readEngine(t, engContainerd))
	for _, r := range []struct{ old, new string }{
		{`{"ociVersion":"1.0.2-dev",`, `{"ociVersion":"1.0.2-dev","futureTop":{"max":18446744073709551615,"sci":1e3,"list":[1.50,-0,null,true]},`},
		{`"cwd":"/",`, `"cwd":"/","futureProcess":{"n":18446744073709551615},`},
		{`"source":"/var/lib/example/host","options":["rbind"]}`, `"source":"/var/lib/example/host","options":["rbind"],"futureMount":{"n":18446744073709551615,"sci":1e3}}`},
		{`{"destination":"/proc","type":"proc",`, `{"destination":"/proc","futureUntouchedMount":1e3,"type":"proc",`},
		{`"linux":{`, `"hooks":{"createRuntime":[{"path":"/usr/bin/hook","timeout":5,"futureHook":{"n":1e3}}],"futureHookKind":[{"path":"/x","n":18446744073709551615}]},"linux":{"futureLinux":[1e3,18446744073709551615],`},
		{`"cpu":{"shares":1024}`, `"cpu":{"shares":1024,"futureCPU":1e3}`},
	} {
		if !strings.Contains(raw, r.old) {
			t.Fatalf("containerd capture changed: %q not found", r.old)
		}
		raw = strings.Replace(raw, r.old, r.new, 1)
	}
	return []byte(raw)
}

func TestEncodeKeepsUnknownFields(t *testing.T) {
	raw := futureConfig(t)
	d := parseBytes(t, raw)
	rewrite(t, d, prefixResolver(hostSource))
	out := encode(t, d)
	i := mountIndex(t, parseBytes(t, raw).Spec, "/var/lib/kubelet")
	assertOnlyChanged(t, raw, inSpecOrder(t, raw, out), "linux.rootfsPropagation", fmt.Sprintf("mounts[%d].options", i))

	// Numbers survive as written, not through float64.
	doc := decodeGeneric(t, out).(map[string]any)
	get := func(path ...any) any {
		var v any = doc
		for _, p := range path {
			switch k := p.(type) {
			case string:
				v = v.(map[string]any)[k]
			case int:
				v = v.([]any)[k]
			}
		}
		return v
	}
	for _, c := range []struct {
		path []any
		want string
	}{
		{[]any{"futureTop", "max"}, "18446744073709551615"},
		{[]any{"futureTop", "sci"}, "1e3"},
		{[]any{"futureTop", "list", 0}, "1.50"},
		{[]any{"futureTop", "list", 1}, "-0"},
		{[]any{"process", "futureProcess", "n"}, "18446744073709551615"},
		{[]any{"mounts", i, "futureMount", "n"}, "18446744073709551615"},
		{[]any{"mounts", i, "futureMount", "sci"}, "1e3"},
		{[]any{"mounts", 0, "futureUntouchedMount"}, "1e3"},
		{[]any{"hooks", "createRuntime", 0, "futureHook", "n"}, "1e3"},
		{[]any{"hooks", "futureHookKind", 0, "n"}, "18446744073709551615"},
		{[]any{"linux", "futureLinux", 0}, "1e3"},
		{[]any{"linux", "futureLinux", 1}, "18446744073709551615"},
		{[]any{"linux", "resources", "cpu", "futureCPU"}, "1e3"},
	} {
		n, ok := get(c.path...).(json.Number)
		if !ok || string(n) != c.want {
			t.Errorf("%v = %#v, want the literal %s", c.path, get(c.path...), c.want)
		}
	}
	if !bytes.Contains(out, []byte(`"rootfsPropagation":"rshared"`)) {
		t.Error("rootfsPropagation not written")
	}
}

func TestEncodeGoldenRich(t *testing.T) {
	in := filepath.Join("testdata", "rich.config.json")
	golden := filepath.Join("testdata", "rich.rewritten.json")
	raw := readAny(t, in)
	d := parseBytes(t, raw)
	sb := rewrite(t, d, &mapResolver{allow: map[string]string{hostSource: "/srv/kubelet"}})
	if len(sb.Sources) != 1 {
		t.Fatalf("Sources = %q", sb.Sources)
	}
	out := encode(t, d)
	if *update {
		var buf bytes.Buffer
		if err := json.Indent(&buf, out, "", "  "); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -run TestEncodeGoldenRich -update to create it)", err)
	}
	assertJSONEq(t, want, out)

	i := mountIndex(t, parseBytes(t, raw).Spec, "/var/lib/kubelet")
	assertOnlyChanged(t, raw, inSpecOrder(t, raw, out), "linux.rootfsPropagation",
		fmt.Sprintf("mounts[%d].options", i), fmt.Sprintf("mounts[%d].source", i))
}

// TestEncodeReadsBackAsTyped: what runc decodes from the rewrite must be the
// typed view the policy checked and the modifiers changed. Go's decoder
// matches keys case-insensitively and decodes repeated keys in document
// order, a repeated list into the same elements. Encode either writes a
// document that reads back as typed or refuses it with ErrAmbiguous; which
// one each case gets is pinned here.
func TestEncodeReadsBackAsTyped(t *testing.T) {
	tests := []struct {
		name   string
		doc    string
		refuse bool
	}{
		// The variant "slave" would be read after the rewritten field.
		{"rootfsPropagation case variant",
			`{"ociVersion":"1.0.2","linux":{"namespaces":[{"type":"mount"}],"rootfsPropagation":"private","rootfspropagation":"slave"}}`, true},
		// Untouched by the rewrite: both spellings kept, read back alike.
		{"namespaces case variant",
			`{"ociVersion":"1.0.2","linux":{"namespaces":[{"type":"mount","path":"/proc/1/ns/mnt"}],"Namespaces":[{"type":"network"},{"type":"mount"}]}}`, false},
		{"mount options case variant",
			`{"ociVersion":"1.0.2","linux":{"namespaces":[{"type":"mount"}]},"mounts":[{"destination":"/k","type":"bind","source":"/var/lib/example/host","options":["ro","x"],"Options":["rbind","rprivate"]}]}`, true},
		{"mounts case variant",
			`{"ociVersion":"1.0.2","linux":{"namespaces":[{"type":"mount"}]},"mounts":[{"destination":"/","type":"bind","source":"/","options":["rbind","rprivate"]}],"Mounts":[{"destination":"/k","type":"bind","source":"/var/lib/example/host","options":["rbind","rprivate"]}]}`, true},
		// encoding/json decodes a repeated list into the same elements, so
		// the typed mount merges both entries; the rewrite of the last one
		// carries the merged fields and reads back as typed.
		{"mounts repeated",
			`{"ociVersion":"1.0.2","linux":{"namespaces":[{"type":"mount"}]},"mounts":[{"destination":"/k","type":"bind","source":"/var/lib/example/host","options":["rbind"]}],"mounts":[{"destination":"/x"}]}`, false},
		// Repeated scalars decode consistently (last wins in both views).
		{"scalar repeated",
			`{"ociVersion":"1.0.2","linux":{"namespaces":[{"type":"mount"}],"rootfsPropagation":"private","rootfsPropagation":"slave"}}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := parseBytes(t, []byte(tt.doc))
			if err := CheckPolicy(&Rule{Name: "r"}, d.Spec); err != nil {
				t.Fatalf("policy refused the typed view: %v", err)
			}
			rewrite(t, d, prefixResolver("/var/lib/example"))
			out, err := d.Encode()
			if tt.refuse {
				if !errors.Is(err, ErrAmbiguous) {
					t.Fatalf("Encode = %q, %v; want ErrAmbiguous", out, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			back := parseBytes(t, out)
			if got, want := typedJSON(t, back.Spec), typedJSON(t, d.Spec); got != want {
				t.Errorf("the rewrite reads back as\n %s\nnot as the checked and modified\n %s", got, want)
			}
		})
	}
}

// TestEncodeDeepUnknownField: nesting below encoding/json's depth limit in an
// unknown field survives a rewrite.
func TestEncodeDeepUnknownField(t *testing.T) {
	const depth = 5000
	raw := []byte(`{"ociVersion":"1.0.2","futureDeep":` + strings.Repeat("[", depth) + "1e3" + strings.Repeat("]", depth) + `}`)
	d := parseBytes(t, raw)
	rewrite(t, d, &mapResolver{})
	out := encode(t, d)
	assertOnlyChanged(t, raw, out, "linux")
}

func writeFile(t testing.TB, dir, name string, data []byte, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // not subject to umask
		t.Fatal(err)
	}
	return p
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	raw := readEngine(t, engPodman)
	p := writeFile(t, dir, "config.json", raw, 0o640)
	d, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if d.Path != p || !bytes.Equal(d.Raw(), raw) || d.Spec.Hostname != "vm" {
		t.Errorf("Load: Path %q, %d raw bytes, hostname %q", d.Path, len(d.Raw()), d.Spec.Hostname)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	big := make([]byte, MaxConfigSize+1)
	copy(big, `{"ociVersion":"1.0.2","x":"`)
	for i := len(`{"ociVersion":"1.0.2","x":"`); i < len(big)-2; i++ {
		big[i] = 'a'
	}
	copy(big[len(big)-2:], `"}`)
	tests := []struct {
		name    string
		data    []byte // nil: no file
		pattern string
		is      error
	}{
		{"missing file", nil, `^open bundle config: open .*/missing/config\.json: no such file or directory$`, fs.ErrNotExist},
		{"malformed", []byte(`{"ociVersion":"1.0.2",`), `^.*/malformed/config\.json: decode runtime spec: unexpected end of JSON input$`, nil},
		{"syntax error", []byte(`{"ociVersion":1.0.2}`), `/syntax error/config\.json: decode runtime spec: invalid character`, nil},
		{"wrong type", []byte(`{"mounts":{}}`), `/wrong type/config\.json: decode runtime spec: json: cannot unmarshal object into Go struct field Spec\.mounts`, nil},
		{"empty", []byte{}, `/empty/config\.json: decode runtime spec: unexpected end of JSON input$`, nil},
		{"top-level array", []byte(`[]`), `/top-level array/config\.json: decode runtime spec: `, nil},
		{"trailing garbage", []byte(`{"ociVersion":"1.0.2"} {}`), `/trailing garbage/config\.json: decode runtime spec: invalid character`, nil},
		{"too large", big, `/too large/config\.json: config\.json too large: more than 8388608 bytes$`, ErrTooLarge},
		{"deep nesting", bytes.Repeat([]byte("["), 100000), `/deep nesting/config\.json: decode runtime spec: .*(depth|nest)`, nil},
		{"deep nesting in a field", append([]byte(`{"ociVersion":"1","x":`), bytes.Repeat([]byte("{\"a\":"), 100000)...), `/deep nesting in a field/config\.json: decode runtime spec: .*(depth|nest)`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sub := filepath.Join(dir, tt.name)
			if err := os.Mkdir(sub, 0o755); err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(sub, "config.json")
			if tt.data != nil {
				writeFile(t, sub, "config.json", tt.data, 0o644)
			} else {
				p = filepath.Join(dir, "missing", "config.json")
			}
			d, err := Load(p)
			if d != nil {
				t.Error("Load returned a document with the error")
			}
			wantErr(t, err, tt.pattern)
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.is)
			}
		})
	}
}

func TestLoadSizeLimit(t *testing.T) {
	head, tail := `{"ociVersion":"1.0.2","x":"`, `"}`
	exact := []byte(head + strings.Repeat("a", MaxConfigSize-len(head)-len(tail)) + tail)
	if len(exact) != MaxConfigSize {
		t.Fatal(len(exact))
	}
	p := writeFile(t, t.TempDir(), "config.json", exact, 0o644)
	if _, err := Load(p); err != nil {
		t.Errorf("a config of exactly MaxConfigSize: %v", err)
	}
	if _, err := Parse(append(exact, ' ')); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Parse of MaxConfigSize+1 bytes: %v, want ErrTooLarge", err)
	}
}

func TestParseTopLevelNull(t *testing.T) {
	// encoding/json accepts null for a struct: an empty spec, not a crash.
	d := parseBytes(t, []byte("null"))
	rewrite(t, d, &mapResolver{})
	out := encode(t, d)
	var s specs.Spec
	if err := json.Unmarshal(out, &s); err != nil || s.Linux == nil || s.Linux.RootfsPropagation != "rshared" {
		t.Errorf("rewrite of null: %s, %v", out, err)
	}
}

// reshape is a modifier that changes the shape of the mount list the way
// the preload mode and the nested-bind handling do: it drops the mounts at
// drop, moves the mounts at move to the end, and appends add.
func reshape(drop, move []string, add ...specs.Mount) Modifier {
	return func(s *specs.Spec) error {
		var kept, moved []specs.Mount
		for _, m := range s.Mounts {
			switch {
			case slices.Contains(drop, m.Destination):
			case slices.Contains(move, m.Destination):
				moved = append(moved, m)
			default:
				kept = append(kept, m)
			}
		}
		s.Mounts = append(append(kept, moved...), add...)
		return nil
	}
}

// TestEncodeReshapedListKeepsFieldsWithTheirElement: unknown fields stay
// with the element they were written on when a modifier removes, moves or
// appends list elements, even when the list keeps its length.
func TestEncodeReshapedListKeepsFieldsWithTheirElement(t *testing.T) {
	const doc = `{"ociVersion":"1.0.2","mounts":[` +
		`{"destination":"/a","type":"tmpfs","source":"tmpfs","futureA":"a"},` +
		`{"destination":"/etc/ld.so.preload","type":"bind","source":"/old/ld.so.preload","options":["rbind","ro"],"futureOld":"old"},` +
		`{"destination":"/k","type":"bind","source":"/var/lib/example/host","options":["rbind","rprivate"],"futureK":"k"},` +
		`{"destination":"/c","type":"bind","source":"/srv/c","options":["rbind"],"futureC":"c"}],` +
		`"hooks":{"poststop":[{"path":"/usr/bin/other","futureHook":"h"}]}}`
	preload := specs.Mount{Destination: "/etc/ld.so.preload", Type: "bind", Source: "/bundle/ld.so.preload", Options: []string{"rbind", "ro"}}
	tests := []struct {
		name   string
		modify Modifier
		// want maps a mount destination to the unknown field it must carry
		// ("" for none); a destination missing here must be gone.
		want map[string]string
	}{
		{"one removed, one appended (preload)",
			reshape([]string{"/etc/ld.so.preload"}, nil, specs.Mount{Destination: "/.runc-shared", Type: "bind", Source: "/bundle"}),
			map[string]string{"/a": "futureA", "/k": "futureK", "/c": "futureC", "/.runc-shared": ""}},
		{"removed and appended again",
			reshape([]string{"/etc/ld.so.preload"}, nil, preload),
			map[string]string{"/a": "futureA", "/k": "futureK", "/c": "futureC", "/etc/ld.so.preload": "futureOld"}},
		{"allowlisted bind moved to the end",
			Modifiers((&SharedBinds{Resolver: prefixResolver(hostSource)}).Modify, reshape(nil, []string{"/k"})),
			map[string]string{"/a": "futureA", "/etc/ld.so.preload": "futureOld", "/k": "futureK", "/c": "futureC"}},
		{"first removed, hook added",
			Modifiers(reshape([]string{"/a"}, nil), InjectHooks{Path: "/usr/local/bin/mount-hook"}.Modify),
			map[string]string{"/etc/ld.so.preload": "futureOld", "/k": "futureK", "/c": "futureC"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := parseBytes(t, []byte(doc))
			if err := tt.modify(d.Spec); err != nil {
				t.Fatal(err)
			}
			out := encode(t, d)
			var back struct {
				Mounts []map[string]json.RawMessage `json:"mounts"`
				Hooks  struct {
					Poststop []map[string]json.RawMessage `json:"poststop"`
				} `json:"hooks"`
			}
			if err := json.Unmarshal(out, &back); err != nil {
				t.Fatal(err)
			}
			seen := map[string]bool{}
			for _, m := range back.Mounts {
				var dest string
				if err := json.Unmarshal(m["destination"], &dest); err != nil {
					t.Fatal(err)
				}
				seen[dest] = true
				want, ok := tt.want[dest]
				if !ok {
					t.Errorf("mount %s should be gone", dest)
				}
				for k, v := range m {
					if strings.HasPrefix(k, "future") && k != want {
						t.Errorf("mount %s carries %s=%s, which belongs to another mount", dest, k, v)
					}
				}
				if want != "" && m[want] == nil {
					t.Errorf("mount %s lost its %s", dest, want)
				}
			}
			for dest := range tt.want {
				if !seen[dest] {
					t.Errorf("mount %s is missing", dest)
				}
			}
			if len(back.Hooks.Poststop) == 0 || string(back.Hooks.Poststop[0]["futureHook"]) != `"h"` {
				t.Errorf("poststop hooks %v: the first lost its unknown field", back.Hooks.Poststop)
			}
			for _, h := range back.Hooks.Poststop[1:] {
				if h["futureHook"] != nil {
					t.Errorf("an added hook took the unknown field of another: %v", h)
				}
			}
			if typedJSON(t, parseBytes(t, out).Spec) != typedJSON(t, d.Spec) {
				t.Error("the rewrite reads back as another typed view")
			}
		})
	}
}

// TestEncodeKeepsRawBytes: values the rewrite does not change are written
// as they were read, byte for byte: invalid UTF-8 (which encoding/json turns
// into U+FFFD), escapes, number literals and the order of keys.
func TestEncodeKeepsRawBytes(t *testing.T) {
	untouched := []string{
		`"futureBytes":"a` + "\xff\xfe" + `b"`,
		`"futureEscapes":"\u0041\/\u00e9"`,
		`"futureNumbers":[1.50,1e3,-0]`,
		`"zzz":{"b":1,"a":2}`,
		`"futureMount":"` + "\xc3\x28" + `"`,
	}
	raw := []byte(`{"ociVersion":"1.0.2",` + untouched[0] + `,` + untouched[1] + `,"mounts":[` +
		`{"destination":"/proc","type":"proc","source":"proc",` + untouched[2] + `},` +
		`{"destination":"/k","type":"bind","source":"/var/lib/example/host","options":["rbind"],` + untouched[4] + `}],` +
		untouched[3] + `,"linux":{"namespaces":[{"type":"mount"}]}}`)
	d := parseBytes(t, raw)
	rewrite(t, d, prefixResolver(hostSource))
	out := encode(t, d)
	for _, u := range untouched {
		if !bytes.Contains(out, []byte(u)) {
			t.Errorf("the rewrite lost the bytes %q:\n%q", u, out)
		}
	}
	if !bytes.Contains(out, []byte(`"options":["rbind","rshared"]`)) || !bytes.Contains(out, []byte(`"rootfsPropagation":"rshared"`)) {
		t.Errorf("the rewrite is missing:\n%q", out)
	}
	// Keys keep the order they were written in.
	if i, j := bytes.Index(out, []byte(`"futureEscapes"`)), bytes.Index(out, []byte(`"mounts"`)); i < 0 || j < i {
		t.Errorf("keys reordered:\n%q", out)
	}
}
