package runtime

import (
	"bufio"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// parsed is the part of Args a test compares.
type parsed struct {
	Root, Log, LogFormat   string
	Debug                  bool
	Unknown                []string
	Config                 string
	ConfigSet              bool
	Command                string
	Index                  int
	Bundle, ID             string
	FDs                    int
	Version, Help, Rewrite bool
}

func view(a *Args) parsed {
	return parsed{
		Root: a.Root, Log: a.Log, LogFormat: a.LogFormat,
		Debug: a.Debug, Unknown: a.UnknownGlobals,
		Config: a.ConfigPath, ConfigSet: a.ConfigSet,
		Command: a.Command, Index: a.CommandIndex, Bundle: a.Bundle, ID: a.ContainerID,
		FDs: a.PreserveFDs, Version: a.Version, Help: a.Help, Rewrite: a.MayRewrite(),
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		argv string
		want parsed
		// exec is the expected ExecArgv; "" means argv unchanged.
		exec string
	}{
		{name: "bundle separate", argv: "create --bundle /b id",
			want: parsed{Command: "create", Bundle: "/b", ID: "id", Rewrite: true}},
		{name: "bundle equals", argv: "create --bundle=/b id",
			want: parsed{Command: "create", Bundle: "/b", ID: "id", Rewrite: true}},
		{name: "short bundle", argv: "create -b /b id",
			want: parsed{Command: "create", Bundle: "/b", ID: "id", Rewrite: true}},
		{name: "short bundle equals", argv: "run -b=/b id",
			want: parsed{Command: "run", Bundle: "/b", ID: "id", Rewrite: true}},
		{name: "single dash long forms", argv: "-root /r -log-format json create -bundle=/b id",
			want: parsed{Root: "/r", LogFormat: "json", Command: "create", Index: 4, Bundle: "/b", ID: "id", Rewrite: true}},
		{name: "double dash short form", argv: "create --b /b id",
			want: parsed{Command: "create", Bundle: "/b", ID: "id", Rewrite: true}},
		{name: "no bundle is cwd", argv: "create id",
			want: parsed{Command: "create", ID: "id", Rewrite: true}},
		{name: "bundle after id (urfave reorders)", argv: "create id --bundle /b",
			want: parsed{Command: "create", Bundle: "/b", ID: "id", Rewrite: true}},
		{name: "bool then bundle after id", argv: "run id -d --bundle /b",
			want: parsed{Command: "run", Bundle: "/b", ID: "id", Rewrite: true}},
		{name: "last bundle wins", argv: "create -b /b -b /c id",
			want: parsed{Command: "create", Bundle: "/c", ID: "id", Rewrite: true}},
		{name: "values that look like subcommands", argv: "--root create create --bundle run id",
			want: parsed{Root: "create", Command: "create", Index: 2, Bundle: "run", ID: "id", Rewrite: true}},
		{name: "value that looks like a flag", argv: "--log --debug state id",
			want: parsed{Log: "--debug", Command: "state", Index: 2, ID: "id"}},
		{name: "log format equals", argv: "--log /l --log-format=json create -b x id",
			want: parsed{Log: "/l", LogFormat: "json", Command: "create", Index: 3, Bundle: "x", ID: "id", Rewrite: true}},
		{name: "all globals", argv: "--debug --criu /c --systemd-cgroup --rootless=false --root /r run -d --keep --no-subreaper --console-socket /s --pid-file /p id",
			want: parsed{Debug: true, Root: "/r",
				Command: "run", Index: 7, ID: "id", Rewrite: true}},
		{name: "rootless takes a value", argv: "--rootless true create id",
			want: parsed{Command: "create", Index: 2, ID: "id", Rewrite: true}},
		{name: "config first equals", argv: "--runc-shared-config=/c --root r create id",
			want: parsed{Config: "/c", ConfigSet: true, Root: "r", Command: "create", Index: 3, ID: "id", Rewrite: true},
			exec: "--root r create id"},
		{name: "config first separate", argv: "--runc-shared-config /c create id",
			want: parsed{Config: "/c", ConfigSet: true, Command: "create", Index: 2, ID: "id", Rewrite: true},
			exec: "create id"},
		{name: "config in the middle", argv: "--root r --runc-shared-config /c --debug create id",
			want: parsed{Config: "/c", ConfigSet: true, Root: "r", Debug: true, Command: "create", Index: 5, ID: "id", Rewrite: true},
			exec: "--root r --debug create id"},
		{name: "config last before command, single dash", argv: "--root r -runc-shared-config=/c state id",
			want: parsed{Config: "/c", ConfigSet: true, Root: "r", Command: "state", Index: 3, ID: "id"},
			exec: "--root r state id"},
		{name: "config value looks like a command", argv: "--runc-shared-config create delete id",
			want: parsed{Config: "create", ConfigSet: true, Command: "delete", Index: 2, ID: "id"},
			exec: "delete id"},
		{name: "config twice, last wins", argv: "--runc-shared-config=/a --runc-shared-config /b kill id 9",
			want: parsed{Config: "/b", ConfigSet: true, Command: "kill", Index: 3, ID: "id"},
			exec: "kill id 9"},
		{name: "version", argv: "--version", want: parsed{Version: true, Index: -1}},
		{name: "short version", argv: "-v", want: parsed{Version: true, Index: -1}},
		{name: "version with config", argv: "--runc-shared-config=/c --version",
			want: parsed{Config: "/c", ConfigSet: true, Version: true, Index: -1}, exec: "--version"},
		{name: "help", argv: "--help", want: parsed{Help: true, Index: -1}},
		{name: "short help before create", argv: "-h create id",
			want: parsed{Help: true, Command: "create", Index: 1, ID: "id"}},
		{name: "create help", argv: "create --help",
			want: parsed{Help: true, Command: "create"}},
		{name: "help command", argv: "help create", want: parsed{Command: "help"}},
		{name: "empty", argv: "", want: parsed{Index: -1}},
		{name: "globals only", argv: "--root /r", want: parsed{Root: "/r", Index: -1}},
		{name: "features", argv: "features", want: parsed{Command: "features"}},
		{name: "state", argv: "state id", want: parsed{Command: "state", ID: "id"}},
		{name: "list", argv: "--root /r list -f json", want: parsed{Root: "/r", Command: "list", Index: 2}},
		{name: "delete force", argv: "delete --force id", want: parsed{Command: "delete", ID: "id"}},
		{name: "kill all", argv: "kill -a id KILL", want: parsed{Command: "kill", ID: "id"}},
		{name: "start", argv: "start id", want: parsed{Command: "start", ID: "id"}},
		{name: "ps format", argv: "ps --format json id", want: parsed{Command: "ps", ID: "id"}},
		{name: "exec keeps process args", argv: "exec -t --env A=1 --env B=2 --user 0 id sh -c --bundle",
			want: parsed{Command: "exec", ID: "id"}},
		{name: "exec preserve fds", argv: "exec --preserve-fds 1 id ls",
			want: parsed{Command: "exec", ID: "id", FDs: 1}},
		{name: "spec bundle", argv: "spec --bundle /b", want: parsed{Command: "spec", Bundle: "/b"}},
		{name: "restore", argv: "restore --image-path /img --bundle /b --lazy-pages --manage-cgroups-mode soft -d id",
			want: parsed{Command: "restore", Bundle: "/b", ID: "id", Rewrite: true}},
		{name: "restore valued options", argv: "restore --work-path /w --empty-ns network --lsm-profile apparmor:x -b /b id",
			want: parsed{Command: "restore", Bundle: "/b", ID: "id", Rewrite: true}},
		{name: "double dash before command", argv: "--root r -- state id",
			want: parsed{Root: "r", Command: "state", Index: 3, ID: "id"}},
		{name: "double dash before id", argv: "create --bundle /b -- id",
			want: parsed{Command: "create", Bundle: "/b", ID: "id", Rewrite: true}},
		{name: "double dash makes flag an id", argv: "create -- -b",
			want: parsed{Command: "create", ID: "-b", Rewrite: true}},
		{name: "double dash as a value", argv: "create --bundle -- id",
			want: parsed{Command: "create", Bundle: "--", ID: "id", Rewrite: true}},
		{name: "preserve fds separate", argv: "create --preserve-fds 2 --bundle /b id",
			want: parsed{Command: "create", Bundle: "/b", ID: "id", FDs: 2, Rewrite: true}},
		{name: "preserve fds equals hex", argv: "run --preserve-fds=0x3 id",
			want: parsed{Command: "run", ID: "id", FDs: 3, Rewrite: true}},
		{name: "bool global false", argv: "--debug=false state x", want: parsed{Command: "state", Index: 1, ID: "x"}},
		{name: "unknown global bool", argv: "--foo state id",
			want: parsed{Unknown: []string{"--foo"}, Command: "state", Index: 1, ID: "id"}},
		{name: "unknown global with value", argv: "--cgroup-manager=systemd state id",
			want: parsed{Unknown: []string{"--cgroup-manager=systemd"}, Command: "state", Index: 1, ID: "id"}},
		{name: "unknown flag of pass-through command", argv: "delete --newflag id",
			want: parsed{Command: "delete", ID: "id"}},
		{name: "unknown command", argv: "frobnicate --x y", want: parsed{Command: "frobnicate"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			argv := strings.Fields(tt.argv)
			a, err := Parse(argv)
			if err != nil {
				t.Fatalf("Parse(%q): %v", argv, err)
			}
			if got := view(a); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Parse(%q)\n got %+v\nwant %+v", argv, got, tt.want)
			}
			wantExec := argv
			if tt.exec != "" {
				wantExec = strings.Fields(tt.exec)
			}
			if got := a.ExecArgv(); !equalArgv(got, wantExec) {
				t.Errorf("ExecArgv(%q) = %q, want %q", argv, got, wantExec)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, argv string
		// exec is the expected ExecArgv, which stays usable for pass-through.
		exec string
		msg  string
	}{
		{"global value missing", "--root", "--root", "needs a value"},
		{"config value missing", "--root /r --runc-shared-config", "--root /r", "needs a value"},
		{"config empty", "--runc-shared-config= create id", "create id", "non-empty"},
		{"bundle value missing", "create --bundle", "create --bundle", "needs a value"},
		{"bundle at the end takes the id as value (as urfave v1)", "create id --bundle", "create id --bundle", "exactly one"},
		{"no id", "create --bundle /b", "create --bundle /b", "exactly one container ID"},
		{"two ids", "create --bundle /b id extra", "create --bundle /b id extra", "exactly one"},
		{"bool flag then id then flags (urfave v1 fails too)", "create --no-pivot id --bundle /b",
			"create --no-pivot id --bundle /b", "exactly one"},
		{"empty id", "run -b /b =", "run -b /b =", ""},
		{"unknown create flag", "create --frob id", "create --frob id", "unknown option --frob"},
		{"config after the command", "create --runc-shared-config=/c id", "create --runc-shared-config=/c id", "before the subcommand"},
		{"bad bool", "--debug=maybe state x", "--debug=maybe state x", "invalid boolean"},
		{"bad flag syntax", "---root x state", "---root x state", "bad option syntax"},
		{"bad preserve fds", "create --preserve-fds=abc id", "create --preserve-fds=abc id", "--preserve-fds"},
		{"bad command bool", "delete --force=maybe id", "delete --force=maybe id", "invalid boolean"},
		{"both forms of --bundle (urfave v1 refuses)", "create --bundle /a -b /b id", "create --bundle /a -b /b id", "both bundle and b"},
		{"both forms of --env", "exec -e A=1 --env B=2 id sh", "exec -e A=1 --env B=2 id sh", "both e and env"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			argv := strings.Fields(tt.argv)
			if tt.name == "empty id" {
				argv = []string{"run", "-b", "/b", ""}
				tt.exec = ""
			}
			a, err := Parse(argv)
			if err == nil {
				t.Fatalf("Parse(%q) = %+v, want an error", argv, view(a))
			}
			if !errors.Is(err, ErrUsage) {
				t.Errorf("error %v does not wrap ErrUsage", err)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not contain %q", err, tt.msg)
			}
			if a == nil || a.MayRewrite() {
				t.Fatalf("Parse(%q) returned %v; want non-nil Args that may not rewrite", argv, a)
			}
			want := strings.Fields(tt.exec)
			if tt.exec == "" {
				want = argv
			}
			if got := a.ExecArgv(); !equalArgv(got, want) {
				t.Errorf("ExecArgv = %q, want %q", got, want)
			}
		})
	}
}

// engineLine is what each line of argv.txt must parse to.
type engineLine struct {
	config        string
	command, id   string
	bundlePrefix  string
	logFormatJSON bool
}

func TestParseEngineArgv(t *testing.T) {
	const docker = "/var/lib/example/dexec/containerd/daemon/io.containerd.runtime.v2.task/moby/"
	const ctrd = "/var/lib/example/ctrd-state/io.containerd.runtime.v2.task/default/c1"
	const podman = "/var/lib/example/proot/overlay-containers/"
	const dockerID1 = "367f613a116032415f04848e12839fd3e24b071af836e87c5ae1283acf4bcfc1"
	const dockerID2 = "e294396fbae1bed66a5d0dec661d89b39f17f69be4ed66a2629c05ca3fbcb8ba"
	const podmanID = "280c30900958ad93bf3db52de7eb746eff1dde6b518dc45da86a67a1c59a6969"
	cfg := "/etc/runc-shared/config.toml"
	want := []engineLine{
		{cfg, "create", dockerID1, docker + dockerID1, true},
		{cfg, "delete", dockerID1, "", true},
		{cfg, "create", dockerID2, docker + dockerID2, true},
		{cfg, "delete", dockerID2, "", true},
		{"", "create", "c1", ctrd, true},
		{"", "start", "c1", "", true},
		{"", "delete", "c1", "", true},
		{"", "delete", "c1", "", true},
		{"", "create", podmanID, podman + podmanID, false},
		{"", "start", podmanID, "", false},
		{"", "delete", podmanID, "", false},
	}
	lines := engineArgv(t)
	if len(lines) != len(want) {
		t.Fatalf("argv.txt has %d lines, the test knows %d: update the test", len(lines), len(want))
	}
	for i, argv := range lines {
		w := want[i]
		a, err := Parse(argv)
		if err != nil {
			t.Errorf("line %d: Parse: %v", i+1, err)
			continue
		}
		if a.Command != w.command || a.ContainerID != w.id || a.ConfigPath != w.config ||
			a.ConfigSet != (w.config != "") || !strings.HasPrefix(a.Bundle, w.bundlePrefix) ||
			(w.bundlePrefix == "") != (a.Bundle == "") || (a.LogFormat == "json") != w.logFormatJSON {
			t.Errorf("line %d: got %+v, want %+v", i+1, view(a), w)
		}
		if a.MayRewrite() != (w.command == "create") {
			t.Errorf("line %d: MayRewrite = %v", i+1, a.MayRewrite())
		}
		if a.Argv[a.CommandIndex] != w.command {
			t.Errorf("line %d: CommandIndex %d points at %q", i+1, a.CommandIndex, a.Argv[a.CommandIndex])
		}
		wantExec := argv
		if w.config != "" {
			wantExec = argv[1:] // Docker puts runtimeArgs first.
		}
		if got := a.ExecArgv(); !equalArgv(got, wantExec) {
			t.Errorf("line %d: ExecArgv = %q, want %q", i+1, got, wantExec)
		}
	}
}

func TestWithPreserveFDs(t *testing.T) {
	tests := []struct {
		argv string
		n    int
		want string
	}{
		{"--runc-shared-config=/c create --bundle /b id", 1, "create --preserve-fds=1 --bundle /b id"},
		{"create --preserve-fds 2 id", 3, "create --preserve-fds 3 id"},
		{"run -preserve-fds=2 -d id", 4, "run -preserve-fds=4 -d id"},
		{"create id --preserve-fds=1 --preserve-fds 2", 5, "create id --preserve-fds=5 --preserve-fds 5"},
		{"--root create create --bundle run id", 0, "--root create create --preserve-fds=0 --bundle run id"},
		{"exec id ls --preserve-fds 7", 1, "exec --preserve-fds=1 id ls --preserve-fds 7"},
		{"--root r -- run id", 2, "--root r -- run --preserve-fds=2 id"},
	}
	for _, tt := range tests {
		a, err := Parse(strings.Fields(tt.argv))
		if err != nil {
			t.Fatalf("Parse(%q): %v", tt.argv, err)
		}
		got, err := a.WithPreserveFDs(tt.n)
		if err != nil {
			t.Fatalf("WithPreserveFDs(%d) of %q: %v", tt.n, tt.argv, err)
		}
		if want := strings.Fields(tt.want); !equalArgv(got, want) {
			t.Errorf("WithPreserveFDs(%d) of %q = %q, want %q", tt.n, tt.argv, got, want)
		}
		b, err := Parse(got)
		if err != nil || b.PreserveFDs != tt.n || b.Bundle != a.Bundle || b.ContainerID != a.ContainerID || b.Command != a.Command {
			t.Errorf("reparsed %q: %+v, %v", got, view(b), err)
		}
	}
	for _, argv := range []string{"state id", "restore id", "--version", "create", "create --preserve-fds=1 id"} {
		a, _ := Parse(strings.Fields(argv))
		n := 1
		if argv == "create --preserve-fds=1 id" {
			n = -1
		}
		if got, err := a.WithPreserveFDs(n); err == nil {
			t.Errorf("WithPreserveFDs(%d) of %q = %q, want an error", n, argv, got)
		}
	}
}

func TestBundleDir(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ bundle, want string }{
		{"", wd},
		{"sub/b", filepath.Join(wd, "sub/b")},
		{"../x", filepath.Join(filepath.Dir(wd), "x")},
		{"/abs/b/", "/abs/b"},
		{"/abs/./b/../c", "/abs/c"},
	}
	for _, tt := range tests {
		got, err := (&Args{Bundle: tt.bundle}).BundleDir()
		if err != nil || got != tt.want {
			t.Errorf("BundleDir(%q) = %q, %v; want %q", tt.bundle, got, err, tt.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, argv := range engineArgv(f) {
		f.Add(strings.Join(argv, " "))
	}
	for _, s := range []string{
		"", "--version", "--root create create --bundle run id", "--runc-shared-config /c create id",
		"create id --bundle /b", "exec -t id sh -c --runc-shared-config", "create -- -b",
		"--runc-shared-config", "--runc-shared-config=/c --runc-shared-config /d run --preserve-fds 3 id",
		"---x", "-", "--", "create --bundle= id", "restore -b /b --lazy-pages id",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var argv []string
		if s != "" {
			argv = strings.Split(s, " ")
		}
		a, err := Parse(argv)
		if a == nil {
			t.Fatalf("Parse(%q) returned nil Args", argv)
		}
		// runc's own parser is the reference for which bundle and ID a
		// create, run or restore uses.
		checkAgainstRunc(t, argv)
		execArgv := a.ExecArgv()
		if !strings.Contains(s, ConfigFlag) && !equalArgv(execArgv, argv) {
			t.Fatalf("ExecArgv(%q) = %q, want it unchanged", argv, execArgv)
		}
		// The exec argv holds no --runc-shared-config option: re-parsing it
		// finds none, and reads the same command line otherwise.
		b, errB := Parse(execArgv)
		if b.ConfigSet || len(b.configIdx) != 0 {
			t.Fatalf("ExecArgv(%q) = %q still holds --%s", argv, execArgv, ConfigFlag)
		}
		if err != nil {
			return
		}
		if errB != nil {
			t.Fatalf("Parse(%q) ok but Parse(ExecArgv = %q): %v", argv, execArgv, errB)
		}
		va, vb := view(a), view(b)
		va.Config, va.ConfigSet, va.Index, vb.Index = "", false, 0, 0
		if !reflect.DeepEqual(va, vb) {
			t.Fatalf("Parse(%q) = %+v but Parse(ExecArgv) = %+v", argv, va, vb)
		}
		if a.MayRewrite() && a.ContainerID == "" {
			t.Fatalf("Parse(%q) may rewrite without a container ID", argv)
		}
		if fds, err := a.WithPreserveFDs(5); err == nil {
			c, err := Parse(fds)
			if err != nil || c.PreserveFDs != 5 || c.Bundle != a.Bundle || c.ContainerID != a.ContainerID || c.Command != a.Command {
				t.Fatalf("WithPreserveFDs(5) of %q = %q reparses to %+v, %v", argv, fds, c, err)
			}
		}
	})
}

// engineArgv reads the argv lines captured from Docker, containerd and
// Podman (tests/testdata/engines).
func engineArgv(t testing.TB) [][]string {
	t.Helper()
	path := filepath.Join("..", "..", "tests", "testdata", "engines", "argv.txt")
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("open engine argv captures: %v (tests/testdata/engines)", err)
	}
	defer f.Close()
	var lines [][]string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) > 0 {
			lines = append(lines, fields)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return lines
}

func equalArgv(a, b []string) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return reflect.DeepEqual(a, b)
}

// TestFlagTables builds every command's flag table, which the wrapper
// builds only for the command it parses: a table past the mask of names
// seen panics here rather than on the call path, and each pair of names
// has its own two bits.
func TestFlagTables(t *testing.T) {
	for name, c := range maps.All(commands) {
		seen := uint64(0)
		for n, f := range c.flags() {
			if f.other == "" {
				continue
			}
			if f.bit == 0 || f.otherBit == 0 || c.flags()[f.other].bit != f.otherBit {
				t.Errorf("%s: flag %s: bits %#x/%#x do not pair with %s", name, n, f.bit, f.otherBit, f.other)
			}
			if seen&f.bit != 0 {
				t.Errorf("%s: flag %s shares bit %#x with another name", name, n, f.bit)
			}
			seen |= f.bit
		}
	}
	if len(globals.flags()) == 0 {
		t.Error("no global flags")
	}
}
