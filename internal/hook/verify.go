package hook

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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

// verifyPropagation checks, for every bind of the rule's paths into the
// container, that the container's mount is in the shared peer group of the
// host's mount of the source. That is what makes a mount made below it in
// the container appear on the host. runc reports success either way: with a
// private host source or rslave/rprivate root propagation the container gets
// a mount in a new peer group (or a slave), and its mounts stay inside.
func verifyPropagation(t mountTables, bundle string, s *specs.Spec, rule *spec.Rule) error {
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
	prefix, err := t.rootPrefix(rootfsOf(s, bundle))
	if err != nil {
		return err
	}
	for _, b := range binds {
		if b.Staged != "" {
			// runc bound the staging path: its host mount is the pinned
			// source, whatever the source's name leads to by now.
			b.Source = b.Staged
		}
		host, err := t.host(b.Source)
		if err != nil {
			return fmt.Errorf("host mount of %s: %w", b.Source, err)
		}
		ctr, err := t.mountAt(prefix, b.Destination)
		if err != nil {
			return err
		}
		if err := checkPeer(b, host, ctr); err != nil {
			return err
		}
		if err := checkSameDir(b, host, ctr); err != nil {
			return err
		}
	}
	return nil
}

// mountOf answers which mount holds a path (absolute, resolved) in one
// mount namespace and root: a *hostmount.Table's MountOf, or
// hostmount.MountOf for this process's, which is the host's.
type mountOf func(path string) (*mountinfo.Info, error)

// mountTables are where createRuntime looks: the host's mount table, the
// container's, and the container's root, in which its paths resolve.
type mountTables struct {
	host, ctr mountOf
	ctrRoot   securejoin.VFS
}

// procTables are the tables of the container whose process is pid.
func procTables(pid int) mountTables {
	// Symlinks in a destination are resolved in the container's mount
	// namespace, through the magic link /proc/<pid>/root.
	return mountTables{host: hostmount.MountOf, ctr: hostmount.TableOf(pid).MountOf, ctrRoot: prefixVFS("/proc/" + strconv.Itoa(pid) + "/root")}
}

// checkPeer compares the host's mount of a bind source with the container's
// mount at its destination.
func checkPeer(b spec.Bind, host, ctr *mountinfo.Info) error {
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

// checkSameDir checks that the container's mount at a bind's destination is
// a bind of the resolved source itself: same file system (major:minor) and
// same root within it. runc mounts the source again by name, after the
// wrapper resolved it, so a path component swapped for a symlink in between
// makes runc bind the symlink's target; a peer-group check cannot see that
// when the target lies on the same shared mount (a systemd host's /).
func checkSameDir(b spec.Bind, host, ctr *mountinfo.Info) error {
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
	p, ok := spec.RootPath(s, bundle)
	if !ok {
		return ""
	}
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return p
}

// rootPrefix returns where the container's paths start in its mount table:
// the rootfs before pivot_root, "" after. At createRuntime (and prestart)
// runc has made every mount but not yet called pivot_root: the container's
// mountinfo shows the root file system at its host path (runc binds it onto
// itself) and each mount below it, e.g. /run/x/rootfs/var/lib/kubelet.
// After pivot_root (another runtime, a later stage) the same mount is at
// /var/lib/kubelet. A hostmount.Table asks statx and statmount(2) in the
// container's namespace first: before pivot_root the container's mountinfo
// still holds a copy of every host mount, and formatting and parsing it
// grows with them.
func (t mountTables) rootPrefix(rootfs string) (string, error) {
	if rootfs == "" || rootfs == "/" {
		return "", nil
	}
	m, err := t.ctr(rootfs)
	if err != nil {
		return "", fmt.Errorf("read the container's mount table: %w", err)
	}
	if m.Mountpoint == rootfs {
		return rootfs, nil
	}
	return "", nil
}

// mountAt returns the mount the container sees at dest, its paths starting
// at prefix (rootPrefix). The destination is resolved below the root file
// system as runc resolves it (securejoin), so a destination through a
// symlink in the image is found where runc mounted it.
func (t mountTables) mountAt(prefix, dest string) (*mountinfo.Info, error) {
	p, err := securejoin.SecureJoinVFS(cmp.Or(prefix, "/"), dest, t.ctrRoot)
	if err != nil {
		return nil, fmt.Errorf("resolve %s in the container: %w", dest, err)
	}
	m, err := t.ctr(p)
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
