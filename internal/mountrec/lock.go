package mountrec

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

// LockPath is the lock file of key: hidden, and not named *.json, so no
// listing of records takes it for one.
func (d Records[T, P]) LockPath(key string) string {
	sum := sha256.Sum256([]byte(key))
	return filepath.Join(d.Dir, "."+hex.EncodeToString(sum[:16])+".lock")
}

// Lock takes the exclusive lock of key across processes, waiting for it
// until ctx ends, and returns the function that releases it. It is a
// flock(2) on LockPath: the records directory is one directory for every
// process that writes records (a server in its mounter container reaches
// the host's state dir through a bind mount of it), and flock(2) locks an
// open file description of the inode, so each call opens the file anew and
// two calls of one process exclude each other as two processes do.
//
// A lock file lives only while its lock is held or waited for: the release
// removes it before it unlocks; the file of a holder killed meanwhile (the
// kernel drops its lock) is taken over and removed by the key's next Lock.
// A waiter that had opened the removed file gets its lock on an inode
// nobody else will lock again; so after locking, the lock is the key's
// only while the path still names the locked file, and otherwise Lock
// opens it anew.
func (d Records[T, P]) Lock(ctx context.Context, key string) (func(), error) {
	path := d.LockPath(key)
	if err := os.MkdirAll(d.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("create the %s: %w", P(nil).words().dir, err)
	}
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

// lockFile opens path (creating it) and locks it, polling until ctx ends:
// a blocking flock(2) cannot be given up. It returns nil without an error
// when the file it locked is no longer the one at path.
func lockFile(ctx context.Context, path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, err
	}
	for pause := time.Millisecond; ; pause = min(2*pause, 50*time.Millisecond) {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			_ = f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			err := fmt.Errorf("its lock file %s is held by %s: %w", path, holder(f), ctx.Err())
			_ = f.Close()
			return nil, err
		case <-t.C:
		}
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
