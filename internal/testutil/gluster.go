package testutil

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Gluster is a glusterd started by Glusterd, serving one started single-brick volume.
type Gluster struct {
	Server string // address glusterd and the brick listen on: 127.0.0.2
	Volume string // volume name: v0
	Brick  string // brick directory on the host
	Dir    string // glusterd state: glusterd.vol, glusterd/ (working dir), run/, log/
	Sock   string // glusterd's CLI socket (gluster --glusterd-sock)

	cmd    *exec.Cmd
	exited chan struct{}
	brick  proc
}

// HostGlusterDirs are the directories compiled into glusterd and its CLI that
// no option moves: the brick's socket and log, cmd_history.log, the first
// start's set-up (geo-replication, snaps, ss_brick, gfproxy). Glusterd runs
// glusterd and the CLI in a mount namespace of their own where an empty tmpfs
// covers each of them, so the host's copies stay as they were.
var HostGlusterDirs = []string{"/var/lib/glusterd", "/var/log/glusterfs", "/var/run/gluster"}

// glusterd listens on a fixed port, so one runs at a time per test binary; Glusterd
// waits for one from elsewhere to go away.
var glusterMu sync.Mutex

const glusterdPort = 24007

const glusterdVol = `volume management
    type mgmt/glusterd
    option working-directory %[1]s/glusterd
    option run-directory %[1]s/run
    option glusterd-sockfile %[1]s/run/glusterd.socket
    option transport-type socket
    option transport.socket.bind-address %[2]s
    option transport.socket.listen-port %[3]d
    option transport.socket.keepalive-time 10
    option transport.socket.keepalive-interval 2
    option transport.socket.read-fail-log off
    option ping-timeout 0
    option event-threads 1
    option max-port 60999
end-volume
`

// Glusterd starts `glusterd -N` bound to 127.0.0.2 (glusterd refuses 127.0.0.1 and
// localhost for bricks) with its working dir, run dir, CLI socket and logs in a
// temp dir, then creates and starts volume v0 with one brick. glusterd, its brick
// and every CLI call run in a mount namespace of their own with a tmpfs over each
// of HostGlusterDirs (see hideHostDirs). If another glusterd holds 127.0.0.2:24007
// it waits up to a minute for it to go. Cleanup stops and deletes the volume and
// stops glusterd and the brick process by the PIDs recorded at start. One per test
// at a time: a second call in the same test deadlocks.
func Glusterd(t testing.TB) *Gluster {
	t.Helper()
	RequireRoot(t)
	for _, c := range []string{"glusterd", "gluster", "mount.glusterfs"} {
		LookPath(t, c)
	}
	glusterMu.Lock()
	t.Cleanup(glusterMu.Unlock)
	const server = "127.0.0.2"
	if pid := waitPortFree(server, glusterdPort, time.Minute); pid != 0 {
		t.Fatalf("%s:%d is held by pid %d %q for over a minute: tests start their own glusterd, stop that one",
			server, glusterdPort, pid, cmdline(pid))
	}

	dir := TempDir(t)
	g := &Gluster{Server: server, Volume: "v0", Dir: dir, Brick: filepath.Join(dir, "brick"),
		Sock: filepath.Join(dir, "run", "glusterd.socket"), exited: make(chan struct{})}
	if err := makeDirs(dir, []string{"glusterd", "run", "log", "brick"}, nil); err != nil {
		t.Fatal(err)
	}
	vol := filepath.Join(dir, "glusterd.vol")
	WriteFile(t, vol, fmt.Sprintf(glusterdVol, dir, server, glusterdPort))
	out, err := os.Create(filepath.Join(dir, "log", "glusterd.out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()

	start := time.Now()
	// unshare execs sh, which execs glusterd: the PID is glusterd's. The
	// namespace and its tmpfs mounts go when glusterd and its brick exit;
	// private propagation keeps them off the host.
	g.cmd = exec.Command("unshare", "--mount", "--propagation", "private", "--", "sh", "-c", hideHostDirs(HostGlusterDirs)+`exec "$@"`, "sh",
		"glusterd", "-N", "-f", vol, "-p", filepath.Join(dir, "run", "glusterd.pid"), "-l", filepath.Join(dir, "log", "glusterd.log"))
	g.cmd.Stdout, g.cmd.Stderr = out, out
	if err := g.cmd.Start(); err != nil {
		t.Fatalf("start glusterd: %v", err)
	}
	go func() { _ = g.cmd.Wait(); close(g.exited) }()
	t.Cleanup(func() { g.stop(t) })

	WaitSocket(t, g.Sock, 30*time.Second, g.exited, g.logTail)
	// The socket accepts before glusterd answers the CLI.
	Eventually(t, 30*time.Second, "glusterd to answer the CLI", func() (bool, string) {
		_, err := g.cli(10*time.Second, "pool", "list")
		return err == nil, fmt.Sprintf("%v\n%s", err, g.logTail())
	})
	ready := time.Since(start)
	// Someone else's glusterd may have taken the port between the check and our start.
	if owner := socketOwner(tcpListenInode(server, glusterdPort)); owner != g.cmd.Process.Pid {
		t.Fatalf("%s:%d is held by pid %d %q, not by our glusterd %d: stop the other glusterd",
			server, glusterdPort, owner, cmdline(owner), g.cmd.Process.Pid)
	}
	for _, args := range [][]string{{"volume", "create", g.Volume, server + ":" + g.Brick, "force"}, {"volume", "start", g.Volume}} {
		if _, err := g.CLI(t, args...); err != nil {
			t.Fatal(err)
		}
	}
	if err := g.findBrick(); err != nil {
		t.Fatal(err)
	}
	total := time.Since(start)
	t.Logf("glusterd (pid %d) serving %s:/%s (brick pid %d) ready in %v (glusterd %v, volume create+start %v)",
		g.cmd.Process.Pid, server, g.Volume, g.brick.pid, total.Round(time.Millisecond),
		ready.Round(time.Millisecond), (total - ready).Round(time.Millisecond))
	return g
}

// hideHostDirs returns the shell commands that cover each of dirs with an empty
// tmpfs in the current mount namespace. A directory the host lacks
// would be created on the host's file system by glusterd (a mkdir reaches the
// file system whatever the namespace), so the tmpfs then covers its nearest
// existing parent, and the directory is made inside that tmpfs.
func hideHostDirs(dirs []string) string {
	var b strings.Builder
	for _, d := range dirs {
		p := d
		r, err := filepath.EvalSymlinks(p)
		for ; err != nil; r, err = filepath.EvalSymlinks(p) {
			p = filepath.Dir(p)
		}
		fmt.Fprintf(&b, "mount -t tmpfs -o mode=0755 rstest-gluster %s && ", r)
		if p != d {
			fmt.Fprintf(&b, "mkdir -p %s && ", d)
		}
	}
	return b.String()
}

func (g *Gluster) logTail() string {
	b, _ := os.ReadFile(filepath.Join(g.Dir, "log", "glusterd.log"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return "glusterd.log tail:\n" + string(b)
}

// CLI runs `gluster --mode=script ARGS` against this glusterd, in its mount
// namespace: the CLI writes below /var/lib/glusterd and /var/log/glusterfs too.
func (g *Gluster) CLI(t testing.TB, args ...string) (string, error) {
	t.Helper()
	return g.cli(time.Minute, args...)
}

func (g *Gluster) cli(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	argv := append([]string{"--target", strconv.Itoa(g.cmd.Process.Pid), "--mount", "--", "gluster", "--mode=script", "--glusterd-sock=" + g.Sock,
		"--log-file=" + filepath.Join(g.Dir, "log", "cli.log"), "--timeout=" + strconv.Itoa(int(timeout.Seconds()))}, args...)
	out, err := exec.CommandContext(ctx, "nsenter", argv...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("gluster %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// findBrick records the brick process from the pid file glusterd wrote for it.
func (g *Gluster) findBrick() error {
	files, _ := filepath.Glob(filepath.Join(g.Dir, "run", "vols", g.Volume, "*.pid"))
	if len(files) != 1 {
		return fmt.Errorf("want one brick pid file in %s/run/vols/%s, found %v", g.Dir, g.Volume, files)
	}
	raw, err := os.ReadFile(files[0])
	if err != nil {
		return err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		return fmt.Errorf("brick pid file %s: %w", files[0], err)
	}
	if argv := cmdline(pid); !slices.Contains(argv, g.Brick) {
		return fmt.Errorf("pid %d from %s is not our brick process: %q", pid, files[0], argv)
	}
	g.brick, err = findProc(pid)
	return err
}

// stop tears down in order: volume, brick, glusterd, anything else started with our
// dir on its command line.
func (g *Gluster) stop(t testing.TB) {
	t.Helper()
	select {
	case <-g.exited:
		t.Errorf("glusterd exited before cleanup\n%s", g.logTail())
	default:
		for _, args := range [][]string{{"volume", "stop", g.Volume, "force"}, {"volume", "delete", g.Volume}} {
			if _, err := g.cli(30*time.Second, args...); err != nil {
				t.Logf("cleanup: %v", err)
			}
		}
	}
	if !g.brick.stop(5 * time.Second) {
		t.Errorf("brick process %d survived SIGKILL", g.brick.pid)
	}
	_ = g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.exited:
	case <-time.After(10 * time.Second):
		t.Errorf("glusterd %d ignored SIGTERM for 10s; killing it", g.cmd.Process.Pid)
		_ = g.cmd.Process.Kill()
		<-g.exited
	}
	for _, p := range findProcs(func(argv []string) bool { return strings.Contains(strings.Join(argv, " "), g.Dir+"/") }) {
		t.Errorf("process %d %q from our glusterd outlived it; stopping it", p.pid, cmdline(p.pid))
		p.stop(5 * time.Second)
	}
}
