// Package mounter_test drives bin/mounter end to end: a real glusterd on
// 127.0.0.2, a mounter container started by real runc through bin/runc-shared
// (which makes its binds rshared) with bin/mount-hook registering it, and
// routed mounts checked on the host's mount table and on the brick.
package mounter_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/runc-shared/runc-shared/internal/registry"
	"github.com/runc-shared/runc-shared/internal/testutil"
	"github.com/runc-shared/runc-shared/pkg/spec"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// annotationValue marks the test mounters; the rule matches on it only.
const annotationValue = "glusterfs"

// setup is a configuration with one glusterfs rule propagating Shared, a
// state dir, and the runtime that starts mounters through runc-shared.
type setup struct {
	Shared   string // host dir, a shared mount: the rule's propagate path
	StateDir string
	Config   string // config.toml
	Runc     *testutil.Runc
	Mounter  string // bin/mounter
}

// newSetup writes the configuration. extra is appended to the top-level
// keys (before the [[mounter]] table).
func newSetup(t *testing.T, extra string) *setup {
	t.Helper()
	return newHostSetup(t, testutil.Host{}, extra)
}

// newHostSetup is newSetup for host set-up h. Where / is shared (a systemd
// host) the propagate path is a plain directory on /, as /var/lib/kubelet is
// there: shared already, and no mount point of its own.
func newHostSetup(t *testing.T, h testutil.Host, extra string) *setup {
	t.Helper()
	shared := testutil.SharedDir
	if h.SharedRoot {
		shared = testutil.PrivateDir
	}
	dir := testutil.TempDir(t)
	s := &setup{
		Shared:   shared(t),
		StateDir: filepath.Join(dir, "state"),
		Config:   filepath.Join(dir, "config.toml"),
		Mounter:  testutil.Bin(t, "mounter"),
	}
	testutil.WriteFile(t, s.Config, testutil.GlusterRuleConfig(s.StateDir, s.Shared, spec.AnnotationMounter, annotationValue, h.ConfigLines()+extra))
	s.Runc = testutil.Wrapper(t, s.Config)
	return s
}

// mounterBox is a running mounter container.
type mounterBox struct {
	ID     string
	PID    int
	Bundle *testutil.Bundle
}

// startMounter starts a mounter container through runc-shared: the host's
// /usr (so mount.glusterfs and glusterfs exist inside), host network,
// /dev/fuse, CAP_SYS_ADMIN, only the match annotation, init `sleep`, and the
// given binds (host source -> container destination). runc-shared rewrites
// the binds to rshared and injects mount-hook, which registers it.
func (s *setup) startMounter(t *testing.T, id string, binds map[string]string) *mounterBox {
	t.Helper()
	opts := []testutil.BundleOpt{
		testutil.WithHostNetwork(),
		testutil.WithFuse(),
		testutil.WithAddCaps("SYS_ADMIN"),
		testutil.WithAnnotation(spec.AnnotationMounter, annotationValue),
		testutil.WithArgs("sleep", "100000"),
	}
	for src, dst := range binds {
		opts = append(opts, testutil.WithBind(src, dst))
	}
	b := testutil.NewBundle(t, testutil.HostUsrRootfs(t), opts...)
	pid := s.Runc.Up(t, b, id)
	injected := func(hooks []specs.Hook) bool {
		return slices.ContainsFunc(hooks, func(h specs.Hook) bool { return filepath.Base(h.Path) == "mount-hook" })
	}
	if h := b.ReadSpec(t).Hooks; h == nil || !injected(h.CreateRuntime) || !injected(h.Poststop) {
		t.Fatalf("runc-shared did not inject mount-hook into %s: hooks %+v", b.ConfigPath(), h)
	}
	rec, err := registry.New(s.StateDir).Read(id)
	if err != nil {
		t.Fatalf("mounter %s is not registered after start (mount-hook should have done it): %v\nlog.json: %s", id, err, b.Log(t))
	}
	if rec.PID != pid {
		t.Fatalf("registry record of %s has pid %d, runc state says %d", id, rec.PID, pid)
	}
	return &mounterBox{ID: id, PID: pid, Bundle: b}
}

// result is what a run of bin/mounter did.
type result struct {
	Stdout, Stderr string
	Code           int
	Took           time.Duration
}

func (r result) String() string {
	return fmt.Sprintf("exit %d after %v\nstdout: %s\nstderr: %s", r.Code, r.Took.Round(time.Millisecond), r.Stdout, r.Stderr)
}

// run runs bin (as argv0, which may be a mount.TYPE link) with args and
// extra environment.
func run(t testing.TB, bin string, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Env = append(os.Environ(), env...)
	start := time.Now()
	err := cmd.Run()
	r := result{Stdout: stdout.String(), Stderr: stderr.String(), Took: time.Since(start)}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.Code = ee.ExitCode()
	default:
		t.Fatalf("run %s %q: %v", bin, args, err)
	}
	return r
}

// mounter runs bin/mounter --config CONFIG args...
func (s *setup) mounter(t testing.TB, args ...string) result {
	t.Helper()
	return run(t, s.Mounter, nil, append([]string{"--config", s.Config}, args...)...)
}

// mkdir makes a directory below a test dir and returns it.
func mkdir(t *testing.T, parts ...string) string {
	t.Helper()
	d := filepath.Join(parts...)
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

// mountsInside returns the mount points at or below dir inside the
// container of pid (paths as the container sees them).
func mountsInside(t *testing.T, pid int, dir string) []string {
	t.Helper()
	var out []string
	for _, m := range testutil.MountsUnderPid(t, pid, dir) {
		out = append(out, m.Mountpoint+" "+m.FSType)
	}
	return out
}

// writeRecord writes a registry record as mount-hook would.
func writeRecord(t *testing.T, stateDir string, rec *registry.Record) {
	t.Helper()
	if err := registry.New(stateDir).Write(rec); err != nil {
		t.Fatal(err)
	}
}

// recordExists reports whether container id has a registry record.
func recordExists(t *testing.T, stateDir, id string) bool {
	t.Helper()
	_, err := os.Stat(filepath.Join(stateDir, "mounters", id+".json"))
	return err == nil
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
