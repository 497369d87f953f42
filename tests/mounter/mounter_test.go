package mounter_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/runc-shared/runc-shared/internal/registry"
	"github.com/runc-shared/runc-shared/internal/testutil"
)

// TestRouted runs the routed-mount scenarios against one glusterd and one
// mounter. The mounter binds SHARED/k at the same path (as a kubelet dir is)
// and SHARED/d at /data (another path inside, so targets there need
// translating).
func TestRouted(t *testing.T) {
	testutil.CheckLeaks(t)
	testutil.ForEachHost(t, func(t *testing.T, h testutil.Host) {
		g := testutil.Glusterd(t)
		s := newHostSetup(t, h, "")
		kube := mkdir(t, s.Shared, "k")
		data := mkdir(t, s.Shared, "d")
		box := s.startMounter(t, "mounter-a", map[string]string{kube: kube, data: "/data"})
		src := g.Server + ":/" + g.Volume

		t.Run("VisibleOnHostAndWritesLandOnBrick", func(t *testing.T) {
			target := mkdir(t, kube, "vol1")
			testutil.UnmountLater(t, target)
			r := s.mounter(t, "mount", "-t", "glusterfs", src, target)
			if r.Code != 0 {
				t.Fatalf("routed mount failed: %v", r)
			}
			m := testutil.MountAt(t, target)
			if m == nil || m.FSType != "fuse.glusterfs" {
				t.Fatalf("host mount at %s = %+v, want fuse.glusterfs", target, m)
			}
			if err := os.WriteFile(filepath.Join(target, "hello.txt"), []byte("from the host\n"), 0o644); err != nil {
				t.Fatalf("write through the routed mount: %v", err)
			}
			got, err := os.ReadFile(filepath.Join(g.Brick, "hello.txt"))
			if err != nil || string(got) != "from the host\n" {
				t.Fatalf("brick has %q, %v; want the host's write", got, err)
			}
			t.Logf("routed mount took %v", r.Took)
		})

		t.Run("HelperFormReadOnly", func(t *testing.T) {
			// mount(8) runs /sbin/mount.glusterfs SRC TGT -o OPTS; a link named
			// mount.glusterfs to mounter is that helper.
			link := filepath.Join(testutil.TempDir(t), "mount.glusterfs")
			if err := os.Symlink(s.Mounter, link); err != nil {
				t.Fatal(err)
			}
			target := mkdir(t, kube, "ro")
			testutil.UnmountLater(t, target)
			r := run(t, link, []string{"RUNC_SHARED_CONFIG=" + s.Config}, src, target, "-o", "ro", "-n")
			if r.Code != 0 {
				t.Fatalf("helper form failed: %v", r)
			}
			m := testutil.MountAt(t, target)
			if m == nil || m.FSType != "fuse.glusterfs" || !hasOpt(m.Options, "ro") {
				t.Fatalf("host mount at %s = %+v, want fuse.glusterfs with ro", target, m)
			}
			err := os.WriteFile(filepath.Join(target, "nope"), []byte("x"), 0o644)
			if !errors.Is(err, unix.EROFS) {
				t.Fatalf("write to the ro mount: %v, want EROFS", err)
			}
		})

		t.Run("Umount", func(t *testing.T) {
			target := mkdir(t, kube, "um")
			testutil.UnmountLater(t, target)
			if r := s.mounter(t, "mount", "-t", "glusterfs", src, target); r.Code != 0 {
				t.Fatalf("mount: %v", r)
			}
			if r := s.mounter(t, "umount", target); r.Code != 0 {
				t.Fatalf("umount: %v", r)
			}
			if m := testutil.MountAt(t, target); m != nil {
				t.Fatalf("still mounted on the host after mounter umount: %+v", m)
			}
			if in := mountsInside(t, box.PID, target); len(in) != 0 {
				t.Fatalf("still mounted inside the mounter: %v", in)
			}
			r := s.mounter(t, "umount", target)
			if r.Code != 32 || !contains(r.Stderr, "not mounted") {
				t.Fatalf("umount of an unmounted target: %v; want exit 32, not mounted", r)
			}
		})

		t.Run("TranslatedTarget", func(t *testing.T) {
			// SHARED/d is /data inside: SHARED/d/x must be mounted at /data/x.
			target := mkdir(t, data, "x")
			testutil.UnmountLater(t, target)
			r := s.mounter(t, "mount", "-t", "glusterfs", src, target)
			if r.Code != 0 {
				t.Fatalf("mount: %v", r)
			}
			if m := testutil.MountAt(t, target); m == nil || m.FSType != "fuse.glusterfs" {
				t.Fatalf("host mount at %s = %+v, want fuse.glusterfs", target, m)
			}
			in := mountsInside(t, box.PID, "/data")
			if !containsLine(in, "/data/x fuse.glusterfs") {
				t.Fatalf("mounts below /data inside the mounter: %v, want /data/x", in)
			}
		})

		t.Run("UnroutedTypeTakesPlainMount", func(t *testing.T) {
			// A target outside every shared path: a routed mount would fail.
			target := mkdir(t, testutil.TempDir(t), "tmp")
			testutil.UnmountLater(t, target)
			r := s.mounter(t, "mount", "-t", "tmpfs", "-o", "size=1m", "rstest-tmpfs", target)
			if r.Code != 0 {
				t.Fatalf("plain mount: %v", r)
			}
			if m := testutil.MountAt(t, target); m == nil || m.FSType != "tmpfs" || m.Source != "rstest-tmpfs" {
				t.Fatalf("host mount at %s = %+v, want tmpfs", target, m)
			}
			// mount(8)'s own exit code passes through.
			r = s.mounter(t, "mount", "-t", "tmpfs", "rstest-tmpfs", filepath.Join(target, "missing"))
			if r.Code != 32 {
				t.Fatalf("plain mount on a missing dir: %v, want mount(8)'s 32", r)
			}
		})

		t.Run("NotBelowASharedPath", func(t *testing.T) {
			target := mkdir(t, testutil.TempDir(t), "elsewhere")
			r := s.mounter(t, "mount", "-t", "glusterfs", src, target)
			if r.Code != 32 || !contains(r.Stderr, "not below a path that mounter mounter-a") || !contains(r.Stderr, kube) {
				t.Fatalf("mount outside the shared paths: %v; want exit 32 naming the shared paths", r)
			}
			if m := testutil.MountAt(t, target); m != nil {
				t.Fatalf("something got mounted at %s: %+v", target, m)
			}
		})

		t.Run("StaleRecordIgnored", func(t *testing.T) {
			// A newer record of the same rule whose process is gone: routing
			// must skip it, remove it, and use the live mounter.
			dead := deadPID(t)
			stale := &registry.Record{ID: "stale-mounter", Name: "glusterfs", PID: dead, Bundle: box.Bundle.Dir,
				Runtime: "/usr/sbin/runc", RuntimeRoot: s.Runc.Root, FSTypes: []string{"glusterfs"},
				Propagate: []string{s.Shared}, Created: time.Now().Add(time.Minute)}
			writeRecord(t, s.StateDir, stale)
			target := mkdir(t, kube, "stale")
			testutil.UnmountLater(t, target)
			r := s.mounter(t, "mount", "-t", "glusterfs", src, target)
			if r.Code != 0 {
				t.Fatalf("mount with a stale record present: %v", r)
			}
			if !contains(r.Stderr, "stale-mounter") {
				t.Errorf("stderr does not mention the stale record: %q", r.Stderr)
			}
			if recordExists(t, s.StateDir, "stale-mounter") {
				t.Fatal("the stale record is still there")
			}
			if m := testutil.MountAt(t, target); m == nil || m.FSType != "fuse.glusterfs" {
				t.Fatalf("host mount at %s = %+v, want fuse.glusterfs", target, m)
			}
		})

		t.Run("Concurrent20", func(t *testing.T) {
			const n = 20
			targets := make([]string, n)
			for i := range targets {
				targets[i] = mkdir(t, kube, fmt.Sprintf("c%02d", i))
				testutil.UnmountLater(t, targets[i])
			}
			results := make([]result, n)
			var wg sync.WaitGroup
			start := time.Now()
			for i := range targets {
				wg.Add(1)
				go func() {
					defer wg.Done()
					results[i] = s.mounter(t, "mount", "-t", "glusterfs", src, targets[i])
				}()
			}
			wg.Wait()
			t.Logf("%d concurrent routed mounts took %v", n, time.Since(start).Round(time.Millisecond))
			for i, r := range results {
				if r.Code != 0 {
					t.Errorf("mount %d: %v", i, r)
					continue
				}
				if m := testutil.MountAt(t, targets[i]); m == nil || m.FSType != "fuse.glusterfs" {
					t.Errorf("host mount at %s = %+v, want fuse.glusterfs", targets[i], m)
				}
			}
		})

		t.Run("Status", func(t *testing.T) {
			target := mkdir(t, kube, "st")
			testutil.UnmountLater(t, target)
			if r := s.mounter(t, "mount", "-t", "glusterfs", src, target); r.Code != 0 {
				t.Fatalf("mount: %v", r)
			}
			r := s.mounter(t, "status")
			if r.Code != 0 {
				t.Fatalf("status: %v", r)
			}
			t.Logf("mounter status:\n%s", r.Stdout)
			for _, want := range []string{"mounter-a", "glusterfs", fmt.Sprint(box.PID), s.Runc.Root, target + " "} {
				if !contains(r.Stdout, want) {
					t.Errorf("status lacks %q:\n%s", want, r.Stdout)
				}
			}
		})

		t.Run("PausedMounterShownPaused", func(t *testing.T) {
			// status and routed mounts read the freezer cgroup, not `runc
			// state`: a paused mounter is listed as paused and skipped.
			if _, stderr, err := s.Runc.Run(t, "pause", box.ID); err != nil {
				t.Fatalf("pause: %v: %s", err, stderr)
			}
			resumed := false
			resume := func() {
				if !resumed {
					resumed = true
					if _, stderr, err := s.Runc.Run(t, "resume", box.ID); err != nil {
						t.Errorf("resume: %v: %s", err, stderr)
					}
				}
			}
			t.Cleanup(resume)
			r := s.mounter(t, "status")
			if r.Code != 0 || !regexp.MustCompile(`(?m)^mounter-a +glusterfs +paused +`+fmt.Sprint(box.PID)+` `).MatchString(r.Stdout) ||
				!contains(r.Stdout, `rule "glusterfs" ([glusterfs]): its mounter mounter-a is paused`) || contains(r.Stdout, "no live mounter") {
				t.Fatalf("status of a paused mounter: %v; want mounter-a listed as paused", r)
			}
			target := mkdir(t, kube, "paused")
			testutil.UnmountLater(t, target)
			r = s.mounter(t, "mount", "-t", "glusterfs", src, target)
			if r.Code != 32 || !contains(r.Stderr, "no live mounter") || !contains(r.Stderr, "paused") {
				t.Fatalf("mount into a paused mounter: %v; want exit 32 saying it is paused", r)
			}
			if !recordExists(t, s.StateDir, box.ID) {
				t.Fatal("the paused mounter's record was removed")
			}
			resume()
			if r := s.mounter(t, "status"); r.Code != 0 || !regexp.MustCompile(`(?m)^mounter-a +glusterfs +running `).MatchString(r.Stdout) || contains(r.Stdout, "paused") {
				t.Fatalf("status after resume: %v; want mounter-a running", r)
			}
		})

		t.Run("RecordDoesNotChooseRuntime", func(t *testing.T) {
			// A record rewritten to name another program: routing still runs
			// the configured runc, and never that program.
			reg := registry.New(s.StateDir)
			orig, err := reg.Read(box.ID)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { writeRecord(t, s.StateDir, orig) })
			ran := filepath.Join(testutil.TempDir(t), "ran")
			evil := filepath.Join(testutil.TempDir(t), "evil-runc")
			if err := os.WriteFile(evil, []byte("#!/bin/sh\necho \"$@\" > "+ran+"\n"), 0o755); err != nil {
				t.Fatal(err)
			}
			forged := *orig
			forged.Runtime = evil
			writeRecord(t, s.StateDir, &forged)
			target := mkdir(t, kube, "forged-runtime")
			testutil.UnmountLater(t, target)
			if r := s.mounter(t, "mount", "-t", "glusterfs", src, target); r.Code != 0 {
				t.Fatalf("mount with a record naming another runtime: %v", r)
			}
			if m := testutil.MountAt(t, target); m == nil || m.FSType != "fuse.glusterfs" {
				t.Fatalf("host mount at %s = %+v, want fuse.glusterfs", target, m)
			}
			if b, err := os.ReadFile(ran); err == nil {
				t.Fatalf("the runtime named in the record ran as root: %q", b)
			}
		})

		t.Run("DeadMountReportedNotRouted", func(t *testing.T) {
			// The FUSE daemon of a routed mount dies (as when its mounter
			// stops): status and doctor call the mount dead, with the fix, and
			// never list it as a routed mount.
			target := mkdir(t, kube, "dead")
			testutil.UnmountLater(t, target)
			if r := s.mounter(t, "mount", "-t", "glusterfs", src, target); r.Code != 0 {
				t.Fatalf("mount: %v", r)
			}
			killFUSEDaemon(t, target)
			r := s.mounter(t, "status")
			t.Logf("mounter status:\n%s", r.Stdout)
			if r.Code != 0 {
				t.Fatalf("status: %v", r)
			}
			routed, dead, _ := strings.Cut(r.Stdout, "DEAD MOUNT")
			if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(target) + ` +fuse\.glusterfs +\S+ +dead +umount -l ` + regexp.QuoteMeta(target) + `$`).MatchString(dead) {
				t.Errorf("status does not list %s as dead with the fix:\n%s", target, r.Stdout)
			}
			if contains(routed, target+" ") {
				t.Errorf("status lists the dead mount %s as a routed mount:\n%s", target, r.Stdout)
			}
			r = s.mounter(t, "doctor")
			t.Logf("mounter doctor:\n%s", r.Stdout)
			if r.Code == 0 || !regexp.MustCompile(`(?m)^FAIL mounts\[glusterfs\]: `+regexp.QuoteMeta(target)+` \(fuse\.glusterfs .*\) is dead: Transport endpoint is not connected \(fix: umount -l `+regexp.QuoteMeta(target)).MatchString(r.Stdout) {
				t.Fatalf("doctor with a dead mount: %v; want FAIL mounts[glusterfs] naming it with the fix", r)
			}
			if err := unix.Unmount(target, unix.MNT_DETACH); err != nil {
				t.Fatal(err)
			}
			if r := s.mounter(t, "status"); r.Code != 0 || contains(r.Stdout, "DEAD MOUNT") {
				t.Fatalf("status after umount -l: %v; want no dead mount", r)
			}
		})

		t.Run("DoctorAllOK", func(t *testing.T) {
			r := s.mounter(t, "doctor")
			t.Logf("mounter doctor:\n%s", r.Stdout)
			if r.Code != 0 || contains(r.Stdout, "FAIL") {
				t.Fatalf("doctor with everything in place: %v", r)
			}
			for _, want := range []string{"ok config:", "ok runtime:", "ok mount-hook:", "ok paths[glusterfs]:", "ok mounter[glusterfs]:", "ok propagation[glusterfs]:"} {
				if !contains(r.Stdout, want) {
					t.Errorf("doctor lacks %q:\n%s", want, r.Stdout)
				}
			}
		})

		t.Run("DoctorReportsMissingPieces", func(t *testing.T) {
			// The same setup with hook-path pointing nowhere and a second rule
			// whose mounter never started.
			cfg := filepath.Join(testutil.TempDir(t), "config.toml")
			testutil.WriteFile(t, cfg, fmt.Sprintf(`state-dir = %q
	hook-path = "/nonexistent/mount-hook"

	[[mounter]]
	name = "glusterfs"
	fstypes = ["glusterfs"]
	propagate = [%q]
	[mounter.match]
	annotations = { "runc-shared.io/mounter" = "glusterfs" }

	[[mounter]]
	name = "cephfs"
	fstypes = ["ceph"]
	mode = "preload"
	propagate = [%q]
	[mounter.match]
	annotations = { "runc-shared.io/mounter" = "cephfs" }
	`, s.StateDir, s.Shared, s.Shared))
			r := run(t, s.Mounter, nil, "--config", cfg, "doctor")
			t.Logf("mounter doctor:\n%s", r.Stdout)
			if r.Code == 0 {
				t.Fatalf("doctor passed with missing pieces: %v", r)
			}
			for _, want := range []string{
				"FAIL mount-hook: /nonexistent/mount-hook is missing",
				"FAIL mounter[cephfs]: no live mounter",
				"ok mounter[glusterfs]:",
				"ok preload[cephfs]:",
			} {
				if !contains(r.Stdout, want) {
					t.Errorf("doctor lacks %q:\n%s", want, r.Stdout)
				}
			}
			for _, line := range strings.Split(strings.TrimSpace(r.Stdout), "\n") {
				if strings.HasPrefix(line, "FAIL ") && !contains(line, "(fix: ") {
					t.Errorf("FAIL line without a fix: %q", line)
				}
			}
		})

		t.Run("PropagationNotLive", func(t *testing.T) { testPropagationNotLive(t, g) })
	})
}

// TestNoLiveMounter: a routed type with no registered mounter fails with
// exit 32, says why, and mounts nothing.
func TestNoLiveMounter(t *testing.T) {
	testutil.CheckLeaks(t)
	testutil.ForEachHost(t, func(t *testing.T, h testutil.Host) {
		s := newHostSetup(t, h, "")
		target := mkdir(t, s.Shared, "vol")
		testutil.UnmountLater(t, target)
		r := s.mounter(t, "mount", "-t", "glusterfs", "127.0.0.2:/v0", target)
		if r.Code != 32 {
			t.Fatalf("mount without a mounter: %v; want exit 32", r)
		}
		for _, want := range []string{"no live mounter for type glusterfs", `rule "glusterfs"`, "mounter doctor"} {
			if !contains(r.Stderr, want) {
				t.Errorf("stderr lacks %q: %s", want, r.Stderr)
			}
		}
		if ms := testutil.MountsUnder(t, target); len(ms) != 0 {
			t.Fatalf("something got mounted: %+v", ms[0])
		}
	})
}

// TestStaleMounterKilled: a mounter killed with SIGKILL (its poststop never
// runs) leaves its record; the next routed mount ignores it, removes it, and
// fails with exit 32 since no mounter is left.
func TestStaleMounterKilled(t *testing.T) {
	testutil.CheckLeaks(t)
	testutil.ForEachHost(t, func(t *testing.T, h testutil.Host) {
		s := newHostSetup(t, h, "")
		box := s.startMounter(t, "mounter-killed", map[string]string{s.Shared: s.Shared})
		if err := unix.Kill(box.PID, unix.SIGKILL); err != nil {
			t.Fatalf("kill the mounter's init %d: %v", box.PID, err)
		}
		waitGone(t, box.PID)
		if !recordExists(t, s.StateDir, box.ID) {
			t.Fatal("the record went away without poststop: the test proves nothing")
		}
		target := mkdir(t, s.Shared, "vol")
		testutil.UnmountLater(t, target)
		r := s.mounter(t, "mount", "-t", "glusterfs", "127.0.0.2:/v0", target)
		if r.Code != 32 || !contains(r.Stderr, "no live mounter") || !contains(r.Stderr, box.ID) {
			t.Fatalf("mount after the mounter died: %v; want exit 32, no live mounter, the stale record named", r)
		}
		if recordExists(t, s.StateDir, box.ID) {
			t.Fatal("the stale record was not removed")
		}
		if ms := testutil.MountsUnder(t, target); len(ms) != 0 {
			t.Fatalf("something got mounted: %+v", ms[0])
		}
	})
}

// TestUsage: incorrect invocations exit 1 without touching anything.
func TestUsage(t *testing.T) {
	s := newSetup(t, "")
	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"mount", "-t", "glusterfs", "only-one-arg"},
		{"mount", "-t", "glusterfs", "--bind", "a", "b"},
		{"umount"},
		{"--timeout", "soon", "mount", "a", "b"},
	} {
		r := s.mounter(t, args...)
		if r.Code != 1 || r.Stderr == "" {
			t.Errorf("mounter %q: %v; want exit 1 and a message", args, r)
		}
	}
}

func hasOpt(opts, want string) bool {
	for _, o := range strings.Split(opts, ",") {
		if o == want {
			return true
		}
	}
	return false
}

func containsLine(lines []string, want string) bool {
	for _, l := range lines {
		if l == want {
			return true
		}
	}
	return false
}

// deadPID returns the PID of a process that has exited.
func deadPID(t *testing.T) int {
	t.Helper()
	p, err := os.StartProcess("/bin/true", []string{"true"}, &os.ProcAttr{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	return p.Pid
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, fmt.Sprintf("process %d to exit after SIGKILL", pid), func() (bool, string) {
		return !testutil.Alive(pid), "it still runs"
	})
}

// testPropagationNotLive: a mounter whose mounts stay inside it (started by
// plain runc, so its binds are not rshared) but that is registered anyway.
// The mount succeeds inside, never reaches the host: mounter must undo it
// inside, exit 32 and point at doctor, whose propagation check fails.
func testPropagationNotLive(t *testing.T, g *testutil.Gluster) {
	s := newSetup(t, "")
	plain := testutil.NewRunc(t, "")
	b := testutil.NewBundle(t, testutil.HostUsrRootfs(t),
		testutil.WithHostNetwork(), testutil.WithFuse(), testutil.WithAddCaps("SYS_ADMIN"),
		testutil.WithAnnotation("runc-shared.io/mounter", annotationValue),
		testutil.WithArgs("sleep", "100000"), testutil.WithBind(s.Shared, s.Shared))
	pid := plain.Up(t, b, "mounter-private")
	start, err := registry.ProcStart(pid)
	if err != nil {
		t.Fatal(err)
	}
	writeRecord(t, s.StateDir, &registry.Record{ID: "mounter-private", Name: "glusterfs", PID: pid, PIDStart: start,
		Bundle: b.Dir, Runtime: plain.Bin, RuntimeRoot: plain.Root, FSTypes: []string{"glusterfs"},
		Propagate: []string{s.Shared}, Created: time.Now()})

	target := mkdir(t, s.Shared, "vol")
	testutil.UnmountLater(t, target)
	r := s.mounter(t, "--timeout", "1s", "mount", "-t", "glusterfs", g.Server+":/"+g.Volume, target)
	t.Logf("mounter mount: %v", r)
	if r.Code != 32 {
		t.Fatalf("mount through a mounter without propagation: %v; want exit 32", r)
	}
	for _, want := range []string{"did not reach the host", "undid it inside the mounter", "mounter doctor"} {
		if !contains(r.Stderr, want) {
			t.Errorf("stderr lacks %q: %s", want, r.Stderr)
		}
	}
	if m := testutil.MountAt(t, target); m != nil {
		t.Errorf("mounted on the host: %+v", m)
	}
	if in := mountsInside(t, pid, target); len(in) != 0 {
		t.Errorf("still mounted inside the mounter after the undo: %v", in)
	}
	d := s.mounter(t, "doctor")
	t.Logf("mounter doctor:\n%s", d.Stdout)
	if d.Code == 0 || !contains(d.Stdout, "FAIL propagation[glusterfs]: mounts in mounter mounter-private do not reach the host") {
		t.Errorf("doctor does not report the broken propagation: %v", d)
	}
}

// killFUSEDaemon kills the FUSE daemon (glusterfs, started by the test's own
// mounter) that serves target, and waits until the host sees the mount dead.
func killFUSEDaemon(t *testing.T, target string) {
	t.Helper()
	pids := testutil.Pids(func(argv []string) bool {
		return len(argv) >= 2 && filepath.Base(argv[0]) == "glusterfs" && argv[len(argv)-1] == target
	})
	if len(pids) == 0 {
		t.Fatalf("no glusterfs process serves %s", target)
	}
	for _, pid := range pids {
		if err := unix.Kill(pid, unix.SIGKILL); err != nil {
			t.Fatalf("kill glusterfs %d: %v", pid, err)
		}
	}
	testutil.Eventually(t, 10*time.Second, target+" to be dead after its daemon was killed", func() (bool, string) {
		var st unix.Statfs_t
		err := unix.Statfs(target, &st)
		return errors.Is(err, unix.ENOTCONN), fmt.Sprintf("statfs: %v, want ENOTCONN", err)
	})
}
