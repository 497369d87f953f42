package mounter

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runc-shared/runc-shared/internal/registry"
)

// fakeExec records the commands and answers with err.
type fakeExec struct {
	mu         sync.Mutex // for a test that looks while a run goes on
	calls      [][]string
	containers []Container
	res        ExecResult
	err        error
}

// called is the number of commands so far.
func (f *fakeExec) called() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

func (f *fakeExec) Exec(_ context.Context, c Container, argv []string) (ExecResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, append([]string{c.ID}, argv...))
	f.containers = append(f.containers, c)
	return f.res, f.err
}

// fixture is a configuration with one glusterfs rule propagating shared,
// a registry, and a mounter record that is alive (it names this test
// process) whose bundle binds shared/k at /k.
type fixture struct {
	dir, config, shared, state string
	exec                       *fakeExec
	plain                      [][]string
	stdout, stderr             bytes.Buffer
}

func newFixture(t *testing.T, withMounter bool) *fixture {
	t.Helper()
	f := &fixture{dir: t.TempDir(), exec: &fakeExec{}}
	f.shared = filepath.Join(f.dir, "shared")
	f.state = filepath.Join(f.dir, "state")
	for _, d := range []string{filepath.Join(f.shared, "k", "vol"), filepath.Join(f.dir, "bundle"), filepath.Join(f.dir, "out"), filepath.Join(f.dir, "runtime-root", "m1")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	f.config = filepath.Join(f.dir, "config.toml")
	cfg := fmt.Sprintf(`runtime = "/bin/true"
state-dir = %q
[[mounter]]
name = "glusterfs"
fstypes = ["glusterfs"]
propagate = [%q]
[mounter.match]
annotations = { "runc-shared.io/mounter" = "glusterfs" }
`, f.state, f.shared)
	if err := os.WriteFile(f.config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := fmt.Sprintf(`{"ociVersion":"1.0.2","root":{"path":"rootfs"},"mounts":[
		{"destination":"/usr","type":"bind","source":"/usr","options":["rbind","ro"]},
		{"destination":"/k","type":"bind","source":%q,"options":["rbind","rshared"]}]}`, filepath.Join(f.shared, "k"))
	if err := os.WriteFile(filepath.Join(f.dir, "bundle", "config.json"), []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	if withMounter {
		start, err := registry.ProcStart(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		rec := &registry.Record{ID: "m1", Name: "glusterfs", PID: os.Getpid(), PIDStart: start,
			Bundle: filepath.Join(f.dir, "bundle"), Runtime: "/bin/true", RuntimeRoot: filepath.Join(f.dir, "runtime-root"),
			FSTypes: []string{"glusterfs"}, Propagate: []string{f.shared}, Created: time.Now()}
		if err := registry.New(f.state).Write(rec); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func (f *fixture) run(args ...string) int {
	m := &Mounter{Stdout: &f.stdout, Stderr: &f.stderr, Exec: f.exec,
		PlainMount: func(argv []string) error { f.plain = append(f.plain, argv); return nil }}
	return m.Run(append([]string{"mounter", "--config", f.config}, args...))
}

func TestRunPlainMount(t *testing.T) {
	f := newFixture(t, true)
	if code := f.run("mount", "-t", "tmpfs", "-o", "size=1m", "none", "/mnt/x"); code != 0 {
		t.Fatalf("exit %d: %s", code, f.stderr.String())
	}
	want := [][]string{{"-t", "tmpfs", "-o", "size=1m", "none", "/mnt/x"}}
	if !reflect.DeepEqual(f.plain, want) || len(f.exec.calls) != 0 {
		t.Errorf("plain mount got %q, exec got %q; want %q and no exec", f.plain, f.exec.calls, want)
	}
}

func TestRunHelperFormUnrouted(t *testing.T) {
	f := newFixture(t, true)
	m := &Mounter{Stdout: &f.stdout, Stderr: &f.stderr, Exec: f.exec,
		PlainMount: func(argv []string) error { f.plain = append(f.plain, argv); return nil }}
	t.Setenv("RUNC_SHARED_CONFIG", f.config)
	if code := m.Run([]string{"/sbin/mount.nfs4", "h:/e", "/mnt/n", "-o", "vers=4.2"}); code != 0 {
		t.Fatalf("exit %d: %s", code, f.stderr.String())
	}
	want := [][]string{{"-i", "-t", "nfs4", "h:/e", "/mnt/n", "-o", "vers=4.2"}}
	if !reflect.DeepEqual(f.plain, want) {
		t.Errorf("plain mount got %q, want %q", f.plain, want)
	}
	if !strings.Contains(f.stderr.String(), "no [[mounter]] rule") {
		t.Errorf("no warning about the unbacked helper link: %q", f.stderr.String())
	}
}

func TestRunRoutedMountFailsInside(t *testing.T) {
	f := newFixture(t, true)
	f.exec.err = errors.New("exit status 32")
	f.exec.res = ExecResult{Stderr: "Mount failed. Check the log file\nfor more details.\n"}
	target := filepath.Join(f.shared, "k", "vol")
	code := f.run("mount", "-t", "glusterfs", "-o", "ro", "h:/v", target)
	if code != ExitFailure {
		t.Fatalf("exit %d, want %d: %s", code, ExitFailure, f.stderr.String())
	}
	want := [][]string{{"m1", "mount", "-t", "glusterfs", "-o", "ro", "--", "h:/v", "/k/vol"}}
	if !reflect.DeepEqual(f.exec.calls, want) {
		t.Errorf("exec calls %q, want %q", f.exec.calls, want)
	}
	msg := f.stderr.String()
	for _, s := range []string{"mounter: mount inside mounter m1", "exit status 32", "Mount failed. Check the log file | for more details."} {
		if !strings.Contains(msg, s) {
			t.Errorf("stderr lacks %q: %s", s, msg)
		}
	}
}

func TestRunRoutedNotBelowShared(t *testing.T) {
	f := newFixture(t, true)
	other := filepath.Join(f.dir, "out")
	if code := f.run("mount", "-t", "glusterfs", "h:/v", other); code != ExitFailure {
		t.Fatalf("exit %d, want %d", code, ExitFailure)
	}
	if len(f.exec.calls) != 0 {
		t.Errorf("exec called: %q", f.exec.calls)
	}
	if !strings.Contains(f.stderr.String(), "it shares "+filepath.Join(f.shared, "k")+" (at /k inside)") {
		t.Errorf("stderr does not name the shared paths: %s", f.stderr.String())
	}
}

func TestRunNoMounter(t *testing.T) {
	f := newFixture(t, false)
	target := filepath.Join(f.shared, "k", "vol")
	if code := f.run("mount", "-t", "glusterfs", "h:/v", target); code != ExitFailure {
		t.Fatalf("exit %d, want %d", code, ExitFailure)
	}
	if !strings.Contains(f.stderr.String(), "no live mounter for type glusterfs") {
		t.Errorf("stderr: %s", f.stderr.String())
	}
}

func TestRunMissingTarget(t *testing.T) {
	f := newFixture(t, true)
	if code := f.run("mount", "-t", "glusterfs", "h:/v", filepath.Join(f.shared, "k", "nope")); code != ExitFailure {
		t.Fatalf("exit %d, want %d", code, ExitFailure)
	}
	if !strings.Contains(f.stderr.String(), "does not exist") || len(f.exec.calls) != 0 {
		t.Errorf("stderr %q, exec %q", f.stderr.String(), f.exec.calls)
	}
}

func TestRunFake(t *testing.T) {
	f := newFixture(t, true)
	if code := f.run("mount", "-f", "-t", "glusterfs", "h:/v", filepath.Join(f.shared, "k", "vol")); code != 0 {
		t.Fatalf("exit %d: %s", code, f.stderr.String())
	}
	if len(f.exec.calls) != 0 {
		t.Errorf("mount -f ran something: %q", f.exec.calls)
	}
}

func TestRunBadConfig(t *testing.T) {
	f := newFixture(t, true)
	if err := os.WriteFile(f.config, []byte("runtime = 3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code := f.run("mount", "-t", "tmpfs", "none", "/mnt"); code != ExitUsage {
		t.Fatalf("exit %d, want %d", code, ExitUsage)
	}
	if len(f.plain) != 0 || !strings.Contains(f.stderr.String(), "config.toml") {
		t.Errorf("plain %q, stderr %q", f.plain, f.stderr.String())
	}
}
