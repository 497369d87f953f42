package hostmount

import (
	"context"
	"fmt"
	"os"

	"github.com/moby/sys/mountinfo"
	"github.com/runc-shared/runc-shared/internal/filelock"
	"golang.org/x/sys/unix"
)

// EnsureShared makes sure that the host path (absolute, resolved) lies on a
// shared mount, so runc's rshared bind of it reaches the host. It returns
// whether it changed anything; it logs nothing, the caller does.
//
// Kernel rule: a bind mount of a directory joins the peer group of the mount
// it comes from when that mount is shared. So if the mount containing path
// is shared (path is its mount point or below it), there is nothing to do.
// Otherwise path is bound onto itself when it is not a mount point yet (a new
// mount, private like its parent, that covers exactly path) and that mount is
// made rshared (MS_SHARED|MS_REC: submounts join too). Nothing above path
// changes. Many runtimes may start at once for the same path: see ownMount.
func EnsureShared(path, lockDir string) (changed bool, err error) {
	p, err := checkAbs(path)
	if err != nil {
		return false, err
	}
	// Refuse a path that is not canonical up front: mountinfo would answer
	// for the symlink's location, not for where the bind really comes from.
	f, _, err := OpenResolved(p)
	if err != nil {
		return false, err
	}
	_ = f.Close()
	shared := func(m *mountinfo.Info) bool { return PeerGroup(m) > 0 }
	return ownMount(p, lockDir, shared, unix.MS_BIND|unix.MS_REC, unix.MS_SHARED|unix.MS_REC)
}

// ownMount gives p (absolute, resolved) the propagation prop on a mount of
// its own, unless done says the mount holding p (MountOf) needs nothing,
// and reports whether it changed anything. When p is not the mount point of
// that mount, p is first bound onto itself with the flags bind.
//
// Many runtimes may start at once for the same path: under an exclusive
// flock on a lock file in lockDir (created 0700), named from a hash of p,
// the state is read again, so the self-bind happens exactly once and no
// duplicate binds stack up. The mounts go through an O_PATH handle opened
// without following symlinks, so a component swapped for a symlink after
// resolution fails instead of redirecting the mount. If the self-bind
// succeeded but the propagation change failed, changed is true along with
// the error: the bind is there and the caller logs it.
func ownMount(p, lockDir string, done func(*mountinfo.Info) bool, bind, prop uintptr) (changed bool, err error) {
	check := func() (*mountinfo.Info, bool, error) {
		m, err := MountOf(p)
		return m, err == nil && done(m), err
	}
	if _, ok, err := check(); err != nil || ok {
		return false, err
	}
	unlock, err := lockPath(lockDir, p)
	if err != nil {
		return false, err
	}
	defer unlock()
	m, ok, err := check()
	if err != nil || ok {
		return false, err // another process did it while we waited
	}
	if m.Mountpoint != p {
		if err := mountHandle(p, p, bind); err != nil {
			return false, err
		}
		changed = true
	}
	// Reopen after the bind: a handle opened before it points below the new
	// mount, where a propagation change fails with EINVAL (not a mount root).
	if err := mountHandle("", p, prop); err != nil {
		return changed, err
	}
	return true, nil
}

// mountHandle mounts with target (and source, when given) opened through
// OpenResolved and passed to mount(2) as /proc/self/fd/N.
func mountHandle(source, target string, flags uintptr) error {
	t, _, err := OpenResolved(target)
	if err != nil {
		return err
	}
	defer t.Close()
	src := ""
	if source != "" {
		// Bind a directory onto itself: one handle serves as both.
		src = FdPath(t)
	}
	if err := unix.Mount(src, FdPath(t), "", flags, ""); err != nil {
		return &MountError{Op: "mount", Source: source, Target: target, Flags: flags, Err: err}
	}
	return nil
}

// lockPath takes the lock of path among lockDir's lock files.
func lockPath(lockDir, path string) (func(), error) {
	if err := os.MkdirAll(lockDir, 0o700); err != nil {
		return nil, fmt.Errorf("create lock directory %s: %w", lockDir, err)
	}
	unlock, err := filelock.Lock(context.Background(), lockDir, path)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return unlock, nil
}

// MountError is a failed mount(2) or umount2(2), with what was asked.
type MountError struct {
	Op     string // "mount" or "unmount"
	Source string
	Target string
	Flags  uintptr
	Err    error
}

func (e *MountError) Error() string {
	if e.Source != "" {
		return fmt.Sprintf("%s %s on %s (flags %#x): %v", e.Op, e.Source, e.Target, e.Flags, e.Err)
	}
	return fmt.Sprintf("%s %s (flags %#x): %v", e.Op, e.Target, e.Flags, e.Err)
}

func (e *MountError) Unwrap() error { return e.Err }

// Unmount is umount2(2) on target with flags, with an error that names the
// target and flags and wraps the errno.
func Unmount(target string, flags int) error {
	if err := unix.Unmount(target, flags); err != nil {
		return &MountError{Op: "unmount", Target: target, Flags: uintptr(flags), Err: err}
	}
	return nil
}

// Detach lazily unmounts target (MNT_DETACH), which works on a dead FUSE
// mount and on a busy one; UMOUNT_NOFOLLOW refuses a target that has become a
// symlink. Target is a mount point as mountinfo shows it.
func Detach(target string) error {
	if err := unix.Unmount(target, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW); err != nil {
		return fmt.Errorf("detach %s: %w", target, err)
	}
	return nil
}
