package csi_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/runc-shared/runc-shared/internal/csi"
	"github.com/runc-shared/runc-shared/internal/mountrec"
	"github.com/runc-shared/runc-shared/internal/registry"
	"github.com/runc-shared/runc-shared/internal/testutil"
	"github.com/runc-shared/runc-shared/pkg/spec"
)

// TestMounterContainer runs `mounter csi` as the main process of a mounter
// container that runc-shared starts with plain runc, and drives a volume
// through it as kubelet and the external-provisioner would: CreateVolume,
// NodeStageVolume at kubelet's staging path, NodePublishVolume at the pod's
// volume path. The mounts, made inside the container, must be on the host;
// a consumer container that binds the pod path rslave reads and writes
// through it onto the brick; unpublish, unstage and delete leave no mount,
// no directory and no record; SIGTERM stops the server cleanly.
//
// It runs on both host set-ups (/ private, / rshared as systemd leaves it).
func TestMounterContainer(t *testing.T) {
	testutil.CheckLeaks(t)
	testutil.ForEachHost(t, mounterContainer)
}

func mounterContainer(t *testing.T, h testutil.Host) {
	g := testutil.Glusterd(t)
	e := newEnv(t)
	// The socket, configuration and state live in a directory of their own,
	// bound into the mounter at the same path, apart from the shared one.
	side := testutil.TempDir(t)
	e.StateDir = filepath.Join(side, "state")
	e.Config = filepath.Join(side, "config.toml")
	testutil.WriteFile(t, e.Config, testutil.GlusterRuleConfig(e.StateDir, e.Shared, spec.AnnotationMounter, annotationValue, h.ConfigLines()))
	sock := filepath.Join(side, "csi.sock")
	regDir := filepath.Join(side, "plugins_registry")
	// The server reads its own copy of the configuration at /run/csi inside,
	// as a DaemonSet mounts one: the rootfs's /tmp is writable by all, so a
	// configuration below it is refused. Same rule; the state dir as the
	// container sees the host's.
	const inside = "/run/csi"
	in := *e
	in.StateDir, in.Config = filepath.Join(inside, "state"), filepath.Join(side, "inside.toml")
	testutil.WriteFile(t, in.Config, testutil.GlusterRuleConfig(in.StateDir, in.Shared, spec.AnnotationMounter, annotationValue, h.ConfigLines()))

	r := testutil.Wrapper(t, e.Config)
	b := testutil.NewBundle(t, testutil.HostUsrRootfs(t),
		testutil.WithHostNetwork(), testutil.WithFuse(), testutil.WithAddCaps("SYS_ADMIN"),
		testutil.WithAnnotation(spec.AnnotationMounter, annotationValue),
		testutil.WithBind(e.Shared, e.Shared),
		testutil.WithBind(side, side),
		testutil.WithBind(side, inside),
		testutil.WithBind(filepath.Dir(testutil.Bin(t, "mounter")), "/mnt", "rbind", "ro"),
		testutil.WithArgs("/mnt/mounter", "csi", "--endpoint", "unix://"+sock, "--driver-name", driverName,
			"--node-id", "node-1", "--config", filepath.Join(inside, "inside.toml"), "--registration-dir", regDir))
	const id = "csi-mounter"
	pid := r.Up(t, b, id)
	if _, err := registry.New(e.StateDir).Read(id); err != nil {
		t.Fatalf("the mounter is not registered (mount-hook): %v\n%s", err, b.Log(t))
	}
	exited := testutil.Exited(pid)
	initLog := func() string { o, e := b.InitOutput(t); return o + e }
	testutil.WaitSocket(t, sock, 10*time.Second, exited, initLog)
	c := connect(t, sock)
	ctx := ctxT(t)

	// Provisioning.
	const pv = "pvc-0f3c6d1e-e2e"
	cv, err := c.Controller.CreateVolume(ctx, &csipb.CreateVolumeRequest{Name: pv, VolumeCapabilities: []*csipb.VolumeCapability{rwCap},
		Parameters: map[string]string{csi.KeyFSType: "glusterfs", csi.KeySource: g.Server + ":/" + g.Volume}})
	if err != nil {
		t.Fatalf("CreateVolume: %v\n%s", err, initLog())
	}
	vol := cv.GetVolume()
	if fi, err := os.Stat(filepath.Join(g.Brick, pv)); err != nil || !fi.IsDir() {
		t.Fatalf("no directory %s on the brick after CreateVolume: %v", pv, err)
	}

	// Kubelet's paths, under the shared directory standing for /var/lib/kubelet.
	staging := filepath.Join(e.Shared, "plugins/kubernetes.io/csi", driverName, "0a1b2c3d4e5f/globalmount")
	podDir := filepath.Join(e.Shared, "pods/6a1e2f3c-0000-4000-8000-000000000001/volumes/kubernetes.io~csi", pv)
	target := filepath.Join(podDir, "mount")
	for _, d := range []string{staging, podDir} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Node.NodeStageVolume(ctx, &csipb.NodeStageVolumeRequest{VolumeId: vol.GetVolumeId(), StagingTargetPath: staging,
		VolumeCapability: rwCap, VolumeContext: vol.GetVolumeContext()}); err != nil {
		t.Fatalf("NodeStageVolume: %v\n%s", err, initLog())
	}
	if m := testutil.MountAt(t, staging); m == nil || m.FSType != "fuse.glusterfs" {
		t.Fatalf("staging mount on the host: %+v, want fuse.glusterfs", m)
	}
	if _, err := c.Node.NodePublishVolume(ctx, &csipb.NodePublishVolumeRequest{VolumeId: vol.GetVolumeId(), StagingTargetPath: staging,
		TargetPath: target, VolumeCapability: rwCap, VolumeContext: vol.GetVolumeContext()}); err != nil {
		t.Fatalf("NodePublishVolume: %v\n%s", err, initLog())
	}
	if m := testutil.MountAt(t, target); m == nil || m.FSType != "fuse.glusterfs" {
		t.Fatalf("publish mount on the host: %+v, want fuse.glusterfs", m)
	}
	recs, errs := mountrec.List(e.StateDir)
	if len(errs) != 0 || len(recs) != 1 || recs[0].Staging != staging || len(recs[0].Targets) != 1 || recs[0].Targets[0].Path != target {
		t.Fatalf("records on the host: %+v %v; want the volume staged at %s and published at %s", recs, errs, staging, target)
	}

	// The pod: a container binding the pod's volume path rslave
	// (Kubernetes' HostToContainer).
	if err := os.WriteFile(filepath.Join(target, "from-host"), []byte("written on the host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	consumer := testutil.NewBundle(t, testutil.BusyboxRootfs(t),
		testutil.WithBind(target, "/data", "rbind", "rslave"),
		testutil.WithArgs("sh", "-c", "cat /data/from-host && echo written-by-the-pod > /data/from-pod"))
	out, errOut, err := testutil.NewRunc(t, "").RunBundle(t, consumer, "csi-consumer")
	if err != nil || !strings.Contains(out, "written on the host") {
		t.Fatalf("consumer: %v\nstdout: %s\nstderr: %s", err, out, errOut)
	}
	if got, err := os.ReadFile(filepath.Join(g.Brick, pv, "from-pod")); err != nil || string(got) != "written-by-the-pod\n" {
		t.Fatalf("the pod's file on the brick: %q, %v", got, err)
	}

	// Teardown as kubelet and the provisioner do it.
	if _, err := c.Node.NodeUnpublishVolume(ctx, &csipb.NodeUnpublishVolumeRequest{VolumeId: vol.GetVolumeId(), TargetPath: target}); err != nil {
		t.Fatalf("NodeUnpublishVolume: %v", err)
	}
	if _, err := c.Node.NodeUnstageVolume(ctx, &csipb.NodeUnstageVolumeRequest{VolumeId: vol.GetVolumeId(), StagingTargetPath: staging}); err != nil {
		t.Fatalf("NodeUnstageVolume: %v", err)
	}
	if _, err := c.Controller.DeleteVolume(ctx, &csipb.DeleteVolumeRequest{VolumeId: vol.GetVolumeId()}); err != nil {
		t.Fatalf("DeleteVolume: %v", err)
	}
	if ms := mountsUnder(t, e.Shared); len(ms) != 0 {
		t.Errorf("mounts left on the host: %v", ms)
	}
	if ms := testutil.MountsUnderPid(t, pid, e.Shared); len(ms) > 1 {
		t.Errorf("mounts left in the mounter: %v", ms)
	}
	if _, err := os.Stat(target); !os.IsNotExist(err) {
		t.Errorf("target directory left: %v", err)
	}
	if recs, errs := mountrec.List(e.StateDir); len(recs)+len(errs) != 0 {
		t.Errorf("records left: %+v %v", recs, errs)
	}
	if left := brickEntries(t, g.Brick); len(left) != 0 {
		t.Errorf("brick entries left after DeleteVolume: %v", left)
	}
	// A call after the volume is gone: the driver says so.
	_, err = c.Controller.ValidateVolumeCapabilities(ctx, &csipb.ValidateVolumeCapabilitiesRequest{VolumeId: vol.GetVolumeId(), VolumeCapabilities: []*csipb.VolumeCapability{rwCap}})
	if status.Code(err) != codes.NotFound {
		t.Errorf("ValidateVolumeCapabilities of a deleted volume: %v, want NotFound", err)
	}

	// SIGTERM: the server finishes, removes its sockets and exits 0.
	if err := r.Kill(t, id, "TERM"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(40 * time.Second):
		t.Fatalf("mounter csi did not stop on SIGTERM:\n%s", initLog())
	}
	for _, p := range []string{sock, csi.RegistrationSocket(regDir, driverName)} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("socket %s left after SIGTERM: %v", p, err)
		}
	}
	if log := initLog(); !strings.Contains(log, "msg=stopped") {
		t.Errorf("no clean stop in the server's log:\n%s", log)
	}
	if st, err := r.State(t, id); err != nil || st.Status != "stopped" {
		t.Errorf("container state after SIGTERM: %+v, %v", st, err)
	}
}
