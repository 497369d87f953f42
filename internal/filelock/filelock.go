// Package filelock is the one place for lock files: an exclusive flock(2)
// per key in a directory, which holds between processes as it does between
// calls of one process. It never holds a lock past the function it returns,
// and leaves no file behind once nobody holds or waits for the lock.
package filelock

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Path is the lock file of key in dir: hidden, named by a hash of the key
// (a key can be a path), and not named *.json, so that no listing of
// records beside it takes it for one.
func Path(dir, key string) string {
	sum := sha256.Sum256([]byte(key))
	return filepath.Join(dir, "."+hex.EncodeToString(sum[:16])+".lock")
}

// Lock takes the exclusive lock of key in dir, an existing directory, and
// returns the function that releases it. With a ctx that can end, it waits
// until ctx ends; with one that cannot (context.Background), it blocks in
// flock(2) as long as it takes.
//
// flock(2) locks an open file description of the inode (flock(2), NOTES), so
// each call opens the file anew and two calls of one process exclude each
// other as two processes do. The release removes the file before it
// unlocks; the file of a holder killed meanwhile (the kernel drops its lock)
// is taken over and removed by the key's next Lock. A waiter that had opened
// the removed file gets its lock on an inode nobody else will lock again; so
// after locking, the lock is the key's only while the path still names the
// locked file, and otherwise Lock opens it anew.
func Lock(ctx context.Context, dir, key string) (func(), error) {
	path := Path(dir, key)
	for {
		f, err := lockFile(ctx, path)
		if err != nil {
			return nil, err
		}
		if f != nil {
			return func() {
				// Removed while still locked: a waiter that then locks
				// the removed file finds that out and opens the new one.
				_ = os.Remove(path)
				_ = f.Close()
			}, nil
		}
	}
}

// lockFile opens path (creating it) and locks it. It returns nil without an
// error when the file it locked is no longer the one at path.
func lockFile(ctx context.Context, path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, err
	}
	if err := flock(ctx, f); err != nil {
		_ = f.Close()
		return nil, err
	}
	var locked, named unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &locked); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("fstat %s: %w", path, err)
	}
	err = unix.Lstat(path, &named)
	if err == nil && named.Dev == locked.Dev && named.Ino == locked.Ino {
		return f, nil
	}
	_ = f.Close()
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return nil, fmt.Errorf("lstat %s: %w", path, err)
	}
	return nil, nil
}

// flock locks f, blocking when ctx cannot end, else polling until it does:
// a blocking flock(2) cannot be given up.
func flock(ctx context.Context, f *os.File) error {
	how := unix.LOCK_EX
	if ctx.Done() != nil {
		how |= unix.LOCK_NB
	}
	for pause := time.Millisecond; ; pause = min(2*pause, 50*time.Millisecond) {
		err := unix.Flock(int(f.Fd()), how)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, unix.EINTR):
			continue
		case !errors.Is(err, unix.EWOULDBLOCK):
			return fmt.Errorf("lock %s: %w", f.Name(), err)
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("its lock file %s is held by %s: %w", f.Name(), holder(f), ctx.Err())
		case <-t.C:
		}
	}
}

// holder says who holds the flock of f's file, from /proc/locks (proc(5)):
// its lines read "1: FLOCK  ADVISORY  WRITE <pid> <major>:<minor>:<inode>
// 0 EOF", major and minor in hex, with "->" after the number for a waiter.
// The pid is as this process's PID namespace sees it, and 0 for a process
// it does not see (from a mounter's server: the host's `mounter recover`).
func holder(f *os.File) string {
	const unknown = "another call"
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return unknown
	}
	data, err := os.ReadFile("/proc/locks")
	if err != nil {
		return unknown
	}
	file := fmt.Sprintf("%02x:%02x:%d", unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino)
	for line := range strings.Lines(string(data)) {
		fields := strings.Fields(line)
		if len(fields) != 8 || fields[1] != "FLOCK" || fields[5] != file {
			continue
		}
		switch pid, err := strconv.Atoi(fields[4]); {
		case err != nil:
			return unknown
		case pid == 0:
			return "a process outside this PID namespace (such as `mounter recover` on the host)"
		case pid == os.Getpid():
			return "another call of this process"
		default:
			return fmt.Sprintf("process %d", pid)
		}
	}
	return unknown
}
