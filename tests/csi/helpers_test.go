// Package csi_test drives `mounter csi` end to end: the real binary on a
// unix socket, a real glusterd on 127.0.0.2, csi-sanity against it, and a
// mounter container started through runc-shared whose main process is the
// CSI server.
package csi_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/runc-shared/runc-shared/internal/testutil"
	"github.com/runc-shared/runc-shared/pkg/spec"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// driverName is the CSI driver name the tests serve.
const driverName = "glusterfs.csi.runc-shared.io"

// annotationValue marks the test mounters; the rule matches on it.
const annotationValue = "glusterfs-csi"

// env is a configuration with one glusterfs rule whose allowlist is Shared
// (it stands for /var/lib/kubelet) and a state dir.
type env struct {
	Dir      string // temp dir: config, state, sockets
	Shared   string
	StateDir string
	Config   string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := testutil.TempDir(t)
	e := &env{Dir: dir, Shared: testutil.SharedDir(t), StateDir: filepath.Join(dir, "state"), Config: filepath.Join(dir, "config.toml")}
	testutil.WriteFile(t, e.Config, testutil.GlusterRuleConfig(e.StateDir, e.Shared, spec.AnnotationMounter, annotationValue, ""))
	return e
}

// server is a `mounter csi` process started by a test.
type server struct {
	Cmd      *exec.Cmd
	Socket   string
	out      testutil.SyncBuffer
	exited   chan struct{}
	waitErr  error
	stopOnce sync.Once
}

// Log is what the server wrote so far.
func (s *server) Log() string { return s.out.String() }

// startServer runs bin/mounter csi on the host with args after the
// required ones, waits for its socket and stops it (SIGTERM) in cleanup.
func startServer(t *testing.T, e *env, extra ...string) *server {
	t.Helper()
	s := &server{Socket: filepath.Join(e.Dir, "csi.sock"), exited: make(chan struct{})}
	args := append([]string{"csi", "--endpoint", "unix://" + s.Socket, "--driver-name", driverName,
		"--node-id", "node-1", "--config", e.Config}, extra...)
	s.Cmd = exec.Command(testutil.Bin(t, "mounter"), args...)
	s.Cmd.Stdout, s.Cmd.Stderr = &s.out, &s.out
	if err := s.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.waitErr = s.Cmd.Wait(); close(s.exited) }()
	t.Cleanup(func() {
		if err := s.stop(30 * time.Second); err != nil {
			t.Errorf("%v\n%s", err, s.Log())
		}
	})
	testutil.WaitSocket(t, s.Socket, 10*time.Second, s.exited, s.Log)
	return s
}

// stop sends SIGTERM (to the process this test started, by its PID) and
// waits for a clean exit.
func (s *server) stop(timeout time.Duration) error {
	var err error
	s.stopOnce.Do(func() {
		select {
		case <-s.exited:
		default:
			_ = s.Cmd.Process.Signal(syscall.SIGTERM)
		}
		select {
		case <-s.exited:
			if s.waitErr != nil {
				err = fmt.Errorf("mounter csi exited with %w after SIGTERM", s.waitErr)
			}
		case <-time.After(timeout):
			_ = s.Cmd.Process.Kill()
			<-s.exited
			err = fmt.Errorf("mounter csi did not stop within %v of SIGTERM", timeout)
		}
	})
	return err
}

func dial(t *testing.T, sock string) *grpc.ClientConn {
	t.Helper()
	c, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// clients are the CSI services of one socket.
type clients struct {
	Identity   csipb.IdentityClient
	Node       csipb.NodeClient
	Controller csipb.ControllerClient
}

func connect(t *testing.T, sock string) *clients {
	c := dial(t, sock)
	return &clients{Identity: csipb.NewIdentityClient(c), Node: csipb.NewNodeClient(c), Controller: csipb.NewControllerClient(c)}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

var rwCap = &csipb.VolumeCapability{
	AccessMode: &csipb.VolumeCapability_AccessMode{Mode: csipb.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER},
	AccessType: &csipb.VolumeCapability_Mount{Mount: &csipb.VolumeCapability_MountVolume{}},
}

// mountsUnder lists the host's mounts at or below dir as "path type".
func mountsUnder(t *testing.T, dir string) []string {
	var out []string
	for _, m := range testutil.MountsUnder(t, dir) {
		if m.Mountpoint != dir {
			out = append(out, m.Mountpoint+" "+m.FSType)
		}
	}
	return out
}

// brickEntries lists the brick's top-level entries, glusterd's own .glusterfs
// excluded.
func brickEntries(t *testing.T, brick string) []string {
	ents, err := os.ReadDir(brick)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if e.Name() != ".glusterfs" {
			out = append(out, e.Name())
		}
	}
	return out
}
