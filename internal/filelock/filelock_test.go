package filelock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openOn counts this process's open files on path (removed or not).
func openOn(t *testing.T, path string) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err == nil && strings.TrimSuffix(l, " (deleted)") == path {
			n++
		}
	}
	return n
}

// flockByHand locks path from a file of its own, as another process does.
func flockByHand(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatalf("lock %s by hand: %v", path, err)
	}
	return f
}

// TestLock: a held key waits another Lock of it until ctx ends (and that
// one keeps no file open), other keys do not wait, and the release leaves
// no file behind.
func TestLock(t *testing.T) {
	dir := t.TempDir()
	unlock, err := Lock(context.Background(), dir, "vol-1")
	if err != nil {
		t.Fatal(err)
	}
	path := Path(dir, "vol-1")
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("lock file while held: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if again, err := Lock(ctx, dir, "vol-1"); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), path+" is held by another call of this process") {
		if again != nil {
			again()
		}
		t.Fatalf("second Lock of a held key: %v; want the deadline, naming %s and its holder", err, path)
	}
	if waited := time.Since(start); waited < 100*time.Millisecond {
		t.Errorf("second Lock gave up after %v, before its deadline", waited)
	}
	if n := openOn(t, path); n != 1 {
		t.Errorf("%d files open on %s after the given-up Lock, want the holder's only", n, path)
	}

	other, err := Lock(ctx, dir, "vol-2")
	if err != nil {
		t.Fatalf("Lock of another key while vol-1 is held: %v", err)
	}
	other()
	unlock()
	if ents, err := os.ReadDir(dir); err != nil || len(ents) != 0 {
		t.Errorf("directory after the releases: %v, %v; want it empty", ents, err)
	}
	if n := openOn(t, path); n != 0 {
		t.Errorf("%d files left open on %s", n, path)
	}
}

// TestLockRemovedWhileWaiting: the holder removes the lock file as it
// releases it; a waiter that had opened it then locks a file that is no
// longer the key's, while a newcomer holds the new one. The waiter must
// see that and wait for the new file: never two holders at once.
func TestLockRemovedWhileWaiting(t *testing.T) {
	dir := t.TempDir()
	path := Path(dir, "vol-1")
	first := flockByHand(t, path)
	got := make(chan func(), 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go func() {
		unlock, err := Lock(ctx, dir, "vol-1")
		if err != nil {
			t.Error(err)
			unlock = func() {}
		}
		got <- unlock
	}()
	deadline := time.Now().Add(5 * time.Second)
	for openOn(t, path) != 2 {
		if time.Now().After(deadline) {
			t.Fatal("the waiter never opened the lock file")
		}
		time.Sleep(time.Millisecond)
	}
	// The first holder's release, and a newcomer that takes the key before
	// the waiter polls again.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	next := flockByHand(t, path)
	_ = first.Close()
	select {
	case unlock := <-got:
		unlock()
		t.Fatal("Lock returned on the removed file while the new one is held: two holders")
	case <-time.After(300 * time.Millisecond):
	}
	_ = next.Close()
	var unlock func()
	select {
	case unlock = <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("Lock did not take the released new file")
	}
	// What the waiter holds is the file at the path.
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatalf("the lock file while held: %v", err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); !errors.Is(err, unix.EWOULDBLOCK) {
		t.Errorf("lock of the file at %s while the waiter holds it: %v, want EWOULDBLOCK", path, err)
	}
	unlock()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("lock file after the release: %v, want it removed", err)
	}
}

// TestLockHeldByAnotherProcess: flock(1) holds the key's lock file as
// another process would; Lock waits for it, names it when it gives up, and
// takes the file over once that process is gone.
func TestLockHeldByAnotherProcess(t *testing.T) {
	dir := t.TempDir()
	path := Path(dir, "vol-1")
	// flock holds the lock until cat, its command, reads the end of its
	// input; -o keeps the lock out of cat.
	cmd := exec.Command("flock", "-o", path, "cat")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := false
	t.Cleanup(func() {
		if !exited {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	deadline := time.Now().Add(5 * time.Second)
	for {
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err == nil {
			err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
			_ = f.Close()
		}
		if errors.Is(err, unix.EWOULDBLOCK) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("flock never took %s: %v", path, err)
		}
		time.Sleep(time.Millisecond)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	want := fmt.Sprintf("%s is held by process %d", path, cmd.Process.Pid)
	if unlock, err := Lock(ctx, dir, "vol-1"); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), want) {
		if unlock != nil {
			unlock()
		}
		t.Fatalf("Lock while another process holds the key: %v; want the deadline and %q", err, want)
	}
	_ = stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("flock: %v", err)
	}
	exited = true
	ctx, cancel = context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	unlock, err := Lock(ctx, dir, "vol-1")
	if err != nil {
		t.Fatalf("Lock once the other process is gone: %v", err)
	}
	unlock()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("the lock file the other process left, after the release: %v; want it removed", err)
	}
}
