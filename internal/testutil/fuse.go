package testutil

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// DeadFuseMount leaves at target what a stopped mounter container leaves on the
// host: a FUSE mount whose daemon is gone, so that every access fails with ENOTCONN
// ("Transport endpoint is not connected") while umount still works. It makes
// target, mounts `bindfs -f` of an empty dir there and kills bindfs (the child
// it started). Cleanup detaches target.
func DeadFuseMount(t testing.TB, target string) {
	t.Helper()
	RequireRoot(t)
	if _, err := exec.LookPath("bindfs"); err != nil {
		t.Fatal("bindfs not found: run scripts/deps.sh base")
	}
	src := TempDir(t)
	target = filepath.Clean(target)
	if err := os.MkdirAll(target, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		err := unix.Unmount(target, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW)
		if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			t.Errorf("unmount dead FUSE mount %s: %v", target, err)
		}
	})
	out, err := os.CreateTemp("", "rstest-bindfs-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(out.Name())
	defer out.Close()
	cmd := exec.Command("bindfs", "-f", src, target)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start bindfs: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	defer func() { _ = cmd.Process.Kill(); <-exited }()
	Eventually(t, 10*time.Second, "bindfs to mount "+target, func() (bool, string) {
		if m := MountAt(t, target); m != nil && strings.HasPrefix(m.FSType, "fuse") {
			return true, ""
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(out.Name())
			t.Fatalf("bindfs %s %s exited before mounting: %s", src, target, log)
		default:
		}
		return false, "not mounted"
	})
	_ = cmd.Process.Kill()
	<-exited
	if _, err := os.Stat(target); !errors.Is(err, syscall.ENOTCONN) {
		t.Fatalf("stat %s after killing bindfs: %v, want ENOTCONN", target, err)
	}
}
