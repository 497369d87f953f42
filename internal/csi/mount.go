package csi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/runc-shared/runc-shared/internal/hostmount"
)

// Mounter makes and removes the driver's mounts. The server runs where the
// helpers are (the mounter container, or a host that has them), so a mount
// is a process of this one: no runtime exec. Tests replace it.
type Mounter interface {
	// Mount runs the helper for v on target, an existing directory.
	Mount(ctx context.Context, v Volume, target string) error
	// Bind binds the directory source onto the directory target, read-only
	// when ro. Both are resolved paths.
	Bind(source, target string, ro bool) error
	// Unmount removes the top mount at target, a resolved path.
	Unmount(target string) error
	// Detach removes the top mount at target lazily (MNT_DETACH): a dead
	// mount that a process still holds would refuse Unmount.
	Detach(target string) error
	// MountsAt lists the mounts whose mount point is target.
	MountsAt(target string) ([]*mountinfo.Info, error)
}

// SystemMounter mounts with mount(8) and the kernel.
type SystemMounter struct{}

// mountPaths are where mount(8) lives on the hosts we know (merged-usr or
// not), tried before PATH.
var mountPaths = []string{"/bin/mount", "/usr/bin/mount", "/sbin/mount"}

// MountBinary finds mount(8).
func MountBinary() (string, error) {
	for _, p := range mountPaths {
		if unix.Access(p, unix.X_OK) == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath("mount")
	if err != nil {
		return "", fmt.Errorf("mount(8) not found in %v or PATH: install util-linux's mount: %w", mountPaths, err)
	}
	return p, nil
}

// Mount runs `mount -t TYPE [-o OPTIONS] -- SOURCE TARGET`: mount(8) runs
// mount.TYPE when there is one (mount.glusterfs), else asks the kernel.
// The source and options were validated (volume.validate); "--" ends the
// options for mount(8) itself.
func (SystemMounter) Mount(ctx context.Context, v Volume, target string) error {
	bin, err := MountBinary()
	if err != nil {
		return err
	}
	args := []string{"-t", v.FSType}
	if len(v.Options) > 0 {
		args = append(args, "-o", v.OptionString())
	}
	args = append(args, "--", v.Source, target)
	if out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", bin, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// Bind binds through handles opened without following symlinks, so a path
// swapped for a symlink after it was resolved is refused, not followed.
// A read-only bind is a bind remounted read-only (MS_RDONLY on the first
// bind is ignored by the kernel: mount(2), "Creating a bind mount").
func (SystemMounter) Bind(source, target string, ro bool) error {
	src, _, err := hostmount.OpenResolved(source)
	if err != nil {
		return err
	}
	defer src.Close()
	tgt, _, err := hostmount.OpenResolved(target)
	if err != nil {
		return err
	}
	defer tgt.Close()
	if err := unix.Mount(hostmount.FdPath(src), hostmount.FdPath(tgt), "", unix.MS_BIND, ""); err != nil {
		return &hostmount.MountError{Op: "mount", Source: source, Target: target, Flags: unix.MS_BIND, Err: err}
	}
	if !ro {
		return nil
	}
	// The handle taken before the bind is the directory below it; the
	// remount needs the root of the new mount, which a new lookup reaches.
	top, _, err := hostmount.OpenResolved(target)
	if err == nil {
		const flags = unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY
		err = unix.Mount("", hostmount.FdPath(top), "", flags, "")
		_ = top.Close()
		if err != nil {
			err = &hostmount.MountError{Op: "mount", Target: target, Flags: flags, Err: err}
		}
	}
	if err != nil {
		// Undone: a writable bind where read-only was asked must not stay.
		return fmt.Errorf("make the bind of %s read-only: %w", target, errors.Join(err, hostmount.Unmount(target, unix.UMOUNT_NOFOLLOW)))
	}
	return nil
}

// Unmount unmounts target without following a symlink there. A dead FUSE
// mount unmounts like any other.
func (SystemMounter) Unmount(target string) error {
	return hostmount.Unmount(target, unix.UMOUNT_NOFOLLOW)
}

// Detach is hostmount.Detach.
func (SystemMounter) Detach(target string) error { return hostmount.Detach(target) }

// MountsAt is hostmount.MountsAt.
func (SystemMounter) MountsAt(target string) ([]*mountinfo.Info, error) {
	return hostmount.MountsAt(target)
}

// unmountAll removes every mount stacked at target, top first: recovery
// stacks a bind on each dead one, so a target may hold many. It gives up
// when a round of unmounting leaves as many as before.
func unmountAll(m Mounter, target string) error {
	prev := -1
	for {
		ms, err := m.MountsAt(target)
		if err != nil || len(ms) == 0 {
			return err
		}
		if prev >= 0 && len(ms) >= prev {
			return fmt.Errorf("%s: still %d mounts there after unmounting the top one", target, len(ms))
		}
		prev = len(ms)
		if err := m.Unmount(target); err != nil && !errors.Is(err, unix.EINVAL) {
			return err
		}
	}
}
