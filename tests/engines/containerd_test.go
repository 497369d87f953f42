package engines_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/runc-shared/runc-shared/internal/config"
	"github.com/runc-shared/runc-shared/internal/testutil"
	"github.com/runc-shared/runc-shared/pkg/spec"
)

// containerd is a containerd this test started, all state below dir.
type containerd struct {
	dir    string
	socket string
	d      *daemon
}

// startContainerd starts containerd with root, state, sockets and the opt
// plugin's dir below dir. extraConfig is appended to the config (TOML).
// RUNC_SHARED_CONFIG goes into its environment: the CRI plugin and ctr pass
// no arguments to a runtime, and containerd's shims (and the runtimes they
// run) inherit containerd's environment.
func startContainerd(t *testing.T, s *setup, name, configText string) *containerd {
	t.Helper()
	dir := filepath.Join(s.Dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	c := &containerd{dir: dir, socket: filepath.Join(dir, "c.sock")}
	cfg := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfg, []byte(configText), 0o644); err != nil {
		t.Fatal(err)
	}
	c.d = startDaemon(t, name, []string{config.EnvVar + "=" + s.Config}, filepath.Join(dir, "containerd.log"),
		func() error {
			if err := socketReady(c.socket)(); err != nil {
				return err
			}
			return run(t, nil, nil, "ctr", "--address", c.socket, "version").err
		}, "containerd", "--config", cfg)
	return c
}

// baseContainerdConfig is the part of every test containerd's config that
// keeps it off the host's paths.
func baseContainerdConfig(dir string) string {
	return fmt.Sprintf(`root = %q
state = %q

[grpc]
  address = %q

[debug]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), filepath.Join(dir, "c.sock"), filepath.Join(dir, "opt"))
}

// TestContainerdCtr: containerd 1.6 driven by ctr with --runc-binary
// bin/runc-shared and --annotation, images imported from OCI archives.
func TestContainerdCtr(t *testing.T) {
	testutil.CheckLeaks(t)
	s := newSetup(t, false)
	// containerd-shim-runc-v2 puts its socket in /run/containerd/s whatever
	// the state dir says.
	testutil.KeepHostDirsClean(t, "/run/containerd", "/run/containerd/s")
	dir := filepath.Join(s.Dir, "containerd")
	c := startContainerd(t, s, "containerd", "version = 2\n"+`disabled_plugins = ["io.containerd.grpc.v1.cri"]`+"\n"+baseContainerdConfig(dir))
	s.watch.lap("containerd ready")

	e := &ctrEngine{s: s, c: c, cgroup: cgroupParent(t, "ctr"), runcRoot: filepath.Join(dir, "runc"), fifo: filepath.Join(dir, "fifo")}
	images := filepath.Join(s.Dir, "images")
	if err := os.Mkdir(images, 0o755); err != nil {
		t.Fatal(err)
	}
	for ref, rootfs := range map[string]string{busyboxRef: testutil.BusyboxRootfs(t), hostUsrRef: testutil.HostUsrRootfs(t)} {
		must(t, nil, nil, "ctr", "--address", c.socket, "images", "import", ociArchive(t, images, rootfs, ref, []string{"sleep", "100000"}))
	}
	s.watch.lap("images imported")
	acceptance(t, s, e)
}

const (
	busyboxRef = "localhost/rstest/busybox:1"
	hostUsrRef = "localhost/rstest/hostusr:1"
)

// ctrEngine drives containerd with ctr.
type ctrEngine struct {
	s        *setup
	c        *containerd
	cgroup   string // cgroup parent
	runcRoot string // ctr --runc-root: runc's state below the temp dir
	fifo     string // ctr --fifo-dir: else /run/containerd/fifo
	execs    atomic.Int64
}

func (e *ctrEngine) ctr(t *testing.T, args ...string) result {
	t.Helper()
	return run(t, nil, nil, append([]string{"ctr", "--address", e.c.socket}, args...)...)
}

func (e *ctrEngine) start(t *testing.T, b box) (string, result) {
	t.Helper()
	host := e.s.Host
	args := []string{"run", "-d", "--fifo-dir", e.fifo, "--runc-binary", testutil.Bin(t, "runc-shared"),
		"--runc-root", e.runcRoot, "--cgroup", e.cgroup + "/" + b.name, "--net-host",
		"--mount", "type=bind,src=" + host + ",dst=" + host + ",options=rbind"}
	if b.sysAdmin {
		// --privileged fails here: the bounding set lacks CAP_SYS_RESOURCE.
		args = append(args, "--cap-add", "CAP_SYS_ADMIN", "--device", "/dev/fuse")
	}
	if b.mounter {
		args = append(args, "--annotation", spec.AnnotationMounter+"="+ruleName)
	}
	image := busyboxRef
	if b.hostUsr {
		args = append(args, "--mount", "type=bind,src=/usr,dst=/usr,options=rbind:ro")
		image = hostUsrRef
	}
	t.Cleanup(func() { e.cleanup(t, b.name) })
	r := e.ctr(t, append(args, image, b.name, "sleep", "100000")...)
	return b.name, r
}

// cleanup removes the task (if any) and the container (if any).
func (e *ctrEngine) cleanup(t *testing.T, id string) {
	if r := e.remove(t, id); r.err != nil && !strings.Contains(r.stderr, "not found") {
		t.Errorf("cleanup: %v", r)
	}
}

func (e *ctrEngine) exec(t *testing.T, id string, args ...string) result {
	t.Helper()
	execID := fmt.Sprintf("exec-%d", e.execs.Add(1))
	return e.ctr(t, append([]string{"task", "exec", "--fifo-dir", e.fifo, "--exec-id", execID, id}, args...)...)
}

// remove kills and deletes the task, then the container and its snapshot.
func (e *ctrEngine) remove(t *testing.T, id string) result {
	t.Helper()
	if r := e.ctr(t, "task", "delete", "--force", id); r.err != nil && !strings.Contains(r.stderr, "not found") {
		return r
	}
	return e.ctr(t, "container", "delete", id)
}
