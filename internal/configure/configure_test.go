package configure

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
	udiff "github.com/aymanbagabas/go-udiff"
)

const (
	testRuntime = "/opt/rs/bin/runc-shared"
	testConfig  = "/etc/rs/config.toml"
)

// run calls Run and returns exit code, stdout and stderr.
func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// copyTestdata copies testdata/name into a temp dir under path rel ("" = no
// file there) and returns the path.
func copyTestdata(t *testing.T, name, rel string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), rel)
	if name == "" {
		return p
	}
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, raw, 0o640); err != nil {
		t.Fatal(err)
	}
	return p
}

// readOrNil returns the file's content, nil when it does not exist.
func readOrNil(t *testing.T, p string) []byte {
	t.Helper()
	b, err := readIfExists(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// dirState is every file below dir with its content.
func dirState(t *testing.T, dir string) map[string]string {
	t.Helper()
	st := map[string]string{}
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(p)
			st[strings.TrimPrefix(p, dir)] = string(b)
		}
		return nil
	})
	return st
}

// check proves that the configured file holds the engine's entry, by
// decoding it the way the engine does.
type check func(t *testing.T, got []byte)

func tomlHas(path []string, want any) check {
	return func(t *testing.T, got []byte) {
		t.Helper()
		doc, err := decodeTOML(got)
		if err != nil {
			t.Fatalf("configured file is not TOML: %v\n%s", err, got)
		}
		v, ok := lookup(doc, path)
		if !ok || !reflect.DeepEqual(v, want) {
			t.Fatalf("%s = %#v, want %#v\n%s", toml.Key(path), v, want, got)
		}
	}
}

func dockerHas(name string, want map[string]any) check {
	return func(t *testing.T, got []byte) {
		t.Helper()
		var doc map[string]any
		if err := json.Unmarshal(got, &doc); err != nil {
			t.Fatalf("daemon.json: %v\n%s", err, got)
		}
		rts, _ := doc["runtimes"].(map[string]any)
		if !reflect.DeepEqual(rts[name], want) {
			t.Fatalf("runtimes.%s = %#v, want %#v", name, rts[name], want)
		}
	}
}

var v2Handler = []string{"plugins", "io.containerd.grpc.v1.cri", "containerd", "runtimes", "shared"}

var wantHandler = map[string]any{
	"runtime_type":    "io.containerd.runc.v2",
	"pod_annotations": []any{"runc-shared.io/mounter"},
	"options":         map[string]any{"BinaryName": testRuntime},
}

// TestRoundTrip runs configure twice, then remove, on real default
// configurations: the second configure changes nothing, remove gives back
// the original bytes and leaves no backup.
func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name, engine, input, rel string
		extra                    []string
		check                    check
		hooks                    bool
	}{
		{name: "docker-missing", engine: "docker", rel: "docker/daemon.json",
			check: dockerHas("shared", map[string]any{"path": testRuntime, "runtimeArgs": []any{"--runc-shared-config=/etc/runc-shared/config.toml"}})},
		{name: "docker-empty", engine: "docker", input: "docker-empty.json", rel: "daemon.json",
			extra: []string{"--runc-shared-config", testConfig},
			check: dockerHas("shared", map[string]any{"path": testRuntime, "runtimeArgs": []any{"--runc-shared-config=" + testConfig}})},
		{name: "docker-populated", engine: "docker", input: "docker-populated.json", rel: "daemon.json",
			check: dockerHas("shared", map[string]any{"path": testRuntime, "runtimeArgs": []any{"--runc-shared-config=/etc/runc-shared/config.toml"}})},
		{name: "containerd-default", engine: "containerd", input: "containerd-1.6-default.toml", rel: "config.toml",
			check: tomlHas(v2Handler, wantHandler)},
		{name: "containerd-debian", engine: "containerd", input: "containerd-1.6-debian.toml", rel: "config.toml",
			check: tomlHas(v2Handler, wantHandler)},
		{name: "containerd-commented", engine: "containerd", input: "containerd-commented.toml", rel: "config.toml",
			check: tomlHas(v2Handler, wantHandler)},
		{name: "containerd-missing", engine: "containerd", rel: "etc/containerd/config.toml",
			check: tomlHas(v2Handler, wantHandler)},
		{name: "containerd-other-name", engine: "containerd", input: "containerd-1.6-default.toml", rel: "config.toml",
			extra: []string{"--runtime-name", "mounters"},
			check: tomlHas([]string{"plugins", "io.containerd.grpc.v1.cri", "containerd", "runtimes", "mounters", "runtime_type"}, "io.containerd.runc.v2")},
		{name: "podman-usr-share", engine: "podman", input: "podman-4.3-containers.conf", rel: "containers.conf", hooks: true,
			check: tomlHas([]string{"engine", "runtimes", "shared"}, []any{testRuntime})},
		{name: "podman-missing", engine: "podman", rel: "containers/containers.conf", hooks: true,
			check: tomlHas([]string{"engine", "runtimes", "shared"}, []any{testRuntime})},
		{name: "podman-no-newline", engine: "podman", input: "podman-etc-no-newline.conf", rel: "containers.conf", hooks: true,
			check: tomlHas([]string{"engine", "runtimes", "shared"}, []any{testRuntime})},
		{name: "crio-dropin", engine: "crio", rel: "crio.conf.d/99-runc-shared.conf", hooks: true,
			check: tomlHas([]string{"crio", "runtime", "runtimes", "shared"}, map[string]any{"runtime_path": testRuntime, "runtime_type": "oci"})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := copyTestdata(t, tc.input, tc.rel)
			dir := filepath.Dir(file)
			hooksDir := filepath.Join(t.TempDir(), "hooks.d")
			args := append([]string{"--engine", tc.engine, "--config-file", file, "--runtime-path", testRuntime,
				"--hooks-dir", hooksDir}, tc.extra...)
			original := readOrNil(t, file)
			before := dirState(t, dir)

			code, out, errOut := run(t, args...)
			if code != 0 {
				t.Fatalf("configure: exit %d: %s%s", code, out, errOut)
			}
			got := readOrNil(t, file)
			tc.check(t, got)
			if original != nil {
				if bak := readOrNil(t, file+backupSuffix); !bytes.Equal(bak, original) {
					t.Errorf("backup differs from the original")
				}
			} else if _, err := os.Stat(file + backupSuffix); err == nil {
				t.Errorf("a backup of a file that did not exist")
			}
			if tc.hooks {
				for name, stage := range HookFiles {
					h := readOrNil(t, filepath.Join(hooksDir, name))
					if !bytes.Equal(h, hookFile("/opt/rs/bin/mount-hook", stage, "", "")) {
						t.Errorf("hook file %s = %s", name, h)
					}
				}
			}

			configured := dirState(t, dir)
			code, out, errOut = run(t, args...)
			if code != 0 {
				t.Fatalf("second configure: exit %d: %s%s", code, out, errOut)
			}
			if strings.Contains(out, "updated") || strings.Contains(out, "created") {
				t.Errorf("second configure changed something:\n%s", out)
			}
			if again := dirState(t, dir); !reflect.DeepEqual(again, configured) {
				t.Errorf("second configure changed the files")
			}

			code, out, errOut = run(t, append(args, "--remove")...)
			if code != 0 {
				t.Fatalf("remove: exit %d: %s%s", code, out, errOut)
			}
			if after := dirState(t, dir); !reflect.DeepEqual(after, before) {
				t.Errorf("remove did not give back the original files:\nbefore %v\nafter  %v\n%s", keys(before), keys(after),
					udiff.Unified("original", "after remove", string(original), string(readOrNil(t, file))))
			}
			if tc.hooks {
				if ents, _ := os.ReadDir(hooksDir); len(ents) != 0 {
					t.Errorf("hook files left after remove: %v", ents)
				}
			}
			code, out, _ = run(t, append(args, "--remove")...)
			if code != 0 || strings.Contains(out, "removed") || strings.Contains(out, "restored") {
				t.Errorf("second remove: exit %d, %s", code, out)
			}
		})
	}
}

func keys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

// TestTOMLKeepsComments: the text outside the block is byte for byte the
// input, comments included.
func TestTOMLKeepsComments(t *testing.T) {
	file := copyTestdata(t, "containerd-commented.toml", "config.toml")
	orig := readOrNil(t, file)
	if code, out, errOut := run(t, "--engine", "containerd", "--config-file", file, "--runtime-path", testRuntime); code != 0 {
		t.Fatalf("exit %d: %s%s", code, out, errOut)
	}
	got := readOrNil(t, file)
	if !bytes.HasPrefix(got, orig) {
		t.Fatalf("the original text is not kept as the file's start:\n%s", got)
	}
	want := `
# BEGIN runc-shared runtime=shared: written by "mounter configure", removed by "mounter configure --remove"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.shared]
  runtime_type = "io.containerd.runc.v2"
  pod_annotations = ["runc-shared.io/mounter"]

  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.shared.options]
    BinaryName = "/opt/rs/bin/runc-shared"
# END runc-shared runtime=shared
`
	if string(got[len(orig):]) != want {
		t.Errorf("added text:\n%s\nwant:\n%s", got[len(orig):], want)
	}
}

// TestPodmanInsertsIntoExistingTable: containers.conf from /usr/share has
// an [engine.runtimes] table; a second header would be invalid TOML.
func TestPodmanInsertsIntoExistingTable(t *testing.T) {
	file := copyTestdata(t, "podman-4.3-containers.conf", "containers.conf")
	if code, out, errOut := run(t, "--engine", "podman", "--config-file", file, "--runtime-path", testRuntime,
		"--hooks-dir", t.TempDir()); code != 0 {
		t.Fatalf("exit %d: %s%s", code, out, errOut)
	}
	got := string(readOrNil(t, file))
	if n := strings.Count(got, "\n[engine.runtimes]\n"); n != 1 {
		t.Fatalf("[engine.runtimes] appears %d times", n)
	}
	want := "[engine.runtimes]\n# BEGIN runc-shared runtime=shared: written by \"mounter configure\", removed by \"mounter configure --remove\"\n" +
		"shared = [\"/opt/rs/bin/runc-shared\"]\n# END runc-shared runtime=shared\n#crun = ["
	if !strings.Contains(got, want) {
		t.Errorf("the entry is not right below [engine.runtimes]")
	}
}

func TestDockerKeepsOrderAndContent(t *testing.T) {
	file := copyTestdata(t, "docker-populated.json", "daemon.json")
	orig := readOrNil(t, file)
	if code, out, errOut := run(t, "--engine", "docker", "--config-file", file, "--runtime-path", testRuntime); code != 0 {
		t.Fatalf("exit %d: %s%s", code, out, errOut)
	}
	got := readOrNil(t, file)
	var before, after map[string]any
	if err := json.Unmarshal(orig, &before); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(got, &after); err != nil {
		t.Fatal(err)
	}
	delete(after["runtimes"].(map[string]any), "shared")
	if !reflect.DeepEqual(before, after) {
		t.Errorf("content besides runtimes.shared changed:\n%s", got)
	}
	order := regexp.MustCompile(`(?m)^  "([^"]+)"`).FindAllStringSubmatch(string(got), -1)
	var ks []string
	for _, m := range order {
		ks = append(ks, m[1])
	}
	want := []string{"log-driver", "log-opts", "runtimes", "default-runtime", "storage-driver", "features", "x-unknown-key"}
	if !reflect.DeepEqual(ks, want) {
		t.Errorf("top-level keys %v, want the original order %v (two-space indent kept)", ks, want)
	}
	// Only additions: every other line keeps its text, "2.50" and the
	// one-line objects included.
	for _, l := range strings.Split(udiff.Unified("a", "b", string(orig), string(got)), "\n") {
		if strings.HasPrefix(l, "-") && l != "--- a" {
			t.Errorf("configure changed an existing line: %q\n%s", l, got)
		}
	}
}

// TestRemoveKeepsLaterEdits: a file changed after configure is not
// restored from the backup; only the entry goes, and the backup stays.
func TestRemoveKeepsLaterEdits(t *testing.T) {
	for _, tc := range []struct {
		engine, input, edit string
		gone                string
	}{
		{"containerd", "containerd-1.6-default.toml", "\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.kata]\n  runtime_type = \"io.containerd.kata.v2\"\n", "runtimes.shared"},
		{"podman", "podman-4.3-containers.conf", "\n[network]\n# edited later\n", "shared = ["},
	} {
		t.Run(tc.engine, func(t *testing.T) {
			file := copyTestdata(t, tc.input, "f.conf")
			args := []string{"--engine", tc.engine, "--config-file", file, "--runtime-path", testRuntime, "--hooks-dir", t.TempDir()}
			if code, out, errOut := run(t, args...); code != 0 {
				t.Fatalf("exit %d: %s%s", code, out, errOut)
			}
			f, err := os.OpenFile(file, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteString(tc.edit)
			f.Close()
			code, out, errOut := run(t, append(args, "--remove")...)
			if code != 0 {
				if tc.engine == "podman" && strings.Contains(errOut, "parse TOML") {
					return // [network] twice: the edit itself broke the file
				}
				t.Fatalf("remove: exit %d: %s%s", code, out, errOut)
			}
			got := string(readOrNil(t, file))
			if strings.Contains(got, tc.gone) || !strings.HasSuffix(got, tc.edit) {
				t.Errorf("after remove:\n%s", got)
			}
			if !strings.Contains(out, "is kept: compare it") {
				t.Errorf("remove does not tell about the kept backup: %s", out)
			}
			if _, err := os.Stat(file + backupSuffix); err != nil {
				t.Errorf("backup gone: %v", err)
			}
		})
	}
}

func TestDryRunWritesNothing(t *testing.T) {
	file := copyTestdata(t, "containerd-1.6-default.toml", "config.toml")
	dir := filepath.Dir(file)
	before := dirState(t, dir)
	code, out, errOut := run(t, "--engine", "containerd", "--config-file", file, "--runtime-path", testRuntime, "--dry-run")
	if code != 0 {
		t.Fatalf("exit %d: %s%s", code, out, errOut)
	}
	if !reflect.DeepEqual(dirState(t, dir), before) {
		t.Fatal("--dry-run wrote")
	}
	for _, want := range []string{"--- " + file + "\n+++ " + file + "\n", "@@ -239,3 +239,12 @@\n", "+    BinaryName = \"" + testRuntime + "\"\n", "would be updated"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry-run output lacks %q:\n%s", want, out)
		}
	}
	// And for remove: the diff takes the block out.
	if code, _, _ := run(t, "--engine", "containerd", "--config-file", file, "--runtime-path", testRuntime); code != 0 {
		t.Fatal("configure failed")
	}
	configured := dirState(t, dir)
	_, out, _ = run(t, "--engine", "containerd", "--config-file", file, "--runtime-path", testRuntime, "--dry-run", "--remove")
	if !reflect.DeepEqual(dirState(t, dir), configured) || !strings.Contains(out, "-    BinaryName") {
		t.Errorf("--dry-run --remove: %s", out)
	}
}

func TestRefusals(t *testing.T) {
	handMade := func(binary string) string {
		return "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.shared]\n  runtime_type = \"io.containerd.runc.v2\"\n" +
			"  pod_annotations = [\"runc-shared.io/mounter\"]\n  [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.shared.options]\n    BinaryName = \"" + binary + "\"\n"
	}
	for _, tc := range []struct {
		name, engine, content string
		code                  int
		want                  string // stderr regexp; "" = success without change
	}{
		{"docker-not-json", "docker", "{\"runtimes\": {", 1, `daemon.json: parse JSON at key "runtimes": unexpected EOF`},
		{"docker-runtimes-not-object", "docker", `{"runtimes": []}`, 1, `"runtimes" is not a JSON object; fix it by hand`},
		{"docker-array", "docker", `[]`, 1, `want an object at the top`},
		{"toml-broken", "containerd", "version = 2\n[plugins\n", 1, `parse TOML: line 3: .*; fix the file first`},
		{"toml-version", "containerd", "version = 7\n", 1, `containerd config version 7: want 1, 2 or 3`},
		{"hand-made-conflict", "containerd", handMade("/usr/bin/other"), 1,
			`already has plugins."io.containerd.grpc.v1.cri".containerd.runtimes.shared, not written by runc-shared: remove it or choose another --runtime-name`},
		{"hand-made-same", "containerd", handMade(testRuntime), 0, ""},
		{"inline-table", "podman", "[engine]\nruntimes = { runc = [\"/usr/bin/runc\"] }\n", 1,
			`adding engine.runtimes.shared would break the file .*; add this by hand instead:\n\[engine.runtimes\]\nshared = \["/opt/rs/bin/runc-shared"\]`},
		{"open-block", "podman", "# BEGIN runc-shared runtime=shared: x\nshared = 1\n", 1, `line 1 opens a runc-shared block .* that no "# END runc-shared runtime=shared" line closes`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "daemon.json")
			if err := os.WriteFile(file, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			hooks := filepath.Join(t.TempDir(), "hooks.d")
			code, out, errOut := run(t, "--engine", tc.engine, "--config-file", file, "--runtime-path", testRuntime, "--hooks-dir", hooks)
			if code != tc.code {
				t.Fatalf("exit %d, want %d: %s%s", code, tc.code, out, errOut)
			}
			if tc.want != "" && !regexp.MustCompile(tc.want).MatchString(errOut) {
				t.Errorf("stderr %q\nwant match %q", errOut, tc.want)
			}
			if got := readOrNil(t, file); string(got) != tc.content {
				t.Errorf("file changed:\n%s", got)
			}
			if _, err := os.Stat(file + backupSuffix); err == nil {
				t.Errorf("backup written")
			}
			if _, err := os.Stat(hooks); tc.code != 0 && err == nil {
				t.Errorf("hooks written although the config edit failed")
			}
		})
	}
}

func TestUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--help"}, 0, "Usage: mounter configure --engine docker|containerd|podman|crio"},
		{[]string{}, 2, `--engine "": want docker, containerd, podman or crio`},
		{[]string{"--engine", "lxc"}, 2, `--engine "lxc"`},
		{[]string{"--engine", "docker", "--runtime-path", "bin/runc-shared"}, 2, `--runtime-path "bin/runc-shared": want an absolute path`},
		{[]string{"--engine", "docker", "--runtime-name", "a.b"}, 2, `--runtime-name "a.b": want a plain name`},
		{[]string{"--engine", "docker", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"--engine", "docker", "--bogus"}, 2, `flag provided but not defined: -bogus`},
	} {
		code, out, errOut := run(t, tc.args...)
		if code != tc.code || !strings.Contains(out+errOut, tc.want) {
			t.Errorf("%v: exit %d, %s%s; want exit %d and %q", tc.args, code, out, errOut, tc.code, tc.want)
		}
	}
}

func TestContainerdVersions(t *testing.T) {
	for _, tc := range []struct {
		content string
		table   []string
	}{
		{"", []string{"plugins", "io.containerd.grpc.v1.cri"}},
		{"# only a comment\n", []string{"plugins", "io.containerd.grpc.v1.cri"}},
		{"root = \"/var/lib/containerd\"\n", []string{"plugins", "cri"}},
		{"version = 1\n", []string{"plugins", "cri"}},
		{"version = 2\n", []string{"plugins", "io.containerd.grpc.v1.cri"}},
		{"version = 3\n", []string{"plugins", "io.containerd.cri.v1.runtime"}},
	} {
		got, err := containerdEditor(options{RuntimeName: "shared", RuntimePath: testRuntime}).Apply([]byte(tc.content))
		if err != nil {
			t.Errorf("%q: %v", tc.content, err)
			continue
		}
		tomlHas(append(tc.table, "containerd", "runtimes", "shared"), wantHandler)(t, got)
		if doc, _ := decodeTOML(got); tc.content == "" && doc["version"] != int64(2) {
			t.Errorf("a new file lacks version = 2:\n%s", got)
		}
	}
}

// TestHookFilesMatchRepo keeps the generated hook files in step with the
// repository's hooks.d, which `make install` copies.
func TestHookFilesMatchRepo(t *testing.T) {
	for name, stage := range HookFiles {
		repo, err := os.ReadFile(filepath.Join("..", "..", "hooks.d", name))
		if err != nil {
			t.Fatal(err)
		}
		if got := hookFile("/usr/local/bin/mount-hook", stage, "", ""); !jsonEqual(got, repo) {
			t.Errorf("%s differs from hooks.d/%s:\n%s\n---\n%s", stage, name, got, repo)
		}
	}
	var h struct {
		Hook struct{ Args []string }
	}
	if err := json.Unmarshal(hookFile("/x/mount-hook", "poststop", testConfig, ""), &h); err != nil {
		t.Fatal(err)
	}
	if want := []string{"mount-hook", "--config", testConfig, "poststop"}; !reflect.DeepEqual(h.Hook.Args, want) {
		t.Errorf("args %v, want %v", h.Hook.Args, want)
	}
}

// TestRepoHookFilesKept: the hooks.d files that `make install` copies from
// the repository, laid out by hand, are what configure would write: it
// leaves them alone rather than rewrite them with a backup.
func TestRepoHookFilesKept(t *testing.T) {
	hooks := t.TempDir()
	for name := range HookFiles {
		repo, err := os.ReadFile(filepath.Join("..", "..", "hooks.d", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(hooks, name), repo, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	before := dirState(t, hooks)
	file := copyTestdata(t, "podman-4.3-containers.conf", "containers.conf")
	code, out, errOut := run(t, "--engine", "podman", "--config-file", file, "--runtime-path", "/usr/local/bin/runc-shared", "--hooks-dir", hooks)
	if code != 0 {
		t.Fatalf("exit %d: %s%s", code, out, errOut)
	}
	if got := dirState(t, hooks); !reflect.DeepEqual(got, before) || strings.Count(out, "hook)") != 2 || strings.Count(out, "unchanged") != 2 {
		t.Errorf("configure rewrote the repository's hook files:\n%s\n%v", out, keys(got))
	}
}

func TestNotes(t *testing.T) {
	file := filepath.Join(t.TempDir(), "config.toml")
	os.WriteFile(file, []byte("version = 2\ndisabled_plugins = [\"cri\"]\n"), 0o644)
	_, out, _ := run(t, "--engine", "containerd", "--config-file", file, "--runtime-path", testRuntime,
		"--runc-shared-config", testConfig, "--dry-run")
	for _, want := range []string{"disables the cri plugin", "set RUNC_SHARED_CONFIG=" + testConfig, "is missing", "restart containerd"} {
		if !strings.Contains(out, want) && !(want == "is missing" && strings.Contains(out, "no such file")) {
			t.Errorf("notes lack %q:\n%s", want, out)
		}
	}
}

// TestUnifiedDiffMatchesDiff compares with diff(1) -u.
func TestUnifiedDiffMatchesDiff(t *testing.T) {
	diff, err := exec.LookPath("diff")
	if err != nil {
		t.Fatalf("diff(1) not found (Debian's diffutils is essential): %v", err)
	}
	base := readOrNil(t, filepath.Join("testdata", "containerd-1.6-default.toml"))
	lines := strings.SplitAfter(string(base), "\n")
	edit := func(f func([]string) []string) []byte {
		return []byte(strings.Join(f(append([]string{}, lines...)), ""))
	}
	for name, b := range map[string][]byte{
		"append":        append(append([]byte{}, base...), "x = 1\n"...),
		"prepend":       append([]byte("y = 2\n"), base...),
		"delete-middle": edit(func(l []string) []string { return append(l[:50], l[60:]...) }),
		"two-hunks":     edit(func(l []string) []string { l[10] = "changed\n"; l[100] = "changed too\n"; return l }),
		"close-hunks":   edit(func(l []string) []string { l[10] = "a\n"; l[15] = "b\n"; return l }),
		"no-newline":    bytes.TrimSuffix(base, []byte("\n")),
		"empty":         nil,
	} {
		dir := t.TempDir()
		pa, pb := filepath.Join(dir, "a"), filepath.Join(dir, "b")
		os.WriteFile(pa, base, 0o644)
		os.WriteFile(pb, b, 0o644)
		want, _ := exec.Command(diff, "-u", "--label", "A", "--label", "B", pa, pb).Output()
		if got := udiff.Unified("A", "B", string(base), string(b)); got != string(want) {
			t.Errorf("%s: got\n%s\nwant\n%s", name, got, want)
		}
	}
}

// TestDeployExamples keeps deploy/'s engine examples what configure writes
// into an empty file with the default flags.
func TestDeployExamples(t *testing.T) {
	for engine, example := range map[string]string{
		"docker":     "docker/daemon.json",
		"containerd": "containerd/config.toml",
		"podman":     "podman/containers.conf",
		"crio":       "crio/99-runc-shared.conf",
	} {
		file := filepath.Join(t.TempDir(), filepath.Base(example))
		if code, out, errOut := run(t, "--engine", engine, "--config-file", file, "--hooks-dir", t.TempDir()); code != 0 {
			t.Fatalf("%s: exit %d: %s%s", engine, code, out, errOut)
		}
		want, err := os.ReadFile(filepath.Join("..", "..", "deploy", example))
		if err != nil {
			t.Fatal(err)
		}
		if got := readOrNil(t, file); !bytes.Equal(got, want) {
			t.Errorf("deploy/%s is not what configure writes:\n%s", example, udiff.Unified("deploy/"+example, "configure", string(want), string(got)))
		}
	}
}

// TestBackupOnceAndModeKept: an existing backup (the content from before
// runc-shared) is never overwritten, and the file keeps its mode.
func TestBackupOnceAndModeKept(t *testing.T) {
	file := copyTestdata(t, "docker-populated.json", "daemon.json") // mode 0640
	older := []byte("{\"from\": \"before runc-shared\"}\n")
	if err := os.WriteFile(file+backupSuffix, older, 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := run(t, "--engine", "docker", "--config-file", file, "--runtime-path", testRuntime)
	if code != 0 {
		t.Fatalf("exit %d: %s%s", code, out, errOut)
	}
	if !strings.Contains(out, "from before runc-shared is kept") {
		t.Errorf("output does not say the old backup is kept: %s", out)
	}
	if got := readOrNil(t, file+backupSuffix); !bytes.Equal(got, older) {
		t.Errorf("existing backup overwritten: %s", got)
	}
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want the original 0640", fi.Mode().Perm())
	}
	if ents, _ := os.ReadDir(filepath.Dir(file)); len(ents) != 2 {
		t.Errorf("files besides the config and its backup (a temp file left?): %v", ents)
	}
}

// TestDockerRemoveStep: after --remove, the step printed is the one that drops
// the runtime from a running dockerd: a reload while daemon.json still has a
// "runtimes" key, else a restart (dockerd keeps its runtimes on a reload of a
// file without the key). tests/engines checks both against a real dockerd.
func TestDockerRemoveStep(t *testing.T) {
	const restart, reload = "next: restart dockerd", "next: reload dockerd"
	for _, tc := range []struct {
		name   string
		before string // daemon.json before configure; "" = no file
		edit   string // replaces daemon.json between configure and remove; "" = none
		want   string
	}{
		{name: "file created by configure", want: restart},
		{name: "backup without runtimes", before: `{"debug": true}`, want: restart},
		{name: "backup with another runtime", before: `{"runtimes": {"other": {"path": "/bin/other"}}}`, want: reload},
		{name: "edited later, other runtime left",
			edit: `{"runtimes": {"shared": {"path": "/x"}, "other": {"path": "/bin/other"}}}`, want: reload},
		{name: "edited later, last runtime", edit: `{"debug": true, "runtimes": {"shared": {"path": "/x"}}}`, want: restart},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "daemon.json")
			if tc.before != "" {
				if err := os.WriteFile(file, []byte(tc.before), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			args := []string{"--engine", "docker", "--config-file", file, "--runtime-path", testRuntime}
			if code, out, errOut := run(t, args...); code != 0 {
				t.Fatalf("configure: exit %d: %s%s", code, out, errOut)
			}
			if tc.edit != "" {
				if err := os.WriteFile(file, []byte(tc.edit), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			code, out, errOut := run(t, append(args, "--remove")...)
			if code != 0 {
				t.Fatalf("remove: exit %d: %s%s", code, out, errOut)
			}
			if !strings.Contains(out, tc.want) || strings.Count(out, "next:") != 1 {
				t.Errorf("remove printed:\n%s\nwant one step, %q", out, tc.want)
			}
			if code, out, _ := run(t, append(args, "--remove")...); code != 0 || strings.Contains(out, "next:") {
				t.Errorf("a second remove (nothing to do) printed a step or failed (exit %d):\n%s", code, out)
			}
		})
	}
}

// TestHookFilesNameStateDir: the hooks.d files pass --state-dir when the
// runc-shared configuration names a state dir other than the default, so
// poststop finds the record after the configuration is gone; never otherwise.
func TestHookFilesNameStateDir(t *testing.T) {
	for _, tc := range []struct {
		name, toml string
		want       []string // the poststop hook's args after "mount-hook"
	}{
		{"custom state dir", "state-dir = \"/srv/rs-state\"\n", []string{"--state-dir", "/srv/rs-state"}},
		{"default state dir", "state-dir = \"/run/runc-shared\"\n", nil},
		{"no state-dir key", "log-level = \"info\"\n", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			rsConfig := filepath.Join(dir, "config.toml")
			if err := os.WriteFile(rsConfig, []byte(tc.toml), 0o644); err != nil {
				t.Fatal(err)
			}
			hooks := filepath.Join(dir, "hooks.d")
			file := copyTestdata(t, "podman-4.3-containers.conf", "containers.conf")
			if code, out, errOut := run(t, "--engine", "podman", "--config-file", file, "--runtime-path", testRuntime,
				"--hooks-dir", hooks, "--runc-shared-config", rsConfig); code != 0 {
				t.Fatalf("exit %d: %s%s", code, out, errOut)
			}
			var h struct {
				Hook struct{ Args []string }
			}
			if err := json.Unmarshal(readOrNil(t, filepath.Join(hooks, "runc-shared-mount-hook-poststop.json")), &h); err != nil {
				t.Fatal(err)
			}
			got := strings.Join(h.Hook.Args, " ")
			if want := strings.Join(tc.want, " "); want != "" && !strings.Contains(got, want) {
				t.Errorf("hook args %q lack %q", got, want)
			} else if want == "" && strings.Contains(got, "--state-dir") {
				t.Errorf("hook args %q name a state dir; want none for the default", got)
			}
		})
	}
}
