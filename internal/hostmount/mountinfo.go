package hostmount

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// errNoMount is returned when no mount contains a path (a fixture without a
// root mount, or a path outside the reading process's root).
var errNoMount = errors.New("no mount contains the path")

// MountOf returns the mount that contains path in this process's mount
// namespace. path must be absolute and already resolved: mountinfo holds
// canonical paths. On Linux 6.8+ an existing path whose lookup is in the
// dentry cache is answered with statx and statmount(2), whose cost does not
// grow with the number of mounts; otherwise (older kernel, missing or
// uncached path, any error) /proc/self/mountinfo is read. Neither waits on a
// hung FUSE mount.
func MountOf(path string) (*mountinfo.Info, error) {
	c, err := checkAbs(path)
	if err != nil {
		return nil, err
	}
	if n, _, err := mountNodeOf(c); err == nil {
		return n.info, nil
	}
	cands, err := mountinfo.GetMounts(ancestorsFilter(c))
	if err != nil {
		return nil, fmt.Errorf("read mountinfo for %s: %w", c, err)
	}
	return pickVisible(cands, c)
}

// Table is the mount table of one process, for a caller that asks about
// one or more of its paths. Each MountOf goes to statx and statmount(2) in
// the process's namespace first (Linux 6.11+, where statmount takes a
// namespace); the first question they cannot answer reads and parses
// /proc/<pid>/mountinfo, once, for it and every later one. ParseTable makes
// one from mountinfo text.
type Table struct {
	pid    int               // 0: only the parsed entries
	mounts []*mountinfo.Info // in mountinfo order, once loaded
	loaded bool
}

// TableOf returns the mount table of process pid; nothing is read yet.
func TableOf(pid int) *Table { return &Table{pid: pid} }

// ParseTable returns the table of the mountinfo text read from r: the seam
// through which tests and benchmarks give a table of their own.
func ParseTable(r io.Reader) (*Table, error) {
	ms, err := mountinfo.GetMountsFromReader(r, nil)
	if err != nil {
		return nil, err
	}
	return &Table{mounts: ms, loaded: true}, nil
}

// MountOf returns the mount that holds path (absolute, resolved, as the
// table's process sees it), picked as MountOf picks it. An error reading
// the process's mountinfo is returned as it is: it names the file.
func (t *Table) MountOf(path string) (*mountinfo.Info, error) {
	c, err := checkAbs(path)
	if err != nil {
		return nil, err
	}
	if !t.loaded {
		if m, err := mountOfInFast(t.pid, c); err == nil {
			return m, nil
		}
		// Read and parse the whole file once, for this and every later question.
		data, err := os.ReadFile("/proc/" + strconv.Itoa(t.pid) + "/mountinfo")
		if err != nil {
			return nil, err
		}
		if t.mounts, err = mountinfo.GetMountsFromReader(bytes.NewReader(data), nil); err != nil {
			return nil, err
		}
		t.loaded = true
	}
	cands, _ := t.Mounts(ancestorsFilter(c)) // loaded: it reads nothing
	return pickVisible(cands, c)
}

// Mounts returns the table's entries that filter keeps (all for a nil
// filter), in mountinfo order, for a question about the whole table rather
// than one path. A table not parsed yet is streamed through filter and not
// kept: a scan of every namespace on a host with thousands of mounts would
// otherwise hold and collect every entry of each.
func (t *Table) Mounts(filter mountinfo.FilterFunc) ([]*mountinfo.Info, error) {
	if !t.loaded {
		f, err := os.Open("/proc/" + strconv.Itoa(t.pid) + "/mountinfo")
		if err != nil {
			return nil, err
		}
		defer f.Close()
		ms, err := mountinfo.GetMountsFromReader(f, filter)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", f.Name(), err)
		}
		return ms, nil
	}
	var out []*mountinfo.Info
	for _, m := range t.mounts {
		skip, stop := false, false
		if filter != nil {
			skip, stop = filter(m)
		}
		if !skip {
			out = append(out, m)
		}
		if stop {
			break
		}
	}
	return out, nil
}

// MountsOfDevices is Mounts for the entries whose device (major:minor,
// unix.Mkdev) has keeps: a question about a few file systems across a whole
// table, such as which namespaces hold a bind of a volume. A table not
// parsed yet is streamed, and only the lines of those devices are parsed;
// Mounts parses every entry before its filter sees it.
func (t *Table) MountsOfDevices(has func(dev uint64) bool, filter mountinfo.FilterFunc) ([]*mountinfo.Info, error) {
	if t.loaded {
		return t.Mounts(devicesFilter(has, filter))
	}
	f, err := os.Open("/proc/" + strconv.Itoa(t.pid) + "/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return devicesFromReader(f, has, filter)
}

// devicesFilter keeps the mounts whose device has keeps and filter keeps.
func devicesFilter(has func(dev uint64) bool, filter mountinfo.FilterFunc) mountinfo.FilterFunc {
	return func(m *mountinfo.Info) (skip, stop bool) {
		if !has(unix.Mkdev(uint32(m.Major), uint32(m.Minor))) {
			return true, false
		}
		if filter == nil {
			return false, false
		}
		return filter(m)
	}
}

// devicesFromReader is MountsOfDevices over mountinfo text: the lines of
// other devices are dropped unparsed, the others parsed and filtered as
// the whole text would be (a line whose device field does not read is
// kept, for the parser to report or read as it does).
func devicesFromReader(r io.Reader, has func(dev uint64) bool, filter mountinfo.FilterFunc) ([]*mountinfo.Info, error) {
	var kept bytes.Buffer
	sc := bufio.NewScanner(r)
	// A line holds two paths and the options: more than the default 64 KiB
	// only in theory, but a long one must not end the scan.
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if dev, ok := lineDevice(line); ok && !has(dev) {
			continue
		}
		kept.Write(line)
		kept.WriteByte('\n')
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return mountinfo.GetMountsFromReader(&kept, devicesFilter(has, filter))
}

// lineDevice reads the device of a mountinfo line, its third field
// ("36 35 98:0 / /mnt ..."); ok is false when the line has none.
func lineDevice(line []byte) (dev uint64, ok bool) {
	for range 2 {
		i := bytes.IndexByte(line, ' ')
		if i < 0 {
			return 0, false
		}
		line = line[i+1:]
	}
	if i := bytes.IndexByte(line, ' '); i >= 0 {
		line = line[:i]
	}
	major, minor, found := bytes.Cut(line, []byte{':'})
	ma, err1 := strconv.ParseUint(string(major), 10, 32)
	mi, err2 := strconv.ParseUint(string(minor), 10, 32)
	if !found || err1 != nil || err2 != nil {
		return 0, false
	}
	return unix.Mkdev(uint32(ma), uint32(mi)), true
}

func checkAbs(path string) (string, error) {
	if !filepath.IsAbs(path) {
		return "", fmt.Errorf("mount of %q: %w", path, ErrRelativePath)
	}
	return filepath.Clean(path), nil
}

// ancestorsFilter keeps, while reading, only mounts whose mount point is path
// or one of its ancestors: a few entries out of thousands.
func ancestorsFilter(path string) mountinfo.FilterFunc {
	return func(m *mountinfo.Info) (skip, stop bool) {
		return !Within(path, m.Mountpoint), false
	}
}

// pickVisible walks the mount tree the way path lookup does: from the bottom
// mount (one whose parent is not among cands: the bottom mount on "/", or
// in a partial fixture without one the highest mount listed), at each step
// into the child mount met first along path (the shortest mount point), and
// up every stack of mounts on the same mount point. So a mount hidden by a
// later mount on one of its ancestors (/var/lib mounted, then /var mounted
// over it) is not returned. cands are the ancestors of path in mountinfo
// order.
func pickVisible(cands []*mountinfo.Info, path string) (*mountinfo.Info, error) {
	if len(cands) == 0 {
		return nil, fmt.Errorf("mount of %s: %w", path, errNoMount)
	}
	ids := make(map[int]bool, len(cands))
	for _, m := range cands {
		ids[m.ID] = true
	}
	var cur *mountinfo.Info
	// Each step moves to a different entry; a well-formed tree has no cycle,
	// and the bound keeps a malformed fixture from looping.
	for range cands {
		var next *mountinfo.Info
		for _, m := range cands {
			bottom := cur == nil && (!ids[m.Parent] || m.Parent == m.ID)
			if !bottom && (cur == nil || m.Parent != cur.ID || m.ID == cur.ID) {
				continue
			}
			if next == nil || len(m.Mountpoint) <= len(next.Mountpoint) {
				next = m
			}
		}
		if next == nil {
			break
		}
		cur = next
	}
	if cur == nil {
		return cands[len(cands)-1], nil // no bottom: a parent cycle, malformed
	}
	return cur, nil
}

// PeerGroup returns the N of the "shared:N" optional field: the peer group
// the mount belongs to, or 0 when the mount is not shared.
func PeerGroup(info *mountinfo.Info) int {
	return optionalInt(info, "shared:")
}

// Master returns the N of the "master:N" optional field: the peer group this
// mount receives propagation from as a slave, or 0 when it is not a slave.
func Master(info *mountinfo.Info) int {
	return optionalInt(info, "master:")
}

func optionalInt(info *mountinfo.Info, tag string) int {
	if info == nil {
		return 0
	}
	for _, f := range strings.Fields(info.Optional) {
		if v, ok := strings.CutPrefix(f, tag); ok {
			n, err := strconv.Atoi(v)
			if err == nil && n > 0 {
				return n
			}
		}
	}
	return 0
}

// IsShared reports whether the mount containing path (absolute, resolved) is
// in a shared peer group. A bind of path, or of anything below it, then joins
// that peer group, which is what rshared propagation into a container needs.
func IsShared(path string) (bool, error) {
	m, err := MountOf(path)
	if err != nil {
		return false, err
	}
	return PeerGroup(m) > 0, nil
}

// IsMountPoint reports whether path (absolute, as the table's process sees
// it) is a mount point there. It reads mountinfo rather than stat'ing, so
// it neither misses bind mounts nor fails on a dead FUSE mount nor blocks on
// a hung one, up to the first match unless the table is parsed already.
func (t *Table) IsMountPoint(path string) (bool, error) {
	c, err := checkAbs(path)
	if err != nil {
		return false, err
	}
	if t.loaded {
		return slices.ContainsFunc(t.mounts, func(m *mountinfo.Info) bool { return m.Mountpoint == c }), nil
	}
	found, err := t.Mounts(mountinfo.SingleEntryFilter(c))
	return len(found) > 0, err
}
