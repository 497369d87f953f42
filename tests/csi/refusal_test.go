package csi_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/runc-shared/runc-shared/internal/csi"
	"github.com/runc-shared/runc-shared/internal/mountrec"
	"github.com/runc-shared/runc-shared/internal/testutil"
)

// TestRefusals asks bin/mounter csi for mounts its rule does not allow:
// each is InvalidArgument and nothing is mounted anywhere.
func TestRefusals(t *testing.T) {
	testutil.CheckLeaks(t)
	e := newEnv(t)
	srv := startServer(t, e)
	c := connect(t, srv.Socket)
	ctx := ctxT(t)
	outside := testutil.TempDir(t)
	evil := e.Shared + "-evil"
	if err := os.Mkdir(evil, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(evil) })
	if err := os.Symlink(outside, filepath.Join(e.Shared, "escape")); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(e.Shared, "staging")
	if err := os.Mkdir(good, 0o755); err != nil {
		t.Fatal(err)
	}
	vctx := func(k, v string) map[string]string {
		m := map[string]string{csi.KeyFSType: "glusterfs", csi.KeySource: "127.0.0.2:/v0"}
		if k != "" {
			m[k] = v
		}
		return m
	}
	tests := []struct {
		name, staging string
		ctx           map[string]string
	}{
		{"staging outside the allowlist", outside, vctx("", "")},
		{"staging in a prefix sibling", evil, vctx("", "")},
		{"staging through a symlink", filepath.Join(e.Shared, "escape"), vctx("", "")},
		{"staging with dot-dot", e.Shared + "/../" + filepath.Base(evil), vctx("", "")},
		{"type outside the rule", good, vctx(csi.KeyFSType, "nfs")},
		{"source starting with a dash", good, vctx(csi.KeySource, "-oremount")},
		{"options with a newline", good, vctx(csi.KeyOptions, "ro\nrw")},
		{"options with a second -o", good, vctx(csi.KeyOptions, "ro,-o,remount")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.Node.NodeStageVolume(ctx, &csipb.NodeStageVolumeRequest{VolumeId: "v1", StagingTargetPath: tt.staging, VolumeCapability: rwCap, VolumeContext: tt.ctx})
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("NodeStageVolume: %v, want InvalidArgument", err)
			}
			for _, d := range []string{e.Shared, outside, evil} {
				if ms := mountsUnder(t, d); len(ms) != 0 {
					t.Fatalf("refused, yet mounted: %v", ms)
				}
			}
		})
	}
	if recs, _ := mountrec.List(e.StateDir); len(recs) != 0 {
		t.Errorf("records after refusals: %+v", recs)
	}
}

// TestDeadVolume: a published volume whose FUSE daemon died (its mounter
// stopped) is reported INACCESSIBLE by NodeGetVolumeHealth, has no stats,
// and still unpublishes.
func TestDeadVolume(t *testing.T) {
	testutil.CheckLeaks(t)
	e := newEnv(t)
	srv := startServer(t, e)
	c := connect(t, srv.Socket)
	ctx := ctxT(t)
	target := filepath.Join(e.Shared, "pods/uid/volumes/kubernetes.io~csi/pv/mount")
	if err := os.MkdirAll(target, 0o750); err != nil {
		t.Fatal(err)
	}
	testutil.DeadFuseMount(t, target)

	h, err := c.Node.NodeGetVolumeHealth(ctx, &csipb.NodeGetVolumeHealthRequest{VolumeId: "pv", VolumePublishPath: target})
	if err != nil {
		t.Fatal(err)
	}
	st := h.GetVolumeHealth().GetHealthStatuses()
	if len(st) != 1 || st[0].GetStatus() != csipb.VolumeHealthErrorType_INACCESSIBLE || st[0].GetReason() != csi.ReasonDaemonGone {
		t.Fatalf("health of a dead FUSE volume: %+v, want INACCESSIBLE %s", st, csi.ReasonDaemonGone)
	}
	if _, err := c.Node.NodeGetVolumeStats(ctx, &csipb.NodeGetVolumeStatsRequest{VolumeId: "pv", VolumePath: target}); status.Code(err) != codes.Unavailable {
		t.Fatalf("stats of a dead FUSE volume: %v, want Unavailable", err)
	}
	if _, err := c.Node.NodeUnpublishVolume(ctx, &csipb.NodeUnpublishVolumeRequest{VolumeId: "pv", TargetPath: target}); err != nil {
		t.Fatalf("unpublish of a dead FUSE volume: %v", err)
	}
	if testutil.MountAt(t, target) != nil {
		t.Fatal("the dead mount is still there after unpublish")
	}
	if _, err := os.Lstat(target); !os.IsNotExist(err) {
		t.Fatalf("target left after unpublish: %v", err)
	}
}

// TestReadOnlyPublish stages a tmpfs through the real server and publishes
// it twice, read-only and read-write: the read-only target refuses writes
// on the host, the other takes them, and both show the same files.
func TestReadOnlyPublish(t *testing.T) {
	testutil.CheckLeaks(t)
	e := newEnv(t)
	cfg, err := os.ReadFile(e.Config)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.Config, []byte(strings.Replace(string(cfg), `fstypes = ["glusterfs"]`, `fstypes = ["glusterfs", "tmpfs"]`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, e)
	c := connect(t, srv.Socket)
	ctx := ctxT(t)
	staging := filepath.Join(e.Shared, "staging")
	if err := os.Mkdir(staging, 0o755); err != nil {
		t.Fatal(err)
	}
	vctx := map[string]string{csi.KeyFSType: "tmpfs", csi.KeySource: "rstest-csi", csi.KeyOptions: "size=1m"}
	if _, err := c.Node.NodeStageVolume(ctx, &csipb.NodeStageVolumeRequest{VolumeId: "t1", StagingTargetPath: staging, VolumeCapability: rwCap, VolumeContext: vctx}); err != nil {
		t.Fatalf("stage: %v\n%s", err, srv.Log())
	}
	ro, rw := filepath.Join(e.Shared, "ro"), filepath.Join(e.Shared, "rw")
	for _, p := range []struct {
		target string
		ro     bool
	}{{ro, true}, {rw, false}} {
		if _, err := c.Node.NodePublishVolume(ctx, &csipb.NodePublishVolumeRequest{VolumeId: "t1", StagingTargetPath: staging, TargetPath: p.target,
			VolumeCapability: rwCap, VolumeContext: vctx, Readonly: p.ro}); err != nil {
			t.Fatalf("publish %s: %v", p.target, err)
		}
	}
	if err := os.WriteFile(filepath.Join(ro, "x"), []byte("x"), 0o644); !errors.Is(err, unix.EROFS) {
		t.Errorf("write to the read-only publish: %v, want EROFS", err)
	}
	if err := os.WriteFile(filepath.Join(rw, "y"), []byte("y"), 0o644); err != nil {
		t.Errorf("write to the read-write publish: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(ro, "y")); err != nil || string(b) != "y" {
		t.Errorf("the read-only publish does not show the volume's file: %q, %v", b, err)
	}
	if m := testutil.MountAt(t, ro); m == nil || !strings.Contains(","+m.Options+",", ",ro,") {
		t.Errorf("read-only publish mount: %+v", m)
	}
	for _, target := range []string{ro, rw} {
		if _, err := c.Node.NodeUnpublishVolume(ctx, &csipb.NodeUnpublishVolumeRequest{VolumeId: "t1", TargetPath: target}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Node.NodeUnstageVolume(ctx, &csipb.NodeUnstageVolumeRequest{VolumeId: "t1", StagingTargetPath: staging}); err != nil {
		t.Fatal(err)
	}
	if ms := mountsUnder(t, e.Shared); len(ms) != 0 {
		t.Errorf("mounts left: %v", ms)
	}
}
