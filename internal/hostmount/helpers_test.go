package hostmount

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// requireRoot fails (never skips: CI runs as root) when not root.
func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test makes mounts and must run as root")
	}
}

// realTempDir is t.TempDir with symlinks resolved (TMPDIR may be a link), so
// its paths compare equal to mountinfo's.
func realTempDir(t testing.TB) string {
	t.Helper()
	d, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// privateBase returns a temp dir bound onto itself and made rprivate, so the
// test does not depend on the host's propagation (private here, shared on a
// systemd host) and nothing it mounts below propagates anywhere. The bind and
// everything below it are detached in Cleanup, before TempDir removes files.
func privateBase(t testing.TB) string {
	t.Helper()
	requireRoot(t)
	d := realTempDir(t)
	if err := unix.Mount(d, d, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		t.Fatalf("bind %s: %v", d, err)
	}
	t.Cleanup(func() { detachQuiet(t, d) })
	if err := unix.Mount("", d, "", unix.MS_PRIVATE|unix.MS_REC, ""); err != nil {
		t.Fatalf("make %s rprivate: %v", d, err)
	}
	return d
}

// detachQuiet detaches every mount stacked on target; not mounted is fine.
func detachQuiet(t testing.TB, target string) {
	t.Helper()
	for range 16 {
		err := unix.Unmount(target, unix.MNT_DETACH)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			return
		}
		if err != nil {
			t.Errorf("cleanup: detach %s: %v", target, err)
			return
		}
	}
}

func mkdirs(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// mountsAt counts the mountinfo entries whose mount point is exactly p.
func mountsAt(t *testing.T, p string) int {
	t.Helper()
	ms, err := mountinfo.GetMounts(func(m *mountinfo.Info) (bool, bool) {
		return m.Mountpoint != p, false
	})
	if err != nil {
		t.Fatal(err)
	}
	return len(ms)
}

// startBindfs runs `bindfs -f [opts] src mnt` as our own child and waits until the
// FUSE mount is there. Cleanup kills that process (by its PID) and detaches
// the mount.
func startBindfs(t *testing.T, src, mnt string, opts ...string) *exec.Cmd {
	t.Helper()
	requireRoot(t)
	mkdirs(t, src, mnt)
	var out bytes.Buffer
	cmd := exec.Command("bindfs", append(append([]string{"-f"}, opts...), src, mnt)...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start bindfs (Debian package bindfs): %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(unix.SIGCONT)
		_ = cmd.Process.Kill()
		<-exited
		detachQuiet(t, mnt)
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if ok, err := isMountPoint(mnt); err == nil && ok {
			return cmd
		}
		select {
		case <-exited:
			t.Fatalf("bindfs %s %s exited before mounting: %s", src, mnt, out.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("bindfs %s %s did not mount in 10 s: %s", src, mnt, out.String())
		}
	}
}

// killBindfs SIGKILLs our bindfs child: its FUSE connection aborts and the
// mount stays behind, dead (ENOTCONN).
func killBindfs(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	// Cleanup's goroutine reaps it; wait for the process to be gone.
	deadline := time.Now().Add(5 * time.Second)
	for unix.Kill(cmd.Process.Pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("bindfs %d did not die", cmd.Process.Pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
