package engines_test

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runc-shared/runc-shared/internal/testutil"
	"github.com/runc-shared/runc-shared/pkg/spec"
)

// dockerCLI is Debian's client, which speaks dockerd 20.10's API 1.41; a
// newer /usr/local/bin/docker may shadow it on PATH.
const dockerCLI = "/usr/bin/docker"

// TestDocker: dockerd 20.10 with everything below a temp dir (data root,
// exec root with the netns mounts, pid file, API socket, trust key),
// runc-shared registered in daemon.json by `mounter configure --engine
// docker`. dockerd starts its own managed containerd: its config, state and
// socket land under the exec and data roots and dockerd stops it, so it
// leaves no more behind than one started by the test would (the shim
// sockets in /run/containerd/s either way). The mounter is selected with
// -e: Docker 20.10 passes neither labels nor annotations to the runtime.
func TestDocker(t *testing.T) {
	testutil.CheckLeaks(t)
	s := newSetup(t, true)
	d, configured := startDockerd(t, s)
	t.Log(configured)
	raw, _ := os.ReadFile(filepath.Join(s.Dir, "daemon.json"))
	t.Logf("daemon.json:\n%s", raw)
	s.watch.lap("dockerd ready")
	if info := d.cli(t, nil, "info", "--format", "{{json .Runtimes}}"); !strings.Contains(info.stdout, `"shared"`) {
		t.Fatalf("dockerd does not list runtime shared: %v", info)
	}

	// `tar -C ROOTFS -c . | docker import - NAME`, with the tar made in Go.
	for name, rootfs := range map[string]string{"rstest-busybox": testutil.BusyboxRootfs(t), "rstest-hostusr": testutil.HostUsrRootfs(t)} {
		if r := d.cli(t, bytes.NewReader(rootfsTar(t, rootfs)), "import", "-", name); r.err != nil {
			t.Fatal(r)
		}
	}
	s.watch.lap("images imported")
	acceptance(t, s, d)
}

// startDockerd registers runc-shared as runtime "shared" in s.Dir/daemon.json
// with `mounter configure --engine docker` and starts dockerd on it, with
// everything below s.Dir (data root, exec root with the netns mounts, pid
// file, API socket, trust key); it returns the engine and what configure
// printed. daemon.json holds a key of its own first: configure must merge
// into it, not replace it; deprecated-key-path keeps dockerd from writing
// /etc/docker/key.json.
func startDockerd(t *testing.T, s *setup) (*dockerEngine, string) {
	t.Helper()
	// Fixed paths that dockerd and containerd-shim create whatever the
	// root options say.
	testutil.KeepHostDirsClean(t, "/run/docker", "/run/docker/plugins", "/run/containerd", "/run/containerd/s")
	dir := s.Dir
	daemonJSON := filepath.Join(dir, "daemon.json")
	pre, _ := json.Marshal(map[string]string{"deprecated-key-path": filepath.Join(dir, "key.json")})
	testutil.WriteFile(t, daemonJSON, string(pre))
	configured := s.configure(t, "--engine", "docker", "--config-file", daemonJSON)
	sock := filepath.Join(dir, "docker.sock")
	d := &dockerEngine{s: s, sock: sock, env: []string{"DOCKER_CONFIG=" + filepath.Join(dir, "cli")}}
	startDaemon(t, "dockerd", nil, filepath.Join(dir, "dockerd.log"), func() error {
		if err := socketReady(sock)(); err != nil {
			return err
		}
		return d.cli(t, nil, "version").err
	}, "dockerd", "--config-file", daemonJSON, "--data-root", filepath.Join(dir, "data"),
		"--exec-root", filepath.Join(dir, "exec"), "--pidfile", filepath.Join(dir, "dockerd.pid"),
		"-H", "unix://"+sock, "--iptables=false", "--ip6tables=false", "--bridge=none",
		"--cgroup-parent", cgroupParent(t, "docker"), "--log-level", "info")
	return d, configured
}

// dockerEngine drives dockerd through the Debian CLI.
type dockerEngine struct {
	s    *setup
	sock string
	env  []string
}

func (d *dockerEngine) cli(t *testing.T, stdin io.Reader, args ...string) result {
	t.Helper()
	return run(t, d.env, stdin, append([]string{dockerCLI, "-H", "unix://" + d.sock}, args...)...)
}

func (d *dockerEngine) start(t *testing.T, b box) (string, result) {
	t.Helper()
	host := d.s.Host
	args := []string{"run", "-d", "--name", b.name, "--runtime", "shared", "--network", "host",
		"-v", host + ":" + host}
	if b.sysAdmin {
		// --privileged fails here: the bounding set lacks CAP_SYS_RESOURCE.
		args = append(args, "--cap-add", "SYS_ADMIN", "--device", "/dev/fuse")
	}
	if b.mounter {
		args = append(args, "-e", spec.EnvMounter+"="+ruleName)
	}
	image := "rstest-busybox"
	if b.hostUsr {
		args = append(args, "-v", "/usr:/usr:ro")
		image = "rstest-hostusr"
	}
	// A container whose create failed stays listed as Created: remove it too.
	t.Cleanup(func() {
		if r := d.cli(t, nil, "rm", "-f", b.name); r.err != nil && !strings.Contains(r.stderr, "No such container") {
			t.Errorf("cleanup: %v", r)
		}
	})
	r := d.cli(t, nil, append(args, image, "sleep", "100000")...)
	return strings.TrimSpace(r.stdout), r
}

func (d *dockerEngine) exec(t *testing.T, id string, args ...string) result {
	t.Helper()
	return d.cli(t, nil, append([]string{"exec", id}, args...)...)
}

func (d *dockerEngine) remove(t *testing.T, id string) result {
	t.Helper()
	return d.cli(t, nil, "rm", "-f", id)
}
