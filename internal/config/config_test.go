package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/runc-shared/runc-shared/pkg/spec"
)

// writeConfig writes content to a config file in a fresh temp dir, mode 0644.
func writeConfig(t testing.TB, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func mustLoad(t *testing.T, content string) *Config {
	t.Helper()
	path := writeConfig(t, content)
	c, err := Load(path)
	if err != nil {
		t.Fatalf("Load:\n%s\nerror: %v", content, err)
	}
	if c.Path != path || c.Missing {
		t.Fatalf("Path = %q, Missing = %v; want %q, false", c.Path, c.Missing, path)
	}
	return c
}

// rule is a valid [[mounter]] whose fields the tests override.
const rule = `
[[mounter]]
name = "gluster"
fstypes = ["glusterfs"]
propagate = ["/var/lib/kubelet"]
[mounter.match]
env = { RUNC_SHARED_MOUNTER = "gluster" }
`

func defaultRule() spec.Rule {
	return spec.Rule{
		Name:              "gluster",
		FSTypes:           []string{"glusterfs"},
		Mode:              spec.ModePropagate,
		Propagate:         []string{"/var/lib/kubelet"},
		EnsureShared:      true,
		RequirePrivileged: true,
		Match:             spec.Match{Env: map[string]string{"RUNC_SHARED_MOUNTER": "gluster"}},
	}
}

func TestDefaults(t *testing.T) {
	for _, content := range []string{"", "# only a comment\n"} {
		c := mustLoad(t, content)
		want := Default()
		want.Path = c.Path
		if !reflect.DeepEqual(c, want) {
			t.Errorf("Load(%q) = %+v, want %+v", content, c, want)
		}
		if !c.PassThrough() {
			t.Errorf("a config without rules must pass through")
		}
	}
	want := &Config{Runtime: "runc", StateDir: "/run/runc-shared", LogLevel: "info", HostMntns: "/proc/1/ns/mnt"}
	if got := Default(); !reflect.DeepEqual(got, want) {
		t.Errorf("Default() = %+v, want %+v", got, want)
	}
}

func TestMissingFileIsPassThrough(t *testing.T) {
	dir := t.TempDir()
	for _, path := range []string{"", filepath.Join(dir, "none.toml"), filepath.Join(dir, "no", "such", "dir.toml")} {
		c, err := Load(path)
		if err != nil {
			t.Fatalf("Load(%q): %v", path, err)
		}
		want := Default()
		want.Missing = true
		if !reflect.DeepEqual(c, want) {
			t.Errorf("Load(%q) = %+v, want %+v", path, c, want)
		}
	}
}

func TestEveryKey(t *testing.T) {
	c := mustLoad(t, `
runtime = "/usr/sbin/../bin/runc"
state-dir = "/run/rs/"
log-level = "DEBUG"
host-mntns = "self"
hook-path = "/opt/rs//mount-hook"
mount-container = ["cephfs:name=ceph-mounter"]

[[mounter]]
name = "all"
fstypes = ["glusterfs", "fuse.sshfs"]
mode = "preload"
propagate = ["/var/lib/kubelet/", "/mnt//a/./b"]
ensure-shared = false
require-privileged = false
namespaces = ["kube-system", "storage"]
[mounter.match]
annotations = { "runc-shared.io/mounter" = "all", "x.y/z" = "" }
container-name = "mounter"
[mounter.match.env]
A = "1"
B = "two words"
`)
	want := &Config{
		Runtime:   "/usr/bin/runc",
		StateDir:  "/run/rs",
		LogLevel:  "debug",
		HostMntns: "self",
		HookPath:  "/opt/rs/mount-hook",
		Path:      c.Path,
		Mounters: []spec.Rule{{
			Name:              "all",
			FSTypes:           []string{"glusterfs", "fuse.sshfs"},
			Mode:              spec.ModePreload,
			Propagate:         []string{"/var/lib/kubelet", "/mnt/a/b"},
			EnsureShared:      false,
			RequirePrivileged: false,
			Namespaces:        []string{"kube-system", "storage"},
			Match: spec.Match{
				Annotations:   map[string]string{"runc-shared.io/mounter": "all", "x.y/z": ""},
				Env:           map[string]string{"A": "1", "B": "two words"},
				ContainerName: "mounter",
			},
		}, {
			Name:              "cephfs",
			FSTypes:           []string{"cephfs"},
			Mode:              spec.ModePropagate,
			Propagate:         []string{"/var/lib/kubelet"},
			EnsureShared:      true,
			RequirePrivileged: true,
			Match:             spec.Match{AnnotationOrEnv: map[string]string{"name": "ceph-mounter"}},
		}},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got  %+v\nwant %+v", c, want)
	}
}

func TestRuleDefaultsAndForms(t *testing.T) {
	for _, tc := range []struct {
		name, content string
		want          []spec.Rule
	}{
		{"defaults", rule, []spec.Rule{defaultRule()}},
		{"inline array of tables", `mounter = [{ name = "gluster", fstypes = ["glusterfs"], propagate = ["/var/lib/kubelet"], match = { env = { RUNC_SHARED_MOUNTER = "gluster" } } }]`, []spec.Rule{defaultRule()}},
		{"dotted keys", `
[[mounter]]
name = "gluster"
fstypes = ["glusterfs"]
propagate = ["/var/lib/kubelet"]
match.env.RUNC_SHARED_MOUNTER = "gluster"
`, []spec.Rule{defaultRule()}},
		{"two rules keep file order", rule + strings.ReplaceAll(rule, `"gluster"`, `"second"`), func() []spec.Rule {
			r2 := defaultRule()
			r2.Name = "second"
			r2.Match.Env = map[string]string{"RUNC_SHARED_MOUNTER": "second"}
			return []spec.Rule{defaultRule(), r2}
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := mustLoad(t, tc.content)
			if !reflect.DeepEqual(c.Mounters, tc.want) {
				t.Errorf("got  %+v\nwant %+v", c.Mounters, tc.want)
			}
		})
	}
}

func seedRule(fstype, key, value, container string) spec.Rule {
	r := spec.Rule{
		Name:              fstype,
		FSTypes:           []string{fstype},
		Mode:              spec.ModePropagate,
		Propagate:         []string{"/var/lib/kubelet"},
		EnsureShared:      true,
		RequirePrivileged: true,
		Match:             spec.Match{AnnotationOrEnv: map[string]string{key: value}},
	}
	if container != "" {
		r.Match.ContainerName = container
		r.Match.ContainerNameIfRecorded = true
	}
	return r
}

func TestSeedSyntax(t *testing.T) {
	for _, tc := range []struct {
		name, content string
		want          []spec.Rule
	}{
		{"single with container", `mount-container = ["glusterfs:name=glusterfs-mounter:mounter"]`,
			[]spec.Rule{seedRule("glusterfs", "name", "glusterfs-mounter", "mounter")}},
		{"single without container", `mount-container = ["glusterfs:name=glusterfs-mounter"]`,
			[]spec.Rule{seedRule("glusterfs", "name", "glusterfs-mounter", "")}},
		{"value holding =", `mount-container = ["nfs:opts=a=b"]`,
			[]spec.Rule{seedRule("nfs", "opts", "a=b", "")}},
		{"multiple", `mount-container = ["glusterfs:name=glusterfs-mounter:mounter", "cephfs:app=ceph", "fuse.sshfs:runc-shared.io/mounter=ssh:ssh"]`,
			[]spec.Rule{
				seedRule("glusterfs", "name", "glusterfs-mounter", "mounter"),
				seedRule("cephfs", "app", "ceph", ""),
				seedRule("fuse.sshfs", "runc-shared.io/mounter", "ssh", "ssh"),
			}},
		{"empty list", `mount-container = []`, nil},
		{"after [[mounter]] rules", `mount-container = ["cephfs:app=ceph"]` + rule,
			[]spec.Rule{defaultRule(), seedRule("cephfs", "app", "ceph", "")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := mustLoad(t, tc.content)
			if !reflect.DeepEqual(c.Mounters, tc.want) {
				t.Errorf("got  %+v\nwant %+v", c.Mounters, tc.want)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		name, content, want string
	}{
		{"unknown top-level key", "runtime = \"runc\"\nbogus = 1\n",
			`^config \S+/config\.toml:2: key bogus: unknown key: remove it or fix the spelling; the keys here are runtime, state-dir,`},
		{"underscore spelling", "\n\nstate_dir = \"/run/x\"\n",
			`^config \S+:3: key state_dir: unknown key: did you mean "state-dir"\?`},
		{"unknown key in second mounter", rule + strings.Replace(strings.ReplaceAll(rule, `"gluster"`, `"b"`), "fstypes", "fstype", 1),
			`^config \S+:9: key mounter: \[\[mounter\]\] misses the required key "fstypes": add fstypes = \["glusterfs"\]; ` +
				`config \S+:11: key mounter.fstype: unknown key: did you mean "fstypes"\?`},
		{"unknown key after [mounter.match] belongs to it", rule + "fstype = [\"x\"]\n",
			`^config \S+:8: key mounter.match.fstype: unknown key: remove it or fix the spelling; the keys here are annotations, env, container-name$`},
		{"unknown key in rule", strings.Replace(rule, "[mounter.match]", "propagation = true\n[mounter.match]", 1),
			`^config \S+:6: key mounter.propagation: unknown key: .* the keys here are name, fstypes, mode,`},
		{"unknown key in inline match", `mounter = [{ name = "g", fstypes = ["g"], propagate = ["/g"], match = { labels = { a = "b" } } }]`,
			`^config \S+:1: key mounter.match.labels: unknown key`},
		{"wrong type top-level", "\nruntime = 5\n",
			`^config \S+:2: key runtime: is an integer, want a string: quote the value, like runtime = "..."$`},
		{"wrong type fstypes", strings.Replace(rule, `fstypes = ["glusterfs"]`, `fstypes = "glusterfs"`, 1),
			`^config \S+:4: key mounter.fstypes: is a string, want a list of strings: write fstypes = \["glusterfs"\]$`},
		{"wrong type in second mounter", rule + strings.Replace(strings.ReplaceAll(rule, `"gluster"`, `"b"`), `propagate = ["/var/lib/kubelet"]`, `ensure-shared = "yes"`+"\n"+`propagate = ["/b"]`, 1),
			`^config \S+:12: key mounter.ensure-shared: is a string, want true or false \(unquoted\)$`},
		{"wrong element type", strings.Replace(rule, `["/var/lib/kubelet"]`, `["/a", 2]`, 1),
			`^config \S+:5: key mounter.propagate: element 2 is an integer, want a string: quote it$`},
		{"wrong match value type", strings.Replace(rule, `"gluster" }`, `1 }`, 1),
			`^config \S+:7: key mounter.match.env.RUNC_SHARED_MOUNTER: is an integer, want a string`},
		{"single [mounter] table", "[mounter]\nname = \"x\"\n",
			`^config \S+:1: key mounter: is a single table: write \[\[mounter\]\] with two brackets`},
		{"mounter not a table", "\nmounter = 5\n",
			`^config \S+:2: key mounter: is an integer, want \[\[mounter\]\] tables: write \[\[mounter\]\] once before each rule$`},
		{"rule not a table", `mounter = [1, { name = "g", fstypes = ["g"], propagate = ["/g"], match = { env = { A = "b" } } }]`,
			`^config \S+:1: key mounter: element 1 is an integer, want a table: write each rule as a \[\[mounter\]\] table$`},
		{"match not a table", strings.Replace(rule, "[mounter.match]\nenv = { RUNC_SHARED_MOUNTER = \"gluster\" }", "match = \"gluster\"", 1),
			`^config \S+:6: key mounter.match: is a string, want a table: write \[mounter.match\] on its own line and the keys below it$`},
		{"duplicate name", rule + rule,
			`^config \S+:10: key mounter.name: "gluster" is already the name of another rule: give each \[\[mounter\]\] its own name$`},
		{"duplicate seed name", `mount-container = ["glusterfs:a=b", "glusterfs:c=d"]`,
			`^config \S+:1: key mount-container: entry "glusterfs:c=d" makes a rule named "glusterfs", a name another rule already has`},
		{"seed name used by mounter", `mount-container = ["gluster:a=b"]` + rule,
			`^config \S+:1: key mount-container: entry "gluster:a=b" makes a rule named "gluster", a name another rule already has: keep one of them, or rename the \[\[mounter\]\]$`},
		{"rule without match", "\n[[mounter]]\nname = \"g\"\nfstypes = [\"g\"]\npropagate = [\"/g\"]\n",
			`^config \S+:2: key mounter: \[\[mounter\]\] has no match condition, so it would match no container: add a \[mounter.match\] table`},
		{"empty match", rule[:strings.Index(rule, "env")],
			`^config \S+:6: key mounter.match: has no condition, so it would match no container`},
		{"match with empty maps", strings.Replace(rule, `env = { RUNC_SHARED_MOUNTER = "gluster" }`, "env = {}\nannotations = {}", 1),
			`^config \S+:6: key mounter.match: has no condition`},
		{"missing name and fstypes", strings.Replace(strings.Replace(rule, "name = \"gluster\"\n", "", 1), "fstypes = [\"glusterfs\"]\n", "", 1),
			`^config \S+:2: key mounter: \[\[mounter\]\] misses the required key "name": add name = "glusterfs"; config \S+:2: key mounter: \[\[mounter\]\] misses the required key "fstypes": add fstypes = \["glusterfs"\]$`},
		{"empty fstypes", strings.Replace(rule, `["glusterfs"]`, `[]`, 1),
			`^config \S+:4: key mounter.fstypes: is empty: list the filesystem types`},
		{"fstype list in one string", strings.Replace(rule, `["glusterfs"]`, `["glusterfs,nfs"]`, 1),
			`^config \S+:4: key mounter.fstypes: "glusterfs,nfs" is not a filesystem type: give one type per element`},
		{"empty propagate", strings.Replace(rule, `["/var/lib/kubelet"]`, `[]`, 1),
			`^config \S+:5: key mounter.propagate: is empty: list the host directories`},
		{"relative propagate path", strings.Replace(rule, `["/var/lib/kubelet"]`, `["var/lib/kubelet"]`, 1),
			`^config \S+:5: key mounter.propagate: "var/lib/kubelet" is not an absolute path: write the full path from /$`},
		{"dot-dot in propagate path", strings.Replace(rule, `["/var/lib/kubelet"]`, `["/var/lib/kubelet/../.."]`, 1),
			`^config \S+:5: key mounter.propagate: "/var/lib/kubelet/../.." contains "..": write the path without it$`},
		{"propagate root", strings.Replace(rule, `["/var/lib/kubelet"]`, `["/var", "//"]`, 1),
			`^config \S+:5: key mounter.propagate: "//" is the root directory: name the directory itself`},
		{"bad mode", strings.Replace(rule, "[mounter.match]", "mode = \"bind\"\n[mounter.match]", 1),
			`^config \S+:6: key mounter.mode: "bind" is not a mode: use "propagate" \(the default\) or "preload"$`},
		{"bad log-level", "log-level = \"verbose\"\n",
			`^config \S+:1: key log-level: "verbose" is not a log level: use one of panic, fatal, error, warn, warning, info, debug, trace$`},
		{"relative state-dir", "state-dir = \"run/x\"\n",
			`^config \S+:1: key state-dir: "run/x" is not an absolute path`},
		{"relative host-mntns", "host-mntns = \"proc/1/ns/mnt\"\n",
			`^config \S+:1: key host-mntns: "proc/1/ns/mnt" is not an absolute path: write the full path from /, or "self"`},
		{"relative hook-path", "hook-path = \"./mount-hook\"\n",
			`^config \S+:1: key hook-path: "./mount-hook" is not an absolute path`},
		{"relative runtime path", "runtime = \"bin/runc\"\n",
			`^config \S+:1: key runtime: "bin/runc" is a relative path: give a name on PATH like "runc" or an absolute path`},
		{"empty runtime", "runtime = \"\"\n",
			`^config \S+:1: key runtime: is empty`},
		{"env name with =", strings.Replace(rule, `env = { RUNC_SHARED_MOUNTER = "gluster" }`, `env = { "A=B" = "c" }`, 1),
			`^config \S+:7: key mounter.match.env."A=B": an environment variable name cannot hold "="`},
		{"empty container-name", strings.Replace(rule, "env = ", "container-name = \"\"\nenv = ", 1),
			`^config \S+:7: key mounter.match.container-name: is empty`},
		{"quoted annotation key", strings.Replace(rule, "[mounter.match]", "[mounter.match]\n[mounter.match.annotations]\n\"runc-shared.io/mounter\" = false\n[mounter.match.x]", 1),
			`^config \S+:8: key mounter.match.annotations."runc-shared.io/mounter": is a boolean, want a string: .*; config \S+:9: key mounter.match.x: unknown key`},
		{"malformed seed entry: no key=value", `mount-container = ["glusterfs"]`,
			`^config \S+:1: key mount-container: entry "glusterfs" has 1 colon-separated parts: want "FSTYPE:KEY=VALUE" or "FSTYPE:KEY=VALUE:CONTAINER", like "glusterfs:name=glusterfs-mounter:mounter"$`},
		{"malformed seed entry: too many parts", "\n\nmount-container = [\n  \"a:b=c\",\n  \"a:b=c:d:e\",\n]\n",
			`^config \S+:3: key mount-container: entry "a:b=c:d:e" has 4 colon-separated parts: want`},
		{"malformed seed entry: no =", `mount-container = ["glusterfs:name:mounter"]`,
			`^config \S+:1: key mount-container: entry "glusterfs:name:mounter" has no KEY=VALUE: want`},
		{"malformed seed entry: empty value", `mount-container = ["glusterfs:name="]`,
			`entry "glusterfs:name=" has no KEY=VALUE`},
		{"malformed seed entry: empty container", `mount-container = ["glusterfs:name=x:"]`,
			`entry "glusterfs:name=x:" has an empty CONTAINER after the last colon`},
		{"malformed seed entry: empty fstype", `mount-container = [":name=x"]`,
			`entry ":name=x" has no valid FSTYPE`},
		{"seed as a string", `mount-container = "glusterfs:name=x"`,
			`^config \S+:1: key mount-container: is a string, want a list: write mount-container = \["glusterfs:name=x"\]$`},
		{"TOML syntax", "runtime = \"runc\"\nstate-dir = /run\n",
			`^config \S+:2: key state-dir: .*: fix the TOML syntax \(https://toml.io\)$`},
		{"duplicate TOML key", "runtime = \"a\"\nruntime = \"b\"\n",
			`^config \S+:2: .*fix the TOML syntax`},
		{"errors in file order", "\n\n\nlog-level = \"x\"\nruntime = 1\nbogus = 2\n",
			`^config \S+:4: key log-level: .*; config \S+:5: key runtime: .*; config \S+:6: key bogus: unknown key`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeConfig(t, tc.content)
			c, err := Load(path)
			if err == nil {
				t.Fatalf("Load succeeded: %+v; want error matching %s\nconfig:\n%s", c, tc.want, tc.content)
			}
			if c != nil {
				t.Errorf("Load returned a config with its error")
			}
			var cerr *Error
			if !errors.As(err, &cerr) || cerr.File != path {
				t.Errorf("error %v is not a *config.Error for %s", err, path)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error does not name the file %s: %v", path, err)
			}
			if !regexp.MustCompile(tc.want).MatchString(err.Error()) {
				t.Errorf("error:\n  %v\nwant match:\n  %s\nconfig:\n%s", err, tc.want, tc.content)
			}
		})
	}
}

// trustOnly makes Load and CheckDir trust the owners trust accepts, until
// the test ends.
func trustOnly(t *testing.T, trust func(uint32) bool) {
	saved := trusted
	trusted = trust
	t.Cleanup(func() { trusted = saved })
}

func TestUnsafeFile(t *testing.T) {
	for _, tc := range []struct {
		name  string
		mode  os.FileMode
		uid   int
		trust func(uint32) bool // nil keeps the default
		want  string
	}{
		{"world-writable", 0o666, 0, nil, `mode 0666 lets group or others write it, .*: run .chmod 0644 `},
		{"group-writable", 0o620, 0, nil, `mode 0620 lets group or others write it`},
		{"owned by nobody", 0o644, 65534, nil, `owned by uid 65534, not root, .*: run .chown root:root `},
		{"owner not trusted by the injected check", 0o644, 0, func(uint32) bool { return false }, `owned by uid 0, not root`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.trust != nil {
				trustOnly(t, tc.trust)
			}
			path := writeConfig(t, rule)
			// Chmod after writing: the umask must not hide the bits.
			if err := os.Chmod(path, tc.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(path, tc.uid, tc.uid); err != nil {
				t.Fatalf("chown (tests run as root): %v", err)
			}
			c, err := Load(path)
			if err == nil {
				t.Fatalf("Load succeeded: %+v", c)
			}
			if !errors.Is(err, ErrUnsafeFile) {
				t.Errorf("error does not wrap ErrUnsafeFile: %v", err)
			}
			if !strings.Contains(err.Error(), path) || !regexp.MustCompile(tc.want).MatchString(err.Error()) {
				t.Errorf("error:\n  %v\nwant the path and a match for:\n  %s", err, tc.want)
			}
		})
	}
	t.Run("trusted owner", func(t *testing.T) {
		path := writeConfig(t, rule)
		if err := os.Chown(path, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		trustOnly(t, func(uid uint32) bool { return uid == 65534 })
		if _, err := Load(path); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("symlink to a safe file", func(t *testing.T) {
		target := writeConfig(t, rule)
		link := filepath.Join(t.TempDir(), "link.toml")
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
		c, err := Load(link)
		if err != nil || len(c.Mounters) != 1 {
			t.Fatalf("Load(symlink) = %+v, %v", c, err)
		}
	})
}

func TestNotARegularFile(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{dir, fifo} {
		done := make(chan error, 1)
		go func() { _, err := Load(path); done <- err }()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), "not a regular file") {
				t.Errorf("Load(%s) = %v, want a not-a-regular-file error", path, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("Load(%s) hangs", path)
		}
	}
}

func TestTooLarge(t *testing.T) {
	path := writeConfig(t, "# "+strings.Repeat("x", MaxSize)+"\n")
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("Load = %v, want a too-large error", err)
	}
}

func TestPath(t *testing.T) {
	for _, tc := range []struct {
		name    string
		flag    string
		flagSet bool
		env     string
		want    string
	}{
		{"default", "", false, "", DefaultPath},
		{"env", "", false, "/env.toml", "/env.toml"},
		{"flag over env", "/flag.toml", true, "/env.toml", "/flag.toml"},
		{"flag over default", "/flag.toml", true, "", "/flag.toml"},
		{"empty flag means no file", "", true, "/env.toml", ""},
		{"unset flag value ignored", "/ignored.toml", false, "", DefaultPath},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(EnvVar, tc.env)
			if got := Path(tc.flag, tc.flagSet); got != tc.want {
				t.Errorf("Path(%q, %v) with $%s=%q = %q, want %q", tc.flag, tc.flagSet, EnvVar, tc.env, got, tc.want)
			}
		})
	}
}

func TestLookups(t *testing.T) {
	c := mustLoad(t, `mount-container = ["glusterfs:name=g", "cephfs:name=c"]`+rule)
	if r := c.Rule("cephfs"); r == nil || r.Name != "cephfs" {
		t.Errorf("Rule(cephfs) = %+v", r)
	}
	if r := c.Rule("none"); r != nil {
		t.Errorf("Rule(none) = %+v, want nil", r)
	}
	var names []string
	for _, r := range c.RulesFor("glusterfs") {
		names = append(names, r.Name)
	}
	if want := []string{"gluster", "glusterfs"}; !reflect.DeepEqual(names, want) {
		t.Errorf("RulesFor(glusterfs) = %v, want %v", names, want)
	}
	if rs := c.RulesFor("nfs"); len(rs) != 0 {
		t.Errorf("RulesFor(nfs) = %v, want none", rs)
	}
	// The returned rule is the config's own, not a copy.
	c.Rule("cephfs").Namespaces = []string{"x"}
	if c.Mounters[2].Namespaces == nil {
		t.Errorf("Rule returned a copy")
	}
}

func TestHookBinary(t *testing.T) {
	c := Default()
	if got := c.HookBinary("/usr/local/bin/runc-shared"); got != "/usr/local/bin/mount-hook" {
		t.Errorf("default HookBinary = %q", got)
	}
	c.HookPath = "/opt/hooks/mount-hook"
	if got := c.HookBinary("/usr/local/bin/runc-shared"); got != c.HookPath {
		t.Errorf("HookBinary with hook-path = %q", got)
	}
}

// TestExample loads the documented example that the README points at, and
// checks that it mentions every key the parser knows, so neither drifts.
func TestExample(t *testing.T) {
	data, err := os.ReadFile("testdata/example.toml")
	if err != nil {
		t.Fatal(err)
	}
	c := mustLoad(t, string(data))
	if got := len(c.Mounters); got != 3 {
		t.Errorf("example has %d rules, want 3", got)
	}
	for _, keys := range [][]string{topKeys, ruleKeys, matchKeys} {
		for _, k := range keys {
			if !regexp.MustCompile(`(?m)^(# )?(` + regexp.QuoteMeta(k) + ` = |\[\[` + regexp.QuoteMeta(k) + `\]\]$|\[mounter\.` + regexp.QuoteMeta(k) + `\]$)`).Match(data) {
				t.Errorf("example.toml does not document key %q", k)
			}
		}
	}
}

// TestProblemLines: each problem names the line of its key where the TOML
// library knows it, which for the keys of [[mounter]] rules is the last
// rule's: an earlier rule's key is named by the rule's place instead of a
// line that would point into another rule.
func TestProblemLines(t *testing.T) {
	second := strings.ReplaceAll(rule, `"gluster"`, `"b"`)
	badMode := func(r string) string {
		return strings.Replace(r, "[mounter.match]", "mode = \"bind\"\n[mounter.match]", 1)
	}
	for _, tc := range []struct {
		name, content, want string
	}{
		{"first of two rules", strings.Replace(rule, `name = "gluster"`, "name = 1", 1) + second,
			`^config F: key mounter\[1\]\.name: is an integer, want a string: [^;]*$`},
		{"a key only the first rule has", badMode(rule) + second,
			`^config F:6: key mounter\.mode: "bind" is not a mode: [^;]*$`},
		{"both of two rules", badMode(rule) + badMode(second),
			`^config F: key mounter\[1\]\.mode: "bind" is not a mode: [^;]*; config F:14: key mounter\.mode: "bind" is not a mode`},
		{"a rule without name before another", strings.Replace(rule, "name = \"gluster\"\n", "", 1) + second,
			`^config F: key mounter\[1\]: \[\[mounter\]\] misses the required key "name": [^;]*$`},
		{"unknown key in both rules", strings.Replace(rule, "fstypes", "fstype", 1) + strings.Replace(second, "fstypes", "fstype", 1),
			`^config F: key mounter\[1\]: \[\[mounter\]\] misses the required key "fstypes": [^;]*; config F: key mounter\[1\]\.fstype: unknown key: did you mean "fstypes"\? [^;]*; ` +
				`config F:9: key mounter: \[\[mounter\]\] misses the required key "fstypes": [^;]*; config F:11: key mounter\.fstype: unknown key: did you mean "fstypes"\? \(keys are lower case, with dashes\)$`},
		{"inline rules", `mounter = [{ name = 1, fstypes = ["g"], propagate = ["/g"], match = { env = { A = "b" } } },` + "\n" +
			`{ name = 2, fstypes = ["g"], propagate = ["/g"], match = { env = { A = "b" } } }]`,
			`^config F: key mounter\[1\]\.name: is an integer, [^;]*; config F: key mounter\[2\]\.name: is an integer`},
		{"dotted keys", strings.Replace(rule, "[mounter.match]\nenv = { RUNC_SHARED_MOUNTER = \"gluster\" }", "match.env.A = 1", 1),
			`^config F:6: key mounter\.match\.env\.A: is an integer, want a string`},
		{"keys after a multi-line string", "hook-path = \"\"\"/opt/\n[fake]\nname = 1\n\"\"\"\nruntime = 1\n",
			`^config F:5: key runtime: is an integer[^;]*$`},
		{"key in another case", "# comment\nRuntime = \"runc\"\n",
			`^config F:2: key Runtime: unknown key: did you mean "runtime"\? \(keys are lower case, with dashes\)$`},
		{"many problems", func() string {
			var b strings.Builder
			for i := range 12 {
				fmt.Fprintf(&b, "k%d = 1\n", i)
			}
			return b.String()
		}(), `^config F:1: key k0: unknown key: .*; config F:10: key k9: unknown key: .*; config F: and 2 more problems: fix these first$`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("F", []byte(tc.content))
			if err == nil || !regexp.MustCompile(tc.want).MatchString(err.Error()) {
				t.Errorf("Parse error:\n  %v\nwant match:\n  %s\nconfig:\n%s", err, tc.want, tc.content)
			}
		})
	}
}

func TestSeedRuleDirect(t *testing.T) {
	r, err := parseSeed("glusterfs:name=glusterfs-mounter:mounter")
	if err != nil {
		t.Fatal(err)
	}
	if want := seedRule("glusterfs", "name", "glusterfs-mounter", "mounter"); !reflect.DeepEqual(r, want) {
		t.Errorf("got %+v, want %+v", r, want)
	}
}

// BenchmarkLoad measures what every runtime call of the wrapper pays for the
// configuration: the documented example (three rules).
func BenchmarkLoad(b *testing.B) {
	data, err := os.ReadFile("testdata/example.toml")
	if err != nil {
		b.Fatal(err)
	}
	path := writeConfig(b, string(data))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Load(path); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLoadMissing(b *testing.B) {
	path := filepath.Join(b.TempDir(), "none.toml")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Load(path); err != nil {
			b.Fatal(err)
		}
	}
}

// typical is a production-sized configuration: two rules, a few comments.
const typical = `# /etc/runc-shared/config.toml
runtime = "/usr/bin/runc"
log-level = "info"
mount-container = ["glusterfs:name=glusterfs-mounter:mounter"]

# The CephFS mounter of the storage team.
[[mounter]]
name = "cephfs"
fstypes = ["ceph", "fuse.ceph"]
propagate = ["/var/lib/kubelet", "/mnt/ceph"]
namespaces = ["storage"]
[mounter.match]
annotations = { "runc-shared.io/mounter" = "cephfs" }
container-name = "ceph-mounter"
`

func BenchmarkLoadTypical(b *testing.B) {
	path := writeConfig(b, typical)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Load(path); err != nil {
			b.Fatal(err)
		}
	}
}

// TestUnsafeDirectory: a safe file in a directory that others can write is
// refused, since they could rename another file over it; a sticky
// world-writable directory (/tmp) is fine.
func TestUnsafeDirectory(t *testing.T) {
	for _, tc := range []struct {
		name string
		mode os.FileMode // of the file's directory
		uid  int         // its owner
		want string      // "" means loads
	}{
		{"private", 0o700, 0, ""},
		{"world-readable", 0o755, 0, ""},
		{"sticky world-writable, like /tmp", 0o777 | os.ModeSticky, 0, ""},
		{"world-writable", 0o777, 0, `directory .* \(mode 0777\) lets group or others replace the file: run .chmod go-w `},
		{"group-writable", 0o775, 0, `\(mode 0775\) lets group or others replace`},
		{"owned by nobody", 0o755, 65534, `directory .* is owned by uid 65534, not root, who could replace the file`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeConfig(t, rule)
			dir := filepath.Dir(path)
			if err := os.Chmod(dir, tc.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(dir, tc.uid, tc.uid); err != nil {
				t.Fatalf("chown (tests run as root): %v", err)
			}
			c, err := Load(path)
			if tc.want == "" {
				if err != nil || len(c.Mounters) != 1 {
					t.Fatalf("Load = %+v, %v", c, err)
				}
				return
			}
			if !errors.Is(err, ErrUnsafeFile) || !regexp.MustCompile(tc.want).MatchString(err.Error()) {
				t.Fatalf("Load = %v; want ErrUnsafeFile matching %s", err, tc.want)
			}
		})
	}
	t.Run("a higher directory counts too", func(t *testing.T) {
		top := t.TempDir()
		sub := filepath.Join(top, "etc", "runc-shared")
		if err := os.MkdirAll(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(sub, "config.toml")
		if err := os.WriteFile(path, []byte(rule), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(top, "etc"), 0o777); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(path); !errors.Is(err, ErrUnsafeFile) || !strings.Contains(err.Error(), filepath.Join(top, "etc")+" (mode 0777)") {
			t.Fatalf("Load = %v; want the unsafe %s/etc named", err, top)
		}
	})
	t.Run("a symlink into an unsafe directory", func(t *testing.T) {
		// The directories checked are those of the file opened, not of
		// the path given.
		unsafe := t.TempDir()
		if err := os.WriteFile(filepath.Join(unsafe, "config.toml"), []byte(rule), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(unsafe, 0o777); err != nil {
			t.Fatal(err)
		}
		link := filepath.Join(t.TempDir(), "config.toml")
		if err := os.Symlink(filepath.Join(unsafe, "config.toml"), link); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(link); !errors.Is(err, ErrUnsafeFile) || !strings.Contains(err.Error(), unsafe) {
			t.Fatalf("Load(symlink) = %v; want %s named as unsafe", err, unsafe)
		}
	})
}
