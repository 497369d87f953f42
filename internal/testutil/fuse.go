package testutil

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Bindfs mounts `bindfs -f [opts] src target` (a real FUSE filesystem that
// needs no server), run as the test's own child, and returns that child once
// the mount is there; src and target are made. Cleanup kills the child (by
// its PID), then unmounts target (UnmountLater).
func Bindfs(t testing.TB, src, target string, opts ...string) *exec.Cmd {
	t.Helper()
	RequireRoot(t)
	bindfs := LookPath(t, "bindfs")
	target = filepath.Clean(target)
	for _, d := range []string{src, target} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var out SyncBuffer
	cmd := exec.Command(bindfs, append(append([]string{"-f"}, opts...), src, target)...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start bindfs: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	UnmountLater(t, target) // after the kill below: cleanups run last-in first-out
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
	Eventually(t, 10*time.Second, "bindfs to mount "+target, func() (bool, string) {
		if m := MountAt(t, target); m != nil && strings.HasPrefix(m.FSType, "fuse") {
			return true, ""
		}
		select {
		case <-exited:
			t.Fatalf("bindfs %s %s exited before mounting: %s", src, target, out.String())
		default:
		}
		return false, "not mounted"
	})
	return cmd
}

// DeadFuseMount leaves at target what a stopped mounter container leaves on the
// host: a FUSE mount whose daemon is gone, so that every access fails with ENOTCONN
// ("Transport endpoint is not connected") while umount still works. It mounts
// Bindfs of an empty dir at target and kills bindfs. Cleanup detaches target.
func DeadFuseMount(t testing.TB, target string) {
	t.Helper()
	cmd := Bindfs(t, TempDir(t), target)
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	Eventually(t, 10*time.Second, "the FUSE mount at "+target+" to be dead", func() (bool, string) {
		_, err := os.Stat(target)
		return errors.Is(err, syscall.ENOTCONN), fmt.Sprintf("stat: %v, want ENOTCONN", err)
	})
}
