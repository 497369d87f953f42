package hostmount

// Test access to what the product does not use: the reader seams, the
// checks tests and benchmarks run against fixtures, and the one-step
// resolve-and-open and mount-point check that tests assert with.

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/moby/sys/mountinfo"
)

// MountOfReader is MountOf over mountinfo text read from r, for the fuzz
// test and the fixtures.
func MountOfReader(r io.Reader, path string) (*mountinfo.Info, error) {
	c, err := checkAbs(path)
	if err != nil {
		return nil, err
	}
	cands, err := mountinfo.GetMountsFromReader(r, ancestorsFilter(c))
	if err != nil {
		return nil, fmt.Errorf("read mountinfo for %s: %w", c, err)
	}
	return pickVisible(cands, c)
}

// mountOfMountinfo is MountOf without the statmount fast path: the
// reference its tests compare with.
func mountOfMountinfo(path string) (*mountinfo.Info, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return MountOfReader(f, path)
}

// ErrHungMount means some FUSE mounts did not answer statfs in time. They are
// treated as not dead (never detached), and named in the error.
var ErrHungMount = errors.New("FUSE mount did not answer statfs in time")

// DeadFUSEMounts returns the dead FUSE mounts of this mount namespace whose
// mount point is within one of under (component-wise; the prefixes are also
// matched in their symlink-resolved form). A mount is dead when statfs of its
// mount point fails with ENOTCONN ("Transport endpoint is not connected": its
// daemon is gone); ECONNABORTED (connection aborted through fusectl) counts
// too. A mount that does not answer within DefaultStatTimeout is not dead: it
// is reported in an error wrapping ErrHungMount, and the returned list is
// still valid then. Detach each returned mount with Detach.
func DeadFUSEMounts(under []string) ([]*mountinfo.Info, error) {
	scan, err := ScanFUSE(under, DefaultStatTimeout)
	if err != nil {
		return nil, err
	}
	return scan.Dead, hungError(scan.Hung)
}

// FUSEMountsFromReader returns the FUSE mounts within one of under from
// mountinfo text (fixtures, /proc/<pid>/mountinfo), without statting them.
func FUSEMountsFromReader(r io.Reader, under []string) ([]*mountinfo.Info, error) {
	return mountinfo.GetMountsFromReader(r, fuseFilter(ExpandPrefixes(under)))
}

func fuseFilter(under []string) mountinfo.FilterFunc {
	return func(m *mountinfo.Info) (skip, stop bool) {
		if !IsFUSE(m.FSType) {
			return true, false
		}
		_, ok := WithinAny(m.Mountpoint, under)
		return !ok, false
	}
}

func hungError(hung []*mountinfo.Info) error {
	if len(hung) == 0 {
		return nil
	}
	names := make([]string, len(hung))
	for i, m := range hung {
		names[i] = m.Mountpoint
	}
	return fmt.Errorf("%w (left alone, check its daemon): %s", ErrHungMount, strings.Join(names, ", "))
}

// ResolveAndOpen is ResolveSource then OpenResolved, re-checking that the
// opened path is still within the allowlist. It returns the handle to mount
// from (through FdPath) and its canonical path. The caller closes f.
func ResolveAndOpen(path string, allow []string) (*os.File, string, error) {
	resolved, err := ResolveSource(path, allow)
	if err != nil {
		return nil, "", err
	}
	f, canonical, err := OpenResolved(resolved)
	if err != nil {
		return nil, "", fmt.Errorf("resolve %s: %w", path, err)
	}
	if _, ok := WithinAny(canonical, resolvePrefixes(allow)); !ok {
		_ = f.Close()
		return nil, "", fmt.Errorf("resolve %s: it opened as %s: %w %v", path, canonical, ErrOutsideAllowlist, allow)
	}
	return f, canonical, nil
}

// isMountPoint reports whether path (absolute, resolved) is a mount point in
// this process's mount namespace. It reads mountinfo rather than stat'ing, so
// it neither misses bind mounts nor fails on a dead FUSE mount nor blocks on a
// hung one, and it stops reading at the first match. (So it takes no statx
// fast path either: statx walks path and would block below a hung FUSE
// mount, and would miss a mount point hidden under a later mount.) It does
// not resolve symlinks for the same reason: resolve first (ResolveSource).
func isMountPoint(path string) (bool, error) {
	c, err := checkAbs(path)
	if err != nil {
		return false, err
	}
	found, err := mountinfo.GetMounts(mountinfo.SingleEntryFilter(c))
	if err != nil {
		return false, fmt.Errorf("read mountinfo for %s: %w", c, err)
	}
	return len(found) > 0, nil
}
