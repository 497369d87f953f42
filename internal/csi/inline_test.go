package csi

import (
	"cmp"
	"context"
	"os"
	"path/filepath"
	"testing"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"

	"github.com/runc-shared/runc-shared/internal/testutil"
)

// publishedInline publishes volume id as a CSI inline volume (no staging
// path) at one pod's target and returns the target.
func (e *nodeEnv) publishedInline(t *testing.T, id, source string) string {
	t.Helper()
	target := filepath.Join(e.dir(t, "kubelet/pods/uid-inline/volumes/kubernetes.io~csi/"+id), "mount")
	if _, err := e.S.NodePublishVolume(context.Background(), inlineReq(id, target, source)); err != nil {
		t.Fatal(err)
	}
	return target
}

func inlineReq(id, target, source string) *csipb.NodePublishVolumeRequest {
	vctx := glusterCtx()
	vctx["source"] = source
	return &csipb.NodePublishVolumeRequest{VolumeId: id, TargetPath: target, VolumeCapability: rw, VolumeContext: vctx}
}

// releaseWork undoes the bind the server makes of its work directory onto
// itself for a base volume: with the fake mounter, Close does not see it.
func releaseWork(t *testing.T, s *Server) {
	t.Cleanup(func() {
		if ok, _ := mountinfo.Mounted(s.work); ok {
			if err := unix.Unmount(s.work, unix.MNT_DETACH); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	})
}

// TestInlinePublish: an inline volume is mounted straight at its target and
// recorded without a staging path; the same call again changes nothing,
// another volume at that target is refused, and unpublish forgets it.
func TestInlinePublish(t *testing.T) {
	const src = "127.0.0.2:/v0"
	e := newNodeEnv(t)
	ctx := context.Background()
	target := e.publishedInline(t, "inline-1", src)
	if m, live := e.top(target); m == nil || !live || m.Source != src || e.depth(target) != 1 {
		t.Fatalf("target: top %+v live=%v depth %d; want one live mount of %s", m, live, e.depth(target), src)
	}
	rec, err := e.S.records.Read("inline-1")
	if err != nil || rec == nil || rec.Staging != "" || len(rec.Targets) != 1 || rec.Targets[0].Path != target {
		t.Fatalf("record: %+v, %v; want no staging path and the one target", rec, err)
	}
	if _, err := e.S.NodePublishVolume(ctx, inlineReq("inline-1", target, src)); err != nil {
		t.Errorf("the same publish again: %v", err)
	}
	_, err = e.S.NodePublishVolume(ctx, inlineReq("inline-2", target, "127.0.0.2:/other"))
	wantCode(t, err, codes.AlreadyExists)
	if m, _, _ := e.F.count(); m != 1 {
		t.Errorf("%d helper mounts, want 1", m)
	}
	if _, err := e.S.NodeUnpublishVolume(ctx, &csipb.NodeUnpublishVolumeRequest{VolumeId: "inline-1", TargetPath: target}); err != nil {
		t.Fatal(err)
	}
	if rec, err := e.S.records.Read("inline-1"); err != nil || rec != nil {
		t.Errorf("record after unpublish: %+v, %v; want none", rec, err)
	}
	if _, err := os.Stat(target); !os.IsNotExist(err) {
		t.Errorf("target directory after unpublish: %v; want it removed", err)
	}
}

// TestRecoverInline: recovery of an inline volume mounts it again at its
// target. Over a dead mount the helper mounts below the server's private
// work directory and the result is bound on top, where the pod's rslave
// bind of the target sees it; an empty target gets the helper's mount
// itself; a live one is left alone.
func TestRecoverInline(t *testing.T) {
	const src = "127.0.0.2:/v0"
	tests := []struct {
		name         string
		break_       func(t *testing.T, e *nodeEnv, target string)
		mounts       int
		binds        int
		depth        int
		wantTopSrc   bool // the top mount is the helper's, not a bind
		needsPrivate bool // a base volume below the work directory
		helperPID    int  // mounter recover on the host for a mounter without a server
	}{
		{name: "live: left alone", break_: func(*testing.T, *nodeEnv, string) {}, depth: 1, wantTopSrc: true},
		{name: "the daemon is gone: mounted aside, bound on top of the dead mount",
			break_: func(_ *testing.T, e *nodeEnv, _ string) { e.F.killDaemons() },
			mounts: 1, binds: 1, depth: 2, needsPrivate: true},
		{name: "from the host: the daemon is gone: mounted beside the target, bound on top",
			break_: func(_ *testing.T, e *nodeEnv, _ string) { e.F.killDaemons() },
			mounts: 1, binds: 1, depth: 2, helperPID: 1 << 22},
		{name: "nothing mounted: mounted at the target",
			break_: func(t *testing.T, e *nodeEnv, target string) {
				if err := unmountAll(e.F, target); err != nil {
					t.Fatal(err)
				}
			},
			mounts: 1, depth: 1, wantTopSrc: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.needsPrivate {
				testutil.RequireRoot(t)
			}
			e := newNodeEnv(t)
			releaseWork(t, e.S)
			target := e.publishedInline(t, "inline-1", src)
			e.S.HelperPID = tt.helperPID
			before, _ := e.S.records.Read("inline-1")
			before.PID = -1 // an earlier server's
			if err := e.S.records.Write(before); err != nil {
				t.Fatal(err)
			}
			tt.break_(t, e, target)
			again := e.recoverAsking(t, tt.mounts, tt.binds)
			m, live := e.top(target)
			if m == nil || !live || e.depth(target) != tt.depth || (m.Source == src) != tt.wantTopSrc {
				t.Errorf("target: top %+v live=%v depth %d; want a live mount %d deep (helper's own on top: %v)", m, live, e.depth(target), tt.depth, tt.wantTopSrc)
			}
			after, err := e.S.records.Read("inline-1")
			if err != nil || after == nil || after.Recovery != nil || after.Staging != "" || len(after.Targets) != 1 {
				t.Fatalf("record after recovery: %+v, %v; want the target and no failure", after, err)
			}
			if ok, _ := mountinfo.Mounted(e.S.work); ok != tt.needsPrivate {
				t.Errorf("the server's work directory mounted: %v, want %v", ok, tt.needsPrivate)
			}
			if left, _ := filepath.Glob(filepath.Join(filepath.Dir(target), ".*")); len(left) != 0 {
				t.Errorf("left beside the target: %v", left)
			}
			if wantPID := map[bool]int{true: cmp.Or(tt.helperPID, os.Getpid()), false: -1}[tt.mounts > 0]; after.PID != wantPID {
				t.Errorf("record's pid %d, want %d", after.PID, wantPID)
			}
			again()
		})
	}
}

// TestRecoverInlineRemovesLeftovers: a `mounter recover` killed between its
// mount beside an inline volume's target and the unmount leaves a hidden
// directory with a mount in the pod's volume directory, on which kubelet's
// clean-up of the pod trips. The next recovery of the volume detaches and
// removes it, and nothing else there.
func TestRecoverInlineRemovesLeftovers(t *testing.T) {
	testutil.RequireRoot(t)
	e := newNodeEnv(t)
	// The tmpfs below must not propagate anywhere: the test's directory is
	// a private mount of its own.
	if err := unix.Mount(e.Root, e.Root, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(e.Root, unix.MNT_DETACH); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	if err := unix.Mount("", e.Root, "", unix.MS_PRIVATE|unix.MS_REC, ""); err != nil {
		t.Fatal(err)
	}
	target := e.publishedInline(t, "inline-1", "127.0.0.2:/v0")
	dir := filepath.Dir(target)
	left := filepath.Join(dir, ".runc-shared-recover-1234")
	if err := os.Mkdir(left, 0o700); err != nil {
		t.Fatal(err)
	}
	testutil.UnmountLater(t, left)
	if err := unix.Mount("tmpfs", left, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	// What is not a left-over mount point: other hidden directories, and
	// entries of that name that are no directory.
	keep := []string{filepath.Join(dir, ".keep"), filepath.Join(dir, ".runc-shared-recover-file"), filepath.Join(dir, ".runc-shared-recover-link")}
	if err := os.Mkdir(keep[0], 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keep[1], nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(keep[0], keep[2]); err != nil {
		t.Fatal(err)
	}

	if err := e.S.Recover(context.Background(), fastPolicy); err != nil {
		t.Fatalf("Recover: %v", err)
	}
	if mounted, err := mountinfo.Mounted(left); mounted || err == nil {
		t.Errorf("the left-over mount point %s: mounted %v, %v; want it detached and removed", left, mounted, err)
	}
	for _, p := range keep {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s: %v; want it kept", p, err)
		}
	}
	if m, live := e.top(target); m == nil || !live {
		t.Errorf("target: %+v live=%v, want the volume's live mount", m, live)
	}
}
