//go:build bench

package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/runc-shared/runc-shared/internal/testutil"
)

// dockerCLI is Debian's client: /usr/local/bin/docker may be a newer CLI
// that speaks an API the Debian daemon (1.41) does not.
const dockerCLI = "/usr/bin/docker"

// Docker is a dockerd started for the benchmark, with its own data root,
// exec root and socket below a temp dir, so nothing of a system Docker is
// touched. It starts its own containerd there.
type Docker struct {
	Dir    string
	Sock   string
	cmd    *exec.Cmd
	exited chan struct{}
}

// StartDocker starts dockerd and waits until it answers. Cleanup removes
// its containers (see Run), stops dockerd by PID, stops what it left
// (containerd, shims: found by our dir on their command line) and unmounts
// everything below the dir (netns/default stays mounted after dockerd).
func StartDocker(t testing.TB) *Docker {
	t.Helper()
	bin := lookPath(t, "dockerd")
	if _, err := os.Stat(dockerCLI); err != nil {
		t.Fatalf("%s: %v: run scripts/deps.sh engines", dockerCLI, err)
	}
	testutil.KeepHostDirsClean(t, "/run/docker", "/run/docker/plugins", "/run/containerd", "/run/containerd/s")
	d := &Docker{Dir: testutil.TempDir(t), exited: make(chan struct{})}
	d.Sock = filepath.Join(d.Dir, "docker.sock")
	// deprecated-key-path keeps dockerd from writing /etc/docker/key.json.
	writeFile(t, filepath.Join(d.Dir, "daemon.json"), fmt.Sprintf("{%q: %q}\n", "deprecated-key-path", filepath.Join(d.Dir, "key.json")))
	log, err := os.Create(filepath.Join(d.Dir, "dockerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	d.cmd = exec.Command(bin,
		"--config-file", filepath.Join(d.Dir, "daemon.json"),
		"--data-root", filepath.Join(d.Dir, "data"),
		"--exec-root", filepath.Join(d.Dir, "exec"),
		"--pidfile", filepath.Join(d.Dir, "docker.pid"),
		"-H", "unix://"+d.Sock,
		"--iptables=false", "--ip6tables=false", "--bridge=none", "--userland-proxy=false",
		"--storage-driver=vfs", "--log-level=warn")
	d.cmd.Stdout, d.cmd.Stderr = log, log
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start dockerd: %v", err)
	}
	go func() { _ = d.cmd.Wait(); close(d.exited) }()
	t.Cleanup(func() { d.stop(t) })
	testutil.Eventually(t, 60*time.Second, "dockerd to answer", func() (bool, string) {
		_, err := d.CLI("version")
		select {
		case <-d.exited:
			t.Fatalf("dockerd exited during start-up:\n%s", d.logTail())
		default:
		}
		return err == nil, fmt.Sprintf("docker version: %v\n%s", err, d.logTail())
	})
	return d
}

func (d *Docker) logTail() string {
	b, _ := os.ReadFile(filepath.Join(d.Dir, "dockerd.log"))
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

// CLI runs the docker client against this daemon.
func (d *Docker) CLI(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, dockerCLI, append([]string{"-H", "unix://" + d.Sock}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// ExecArgv is the argv of `docker exec NAME ARGS...`.
func (d *Docker) ExecArgv(name string, args ...string) []string {
	return append([]string{dockerCLI, "-H", "unix://" + d.Sock, "exec", name}, args...)
}

// Import makes image name from a rootfs directory (tar | docker import).
func (d *Docker) Import(t testing.TB, rootfs, name string) {
	t.Helper()
	tar := exec.Command("tar", "-C", rootfs, "-c", ".")
	imp := exec.Command(dockerCLI, "-H", "unix://"+d.Sock, "import", "-", name)
	pipe, err := tar.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	imp.Stdin = pipe
	if err := tar.Start(); err != nil {
		t.Fatal(err)
	}
	out, err := imp.CombinedOutput()
	if werr := tar.Wait(); err == nil && werr != nil {
		err = werr
	}
	if err != nil {
		t.Fatalf("docker import of %s: %v: %s", rootfs, err, out)
	}
}

// Run starts a detached container (docker run -d --name NAME ARGS...) and
// removes it in cleanup.
func (d *Docker) Run(t testing.TB, name string, args ...string) {
	t.Helper()
	t.Cleanup(func() {
		if out, err := d.CLI("rm", "-f", name); err != nil && !strings.Contains(out, "No such container") {
			t.Errorf("cleanup: %v", err)
		}
	})
	if _, err := d.CLI(append([]string{"run", "-d", "--name", name}, args...)...); err != nil {
		t.Fatal(err)
	}
}

// stop stops dockerd by the PID we started, then whatever still runs with
// our dir on its command line (its containerd and shims).
func (d *Docker) stop(t testing.TB) {
	t.Helper()
	select {
	case <-d.exited:
		t.Errorf("dockerd exited before cleanup:\n%s", d.logTail())
	default:
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.exited:
		case <-time.After(30 * time.Second):
			t.Errorf("dockerd %d ignored SIGTERM for 30s; killing it", d.cmd.Process.Pid)
			_ = d.cmd.Process.Kill()
			<-d.exited
		}
	}
	for _, pid := range testutil.Pids(func(argv []string) bool { return strings.Contains(strings.Join(argv, " "), d.Dir+"/") }) {
		t.Logf("cleanup: stopping process %d left by dockerd", pid)
		testutil.Stop(pid, 5*time.Second)
	}
}

// waitGone waits until no process has target as its last argument (the
// FUSE daemon of a mount at target, after its unmount), up to timeout.
func waitGone(target string, timeout time.Duration) error {
	var pids []int
	if testutil.Poll(timeout, func() bool {
		pids = testutil.Pids(func(argv []string) bool { return filepath.Clean(argv[len(argv)-1]) == target })
		return len(pids) == 0
	}) {
		return nil
	}
	return fmt.Errorf("processes %v serving %s still run %v after its unmount", pids, target, timeout)
}
