package testutil

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// tempRoot is os.TempDir with symlinks resolved: mountinfo shows resolved paths,
// and every directory this package removes must lie below it.
func tempRoot() (string, error) {
	d, err := filepath.EvalSymlinks(os.TempDir())
	if err != nil {
		return "", fmt.Errorf("resolve temp dir %s: %w", os.TempDir(), err)
	}
	return d, nil
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// TempDir makes a fresh directory under the temp dir, symlinks resolved. Its
// cleanup detaches everything still mounted at or below it, then removes it;
// if a mount survives, the directory is left in place (and the test fails)
// rather than letting RemoveAll walk into a mounted filesystem. Use it instead
// of t.TempDir for anything that may end up with mounts below it.
func TempDir(t testing.TB) string {
	t.Helper()
	root, err := tempRoot()
	if err != nil {
		t.Fatal(err)
	}
	// Short names: glusterd puts unix socket paths (108 bytes at most) below it.
	name := unsafeName.ReplaceAllString(t.Name(), "_")
	if len(name) > 24 {
		name = name[:24]
	}
	dir, err := os.MkdirTemp(root, fmt.Sprintf("rstest-%d-%s-", os.Getpid(), name))
	if err != nil {
		t.Fatalf("make temp dir: %v", err)
	}
	t.Cleanup(func() {
		if err := removeUnmounted(dir); err != nil {
			t.Error(err)
		}
	})
	return dir
}

// removeUnmounted detaches every mount at or below dir and removes dir, unless a
// mount survives.
func removeUnmounted(dir string) error {
	if err := UnmountAll(dir); err != nil {
		return fmt.Errorf("leaving %s in place: %w", dir, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	return nil
}

// SharedDir returns a fresh directory that is its own mount point with shared
// propagation in a peer group of its own (mount --bind D D; mount
// --make-private D; mount --make-rshared D), as a disk mounted there is. The
// host / is private on this machine, so this is how a test gets a path whose
// submounts propagate. Where / is shared (ForEachHost's "shared-root") the
// self-bind alone would join /'s peer group, and every mount below D would
// show twice in mountinfo: once on D and once on /, hidden under D
// (Documentation/filesystems/sharedsubtree.rst); a plain directory on that /
// is PrivateDir's case. Cleanup detaches it and everything below it.
func SharedDir(t testing.TB) string {
	t.Helper()
	d := privateMountPoint(t, "shared")
	if err := unix.Mount("", d, "", unix.MS_SHARED|unix.MS_REC, ""); err != nil {
		t.Fatalf("make %s rshared: %v", d, err)
	}
	return d
}

// privateMountPoint makes the directory name in a fresh TempDir a private
// mount point of its own (mount --bind D D; mount --make-private D), which
// the TempDir's cleanup detaches.
func privateMountPoint(t testing.TB, name string) string {
	t.Helper()
	RequireRoot(t)
	d := filepath.Join(TempDir(t), name)
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(d, d, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind mount %s onto itself: %v", d, err)
	}
	if err := unix.Mount("", d, "", unix.MS_PRIVATE, ""); err != nil {
		t.Fatalf("make %s private: %v", d, err)
	}
	return d
}

// PrivateDir returns a fresh plain directory that is not a mount point: on
// the private host / what a wrapper must turn into a shared mount itself; on
// a shared / (ForEachHost's "shared-root") a path that is shared already, as
// /var/lib/kubelet is on a systemd host. Cleanup detaches whatever got
// mounted at or below it.
func PrivateDir(t testing.TB) string {
	t.Helper()
	d := filepath.Join(TempDir(t), "private")
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

// UnmountLater unmounts the top mount at target when the test ends; a
// busy one is detached, and one that is gone already is fine. Registered
// before the mount, it runs before what a mounter's cleanup stops (cleanups
// run last-in first-out, and a FUSE daemon may live in the mounter).
func UnmountLater(t testing.TB, target string) {
	t.Helper()
	t.Cleanup(func() {
		err := unix.Unmount(target, 0)
		if errors.Is(err, unix.EBUSY) {
			err = unix.Unmount(target, unix.MNT_DETACH)
		}
		if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			t.Errorf("unmount %s: %v", target, err)
		}
	})
}

// UnmountAll detaches (MNT_DETACH) every mount at or below dir, deepest first,
// re-reading the mount table until none is left. It refuses a dir outside the
// temp dir, so a bad argument can never unmount host filesystems.
func UnmountAll(dir string) error {
	root, err := tempRoot()
	if err != nil {
		return err
	}
	if !filepath.IsAbs(dir) || dir == root || !Below(dir, root) {
		return fmt.Errorf("refusing to unmount below %q: only paths under %s", dir, root)
	}
	dir = filepath.Clean(dir)
	for range 20 {
		ms, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
		if err != nil {
			return fmt.Errorf("read mount table: %w", err)
		}
		if len(ms) == 0 {
			return nil
		}
		sort.Slice(ms, func(i, j int) bool { return depth(ms[i].Mountpoint) > depth(ms[j].Mountpoint) })
		for _, m := range ms {
			// EINVAL/ENOENT: a lazy unmount of a parent took it already.
			err := unix.Unmount(m.Mountpoint, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW)
			if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
				return fmt.Errorf("unmount %s: %w", m.Mountpoint, err)
			}
		}
	}
	ms, _ := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	return fmt.Errorf("mounts remain below %s after 20 rounds: %s", dir, mountpoints(ms))
}

// Below tells whether path is root or lies under it, component by
// component: /tmp/a-b is not below /tmp/a.
func Below(path, root string) bool {
	rel, err := filepath.Rel(root, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

func depth(p string) int { return strings.Count(filepath.Clean(p), "/") }

func mountpoints(ms []*mountinfo.Info) string {
	var s []string
	for _, m := range ms {
		s = append(s, m.Mountpoint)
	}
	return strings.Join(s, ", ")
}

// MountsUnder returns the host's mounts (this process's mount namespace) at or
// below dir, in mount table order.
func MountsUnder(t testing.TB, dir string) []*mountinfo.Info {
	t.Helper()
	return MountsUnderPid(t, os.Getpid(), dir)
}

// MountsUnderPid returns the mounts at or below dir as process pid sees them
// (/proc/PID/mountinfo): for a container init, dir is a path inside the container.
// Compare with MountsUnder to tell "visible on the host" from "only inside".
func MountsUnderPid(t testing.TB, pid int, dir string) []*mountinfo.Info {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/mountinfo", pid))
	if err != nil {
		t.Fatalf("read mount table of pid %d: %v", pid, err)
	}
	defer f.Close()
	ms, err := mountinfo.GetMountsFromReader(f, mountinfo.PrefixFilter(filepath.Clean(dir)))
	if err != nil {
		t.Fatalf("read mount table of pid %d: %v", pid, err)
	}
	return ms
}

// MountAt returns the topmost mount whose mount point is exactly path (the one
// that later mounts were stacked on last), or nil when path is not a mount point.
func MountAt(t testing.TB, path string) *mountinfo.Info {
	t.Helper()
	path = filepath.Clean(path)
	all := MountsUnder(t, path)
	for i := len(all) - 1; i >= 0; i-- {
		if all[i].Mountpoint == path {
			return all[i]
		}
	}
	return nil
}

// MountOf returns the mount that holds path (the mount point itself, or the
// mount it lies on), as this process's mount namespace sees it: the mount
// ID that statx(2) reports for path (symlinks followed), looked up in
// mountinfo.
func MountOf(t testing.TB, path string) *mountinfo.Info {
	t.Helper()
	var st unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, path, 0, unix.STATX_MNT_ID, &st); err != nil {
		t.Fatalf("mount of %s: statx: %v", path, err)
	}
	ms, err := mountinfo.GetMounts(func(m *mountinfo.Info) (skip, stop bool) {
		return uint64(m.ID) != st.Mnt_id, uint64(m.ID) == st.Mnt_id
	})
	if err != nil || len(ms) != 1 {
		t.Fatalf("mount of %s: mount ID %d in mountinfo: %d entries, %v", path, st.Mnt_id, len(ms), err)
	}
	return ms[0]
}
