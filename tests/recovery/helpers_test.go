// Package recovery_test kills mounters and checks that their volumes come
// back: `mounter csi` recovering the recorded GlusterFS volumes of its rule
// at start, at the same host paths, for consumers that keep running.
package recovery_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/runc-shared/runc-shared/internal/csi"
	"github.com/runc-shared/runc-shared/internal/mountrec"
	"github.com/runc-shared/runc-shared/internal/testutil"
	"github.com/runc-shared/runc-shared/pkg/spec"
)

func TestMain(m *testing.M) { testutil.Main(m) }

const (
	driverName      = "glusterfs.csi.runc-shared.io"
	annotationValue = "glusterfs-recovery"
)

// env is a configuration with one glusterfs rule whose allowlist is Shared
// (standing for /var/lib/kubelet), on one host set-up.
type env struct {
	Dir, Shared, StateDir, Config string
	Host                          testutil.Host
}

// writeConfig writes a configuration with the glusterfs rule of these tests
// for the host h.
func writeConfig(t *testing.T, h testutil.Host, path, stateDir, shared string) {
	t.Helper()
	testutil.WriteFile(t, path, testutil.GlusterRuleConfig(stateDir, shared, spec.AnnotationMounter, annotationValue, h.ConfigLines()))
}

// newEnv is an env on this machine's own host set-up (/ private).
func newEnv(t *testing.T) *env { return newEnvOn(t, testutil.Host{}) }

// newEnvOn is an env on the host set-up h (of testutil.ForEachHost).
func newEnvOn(t *testing.T, h testutil.Host) *env {
	t.Helper()
	dir := testutil.TempDir(t)
	e := &env{Dir: dir, Shared: testutil.SharedDir(t), StateDir: filepath.Join(dir, "state"), Config: filepath.Join(dir, "config.toml"), Host: h}
	writeConfig(t, h, e.Config, e.StateDir, e.Shared)
	return e
}

// glusterVolume creates and starts one more single-brick volume on g; its
// cleanup stops and deletes it before glusterd stops.
func glusterVolume(t *testing.T, g *testutil.Gluster, name string) {
	t.Helper()
	brick := filepath.Join(testutil.TempDir(t), "brick")
	if err := os.Mkdir(brick, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := g.CLI(t, "volume", "create", name, g.Server+":"+brick, "force"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = g.CLI(t, "volume", "stop", name, "force")
		if _, err := g.CLI(t, "volume", "delete", name); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	if _, err := g.CLI(t, "volume", "start", name); err != nil {
		t.Fatal(err)
	}
}

type clients struct {
	Node       csipb.NodeClient
	Controller csipb.ControllerClient
	close      func()
}

// connect dials the server at sock; cleanup closes the connection.
func connect(t *testing.T, sock string) *clients {
	t.Helper()
	c := dialNow(t, sock)
	t.Cleanup(c.close)
	return c
}

// dialNow dials the server at sock; the caller closes the connection.
func dialNow(t *testing.T, sock string) *clients {
	t.Helper()
	c, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	return &clients{Node: csipb.NewNodeClient(c), Controller: csipb.NewControllerClient(c), close: func() { _ = c.Close() }}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

var rwCap = &csipb.VolumeCapability{
	AccessMode: &csipb.VolumeCapability_AccessMode{Mode: csipb.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER},
	AccessType: &csipb.VolumeCapability_Mount{Mount: &csipb.VolumeCapability_MountVolume{}},
}

// volume is one staged and published CSI volume.
type volume struct {
	ID      string
	Context map[string]string
	Staging string
	Target  string
}

// kubeletPaths are the staging and publish paths kubelet would use for
// volume pv of pod uid, below shared.
func kubeletPaths(t *testing.T, shared, pv, uid string) (staging, target string) {
	t.Helper()
	staging = filepath.Join(shared, "plugins/kubernetes.io/csi", driverName, pv, "globalmount")
	podDir := filepath.Join(shared, "pods", uid, "volumes/kubernetes.io~csi", pv)
	for _, d := range []string{staging, podDir} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			t.Fatal(err)
		}
	}
	return staging, filepath.Join(podDir, "mount")
}

// stageAndPublish stages v and publishes it at its target, as kubelet does.
func stageAndPublish(ctx context.Context, c *clients, v volume) error {
	if _, err := c.Node.NodeStageVolume(ctx, &csipb.NodeStageVolumeRequest{VolumeId: v.ID, StagingTargetPath: v.Staging,
		VolumeCapability: rwCap, VolumeContext: v.Context}); err != nil {
		return fmt.Errorf("NodeStageVolume %s: %w", v.ID, err)
	}
	if _, err := c.Node.NodePublishVolume(ctx, &csipb.NodePublishVolumeRequest{VolumeId: v.ID, StagingTargetPath: v.Staging,
		TargetPath: v.Target, VolumeCapability: rwCap, VolumeContext: v.Context}); err != nil {
		return fmt.Errorf("NodePublishVolume %s: %w", v.ID, err)
	}
	return nil
}

// teardown unpublishes and unstages v, as kubelet does when its pod goes.
func teardown(ctx context.Context, c *clients, v volume) error {
	_, err1 := c.Node.NodeUnpublishVolume(ctx, &csipb.NodeUnpublishVolumeRequest{VolumeId: v.ID, TargetPath: v.Target})
	_, err2 := c.Node.NodeUnstageVolume(ctx, &csipb.NodeUnstageVolumeRequest{VolumeId: v.ID, StagingTargetPath: v.Staging})
	return errors.Join(err1, err2)
}

// liveState is what the top mount at path is on the host: "live
// fuse.glusterfs", "dead fuse.glusterfs", or "none".
func liveState(t *testing.T, path string) string {
	t.Helper()
	m := testutil.MountAt(t, path)
	if m == nil {
		return "none"
	}
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); errors.Is(err, unix.ENOTCONN) || errors.Is(err, unix.ECONNABORTED) {
		return "dead " + m.FSType
	}
	return "live " + m.FSType
}

// waitLive waits until every path holds a live GlusterFS mount on the host
// and returns how long that took from start.
func waitLive(t *testing.T, paths []string, start time.Time, timeout time.Duration, log func() string) time.Duration {
	t.Helper()
	if !testutil.Poll(timeout-time.Since(start), func() bool {
		return !slices.ContainsFunc(paths, func(p string) bool { return !isLive(p) })
	}) {
		var states []string
		for _, p := range paths {
			states = append(states, p+": "+liveState(t, p))
		}
		t.Fatalf("waited %v for every path to hold a live GlusterFS mount:\n%s\nserver log:\n%s", timeout, strings.Join(states, "\n"), log())
	}
	return time.Since(start)
}

// isLive: a GlusterFS mount at path that answers statfs. It reads only the
// path's own mount (statfs, then the mount table when that answers).
func isLive(path string) bool {
	var st unix.Statfs_t
	if unix.Statfs(path, &st) != nil || st.Type != unix.FUSE_SUPER_MAGIC {
		return false
	}
	return true
}

// records returns the driver's records keyed by volume id, without what
// changes when a server restarts (its pid, a recovery failure).
func records(t *testing.T, stateDir string) map[string]csi.Record {
	t.Helper()
	recs, errs := mountrec.List(stateDir)
	if len(errs) != 0 {
		t.Fatalf("records that cannot be read: %v", errs)
	}
	out := map[string]csi.Record{}
	for _, r := range recs {
		if _, dup := out[r.VolumeID]; dup {
			t.Fatalf("two records for volume %s", r.VolumeID)
		}
		c := *r
		c.PID, c.Recovery, c.Created = 0, nil, time.Time{}
		out[r.VolumeID] = c
	}
	return out
}

// pidnsServer is `mounter csi` as the first process of a PID namespace of
// its own, on the host's mounts: like the main process of a mounter
// container, its death takes every FUSE daemon it started with it.
type pidnsServer struct {
	cmd    *exec.Cmd
	pid    int // the server, the namespace's first process
	out    testutil.SyncBuffer
	exited chan struct{}
}

func (s *pidnsServer) Log() string { return s.out.String() }

// startPidnsServer starts the server; the returned value's pid is the
// server's host PID. Cleanup kills it (by that PID) if it still runs.
func startPidnsServer(t *testing.T, mounter, config, sock string) *pidnsServer {
	t.Helper()
	s := &pidnsServer{exited: make(chan struct{})}
	// --kill-child: unshare's own death kills the server too.
	s.cmd = exec.Command("unshare", "--pid", "--fork", "--kill-child", "--",
		mounter, "csi", "--endpoint", "unix://"+sock, "--driver-name", driverName, "--node-id", "node-1", "--config", config)
	s.cmd.Stdout, s.cmd.Stderr = &s.out, &s.out
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.cmd.Wait(); close(s.exited) }()
	t.Cleanup(func() { s.kill(t) })
	testutil.Eventually(t, 5*time.Second, fmt.Sprintf("the server process below unshare %d", s.cmd.Process.Pid), func() (bool, string) {
		s.pid = childOf(s.cmd.Process.Pid)
		return s.pid != 0, "no child yet:\n" + s.Log()
	})
	return s
}

// kill sends SIGKILL to the server (the namespace's first process, so every
// process of the namespace dies) and waits for unshare to exit.
func (s *pidnsServer) kill(t *testing.T) {
	select {
	case <-s.exited:
		return
	default:
	}
	if s.pid != 0 {
		_ = syscall.Kill(s.pid, syscall.SIGKILL)
	}
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
		t.Errorf("unshare %d outlived its server by 10s", s.cmd.Process.Pid)
	}
}

// childOf returns the first child of pid, or 0.
func childOf(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	c, _ := strconv.Atoi(f[0])
	return c
}
