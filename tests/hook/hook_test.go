// Package hook_test drives bin/mount-hook for real: injected by bin/runc-shared
// in front of Debian's runc, added by hand to a plain runc bundle (as an engine
// with hooks.d would), and loaded by Podman 4.3 from the repository's hooks.d.
package hook_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/runc-shared/runc-shared/internal/registry"
	"github.com/runc-shared/runc-shared/internal/testutil"
	"github.com/runc-shared/runc-shared/pkg/spec"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// env is one test's configuration: a state dir and a config file with one
// rule named "fuse" that propagates host and matches the mounter annotation.
type env struct {
	stateDir, config, host string
}

func newEnv(t *testing.T, host, extra string) *env {
	t.Helper()
	dir := testutil.TempDir(t)
	e := &env{stateDir: filepath.Join(dir, "state"), config: filepath.Join(dir, "config.toml"), host: host}
	body := fmt.Sprintf(`state-dir = %q
runtime = %q
[[mounter]]
name = "fuse"
fstypes = ["fuse.bindfs"]
propagate = [%q]
%s
[mounter.match]
annotations = { %q = "fuse" }
`, e.stateDir, runcPath(t), host, extra, spec.AnnotationMounter)
	if err := os.WriteFile(e.config, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return e
}

func runcPath(t *testing.T) string {
	t.Helper()
	return testutil.LookPath(t, "runc")
}

func (e *env) registry() *registry.Registry { return registry.New(e.stateDir) }

// wrapper returns a runtime driver for bin/runc-shared with this config.
func (e *env) wrapper(t *testing.T) *testutil.Runc {
	t.Helper()
	return testutil.Wrapper(t, e.config)
}

func (e *env) hookLog(t *testing.T) string {
	t.Helper()
	b, _ := os.ReadFile(filepath.Join(e.stateDir, "mount-hook.log"))
	return string(b)
}

// mounterBundle is a privileged mounter binding the host dir at /host.
func mounterBundle(t *testing.T, rootfs, host string, opts ...testutil.BundleOpt) *testutil.Bundle {
	t.Helper()
	return testutil.NewBundle(t, rootfs, append([]testutil.BundleOpt{
		testutil.WithAnnotation(spec.AnnotationMounter, "fuse"),
		testutil.WithAddCaps("CAP_SYS_ADMIN"),
		testutil.WithBind(host, "/host", "rbind"),
	}, opts...)...)
}

// waitStopped polls the runtime until the container is stopped.
func waitStopped(t *testing.T, r *testutil.Runc, id string) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, "container "+id+" to stop after kill", func() (bool, string) {
		st, err := r.State(t, id)
		if err != nil {
			t.Fatal(err)
		}
		return st.Status == "stopped", "it is " + st.Status
	})
}

func TestRegisteredWhileRunning(t *testing.T) {
	testutil.CheckLeaks(t)
	testutil.ForEachHost(t, func(t *testing.T, _ testutil.Host) {
		e := newEnv(t, testutil.SharedDir(t), "")
		r := e.wrapper(t)
		b := mounterBundle(t, testutil.BusyboxRootfs(t), e.host)
		pid := r.Up(t, b, "m1")

		// The wrapper injected the hook with what the state JSON lacks.
		s := b.ReadSpec(t)
		for stage, hooks := range map[string]int{"createRuntime": len(s.Hooks.CreateRuntime), "poststop": len(s.Hooks.Poststop)} {
			if hooks != 1 {
				t.Errorf("%d %s hooks, want 1: %+v", hooks, stage, s.Hooks)
			}
		}
		h := s.Hooks.CreateRuntime[0]
		wantArgs := []string{"mount-hook", "--config", e.config, "--runtime", runcPath(t), "--root", r.Root, "--state-dir", e.stateDir, "createRuntime"}
		if h.Path != testutil.Bin(t, "mount-hook") || !slices.Equal(h.Args, wantArgs) || !slices.Equal(h.Env, spec.HookEnv) {
			t.Errorf("createRuntime hook = %+v, want %s %q", h, testutil.Bin(t, "mount-hook"), wantArgs)
		}

		rec, err := e.registry().Read("m1")
		if err != nil {
			t.Fatalf("no record while the mounter runs: %v\nhook log:\n%s", err, e.hookLog(t))
		}
		if rec.PID != pid || rec.Name != "fuse" || rec.Bundle != b.Dir || rec.Runtime != runcPath(t) ||
			rec.RuntimeRoot != r.Root || !slices.Equal(rec.Propagate, []string{e.host}) || rec.PIDStart == 0 ||
			time.Since(rec.Created) > time.Minute {
			t.Errorf("record = %+v; want pid %d, bundle %s, runtime %s, root %s", rec, pid, b.Dir, runcPath(t), r.Root)
		}
		if v := (&registry.Checker{Runtime: "runc"}).Check(rec); v.Liveness != registry.Running {
			t.Errorf("Check(running mounter) = %s: %s", v.Liveness, v.Reason)
		}

		if err := r.Kill(t, "m1", "KILL"); err != nil {
			t.Fatal(err)
		}
		waitStopped(t, r, "m1")
		if v := (&registry.Checker{Runtime: "runc"}).Check(rec); v.Liveness != registry.Stale {
			t.Errorf("Check(killed mounter) = %v (%s), want stale", v.Liveness, v.Reason)
		}
		if err := r.Delete(t, "m1", false); err != nil {
			t.Fatal(err)
		}
		if _, err := e.registry().Read("m1"); !errors.Is(err, registry.ErrNotFound) {
			t.Errorf("record after delete: %v, want none", err)
		}
		log := e.hookLog(t)
		for _, want := range []string{"stage=createRuntime", "registered mounter of rule", "stage=poststop", "unregistered mounter"} {
			if !strings.Contains(log, want) {
				t.Errorf("hook log lacks %q:\n%s", want, log)
			}
		}
	})
}

// fuseMountsUnder returns the FUSE mount points below dir on the host.
func fuseMountsUnder(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	for _, m := range testutil.MountsUnder(t, dir) {
		if strings.HasPrefix(m.FSType, "fuse") {
			out = append(out, m.Mountpoint)
		}
	}
	return out
}

// bindfsInside starts bindfs in container id, serving /etc at /host/NAME.
func bindfsInside(t *testing.T, r *testutil.Runc, id, name string) {
	t.Helper()
	cmd := "mkdir -p /host/" + name + " && bindfs /etc /host/" + name
	if out, errOut, err := r.Exec(t, id, "sh", "-c", cmd); err != nil {
		t.Fatalf("bindfs in %s: %v: %s %s", id, err, out, errOut)
	}
}

func TestDeadFUSEDetachedLiveKept(t *testing.T) {
	testutil.CheckLeaks(t)
	testutil.ForEachHost(t, func(t *testing.T, _ testutil.Host) {
		host := testutil.SharedDir(t)
		e := newEnv(t, host, "")
		r := e.wrapper(t)
		rootfs := testutil.HostUsrRootfs(t)
		a := mounterBundle(t, rootfs, host, testutil.WithFuse())
		b := mounterBundle(t, rootfs, host, testutil.WithFuse())
		r.Up(t, a, "fuse-a")
		r.Up(t, b, "fuse-b")
		bindfsInside(t, r, "fuse-a", "a")
		bindfsInside(t, r, "fuse-b", "b")
		live := []string{filepath.Join(host, "a"), filepath.Join(host, "b")}
		if got := fuseMountsUnder(t, host); !slices.Equal(got, live) {
			t.Fatalf("FUSE mounts on the host = %v, want %v (the mounters' bindfs mounts)", got, live)
		}

		// Dead FUSE mounts outside the rule's path: a sibling whose name only
		// shares a prefix, and a plain temp dir. The hook must leave them.
		outside := []string{host + "-evil", filepath.Join(testutil.TempDir(t), "elsewhere")}
		for _, d := range outside {
			testutil.DeadFuseMount(t, d)
		}

		if err := r.Kill(t, "fuse-a", "KILL"); err != nil {
			t.Fatal(err)
		}
		waitStopped(t, r, "fuse-a")
		var st unix.Statfs_t
		if err := unix.Statfs(live[0], &st); !errors.Is(err, unix.ENOTCONN) {
			t.Fatalf("statfs %s after killing its mounter: %v, want ENOTCONN", live[0], err)
		}
		if err := r.Delete(t, "fuse-a", false); err != nil {
			t.Fatal(err)
		}

		if got := fuseMountsUnder(t, host); !slices.Equal(got, live[1:]) {
			t.Errorf("FUSE mounts under %s after deleting fuse-a = %v, want only the live %s\nhook log:\n%s", host, got, live[1], e.hookLog(t))
		}
		if _, err := os.ReadDir(live[1]); err != nil {
			t.Errorf("the other mounter's FUSE mount is broken: %v", err)
		}
		for _, d := range outside {
			if len(fuseMountsUnder(t, d)) != 1 {
				t.Errorf("the hook touched the dead FUSE mount %s outside the rule's paths", d)
			}
		}
		t.Logf("hook log:\n%s", e.hookLog(t))
		if !strings.Contains(e.hookLog(t), "detached dead FUSE mount "+live[0]) {
			t.Errorf("hook log does not name the detached mount:\n%s", e.hookLog(t))
		}
		if _, err := e.registry().Read("fuse-b"); err != nil {
			t.Errorf("the other mounter's record: %v", err)
		}
		if _, err := e.registry().Read("fuse-a"); !errors.Is(err, registry.ErrNotFound) {
			t.Errorf("record of the deleted mounter: %v", err)
		}
	})
}

// TestEnsureSharedFalse: with ensure-shared = false the wrapper changes
// nothing on the host. A path that is not shared is refused before runc runs;
// a plain directory on a shared / (a systemd host) is shared already, so the
// mounter starts, is registered, and its mounts reach the host although the
// path is no mount point of its own.
func TestEnsureSharedFalse(t *testing.T) {
	testutil.CheckLeaks(t)
	testutil.ForEachHost(t, func(t *testing.T, h testutil.Host) {
		for _, tc := range []struct {
			name    string
			dir     func(testing.TB) string
			refused bool
		}{
			{"private mount", testutil.UnsharedDir, true},
			{"plain directory", testutil.PrivateDir, !h.SharedRoot},
		} {
			t.Run(tc.name, func(t *testing.T) {
				host := tc.dir(t)
				e := newEnv(t, host, "ensure-shared = false")
				r := e.wrapper(t)
				b := mounterBundle(t, testutil.BusyboxRootfs(t), host)
				before := testutil.MountsUnder(t, host)
				err := r.Create(t, b, "noshare")
				if !tc.refused {
					if err != nil {
						t.Fatalf("create: %v\nhook log:\n%s", err, e.hookLog(t))
					}
					if _, err := e.registry().Read("noshare"); err != nil {
						t.Fatalf("not registered: %v\nhook log:\n%s", err, e.hookLog(t))
					}
					if testutil.MountAt(t, host) != nil {
						t.Errorf("the wrapper made %s a mount point although ensure-shared = false", host)
					}
					if out, errOut, err := r.Exec(t, "noshare", "sh", "-c", "mkdir -p /host/sub && mount -t tmpfs rs-noshare /host/sub"); err != nil {
						t.Fatalf("mount inside: %v: %s %s", err, out, errOut)
					}
					if m := testutil.MountAt(t, filepath.Join(host, "sub")); m == nil || m.FSType != "tmpfs" {
						t.Fatalf("the mount made inside did not reach the host at %s/sub: %v", host, testutil.MountsUnder(t, host))
					}
					return
				}
				if err == nil || !strings.Contains(err.Error(), "host path "+host+" is not a shared mount") {
					t.Fatalf("create = %v, want an error naming %s", err, host)
				}
				t.Logf("refused: %v", err)
				if _, err := r.State(t, "noshare"); err == nil {
					t.Errorf("the container exists after a refused create")
				}
				if recs, _ := e.registry().List(); len(recs) != 0 {
					t.Errorf("registered: %+v", recs)
				}
				if after := testutil.MountsUnder(t, host); len(after) != len(before) {
					t.Errorf("the refused create changed the mounts at %s: %v", host, after)
				}
			})
		}
	})
}

// withHooks adds mount-hook by hand, as an engine does from hooks.d: no
// --runtime or --root, so the record gets the configured runtime.
func withHooks(t *testing.T, cfg string) testutil.BundleOpt {
	bin := testutil.Bin(t, "mount-hook")
	return func(s *specs.Spec) {
		testutil.WithHook("createRuntime", bin, "mount-hook", "--config", cfg, "createRuntime")(s)
		testutil.WithHook("poststop", bin, "mount-hook", "--config", cfg, "poststop")(s)
	}
}

// TestHookWithoutWrapper runs the hook under plain runc: it is the only
// check there, and runc itself reports success for binds that propagate
// nothing. A plain directory is no shared mount where / is private; where /
// is shared (a systemd host) it is, but runc makes the rootfs's parent mount
// private in the container, which takes the bind of a path on that same
// mount out of the host's peer group.
func TestHookWithoutWrapper(t *testing.T) {
	testutil.CheckLeaks(t)
	testutil.ForEachHost(t, func(t *testing.T, h testutil.Host) {
		rootfs := testutil.BusyboxRootfs(t)
		plainErr := "host path HOST is not a shared mount (its mount"
		if h.SharedRoot {
			plainErr = "the container's mount of host path HOST at /host is in another peer group"
		}
		for _, tc := range []struct {
			name    string
			dir     func(testing.TB) string
			bind    []string
			rootfs  string // linux.rootfsPropagation; "" leaves runc's default (rslave)
			wantErr string
		}{
			{"shared and rshared", testutil.SharedDir, []string{"rbind", "rshared"}, "shared", ""},
			{"runc default root propagation", testutil.SharedDir, []string{"rbind", "rshared"}, "",
				"the container's mount of host path HOST at /host is a slave in a peer group of its own"},
			{"rprivate bind", testutil.SharedDir, []string{"rbind", "rprivate"}, "rshared", "the container's mount of host path HOST at /host is"},
			{"host path not shared", testutil.UnsharedDir, []string{"rbind", "rshared"}, "rshared",
				"host path HOST is not a shared mount (its mount"},
			{"plain directory", testutil.PrivateDir, []string{"rbind", "rshared"}, "rshared", plainErr},
		} {
			t.Run(tc.name, func(t *testing.T) {
				host := tc.dir(t)
				e := newEnv(t, host, "")
				r := testutil.NewRunc(t, "")
				opts := []testutil.BundleOpt{
					testutil.WithAnnotation(spec.AnnotationMounter, "fuse"),
					testutil.WithAddCaps("CAP_SYS_ADMIN"),
					testutil.WithBind(host, "/host", tc.bind...),
					withHooks(t, e.config),
				}
				if tc.rootfs != "" {
					opts = append(opts, testutil.WithRootfsPropagation(tc.rootfs))
				}
				b := testutil.NewBundle(t, rootfs, opts...)
				err := r.Create(t, b, "plain")
				if tc.wantErr == "" {
					if err != nil {
						t.Fatalf("create: %v\nhook log:\n%s", err, e.hookLog(t))
					}
					rec, err := e.registry().Read("plain")
					if err != nil {
						t.Fatal(err)
					}
					if rec.Runtime != runcPath(t) || rec.RuntimeRoot != "" {
						t.Errorf("record runtime = %q root %q, want the configured %s and the default root", rec.Runtime, rec.RuntimeRoot, runcPath(t))
					}
					return
				}
				want := strings.ReplaceAll(tc.wantErr, "HOST", host)
				if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "runc-shared") {
					t.Fatalf("create = %v\nwant an error containing %q and the fix", err, want)
				}
				t.Logf("refused: %v", err)
				if _, err := r.State(t, "plain"); err == nil {
					t.Errorf("runc left the refused container behind")
				}
				if recs, _ := e.registry().List(); len(recs) != 0 {
					t.Errorf("registered: %+v", recs)
				}
			})
		}
	})
}

// TestSymlinkedAllowlistPath: on some hosts the allowlisted path is a
// symlink (/var/lib/kubelet -> /data/kubelet). The rule and the engine name
// the symlink; the wrapper saves the bind source resolved, and mount-hook
// must still find the rule's bind there, verify it and register the
// mounter, so that a mount made inside lands on the host.
func TestSymlinkedAllowlistPath(t *testing.T) {
	testutil.CheckLeaks(t)
	testutil.ForEachHost(t, func(t *testing.T, _ testutil.Host) {
		dir := testutil.SharedDir(t)
		link := filepath.Join(testutil.TempDir(t), "kubelet")
		if err := os.Symlink(dir, link); err != nil {
			t.Fatal(err)
		}
		e := newEnv(t, link, "")
		r := e.wrapper(t)
		b := mounterBundle(t, testutil.BusyboxRootfs(t), link)
		r.Up(t, b, "m-link")
		// runc binds a staging path that pins the source; the annotation names
		// the source, resolved.
		saved := b.ReadSpec(t)
		staged := spec.StagedSources(saved)
		if !slices.ContainsFunc(saved.Mounts, func(m specs.Mount) bool { return staged[m.Source] == dir && m.Destination == "/host" }) {
			t.Fatalf("the wrapper did not save the bind of %s resolved to %s: %+v (staged %v)", link, dir, saved.Mounts, staged)
		}
		if _, err := e.registry().Read("m-link"); err != nil {
			t.Fatalf("mounter of a symlinked allowlist path not registered: %v\nhook log:\n%s", err, e.hookLog(t))
		}
		target := filepath.Join(dir, "t")
		t.Cleanup(func() {
			if len(testutil.MountsUnder(t, target)) > 0 {
				if err := unix.Unmount(target, unix.MNT_DETACH); err != nil {
					t.Errorf("cleanup: unmount %s: %v", target, err)
				}
			}
		})
		if out, errOut, err := r.Exec(t, "m-link", "sh", "-c", "mkdir -p /host/t && mount -t tmpfs rs-link /host/t"); err != nil {
			t.Fatalf("mount inside: %v: %s %s", err, out, errOut)
		}
		if ms := testutil.MountsUnder(t, target); len(ms) == 0 || ms[0].FSType != "tmpfs" {
			t.Fatalf("the mount made inside did not reach the host at %s: %+v", target, ms)
		}
	})
}
