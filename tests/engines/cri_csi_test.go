package engines_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/moby/sys/mountinfo"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/runc-shared/runc-shared/internal/csi"
	"github.com/runc-shared/runc-shared/internal/mountrec"
	"github.com/runc-shared/runc-shared/internal/registry"
	"github.com/runc-shared/runc-shared/internal/testutil"
	"github.com/runc-shared/runc-shared/pkg/spec"
)

// csiDriverName is the CSI driver the CRI mounter serves.
const csiDriverName = "glusterfs.csi.runc-shared.io"

// TestContainerdCRICSI runs `mounter csi` as the main process of a mounter
// container that containerd's CRI plugin starts as kubelet would: a pod in
// the host network with runtime handler "shared", the mounter annotation on
// the pod and the rule's container name on the container, the static
// bin/mounter bound read-only into the host-/usr image. The test then plays
// the external-provisioner and kubelet over the CSI socket: CreateVolume,
// NodeStageVolume at kubelet's staging path and NodePublishVolume at the
// pod's volume path, both below a directory standing for the host's /.
// The mounts, made inside the container, must be on the host; a consumer pod
// that binds the volume path HostToContainer (rslave) reads and writes
// through it onto the brick; unpublish, unstage and delete leave no mount,
// no directory and no record; stopping the container stops the server
// cleanly, and removing the pod unregisters the mounter.
func TestContainerdCRICSI(t *testing.T) {
	testutil.CheckLeaks(t)
	s := newSetup(t, false, "container-name = "+tomlQuote(criContainerName))
	e := startCRI(t, s)

	// The CSI socket lives in a directory of its own, bound into the
	// mounter at the same path; the server reads the host's configuration
	// and keeps its records in the host's state dir, both bound at the same
	// paths too, as a DaemonSet binds /etc/runc-shared and /run/runc-shared.
	side := filepath.Join(s.Dir, "csi")
	for _, d := range []string{side, s.StateDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	sock := filepath.Join(side, "csi.sock")
	// The node's root below the propagated directory: kubelet's paths keep
	// their real shape below it.
	kubelet := filepath.Join(s.Host, "var/lib/kubelet")
	mounterBin := testutil.Bin(t, "mounter")

	m := e.startPod(t, criPod{
		name:    "csi-mounter",
		mounter: true,
		image:   hostUsrRef,
		command: []string{"/mnt/mounter", "csi", "--endpoint", "unix://" + sock, "--driver-name", csiDriverName,
			"--node-id", "node-1", "--config", s.Config},
		mounts: []*runtimeapi.Mount{
			{ContainerPath: s.Host, HostPath: s.Host},
			{ContainerPath: "/usr", HostPath: "/usr", Readonly: true},
			{ContainerPath: "/mnt", HostPath: filepath.Dir(mounterBin), Readonly: true},
			{ContainerPath: side, HostPath: side},
			{ContainerPath: s.StateDir, HostPath: s.StateDir},
			{ContainerPath: s.Config, HostPath: s.Config, Readonly: true},
		},
	})
	s.watch.lap("mounter pod started")
	rec, err := registry.New(s.StateDir).Read(m.container)
	if err != nil {
		t.Fatalf("the CSI mounter %s is not registered (mount-hook): %v\n%s", m.container, err, m.log(t))
	}
	if rec.Name != ruleName {
		t.Errorf("record names rule %q, want %q", rec.Name, ruleName)
	}
	// containerd copies the pod's annotations onto the sandbox (pause)
	// container too: it must not become a mounter.
	if _, err := registry.New(s.StateDir).Read(m.sandbox); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("the mounter pod's sandbox is registered as a mounter: %v", err)
	}
	e.waitSocket(t, m, sock)
	c := dialCSI(t, sock)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if info, err := c.identity.GetPluginInfo(ctx, &csipb.GetPluginInfoRequest{}); err != nil || info.GetName() != csiDriverName {
		t.Fatalf("GetPluginInfo: %v, %v; want driver %s", info, err, csiDriverName)
	}
	s.watch.lap("CSI socket answers")

	// Provisioning, as the external-provisioner does it.
	const pv = "pvc-7d0c2a4e-cri"
	rwx := &csipb.VolumeCapability{
		AccessMode: &csipb.VolumeCapability_AccessMode{Mode: csipb.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER},
		AccessType: &csipb.VolumeCapability_Mount{Mount: &csipb.VolumeCapability_MountVolume{}},
	}
	cv, err := c.controller.CreateVolume(ctx, &csipb.CreateVolumeRequest{Name: pv, VolumeCapabilities: []*csipb.VolumeCapability{rwx},
		Parameters: map[string]string{csi.KeyFSType: "glusterfs", csi.KeySource: s.Gluster.Server + ":/" + s.Gluster.Volume}})
	if err != nil {
		t.Fatalf("CreateVolume: %v\n%s", err, m.log(t))
	}
	vol := cv.GetVolume()
	if fi, err := os.Stat(filepath.Join(s.Gluster.Brick, pv)); err != nil || !fi.IsDir() {
		t.Fatalf("no directory %s on the brick after CreateVolume: %v", pv, err)
	}

	// Kubelet's paths: it makes the staging directory and the pod's volume
	// directory; the driver makes the target.
	staging := filepath.Join(kubelet, "plugins/kubernetes.io/csi", csiDriverName, "5f0e8b0c9d1a/globalmount")
	podUID := "2b7c9e4a-0000-4000-8000-00000000c51c"
	podDir := filepath.Join(kubelet, "pods", podUID, "volumes/kubernetes.io~csi", pv)
	target := filepath.Join(podDir, "mount")
	for _, d := range []string{staging, podDir} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			t.Fatal(err)
		}
	}
	// Should a step below fail, the host's mounts go before the pods.
	unmountLater(t, staging)
	unmountLater(t, target)
	if _, err := c.node.NodeStageVolume(ctx, &csipb.NodeStageVolumeRequest{VolumeId: vol.GetVolumeId(), StagingTargetPath: staging,
		VolumeCapability: rwx, VolumeContext: vol.GetVolumeContext()}); err != nil {
		t.Fatalf("NodeStageVolume: %v\n%s", err, m.log(t))
	}
	if mi := testutil.MountAt(t, staging); mi == nil || mi.FSType != "fuse.glusterfs" {
		t.Fatalf("staging mount on the host: %+v, want fuse.glusterfs", mi)
	}
	if _, err := c.node.NodePublishVolume(ctx, &csipb.NodePublishVolumeRequest{VolumeId: vol.GetVolumeId(), StagingTargetPath: staging,
		TargetPath: target, VolumeCapability: rwx, VolumeContext: vol.GetVolumeContext()}); err != nil {
		t.Fatalf("NodePublishVolume: %v\n%s", err, m.log(t))
	}
	if mi := testutil.MountAt(t, target); mi == nil || mi.FSType != "fuse.glusterfs" {
		t.Fatalf("publish mount on the host: %+v, want fuse.glusterfs", mi)
	}
	// The volume is its own directory on the base volume.
	if err := os.WriteFile(filepath.Join(target, "from-host"), []byte("written on the host\n"), 0o644); err != nil {
		t.Fatalf("write through the host's view of the volume: %v", err)
	}
	if got, err := os.ReadFile(filepath.Join(s.Gluster.Brick, pv, "from-host")); err != nil || string(got) != "written on the host\n" {
		t.Fatalf("the host's file on the brick: %q, %v", got, err)
	}
	recs, errs := mountrec.List(s.StateDir)
	if len(errs) != 0 || len(recs) != 1 || recs[0].Staging != staging || len(recs[0].Targets) != 1 || recs[0].Targets[0].Path != target {
		t.Fatalf("records on the host: %+v %v; want the volume staged at %s and published at %s", recs, errs, staging, target)
	}
	s.watch.lap("volume created, staged, published")

	// The pod that uses the volume: kubelet binds the volume path with
	// mountPropagation HostToContainer (rslave), in a plain pod of the
	// default runtime.
	consumer := e.startPod(t, criPod{
		name:    "csi-consumer",
		handler: "",
		image:   busyboxRef,
		command: []string{"sleep", "100000"},
		mounts:  []*runtimeapi.Mount{{ContainerPath: "/data", HostPath: target, Propagation: runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER}},
	})
	if r := e.exec(t, consumer.container, "sh", "-c", "cat /data/from-host && echo written-by-the-pod > /data/from-pod"); r.err != nil || r.stdout != "written on the host\n" {
		t.Fatalf("the consumer pod reads the host's file and writes its own: %v", r)
	}
	if got, err := os.ReadFile(filepath.Join(s.Gluster.Brick, pv, "from-pod")); err != nil || string(got) != "written-by-the-pod\n" {
		t.Fatalf("the consumer pod's file on the brick: %q, %v", got, err)
	}
	e.removePod(t, consumer.sandbox)
	s.watch.lap("consumer pod")

	// Teardown as kubelet and the provisioner do it.
	if _, err := c.node.NodeUnpublishVolume(ctx, &csipb.NodeUnpublishVolumeRequest{VolumeId: vol.GetVolumeId(), TargetPath: target}); err != nil {
		t.Fatalf("NodeUnpublishVolume: %v\n%s", err, m.log(t))
	}
	if _, err := c.node.NodeUnstageVolume(ctx, &csipb.NodeUnstageVolumeRequest{VolumeId: vol.GetVolumeId(), StagingTargetPath: staging}); err != nil {
		t.Fatalf("NodeUnstageVolume: %v\n%s", err, m.log(t))
	}
	if _, err := c.controller.DeleteVolume(ctx, &csipb.DeleteVolumeRequest{VolumeId: vol.GetVolumeId()}); err != nil {
		t.Fatalf("DeleteVolume: %v\n%s", err, m.log(t))
	}
	var left []string
	for _, mi := range testutil.MountsUnder(t, s.Host) {
		if mi.Mountpoint != s.Host {
			left = append(left, mi.Mountpoint+" "+mi.FSType)
		}
	}
	if len(left) != 0 {
		t.Errorf("mounts left on the host: %v", left)
	}
	if ms := testutil.MountsUnderPid(t, rec.PID, kubelet); len(ms) != 0 {
		t.Errorf("mounts left in the mounter: %v", mountpoints(ms))
	}
	if _, err := os.Lstat(target); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("target directory %s left: %v", target, err)
	}
	if recs, errs := mountrec.List(s.StateDir); len(recs)+len(errs) != 0 {
		t.Errorf("records left: %+v %v", recs, errs)
	}
	if _, err := os.Lstat(filepath.Join(s.Gluster.Brick, pv)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the volume's directory is still on the brick after DeleteVolume: %v", err)
	}
	s.watch.lap("volume unpublished, unstaged, deleted")

	// Kubelet stops the container with a grace period: SIGTERM, the server
	// finishes and removes its socket.
	sctx, scancel := criCtx()
	defer scancel()
	if _, err := e.rt.StopContainer(sctx, &runtimeapi.StopContainerRequest{ContainerId: m.container, Timeout: 30}); err != nil {
		t.Fatalf("StopContainer: %v", err)
	}
	st, err := e.rt.ContainerStatus(sctx, &runtimeapi.ContainerStatusRequest{ContainerId: m.container})
	if err != nil || st.GetStatus().GetState() != runtimeapi.ContainerState_CONTAINER_EXITED || st.GetStatus().GetExitCode() != 0 {
		t.Errorf("mounter csi after SIGTERM: %+v, %v; want exited with 0\n%s", st.GetStatus(), err, m.log(t))
	}
	if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket %s left after SIGTERM: %v", sock, err)
	}
	if log := m.log(t); !strings.Contains(log, "msg=stopped") {
		t.Errorf("no clean stop in the server's log:\n%s", log)
	}
	e.removePod(t, m.sandbox)
	if _, err := registry.New(s.StateDir).Read(m.container); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("record of the removed mounter: %v, want none (mount-hook poststop removes it)", err)
	}
	s.watch.lap("mounter pod removed")
}

// criPod is a one-container pod in the host network.
type criPod struct {
	name    string
	handler string // runtime handler; the mounter's is "shared"
	mounter bool   // the pod carries the rule's annotation, the container its name, CAP_SYS_ADMIN and /dev/fuse
	image   string
	command []string
	mounts  []*runtimeapi.Mount
}

// runningPod is a pod started by startPod.
type runningPod struct {
	sandbox, container string
	logPath            string
}

// log is the container's output as containerd logged it.
func (p *runningPod) log(t *testing.T) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return "container log: " + err.Error()
	}
	return "container log:\n" + string(b)
}

// startPod runs p as kubelet would (RunPodSandbox, CreateContainer,
// StartContainer) and removes the pod in cleanup.
func (e *criEngine) startPod(t *testing.T, p criPod) *runningPod {
	t.Helper()
	cfg := e.podConfig(p.name)
	nsNode := cfg.Linux.SecurityContext.NamespaceOptions
	name := p.name
	sc := &runtimeapi.LinuxContainerSecurityContext{NamespaceOptions: nsNode}
	var devices []*runtimeapi.Device
	handler := p.handler
	if p.mounter {
		cfg.Annotations[spec.AnnotationMounter] = ruleName
		name, handler = criContainerName, "shared"
		sc.Capabilities = &runtimeapi.Capability{AddCapabilities: []string{"SYS_ADMIN"}}
		devices = []*runtimeapi.Device{{ContainerPath: "/dev/fuse", HostPath: "/dev/fuse", Permissions: "rwm"}}
	}
	ctx, cancel := criCtx()
	defer cancel()
	sb, err := e.rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg, RuntimeHandler: handler})
	if err != nil {
		t.Fatalf("RunPodSandbox %s: %v\n%s", p.name, err, e.d.tail())
	}
	t.Cleanup(func() { e.removePod(t, sb.PodSandboxId) })
	rp := &runningPod{sandbox: sb.PodSandboxId, logPath: filepath.Join(cfg.LogDirectory, name+".log")}
	cc, err := e.rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{
		PodSandboxId: sb.PodSandboxId,
		Config: &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: name},
			Image:    &runtimeapi.ImageSpec{Image: p.image},
			Command:  p.command,
			Mounts:   p.mounts,
			Devices:  devices,
			LogPath:  name + ".log",
			Linux:    &runtimeapi.LinuxContainerConfig{SecurityContext: sc},
		},
		SandboxConfig: cfg,
	})
	if err != nil {
		t.Fatalf("CreateContainer %s: %v\n%s", p.name, err, e.d.tail())
	}
	rp.container = cc.ContainerId
	if _, err := e.rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: cc.ContainerId}); err != nil {
		t.Fatalf("StartContainer %s: %v\n%s\n%s", p.name, err, rp.log(t), e.d.tail())
	}
	return rp
}

// waitSocket waits for the CSI socket of the server running as p's main
// process, failing at once if the container exits first.
func (e *criEngine) waitSocket(t *testing.T, p *runningPod, sock string) {
	t.Helper()
	testutil.Eventually(t, 20*time.Second, "the socket "+sock, func() (bool, string) {
		if c, err := net.DialTimeout("unix", sock, time.Second); err == nil {
			c.Close()
			return true, ""
		}
		ctx, cancel := criCtx()
		defer cancel()
		st, err := e.rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: p.container})
		if err == nil && st.GetStatus().GetState() == runtimeapi.ContainerState_CONTAINER_EXITED {
			t.Fatalf("mounter csi exited (code %d) before serving:\n%s", st.GetStatus().GetExitCode(), p.log(t))
		}
		return false, "not there\n" + p.log(t)
	})
}

// csiClients are the CSI services on one socket.
type csiClients struct {
	identity   csipb.IdentityClient
	node       csipb.NodeClient
	controller csipb.ControllerClient
}

func dialCSI(t *testing.T, sock string) *csiClients {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &csiClients{identity: csipb.NewIdentityClient(conn), node: csipb.NewNodeClient(conn), controller: csipb.NewControllerClient(conn)}
}

// mountpoints lists the mount points of ms.
func mountpoints(ms []*mountinfo.Info) []string {
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		out = append(out, m.Mountpoint)
	}
	return out
}
