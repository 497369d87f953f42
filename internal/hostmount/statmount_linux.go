package hostmount

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"unsafe"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// The fast path: statx(STATX_MNT_ID_UNIQUE) names the mount a path is on and
// statmount(2) (Linux 6.8+) describes that one mount, whatever the number of
// mounts, where reading /proc/self/mountinfo formats and parses every mount
// of the namespace. Any failure falls back to mountinfo.

// forceMountinfo makes MountOf skip the fast path (tests run the package's
// suite in both modes with it).
var forceMountinfo bool

// statmountMissing is set once the kernel answered ENOSYS to statmount or
// listmount, so a kernel older than 6.8 costs one failed syscall per
// process, not one per query.
var statmountMissing atomic.Bool

// statmountMask is what statmount is asked for: statmountWanted, or
// statmountNeeded once a kernel refused the newer bits with EINVAL.
var statmountMask atomic.Uint64

func init() { statmountMask.Store(statmountWanted) }

// Request masks and constants from include/uapi/linux/mount.h.
const (
	statmountSBBasic       = 0x00000001 // STATMOUNT_SB_BASIC
	statmountMntBasic      = 0x00000002 // STATMOUNT_MNT_BASIC
	statmountPropagateFrom = 0x00000004 // STATMOUNT_PROPAGATE_FROM
	statmountMntRoot       = 0x00000008 // STATMOUNT_MNT_ROOT
	statmountMntPoint      = 0x00000010 // STATMOUNT_MNT_POINT
	statmountFSType        = 0x00000020 // STATMOUNT_FS_TYPE
	statmountMntOpts       = 0x00000080 // STATMOUNT_MNT_OPTS (6.11)
	statmountFSSubtype     = 0x00000100 // STATMOUNT_FS_SUBTYPE (6.13)
	statmountSBSource      = 0x00000200 // STATMOUNT_SB_SOURCE (6.13)
	statmountSupported     = 0x00001000 // STATMOUNT_SUPPORTED_MASK (6.15)

	// statmountNeeded must all come back in statmount.mask, or the answer
	// would lack fields mountinfo has.
	statmountNeeded = statmountSBBasic | statmountMntBasic | statmountPropagateFrom |
		statmountMntRoot | statmountMntPoint | statmountFSType
	statmountWanted = statmountNeeded | statmountMntOpts | statmountFSSubtype | statmountSBSource | statmountSupported

	resolveCached = 0x20 // RESOLVE_CACHED (Linux 5.12), missing from x/sys/unix
)

// mntIDReq is struct mnt_id_req. With Size MNT_ID_REQ_SIZE_VER0 the kernel
// reads no MntNsID and answers for the caller's mount namespace; with
// MNT_ID_REQ_SIZE_VER1 (Linux 6.11) for the namespace MntNsID names.
type mntIDReq struct {
	Size    uint32
	Spare   uint32
	MntID   uint64
	Param   uint64
	MntNsID uint64
}

// statmountHdr is the fixed part of struct statmount up to sb_source; the
// [str] fields are offsets into the strings that follow the 512-byte header.
type statmountHdr struct {
	Size           uint32
	MntOpts        uint32
	Mask           uint64
	SBDevMajor     uint32
	SBDevMinor     uint32
	SBMagic        uint64
	SBFlags        uint32
	FSType         uint32
	MntID          uint64
	MntParentID    uint64
	MntIDOld       uint32
	MntParentIDOld uint32
	MntAttr        uint64
	MntPropagation uint64
	MntPeerGroup   uint64
	MntMaster      uint64
	PropagateFrom  uint64
	MntRoot        uint32
	MntPoint       uint32
	MntNsID        uint64
	FSSubtype      uint32
	SBSource       uint32
	OptNum         uint32
	OptArray       uint32
	OptSecNum      uint32
	OptSecArray    uint32
	SupportedMask  uint64
}

// statmountHdrSize is sizeof(struct statmount) without str[].
const statmountHdrSize = 512

// errNoFastPath means the fast path cannot answer; the caller reads mountinfo.
var errNoFastPath = errors.New("statmount fast path unavailable")

// mountNode is a mount as statmount describes it, with the unique ids
// (never reused, unlike mountinfo's) of itself and its parent.
type mountNode struct {
	info       *mountinfo.Info
	id, parent uint64
}

// mountNodeOf is MountOf through statx and statmount, with the unique ids,
// and whether path itself is a symlink (then it holds the symlink's mount).
// path is clean and absolute. It fails (and MountOf falls back) on an old
// kernel, a missing path, a path not all in the dentry cache, or an answer
// mountinfo would give differently (see mountNodeAt).
func mountNodeOf(path string) (n *mountNode, symlink bool, err error) {
	if forceMountinfo || statmountMissing.Load() {
		return nil, false, errNoFastPath
	}
	return mountNodeAt(unix.AT_FDCWD, path, 0, 0)
}

// mountNodeAt looks path up below dirfd with the resolve flags added and
// describes its mount in the mount namespace with id ns (0: this one).
// Reading mountinfo never waits on a file system; this must not either.
// RESOLVE_CACHED walks path in the dentry cache only and fails with EAGAIN
// where the walk would ask a file system (a FUSE lookup or revalidation,
// which blocks on a hung daemon), and DONT_SYNC takes the attributes from
// the inode without a FUSE getattr. O_NOFOLLOW: the mount holding a final
// symlink, as mountinfo's lexical match gives; O_PATH triggers no automount.
// A mount point that is not path or one of its ancestors means path went
// through a symlink or out of the root: the caller reads mountinfo.
func mountNodeAt(dirfd int, path string, resolve, ns uint64) (n *mountNode, symlink bool, err error) {
	rel := path
	if dirfd != unix.AT_FDCWD {
		if rel = strings.TrimPrefix(path, "/"); rel == "" {
			rel = "."
		}
	}
	fd, err := unix.Openat2(dirfd, rel, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_NOFOLLOW | unix.O_CLOEXEC,
		Resolve: resolveCached | resolve,
	})
	if err != nil {
		return nil, false, fmt.Errorf("open %s from the dentry cache: %w", path, err)
	}
	var st unix.Statx_t
	err = unix.Statx(fd, "", unix.AT_EMPTY_PATH|unix.AT_STATX_DONT_SYNC, unix.STATX_TYPE|unix.STATX_MNT_ID_UNIQUE, &st)
	_ = unix.Close(fd)
	if err != nil {
		return nil, false, fmt.Errorf("statx %s: %w", path, err)
	}
	if st.Mask&unix.STATX_MNT_ID_UNIQUE == 0 {
		return nil, false, errNoFastPath // kernel before 6.8: stx_mnt_id is the reusable id
	}
	n, err = statmountNode(st.Mnt_id, ns)
	if err != nil {
		return nil, false, err
	}
	if !Within(path, n.info.Mountpoint) {
		return nil, false, fmt.Errorf("statmount: mount point %s of %s: %w", n.info.Mountpoint, path, errNoFastPath)
	}
	symlink = st.Mask&unix.STATX_TYPE != 0 && st.Mode&unix.S_IFMT == unix.S_IFLNK
	return n, symlink, nil
}

// mountOfInFast is Table.MountOf through statx and statmount: path (clean,
// absolute, as process pid sees it) is opened through the magic link
// /proc/<pid>/root with RESOLVE_IN_ROOT, so the lookup walks pid's root and
// mount namespace, and the mount found is described in that namespace (its
// id from NS_GET_MNTNS_ID). Reading /proc/<pid>/mountinfo grows with the
// mounts of a container made by runc before pivot_root, whose table still
// holds a copy of every host mount; this does not. Any failure (kernel
// before 6.11, a path not in the dentry cache, an answer mountinfo would
// give differently) means: read mountinfo.
func mountOfInFast(pid int, path string) (*mountinfo.Info, error) {
	if forceMountinfo || statmountMissing.Load() {
		return nil, errNoFastPath
	}
	proc := "/proc/" + strconv.Itoa(pid)
	nsfd, err := unix.Open(proc+"/ns/mnt", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open the mount namespace of process %d: %w", pid, err)
	}
	ns, err := unix.IoctlGetUint64(nsfd, unix.NS_GET_MNTNS_ID)
	_ = unix.Close(nsfd)
	if err != nil {
		return nil, fmt.Errorf("mount namespace id of process %d: %w", pid, err)
	}
	// The magic link is opened apart: procfs lookups are not cached lookups.
	root, err := unix.Open(proc+"/root", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open the root of process %d: %w", pid, err)
	}
	n, _, err := mountNodeAt(root, path, unix.RESOLVE_IN_ROOT, ns)
	_ = unix.Close(root)
	if err != nil {
		return nil, fmt.Errorf("process %d: %w", pid, err)
	}
	return n.info, nil
}

// statmountNode describes the mount with unique id id in the mount
// namespace with id ns (0: this one), with the fields mountinfo would show,
// and the unique ids of the mount and its parent.
func statmountNode(id, ns uint64) (*mountNode, error) {
	req := mntIDReq{Size: unix.MNT_ID_REQ_SIZE_VER0, MntID: id, Param: statmountMask.Load()}
	if ns != 0 {
		req.Size, req.MntNsID = unix.MNT_ID_REQ_SIZE_VER1, ns
	}
	for size := 4096; ; {
		// uint64 words keep the header 8-byte aligned.
		buf := make([]uint64, size/8)
		_, _, errno := unix.Syscall6(unix.SYS_STATMOUNT, uintptr(unsafe.Pointer(&req)),
			uintptr(unsafe.Pointer(&buf[0])), uintptr(size), 0, 0, 0)
		switch {
		case errno == unix.EOVERFLOW && size < 1<<20:
			size *= 4 // long paths or options: retry with a larger buffer
			continue
		case errno == unix.EINVAL && req.Param != statmountNeeded:
			// A kernel that predates some of the wanted bits may refuse
			// them: ask for the 6.8 set from now on.
			req.Param = statmountNeeded
			statmountMask.Store(statmountNeeded)
			continue
		case errno == unix.ENOSYS:
			statmountMissing.Store(true)
			return nil, fmt.Errorf("statmount: %w", errno)
		case errno != 0:
			return nil, fmt.Errorf("statmount mount %d: %w", id, errno)
		}
		raw := unsafe.Slice((*byte)(unsafe.Pointer(&buf[0])), size)
		info, err := decodeStatmount(raw)
		if err != nil {
			return nil, err
		}
		h := (*statmountHdr)(unsafe.Pointer(&buf[0]))
		return &mountNode{info: info, id: h.MntID, parent: h.MntParentID}, nil
	}
}

// decodeStatmount builds the mountinfo.Info of a filled struct statmount.
func decodeStatmount(raw []byte) (*mountinfo.Info, error) {
	h := (*statmountHdr)(unsafe.Pointer(&raw[0]))
	if h.Mask&statmountNeeded != statmountNeeded || int(h.Size) > len(raw) || h.Size < statmountHdrSize {
		return nil, fmt.Errorf("statmount answered mask %#x, size %d: %w", h.Mask, h.Size, errNoFastPath)
	}
	strs := raw[statmountHdrSize:h.Size]
	str := func(bit uint64, off uint32) string {
		if h.Mask&bit == 0 || int(off) >= len(strs) {
			return ""
		}
		s := strs[off:]
		if i := bytes.IndexByte(s, 0); i >= 0 {
			s = s[:i]
		}
		return string(s)
	}
	fsType := str(statmountFSType, h.FSType)
	if sub := str(statmountFSSubtype, h.FSSubtype); sub != "" {
		fsType += "." + sub
	} else if strings.HasPrefix(fsType, "fuse") && !subtypeKnown(h) {
		// The kernel leaves the subtype bit clear both when the subtype is
		// empty and when it cannot report one (before 6.13), and mountinfo
		// shows "fuse.glusterfs": only a kernel that says it supports the
		// bit tells the two apart.
		return nil, fmt.Errorf("statmount: no subtype for %s: %w", fsType, errNoFastPath)
	}
	// sb_flags holds SB_* bits, which have the values of the MS_* ones
	// (include/linux/fs.h).
	vfs := "rw"
	if h.SBFlags&unix.MS_RDONLY != 0 {
		vfs = "ro"
	}
	for _, f := range []struct {
		bit  uint32
		name string
	}{{unix.MS_SYNCHRONOUS, ",sync"}, {unix.MS_DIRSYNC, ",dirsync"}, {unix.MS_MANDLOCK, ",mand"}, {unix.MS_LAZYTIME, ",lazytime"}} {
		if h.SBFlags&f.bit != 0 {
			vfs += f.name
		}
	}
	if o := str(statmountMntOpts, h.MntOpts); o != "" {
		vfs += "," + o
	}
	return &mountinfo.Info{
		ID:         int(h.MntIDOld),
		Parent:     int(h.MntParentIDOld),
		Major:      int(h.SBDevMajor),
		Minor:      int(h.SBDevMinor),
		Root:       str(statmountMntRoot, h.MntRoot),
		Mountpoint: str(statmountMntPoint, h.MntPoint),
		Options:    mountOptions(h.MntAttr),
		Optional:   optionalFields(h),
		FSType:     fsType,
		Source:     str(statmountSBSource, h.SBSource),
		VFSOptions: vfs,
	}, nil
}

func subtypeKnown(h *statmountHdr) bool {
	return h.Mask&statmountSupported != 0 && h.SupportedMask&statmountFSSubtype != 0
}

// mountOptions renders mnt_attr the way mountinfo's per-mount options
// column does, in the kernel's order (show_mnt_opts).
func mountOptions(attr uint64) string {
	s := "rw"
	if attr&unix.MOUNT_ATTR_RDONLY != 0 {
		s = "ro"
	}
	atime := attr & unix.MOUNT_ATTR__ATIME
	for _, f := range []struct {
		on   bool
		name string
	}{
		{attr&unix.MOUNT_ATTR_NOSUID != 0, ",nosuid"},
		{attr&unix.MOUNT_ATTR_NODEV != 0, ",nodev"},
		{attr&unix.MOUNT_ATTR_NOEXEC != 0, ",noexec"},
		{atime == unix.MOUNT_ATTR_NOATIME, ",noatime"},
		{attr&unix.MOUNT_ATTR_NODIRATIME != 0, ",nodiratime"},
		{atime == unix.MOUNT_ATTR_RELATIME, ",relatime"},
		{attr&unix.MOUNT_ATTR_NOSYMFOLLOW != 0, ",nosymfollow"},
	} {
		if f.on {
			s += f.name
		}
	}
	return s
}

// optionalFields renders the propagation the way mountinfo's optional
// fields do ("shared:N master:M propagate_from:P unbindable"), so PeerGroup
// and Master read both sources alike.
func optionalFields(h *statmountHdr) string {
	var f []string
	if h.MntPropagation&unix.MS_SHARED != 0 {
		f = append(f, "shared:"+strconv.FormatUint(h.MntPeerGroup, 10))
	}
	if h.MntPropagation&unix.MS_SLAVE != 0 {
		f = append(f, "master:"+strconv.FormatUint(h.MntMaster, 10))
		if p := h.PropagateFrom; p != 0 && p != h.MntMaster {
			f = append(f, "propagate_from:"+strconv.FormatUint(p, 10))
		}
	}
	if h.MntPropagation&unix.MS_UNBINDABLE != 0 {
		f = append(f, "unbindable")
	}
	return strings.Join(f, " ")
}
