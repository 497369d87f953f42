package hostmount

import (
	"cmp"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync/atomic"
	"unsafe"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// The fast enumeration: listmount(2) (Linux 6.8+) names the mounts below a
// mount and statmount describes each, so listing the mounts under a rule's
// path costs O(mounts under it), where reading /proc/self/mountinfo costs
// O(mounts of the host). It starts from the mount of each path, so it works
// only when each path is itself a mount point (the wrapper's ensure-shared
// binds it onto itself); otherwise the mounts below it hang off the
// containing mount, whose other children would each need a statmount to
// learn their mount point, and mountinfo is read instead.

// maxListed bounds the ids one listmount call may return before the
// enumeration gives up and reads mountinfo.
const maxListed = 1 << 20

// MountsUnder returns the mounts of this mount namespace whose mount point
// is within one of paths (component-wise, as Within; relative paths match
// nothing) and that filter keeps (nil keeps all), in mountinfo order and
// each once. paths must be resolved: mountinfo holds canonical paths.
//
// On Linux 6.8+, when every path is a mount point (or a symlink, below which
// no mount point can lie) and is not "/", it lists the mounts below each
// with listmount(2) and statmount(2), so the cost follows the number of
// mounts under paths, not the host's; otherwise it reads /proc/self/mountinfo
// once. Neither touches the mounted file systems: a dead or hung FUSE mount
// is listed, never stat'ed.
func MountsUnder(paths []string, filter func(*mountinfo.Info) bool) ([]*mountinfo.Info, error) {
	cs := make([]string, 0, len(paths))
	for _, p := range paths {
		if filepath.IsAbs(p) {
			cs = append(cs, filepath.Clean(p))
		}
	}
	if len(cs) == 0 {
		return nil, nil
	}
	if ms, err := mountsUnderFast(cs, filter); err == nil {
		return ms, nil
	}
	ms, err := mountinfo.GetMounts(func(m *mountinfo.Info) (skip, stop bool) {
		_, ok := WithinAny(m.Mountpoint, cs)
		return !ok || (filter != nil && !filter(m)), false
	})
	if err != nil {
		return nil, fmt.Errorf("read mountinfo for the mounts under %v: %w", cs, err)
	}
	return ms, nil
}

// mountsUnderFast is MountsUnder through listmount and statmount; paths are
// clean and absolute. Any error means: read mountinfo.
func mountsUnderFast(paths []string, filter func(*mountinfo.Info) bool) ([]*mountinfo.Info, error) {
	seen := map[uint64]*mountNode{}
	for _, p := range paths {
		if p == "/" {
			// Every mount is below "/": statmount of each costs more than
			// one read of mountinfo.
			return nil, errNoFastPath
		}
		top, symlink, err := mountNodeOf(p)
		if err != nil {
			return nil, err
		}
		if symlink {
			continue // mount points are canonical: none lies below a symlink
		}
		if top.info.Mountpoint != p {
			return nil, fmt.Errorf("%s is not a mount point: %w", p, errNoFastPath)
		}
		stack, err := stackAt(top, p)
		if err != nil {
			return nil, err
		}
		for _, n := range stack {
			seen[n.id] = n
		}
		if err := addDescendants(stack, seen); err != nil {
			return nil, err
		}
	}
	nodes := make([]*mountNode, 0, len(seen))
	for _, n := range seen {
		if _, ok := WithinAny(n.info.Mountpoint, paths); ok && (filter == nil || filter(n.info)) {
			nodes = append(nodes, n)
		}
	}
	return inMountinfoOrder(nodes), nil
}

// inMountinfoOrder returns the mounts of nodes sorted by unique id: ids grow
// with each mount, and mountinfo lists a namespace's mounts in that order.
func inMountinfoOrder(nodes []*mountNode) []*mountinfo.Info {
	slices.SortFunc(nodes, func(a, b *mountNode) int { return cmp.Compare(a.id, b.id) })
	out := make([]*mountinfo.Info, len(nodes))
	for i, n := range nodes {
		out[i] = n.info
	}
	return out
}

// stackAt returns top and the mounts it is stacked on at mount point p,
// from the top down: mounts below the top one are hidden, but mountinfo
// lists them and their children.
func stackAt(top *mountNode, p string) ([]*mountNode, error) {
	stack := []*mountNode{top}
	for n := top; n.parent != n.id && len(stack) < 1024; {
		parent, err := statmountNode(n.parent, 0)
		if err != nil {
			return nil, err
		}
		if parent.info.Mountpoint != p {
			break
		}
		stack = append(stack, parent)
		n = parent
	}
	return stack, nil
}

// listsDescendants is set once listmount is seen to list all the
// descendants of a mount (later kernels; then one listing per path is
// enough), not only its children (Linux 6.8 to 6.10). Until then every
// mount found is listed in turn, which is right on either kernel.
var listsDescendants atomic.Bool

// probed is set once probeListmount ran: it costs a listing of "/".
var probed atomic.Bool

// listIDs is listmount; tests swap in a kernel that lists children only.
var listIDs = listmount

// addDescendants statmounts every mount below the mounts of queue into seen.
func addDescendants(queue []*mountNode, seen map[uint64]*mountNode) error {
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		ids, err := listIDs(cur.id)
		if err != nil {
			return err
		}
		var fresh []*mountNode
		for _, id := range ids {
			if seen[id] != nil {
				continue
			}
			n, err := statmountNode(id, 0)
			if errors.Is(err, unix.ENOENT) {
				continue // unmounted since the listing: mountinfo would not show it either
			}
			if err != nil {
				return err
			}
			seen[id] = n
			fresh = append(fresh, n)
			if n.parent != cur.id {
				listsDescendants.Store(true) // a grandchild in the listing
			}
		}
		if len(fresh) > 0 && !listsDescendants.Load() && !probed.Swap(true) {
			probeListmount()
		}
		if !listsDescendants.Load() {
			queue = append(queue, fresh...)
		}
	}
	return nil
}

// probeListmount learns whether listmount lists descendants from the
// listing of the root mount: on any real host some of the first mounts
// (/dev/pts, /sys/fs/cgroup) are grandchildren of "/". Without one in sight
// it stays unknown, and addDescendants lists every mount it finds (correct
// either way, only slower on a kernel that lists descendants: each listing
// there walks the namespace's mounts).
func probeListmount() {
	root, _, err := mountNodeOf("/")
	if err != nil {
		return
	}
	ids, err := listIDs(root.id)
	if err != nil {
		return
	}
	for _, id := range ids[:min(len(ids), 64)] {
		if n, err := statmountNode(id, 0); err == nil && n.parent != root.id {
			listsDescendants.Store(true)
			return
		}
	}
}

// listmount returns the unique ids of the mounts below the mount with
// unique id id. The buffer grows until the whole listing fits, rather than
// paging with the last id: Linux 6.8 walks a list not sorted by id.
func listmount(id uint64) ([]uint64, error) {
	req := mntIDReq{Size: unix.MNT_ID_REQ_SIZE_VER0, MntID: id}
	for size := 256; ; size *= 8 {
		buf := make([]uint64, size)
		n, _, errno := unix.Syscall6(unix.SYS_LISTMOUNT, uintptr(unsafe.Pointer(&req)),
			uintptr(unsafe.Pointer(&buf[0])), uintptr(size), 0, 0, 0)
		switch {
		case errno == unix.ENOSYS:
			// listmount came with statmount (Linux 6.8): the fast paths
			// are all off from now on.
			statmountMissing.Store(true)
			return nil, fmt.Errorf("listmount: %w", errno)
		case errno != 0:
			return nil, fmt.Errorf("listmount mount %d: %w", id, errno)
		case int(n) < size:
			return buf[:n], nil
		case size >= maxListed:
			return nil, fmt.Errorf("listmount mount %d: more than %d mounts: %w", id, maxListed, errNoFastPath)
		}
	}
}

// MountsAt returns the mounts whose mount point is path (absolute, resolved),
// in mountinfo order: none when path is not a mount point. On Linux 6.8+ it
// statmounts the mount at path and the ones it is stacked on, whatever the
// number of mounts on the host (a mount propagated onto a mount point that
// has mounts already is tucked under them, so the newest mount need not be
// on top); when path is not in the dentry cache, it lists the mounts under
// the mount of its nearest cached ancestor (mountsAtUncached). Otherwise,
// or when that ancestor's mount is "/", it reads /proc/self/mountinfo once.
// Neither waits on a hung FUSE mount.
func MountsAt(path string) ([]*mountinfo.Info, error) {
	c, err := checkAbs(path)
	if err != nil {
		return nil, err
	}
	if ms, err := mountsAtFast(c); err == nil {
		return ms, nil
	}
	// All of them, not the first: a stack has several.
	ms, err := getMounts(func(m *mountinfo.Info) (skip, stop bool) {
		return m.Mountpoint != c, false
	})
	if err != nil {
		return nil, fmt.Errorf("read mountinfo for the mounts at %s: %w", c, err)
	}
	return ms, nil
}

// getMounts reads this namespace's mountinfo; tests count the reads.
var getMounts = mountinfo.GetMounts

// mountsAtFast is MountsAt through statmount; c is clean and absolute.
func mountsAtFast(c string) ([]*mountinfo.Info, error) {
	top, symlink, err := mountNodeOf(c)
	if notCached(err) {
		return mountsAtUncached(c)
	}
	if err != nil {
		return nil, err
	}
	if symlink || top.info.Mountpoint != c {
		return nil, nil
	}
	stack, err := stackAt(top, c)
	if err != nil {
		return nil, err
	}
	return inMountinfoOrder(stack), nil
}

// notCached: the dentry cache could not walk the path (EAGAIN: a component
// never looked up, evicted, or due for revalidation) or holds it as absent
// (ENOENT).
func notCached(err error) bool {
	return errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.ENOENT)
}

// mountsAtUncached is mountsAtFast for a path the dentry cache cannot walk:
// a routed mount's target, unmounted since, whose entry drop_caches or
// memory pressure evicted; a path that is gone. A mount at c hangs off the
// mount holding c's nearest ancestor that the cache can walk, or off one
// below it, so the mounts under that one are listed (listmount), not the
// namespace's. When that is "/", below which every mount lies, mountinfo
// is read (errNoFastPath), as MountsUnder does.
func mountsAtUncached(c string) ([]*mountinfo.Info, error) {
	for d := filepath.Dir(c); ; d = filepath.Dir(d) {
		n, symlink, err := mountNodeOf(d)
		if notCached(err) && d != "/" {
			continue
		}
		switch {
		case err != nil:
			return nil, err
		case symlink:
			return nil, nil // mount points are canonical: none lies below a symlink
		case n.info.Mountpoint == "/":
			return nil, errNoFastPath
		}
		return mountsUnderFast([]string{n.info.Mountpoint}, func(mi *mountinfo.Info) bool { return mi.Mountpoint == c })
	}
}
