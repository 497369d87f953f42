package hook

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/sys/mountinfo"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/runc-shared/runc-shared/internal/hostmount"
	"github.com/runc-shared/runc-shared/pkg/spec"
)

// ErrNotPropagated is wrapped when a propagated path of a mounter does not
// reach the host.
var ErrNotPropagated = errors.New("propagation does not reach the host")

// VerifyPropagation checks, for every bind of the rule's paths into the
// container, that the container's mount is in the shared peer group of the
// host's mount of the source. That is what makes a mount made below it in
// the container appear on the host. runc reports success either way: with a
// private host source or rslave/rprivate root propagation the container gets
// a mount in a new peer group (or a slave), and its mounts stay inside.
func VerifyPropagation(pid int, bundle string, s *specs.Spec, rule *spec.Rule) error {
	// The binds of the rule's paths, resolved as the wrapper resolves them;
	// one that claims an allowlisted path and resolves outside it is an error.
	binds, err := spec.AllowlistedBinds(s, hostmount.Allowlist{Paths: rule.Propagate, Bundle: bundle})
	if err != nil {
		return err
	}
	if len(binds) == 0 {
		return fmt.Errorf("rule %q: %w: no bind mount of %s into the container; bind it in (e.g. -v %s:%s:rshared)",
			rule.Name, ErrNotPropagated, strings.Join(rule.Propagate, ", "), rule.Propagate[0], rule.Propagate[0])
	}
	view, err := OpenContainerView(pid, rootfsOf(s, bundle))
	if err != nil {
		return err
	}
	for _, b := range binds {
		if b.Staged != "" {
			// runc bound the staging path: its host mount is the pinned
			// source, whatever the source's name leads to by now.
			b.Source = b.Staged
		}
		host, err := hostmount.MountOf(b.Source)
		if err != nil {
			return fmt.Errorf("host mount of %s: %w", b.Source, err)
		}
		ctr, err := view.MountAt(b.Destination)
		if err != nil {
			return err
		}
		if err := CheckPeer(b, host, ctr); err != nil {
			return err
		}
		if err := CheckSameDir(b, host, ctr); err != nil {
			return err
		}
	}
	return nil
}

// CheckPeer compares the host's mount of a bind source with the container's
// mount at its destination.
func CheckPeer(b spec.Bind, host, ctr *mountinfo.Info) error {
	group := hostmount.PeerGroup(host)
	if group == 0 {
		return fmt.Errorf("%w: host path %s is not a shared mount (its mount %s is %s); make it shared (mount --bind %s %s && mount --make-rshared %s), or start the container through runc-shared",
			ErrNotPropagated, b.Source, host.Mountpoint, describe(host), b.Source, b.Source, b.Source)
	}
	if hostmount.PeerGroup(ctr) == group {
		return nil
	}
	return fmt.Errorf("%w: the container's mount of host path %s at %s is %s, not in the host's peer group shared:%d; start the container through runc-shared, or make %s a mount point of its own and bind it rshared with rshared root propagation (-v %s:%s:rshared): runc makes the rootfs's parent mount private, which cuts a plain directory on that mount out of the host's peer group",
		ErrNotPropagated, b.Source, b.Destination, describe(ctr), group, b.Source, b.Source, b.Destination)
}

// ErrWrongSource is wrapped when the container's bind is not of the
// directory the wrapper resolved and checked.
var ErrWrongSource = errors.New("the container's bind mount is not of the allowlisted source")

// CheckSameDir checks that the container's mount at a bind's destination is
// a bind of the resolved source itself: same file system (major:minor) and
// same root within it. runc mounts the source again by name, after the
// wrapper resolved it, so a path component swapped for a symlink in between
// makes runc bind the symlink's target; a peer-group check cannot see that
// when the target lies on the same shared mount (a systemd host's /).
func CheckSameDir(b spec.Bind, host, ctr *mountinfo.Info) error {
	rel, err := filepath.Rel(host.Mountpoint, b.Source)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return fmt.Errorf("%w: host path %s is not below its mount %s", ErrWrongSource, b.Source, host.Mountpoint)
	}
	want := filepath.Join(host.Root, rel)
	if ctr.Major == host.Major && ctr.Minor == host.Minor && ctr.Root == want {
		return nil
	}
	return fmt.Errorf("%w: %s in the container is %s of device %d:%d, want %s of device %d:%d; a path component of %s changed while the container was created (a symlink swapped in?): refusing it",
		ErrWrongSource, b.Destination, ctr.Root, ctr.Major, ctr.Minor, want, host.Major, host.Minor, b.Source)
}

// describe tells a mount's propagation in words and mountinfo fields.
func describe(m *mountinfo.Info) string {
	fields := strings.TrimSpace(m.Optional)
	switch {
	case hostmount.PeerGroup(m) > 0 && hostmount.Master(m) > 0:
		return "a slave in a peer group of its own (" + fields + ")"
	case hostmount.PeerGroup(m) > 0:
		return "in another peer group (" + fields + ")"
	case hostmount.Master(m) > 0:
		return "a slave (" + fields + ")"
	default:
		return "private"
	}
}

// rootfsOf returns root.path, absolute, symlinks resolved (mountinfo holds
// canonical paths).
func rootfsOf(s *specs.Spec, bundle string) string {
	if s.Root == nil || s.Root.Path == "" {
		return ""
	}
	p := s.Root.Path
	if !filepath.IsAbs(p) {
		p = filepath.Join(bundle, p)
	}
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return filepath.Clean(p)
}

// ContainerView answers "which mount is at this destination" for a container
// whose mount namespace is set up. At createRuntime (and prestart) runc has
// made every mount but not yet called pivot_root: the container's mountinfo
// shows the root file system at its host path (runc binds it onto itself) and
// each mount below it, e.g. /run/x/rootfs/var/lib/kubelet. After pivot_root
// (another runtime, a later stage) the same mount is at /var/lib/kubelet.
type ContainerView struct {
	pid    int    // the container's process, 0 for a view of mountinfo text only
	prefix string // the rootfs before pivot_root, "" after
	vfs    securejoin.VFS

	mounts []*mountinfo.Info // /proc/<pid>/mountinfo, parsed once if needed
	loaded bool
}

// OpenContainerView looks at the mounts of process pid. It asks statx and
// statmount(2) in the container's namespace first (hostmount.MountOfInFast):
// before pivot_root the container's mountinfo still holds a copy of every
// host mount, and formatting and parsing it costs milliseconds per thousand.
// Where that cannot answer, it reads and parses the table, once.
func OpenContainerView(pid int, rootfs string) (*ContainerView, error) {
	// Symlinks in the destination are resolved in the container's mount
	// namespace, through the magic link /proc/<pid>/root.
	v := &ContainerView{pid: pid, vfs: prefixVFS("/proc/" + strconv.Itoa(pid) + "/root")}
	if rootfs == "" || rootfs == "/" {
		return v, nil
	}
	if m, err := hostmount.MountOfInFast(pid, rootfs); err == nil {
		if m.Mountpoint == rootfs {
			v.prefix = rootfs
		}
		return v, nil
	}
	if err := v.load(); err != nil {
		return nil, err
	}
	v.setPrefix(rootfs)
	return v, nil
}

// NewContainerView builds a view from mountinfo text, parsed once for every
// MountAt; vfs resolves paths in the container's namespace (nil: as the
// reading process sees them).
func NewContainerView(data []byte, rootfs string, vfs securejoin.VFS) (*ContainerView, error) {
	v := &ContainerView{vfs: vfs}
	if err := v.parse(data); err != nil {
		return nil, err
	}
	if rootfs != "" && rootfs != "/" {
		v.setPrefix(rootfs)
	}
	return v, nil
}

// setPrefix sets the prefix when rootfs is a mount point in the table: runc
// binds the rootfs onto itself and pivots into it later.
func (v *ContainerView) setPrefix(rootfs string) {
	if slices.ContainsFunc(v.mounts, func(m *mountinfo.Info) bool { return m.Mountpoint == rootfs }) {
		v.prefix = rootfs
	}
}

// load reads and parses /proc/<pid>/mountinfo, once.
func (v *ContainerView) load() error {
	if v.loaded || v.pid == 0 {
		return nil
	}
	data, err := os.ReadFile("/proc/" + strconv.Itoa(v.pid) + "/mountinfo")
	if err != nil {
		return fmt.Errorf("read the container's mount table: %w", err)
	}
	return v.parse(data)
}

func (v *ContainerView) parse(data []byte) error {
	mounts, err := mountinfo.GetMountsFromReader(bytes.NewReader(data), nil)
	if err != nil {
		return fmt.Errorf("read the container's mount table: %w", err)
	}
	v.mounts, v.loaded = mounts, true
	return nil
}

// MountAt returns the mount the container sees at dest. The destination is
// resolved below the root file system as runc resolves it (securejoin), so a
// destination through a symlink in the image is found where runc mounted it.
func (v *ContainerView) MountAt(dest string) (*mountinfo.Info, error) {
	root := v.prefix
	if root == "" {
		root = "/"
	}
	p, err := securejoin.SecureJoinVFS(root, dest, v.vfs)
	if err != nil {
		return nil, fmt.Errorf("resolve %s in the container: %w", dest, err)
	}
	if v.pid != 0 && !v.loaded {
		if m, err := hostmount.MountOfInFast(v.pid, p); err == nil {
			return m, nil
		}
	}
	if err := v.load(); err != nil {
		return nil, err
	}
	m, err := hostmount.MountOfList(v.mounts, p)
	if err != nil {
		return nil, fmt.Errorf("container mount at %s: %w", dest, err)
	}
	return m, nil
}

// prefixVFS makes lstat and readlink go through a directory, such as
// /proc/<pid>/root.
type prefixVFS string

func (p prefixVFS) Lstat(name string) (os.FileInfo, error) { return os.Lstat(string(p) + name) }
func (p prefixVFS) Readlink(name string) (string, error)   { return os.Readlink(string(p) + name) }
