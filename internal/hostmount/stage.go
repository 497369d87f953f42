package hostmount

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// ErrStagedChanged means a staged bind does not hold the directory that was
// opened beneath the allowlisted path, or that directory has left it.
var ErrStagedChanged = errors.New("staged bind changed")

// PrepareStaging makes dir (created 0700 when missing) a mount point of its
// own that is unbindable, once (see ownMount), and reports whether it
// changed anything. A bind staged below it is a clone of its source's
// mount and so a peer of the host's mount there; the staging mount itself
// propagates nothing out (unbindable implies private), and a recursive bind
// of a parent (a container that binds /run) skips it, so no other namespace
// ever gets a copy of a staged bind.
func PrepareStaging(dir, lockDir string) (changed bool, err error) {
	d, err := checkAbs(dir)
	if err != nil {
		return false, err
	}
	if err := os.MkdirAll(d, 0o700); err != nil {
		return false, fmt.Errorf("create staging directory %s: %w", d, err)
	}
	unbindable := func(m *mountinfo.Info) bool {
		return m.Mountpoint == d && strings.Contains(m.Optional, "unbindable")
	}
	return ownMount(d, lockDir, unbindable, unix.MS_BIND, unix.MS_UNBINDABLE)
}

// Stage pins source and binds it at target, so that runc can be given target
// instead of a path that someone who can write below the allowlist could
// swap between a check and runc's mount. root is the allowlisted path that
// holds source, both absolute and resolved (ResolveSource). source is opened
// as an O_PATH handle beneath root with no symlink followed in any component
// (openat2 RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS), the handle is bound
// recursively at target (a directory or an empty file made for it, for a
// source that is not a directory), and after the mount Stage checks that the
// handle is still beneath root and that target holds the very inode it
// opened; otherwise it detaches target and fails with ErrStagedChanged.
// target's parent is trusted (the state directory) and must exist.
func Stage(root, source, target string) (err error) {
	rootF, rootPath, err := OpenResolved(root)
	if err != nil {
		return err
	}
	defer rootF.Close()
	rel, err := filepath.Rel(rootPath, filepath.Clean(source))
	if err != nil || !filepath.IsLocal(rel) && rel != "." {
		return fmt.Errorf("stage %s: %w %s", source, ErrOutsideAllowlist, root)
	}
	src, err := openBeneath(rootF, rel, source)
	if err != nil {
		return err
	}
	defer src.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(src.Fd()), &st); err != nil {
		return fmt.Errorf("stat %s: %w", source, err)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		err = os.Mkdir(target, 0o700)
	} else {
		var f *os.File
		if f, err = os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600); err == nil {
			err = f.Close()
		}
	}
	if err != nil {
		return fmt.Errorf("create staging target %s: %w", target, err)
	}
	defer func() {
		if err != nil {
			_ = unstageOne(target)
		}
	}()
	if err := unix.Mount(FdPath(src), target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return &MountError{Op: "mount", Source: source, Target: target, Flags: unix.MS_BIND | unix.MS_REC, Err: err}
	}
	now, err := os.Readlink(FdPath(src))
	if err != nil {
		return fmt.Errorf("read back the path of %s: %w", source, err)
	}
	if !Within(now, rootPath) {
		return fmt.Errorf("stage %s: it is now %s, outside %s: %w", source, now, rootPath, ErrStagedChanged)
	}
	var got unix.Stat_t
	if err := unix.Stat(target, &got); err != nil {
		return fmt.Errorf("stat staged %s: %w", target, err)
	}
	if got.Dev != st.Dev || got.Ino != st.Ino {
		return fmt.Errorf("stage %s at %s: %w: it holds inode %d:%d, not %d:%d", source, target, ErrStagedChanged, got.Dev, got.Ino, st.Dev, st.Ino)
	}
	return nil
}

// openBeneath opens rel below the directory root holds as an O_PATH handle,
// following no symlink and never leaving root. Kernels without openat2
// (before 5.6) get OpenResolved's check instead: the path read back from the
// handle must be the path asked for, below root.
func openBeneath(root *os.File, rel, source string) (*os.File, error) {
	fd, err := unix.Openat2(int(root.Fd()), rel, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	})
	if errors.Is(err, unix.ENOSYS) {
		f, _, err := OpenResolved(source)
		return f, err
	}
	if err != nil {
		return nil, fmt.Errorf("open %s beneath %s without following symlinks: %w", source, root.Name(), err)
	}
	return os.NewFile(uintptr(fd), source), nil
}

// Unstage detaches every staged bind in dir and removes dir; a dir that does
// not exist is no error. The container's copies of the binds stay: they
// live in its own mount namespace.
func Unstage(dir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read staging directory %s: %w", dir, err)
	}
	var errs []error
	for _, e := range ents {
		errs = append(errs, unstageOne(filepath.Join(dir, e.Name())))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove staging directory %s: %w", dir, err)
	}
	return nil
}

// unstageOne detaches whatever is mounted at p, stacked mounts included (a
// mount made on the source itself propagates onto the staged bind), and
// removes p. Each mount is made private first, with everything below it:
// the staged bind is a peer of the host's mount of its source and has
// received a copy of every mount made there since, and unmounting a mount
// unmounts the matching mounts below its parent's peers too (umount
// propagation, fs/pnode.c propagate_umount), so detaching it as it is would
// take the mounters' mounts off the host.
func unstageOne(p string) error {
	for range 64 {
		if err := unix.Mount("", p, "", unix.MS_PRIVATE|unix.MS_REC, ""); err != nil &&
			!errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			return &MountError{Op: "mount", Target: p, Flags: unix.MS_PRIVATE | unix.MS_REC, Err: err}
		}
		err := unix.Unmount(p, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			break // not a mount point (any more)
		}
		if err != nil {
			return fmt.Errorf("detach staged bind %s: %w", p, err)
		}
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove staging target %s: %w", p, err)
	}
	return nil
}

// AllowlistRoot returns the allowlisted path (resolved) that holds the
// resolved path p, the longest if several do.
func AllowlistRoot(p string, allow []string) (string, bool) {
	return WithinAny(p, resolvePrefixes(allow))
}
