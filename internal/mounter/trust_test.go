package mounter

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/runc-shared/runc-shared/internal/registry"
	"github.com/runc-shared/runc-shared/pkg/spec"
)

// TestRegistryUnusable: a registry that others could have written is not
// read: mount, umount and status exit 2 (a system error, as the contract
// says), run nothing and list nothing.
func TestRegistryUnusable(t *testing.T) {
	for _, args := range [][]string{
		{"mount", "-t", "glusterfs", "h:/v", "{target}"},
		{"status"},
		{"umount", "{target}"},
	} {
		t.Run(args[0], func(t *testing.T) {
			f := newFixture(t, true)
			if err := os.Chmod(f.state, 0o777); err != nil {
				t.Fatal(err)
			}
			for i, a := range args {
				args[i] = strings.ReplaceAll(a, "{target}", filepath.Join(f.shared, "k", "vol"))
			}
			if code := f.run(args...); code != ExitSystem {
				t.Fatalf("%s: exit %d, want %d; stderr: %s", args[0], code, ExitSystem, f.stderr.String())
			}
			if len(f.exec.calls) != 0 {
				t.Errorf("ran %q through a record of an untrusted registry", f.exec.calls)
			}
			if strings.Contains(f.stdout.String(), "m1") {
				t.Errorf("stdout lists the record of an untrusted registry: %s", f.stdout.String())
			}
			if msg := f.stderr.String(); !strings.Contains(msg, "chmod go-w "+f.state) {
				t.Errorf("stderr does not say what to do: %s", msg)
			}
		})
	}
}

// TestRecordDoesNotChooseRuntime: the routed mount runs the configured
// runtime whatever the record names.
func TestRecordDoesNotChooseRuntime(t *testing.T) {
	f := newFixture(t, true)
	reg := registry.New(f.state)
	rec, err := reg.Read("m1")
	if err != nil {
		t.Fatal(err)
	}
	rec.Runtime = filepath.Join(f.dir, "evil-runtime")
	rec.Propagate = []string{"/"}
	if err := reg.Write(rec); err != nil {
		t.Fatal(err)
	}
	f.exec.err = errTest
	f.run("mount", "-t", "glusterfs", "h:/v", filepath.Join(f.shared, "k", "vol"))
	if len(f.exec.containers) != 1 || f.exec.containers[0].Runtime != "/bin/true" {
		t.Fatalf("exec'd %+v; want the configured runtime /bin/true", f.exec.containers)
	}
	// The record's "/" does not widen the rule's paths.
	f.exec = &fakeExec{}
	f.stderr.Reset()
	if code := f.run("mount", "-t", "glusterfs", "h:/v", filepath.Join(f.dir, "out")); code != ExitFailure || len(f.exec.calls) != 0 {
		t.Fatalf("mount outside the rule's paths: exit %d, exec %q; want 32 and nothing run", code, f.exec.calls)
	}
}

// TestUnbackedRecordsHeld: a running mounter whose rule is gone from the
// configuration, or whose runtime root is not a trusted directory holding
// it, is shown as not used and never routed to.
func TestUnbackedRecordsHeld(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, f *fixture, rec *registry.Record)
		reason string
	}{
		{"rule gone", func(_ *testing.T, _ *fixture, rec *registry.Record) { rec.Name = "gone" }, `its rule "gone" is not in`},
		{"root world-writable", func(t *testing.T, f *fixture, _ *registry.Record) {
			if err := os.Chmod(filepath.Join(f.dir, "runtime-root"), 0o777); err != nil {
				t.Fatal(err)
			}
		}, "its runtime root is not trusted"},
		{"root without the container", func(_ *testing.T, f *fixture, rec *registry.Record) {
			rec.RuntimeRoot = filepath.Join(f.dir, "bundle")
		}, "holds no container m1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, true)
			reg := registry.New(f.state)
			rec, err := reg.Read("m1")
			if err != nil {
				t.Fatal(err)
			}
			tc.change(t, f, rec)
			if err := reg.Write(rec); err != nil {
				t.Fatal(err)
			}
			if code := f.run("mount", "-t", "glusterfs", "h:/v", filepath.Join(f.shared, "k", "vol")); code != ExitFailure {
				t.Fatalf("exit %d, want %d", code, ExitFailure)
			}
			if len(f.exec.calls) != 0 || !strings.Contains(f.stderr.String(), tc.reason) {
				t.Fatalf("exec %q, stderr %s; want nothing run and %q", f.exec.calls, f.stderr.String(), tc.reason)
			}
			f.stdout.Reset()
			if code := f.run("status"); code != 0 {
				t.Fatalf("status: exit %d: %s", code, f.stderr.String())
			}
			out := f.stdout.String()
			if !strings.Contains(out, "mounter m1 (rule") || !strings.Contains(out, "is not used: ") || !strings.Contains(out, tc.reason) {
				t.Fatalf("status does not show m1 held and why:\n%s", out)
			}
			if strings.Contains(out, "ROUTED MOUNT") {
				t.Fatalf("status lists routed mounts of a held mounter:\n%s", out)
			}
		})
	}
}

// TestCheckMatch: doctor warns about a rule that needs annotations when
// dockerd runs runc-shared, and only then.
func TestCheckMatch(t *testing.T) {
	dir := t.TempDir()
	wrapper := filepath.Join(dir, "bin", "runc-shared")
	daemonJSON := filepath.Join(dir, "daemon.json")
	if err := os.WriteFile(daemonJSON, []byte(`{"runtimes":{"shared":{"path":"/usr/local/bin/runc-shared","runtimeArgs":["--runc-shared-config=/c"]},"other":{"path":"/usr/bin/crun"}}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	noDocker := filepath.Join(dir, "missing.json")
	emptyProc := t.TempDir()
	byAnn := spec.Rule{Name: "g", Match: spec.Match{Annotations: map[string]string{spec.AnnotationMounter: "glusterfs"}}}
	byBoth := spec.Rule{Name: "g", Match: spec.Match{Annotations: map[string]string{"a": "b"}, Env: map[string]string{spec.EnvMounter: "g"}}}
	byEnv := spec.Rule{Name: "g", Match: spec.Match{Env: map[string]string{spec.EnvMounter: "g"}}}
	seed := spec.Rule{Name: "g", Match: spec.Match{AnnotationOrEnv: map[string]string{"name": "g"}, ContainerName: "m", ContainerNameIfRecorded: true}}
	// The README's pair: an annotation rule and an env rule for the same type.
	annPair := spec.Rule{Name: "g-annotated", FSTypes: []string{"glusterfs"}, Match: byAnn.Match}
	envPair := spec.Rule{Name: "g", FSTypes: []string{"glusterfs"}, Match: byEnv.Match}
	envOther := spec.Rule{Name: "s", FSTypes: []string{"fuse.sshfs"}, Match: byEnv.Match}
	for _, tc := range []struct {
		name   string
		rule   spec.Rule
		others []spec.Rule // the other rules of the configuration
		docker string
		want   string // "" means no line
	}{
		{"annotation only, docker", byAnn, nil, daemonJSON, `WARN match[g]: rule "g" matches only containers with annotations, and dockerd runs runc-shared (runtime "shared" in ` + daemonJSON + `)`},
		{"annotation and env, docker", byBoth, nil, daemonJSON, `WARN match[g]:`},
		{"env, docker", byEnv, nil, daemonJSON, ""},
		{"seed syntax, docker", seed, nil, daemonJSON, ""},
		{"annotation only, no docker", byAnn, nil, noDocker, ""},
		{"annotation rule beside an env rule of its type, docker", annPair, []spec.Rule{envPair}, daemonJSON, ""},
		{"annotation rule beside an env rule of another type, docker", annPair, []spec.Rule{envOther}, daemonJSON, `WARN match[g-annotated]:`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &Mounter{DockerConfig: tc.docker, ProcDir: emptyProc}
			c, ok := checkMatch(&tc.rule, append([]spec.Rule{tc.rule}, tc.others...), m.dockerRuntimes(wrapper))
			if tc.want == "" {
				if ok {
					t.Fatalf("checkMatch = %q, want nothing", c)
				}
				return
			}
			if !ok || !strings.HasPrefix(c.String(), tc.want) || !c.Warn || !strings.Contains(c.Fix, "env = { RUNC_SHARED_MOUNTER = ") {
				t.Fatalf("checkMatch = %q, %v; want a warning starting %q with the env fix", c, ok, tc.want)
			}
		})
	}
	t.Run("running dockerd with --config-file and --add-runtime", func(t *testing.T) {
		proc := t.TempDir()
		writeProc(t, proc, 4242, "dockerd", "dockerd", "--config-file", daemonJSON, "--add-runtime=rs="+wrapper)
		writeProc(t, proc, 4343, "bash", "bash", "--config-file", "/nope")
		m := &Mounter{DockerConfig: noDocker, ProcDir: proc}
		got := m.dockerRuntimes(wrapper)
		if len(got) != 2 || got[0].Name != "rs" || got[1].Name != "shared" || got[1].Where != daemonJSON {
			t.Fatalf("dockerRuntimes = %+v; want rs from --add-runtime and shared from %s", got, daemonJSON)
		}
	})
}

func writeProc(t *testing.T, proc string, pid int, comm string, argv ...string) {
	t.Helper()
	dir := filepath.Join(proc, strconv.Itoa(pid))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "comm"), []byte(comm+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cmdline"), []byte(strings.Join(argv, "\x00")+"\x00"), 0o644); err != nil {
		t.Fatal(err)
	}
}

var errTest = &Error{Code: ExitFailure, Err: os.ErrInvalid}
