// Package engines_test runs runc-shared under real engines: Docker 20.10,
// containerd 1.6 (ctr, and its CRI plugin driven as kubelet does) and
// Podman 4.3. Each test starts its own daemon with all state below a temp
// dir, registers the runtime the way `mounter configure` writes it, and
// checks the same acceptance: a mounter's tmpfs and GlusterFS mounts land on
// the host, the routing client mounts through it, a plain container's mount
// stays inside, a refused container shows runc-shared's reason in the
// engine's error output, and removing the mounter unregisters it.
package engines_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/runc-shared/runc-shared/internal/configure"
	"github.com/runc-shared/runc-shared/internal/hostmount"
	"github.com/runc-shared/runc-shared/internal/registry"
	"github.com/runc-shared/runc-shared/internal/testutil"
	"github.com/runc-shared/runc-shared/pkg/spec"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// ruleName is the [[mounter]] rule of every test, and the value of the
// marker (env or annotation) that selects it.
const ruleName = "glusterfs"

// setup is what every engine test shares: a host dir that the rule
// propagates (a plain directory: runc-shared makes it a shared mount), the
// runc-shared configuration, glusterd, and a stopwatch.
type setup struct {
	Dir      string // temp dir for engine state
	Host     string // propagated host path, bound into containers at the same path
	StateDir string // runc-shared state (registry)
	Config   string // runc-shared config.toml
	Gluster  *testutil.Gluster
	watch    *stopwatch
}

// newSetup writes a config whose rule matches on the env variable (Docker
// before 24 passes no annotation) or on the annotation, plus the extra
// [mounter.match] lines.
func newSetup(t *testing.T, byEnv bool, extraMatch ...string) *setup {
	t.Helper()
	testutil.RequireRoot(t)
	w := newStopwatch(t)
	s := &setup{Dir: testutil.TempDir(t), Host: testutil.PrivateDir(t), watch: w}
	s.StateDir = filepath.Join(s.Dir, "rs-state")
	s.Config = filepath.Join(s.Dir, "rs.toml")
	match := fmt.Sprintf("annotations = { %q = %q }", spec.AnnotationMounter, ruleName)
	if byEnv {
		match = fmt.Sprintf("env = { %s = %q }", spec.EnvMounter, ruleName)
	}
	match = strings.Join(append([]string{match}, extraMatch...), "\n")
	cfg := fmt.Sprintf(`runtime = "runc"
state-dir = %q
log-level = "debug"

[[mounter]]
name = %q
fstypes = ["glusterfs"]
propagate = [%q]

[mounter.match]
%s
`, s.StateDir, ruleName, s.Host, match)
	if err := os.WriteFile(s.Config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	s.Gluster = testutil.Glusterd(t)
	w.lap("glusterd")
	return s
}

// configure runs `mounter configure` for an engine, as an operator would.
func (s *setup) configure(t *testing.T, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	args = append([]string{"--runtime-path", testutil.Bin(t, "runc-shared"), "--runc-shared-config", s.Config}, args...)
	if code := configure.Run(args, &out, &errOut); code != 0 {
		t.Fatalf("configure %v: exit %d\n%s%s", args, code, out.String(), errOut.String())
	}
	return out.String()
}

// box is one container of the acceptance scenarios. Every box has host
// networking (glusterd listens on 127.0.0.2) and binds setup.Host at the
// same path; init is a long sleep.
type box struct {
	name     string
	hostUsr  bool // the host-/usr image with the host's /usr bound read-only (mount.glusterfs inside); else busybox
	mounter  bool // carries the marker that the rule matches
	sysAdmin bool // CAP_SYS_ADMIN and /dev/fuse
}

// engine is one way of running containers through runc-shared.
type engine interface {
	// start runs b detached; a failure's result carries the engine's
	// error output. Cleanup of the container is registered either way.
	start(t *testing.T, b box) (id string, r result)
	exec(t *testing.T, id string, args ...string) result
	remove(t *testing.T, id string) result
}

// acceptance runs the acceptance against one engine.
func acceptance(t *testing.T, s *setup, e engine) {
	id, r := e.start(t, box{name: "mounter", hostUsr: true, mounter: true, sysAdmin: true})
	if r.err != nil {
		t.Fatalf("start the mounter: %v", r)
	}
	s.watch.lap("mounter started")
	rec, err := registry.New(s.StateDir).Read(id)
	if err != nil {
		t.Fatalf("mounter %s is not registered (mount-hook, injected by runc-shared or from hooks.d, records it at createRuntime): %v", id, err)
	}
	t.Logf("registry record: name %s, pid %d, runtime %s, runtime-root %q, bundle %s", rec.Name, rec.PID, rec.Runtime, rec.RuntimeRoot, rec.Bundle)
	if rec.Name != ruleName {
		t.Errorf("record names rule %q, want %q", rec.Name, ruleName)
	}
	if c, ok := e.(interface {
		checkMounter(*testing.T, *registry.Record)
	}); ok {
		c.checkMounter(t, rec)
	}
	if m := testutil.MountAt(t, s.Host); m == nil || hostmount.PeerGroup(m) == 0 {
		t.Errorf("%s is not a shared mount after the mounter started: %+v", s.Host, m)
	}
	src := s.Gluster.Server + ":/" + s.Gluster.Volume

	t.Run("MounterTmpfsReachesHost", func(t *testing.T) {
		target := filepath.Join(s.Host, "tmpfs")
		unmountLater(t, target)
		if r := e.exec(t, id, "sh", "-c", "mkdir -p "+target+" && mount -t tmpfs -o size=1m rstest-tmpfs "+target); r.err != nil {
			t.Fatal(r)
		}
		if m := testutil.MountAt(t, target); m == nil || m.FSType != "tmpfs" || m.Source != "rstest-tmpfs" {
			t.Fatalf("host mount at %s = %+v, want the mounter's tmpfs", target, m)
		}
		s.watch.lap("tmpfs through exec")
	})

	t.Run("MounterGlusterFSReachesHost", func(t *testing.T) {
		target := filepath.Join(s.Host, "gluster-exec")
		unmountLater(t, target)
		log := "/tmp/glusterfs-exec.log" // inside the container
		if r := e.exec(t, id, "sh", "-c", "mkdir -p "+target+" && mount -t glusterfs -o log-file="+log+" "+src+" "+target); r.err != nil {
			t.Fatal(r)
		}
		checkGluster(t, s, target, "exec")
		s.watch.lap("glusterfs through exec")
	})

	// The routed mount stays until the mounter is removed (the last
	// subtest), so its cleanup belongs to the parent test.
	routed := filepath.Join(s.Host, "gluster-routed")
	unmountLater(t, routed)
	t.Run("RoutedGlusterFS", func(t *testing.T) {
		// What kubelet's --experimental-mounter-path calls: bin/mounter on
		// the host, which runs the mount in the registered mounter through
		// the runtime's exec with the root the engine gave runc.
		target := routed
		if err := os.MkdirAll(target, 0o755); err != nil {
			t.Fatal(err)
		}
		r := run(t, nil, nil, testutil.Bin(t, "mounter"), "--config", s.Config, "mount", "-t", "glusterfs", src, target)
		if r.err != nil {
			t.Fatal(r)
		}
		checkGluster(t, s, target, "routed")
		s.watch.lap("glusterfs through bin/mounter")
	})

	t.Run("PlainContainerStaysInside", func(t *testing.T) {
		pid, r := e.start(t, box{name: "plain", sysAdmin: true})
		if r.err != nil {
			t.Fatal(r)
		}
		target := filepath.Join(s.Host, "plain")
		unmountLater(t, target)
		if r := e.exec(t, pid, "sh", "-c", "mkdir -p "+target+" && mount -t tmpfs rstest-plain "+target+" && grep -c rstest-plain /proc/self/mounts"); r.err != nil {
			t.Fatalf("mount inside the plain container: %v", r)
		}
		if m := testutil.MountAt(t, target); m != nil {
			t.Fatalf("a plain container's mount reached the host: %+v", m)
		}
		if _, err := registry.New(s.StateDir).Read(pid); !errors.Is(err, registry.ErrNotFound) {
			t.Errorf("plain container registered as a mounter: %v", err)
		}
		s.watch.lap("plain container")
	})

	t.Run("RefusedShowsReason", func(t *testing.T) {
		_, r := e.start(t, box{name: "refused", mounter: true})
		if r.err == nil {
			t.Fatalf("a mounter without CAP_SYS_ADMIN started: %v", r)
		}
		want := regexp.MustCompile(`runc-shared: container matches mounter rule "` + ruleName + `" but is refused: it lacks CAP_SYS_ADMIN in its bounding set; start it with --cap-add SYS_ADMIN`)
		if !want.MatchString(r.stdout + r.stderr) {
			t.Fatalf("the engine's error output lacks runc-shared's reason %q:\n%v", want, r)
		}
		t.Logf("the engine said: %s", strings.TrimSpace(r.stderr))
		s.watch.lap("refused container")
	})

	t.Run("RemovalUnregistersAndDetachesDeadMounts", func(t *testing.T) {
		// The routed GlusterFS mount is still on the host: its FUSE daemon
		// dies with the mounter, and mount-hook's poststop detaches the dead
		// mount.
		target := routed
		if m := testutil.MountAt(t, target); m == nil {
			t.Fatalf("no routed GlusterFS mount at %s to test with (RoutedGlusterFS failed?)", target)
		}
		if r := e.remove(t, id); r.err != nil {
			t.Fatal(r)
		}
		if _, err := registry.New(s.StateDir).Read(id); !errors.Is(err, registry.ErrNotFound) {
			t.Errorf("record of the removed mounter: %v, want none (mount-hook poststop removes it)", err)
		}
		if m := testutil.MountAt(t, target); m != nil {
			t.Errorf("dead GlusterFS mount left at %s after the mounter stopped: %+v", target, m)
		}
		s.watch.lap("mounter removed")
	})
}

// checkGluster proves the host sees a live GlusterFS mount at target: a
// file written on the host lands on the brick.
func checkGluster(t *testing.T, s *setup, target, tag string) {
	t.Helper()
	m := testutil.MountAt(t, target)
	if m == nil || m.FSType != "fuse.glusterfs" {
		t.Fatalf("host mount at %s = %+v, want fuse.glusterfs", target, m)
	}
	name := "from-host-" + tag
	if err := os.WriteFile(filepath.Join(target, name), []byte(tag), 0o644); err != nil {
		t.Fatalf("write through the host's view of the mount: %v", err)
	}
	if got, err := os.ReadFile(filepath.Join(s.Gluster.Brick, name)); err != nil || string(got) != tag {
		t.Fatalf("brick has %q, %v; want the host's write", got, err)
	}
}

// unmountLater unmounts target on the host at the end of the (sub)test,
// before the containers go: cleanups run last in, first out.
func unmountLater(t *testing.T, target string) {
	t.Cleanup(func() {
		for range 5 {
			err := unix.Unmount(target, unix.MNT_DETACH)
			if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
				return
			}
			if err != nil {
				t.Errorf("unmount %s: %v", target, err)
				return
			}
		}
	})
}

// stopwatch logs the time of each step of an engine test.
type stopwatch struct {
	t     *testing.T
	start time.Time
	last  time.Time
	laps  []string
}

func newStopwatch(t *testing.T) *stopwatch {
	now := time.Now()
	w := &stopwatch{t: t, start: now, last: now}
	t.Cleanup(func() {
		w.lap("teardown")
		t.Logf("timings: %s; total %v", strings.Join(w.laps, ", "), time.Since(w.start).Round(10*time.Millisecond))
	})
	return w
}

func (w *stopwatch) lap(what string) {
	now := time.Now()
	w.laps = append(w.laps, fmt.Sprintf("%s %v", what, now.Sub(w.last).Round(10*time.Millisecond)))
	w.last = now
}
