package mounter

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/runc-shared/runc-shared/internal/config"
	"github.com/runc-shared/runc-shared/internal/hostmount"
)

// umount unmounts target on the host. A routed mount propagates both ways,
// so the host's umount removes it in the mounter too, and for FUSE it is
// what ends the daemon. When the host umount fails (the mount exists only
// in the mounter, after a propagation failure), it tries inside the live
// mounter whose shared binds cover target.
func (m *Mounter) umount(inv *Invocation, cfg *config.Config) error {
	target, err := absTarget(inv.Args[0])
	if err != nil {
		return err
	}
	unlock, err := m.lockTarget(cfg, inv, target)
	if err != nil {
		return err
	}
	defer unlock()
	flags := 0
	if inv.Lazy {
		flags = unix.MNT_DETACH
	}
	hostErr := unix.Unmount(target, flags)
	if hostErr == nil {
		m.forgetMount(cfg, target)
		return nil
	}
	if errors.Is(hostErr, unix.EPERM) {
		return usage("umount %s: %v: run as root", target, hostErr)
	}
	route, err := m.umountRoute(cfg, target)
	if err != nil {
		return system("umount %s: %v; looking for a mounter that holds it: %w", target, hostErr, err)
	}
	if route == nil {
		if errors.Is(hostErr, unix.EINVAL) {
			return m.notMounted(cfg, target, fmt.Sprintf("%v (not a mount point)", hostErr))
		}
		return failure("umount %s: %v", target, hostErr)
	}
	if errors.Is(hostErr, unix.EINVAL) {
		// Mounted in the mounter (paths as it sees them)? When its table
		// cannot be read, try.
		if mounted, err := hostmount.TableOf(route.Record.PID).IsMountPoint(route.Inner); err == nil && !mounted {
			return m.notMounted(cfg, target, fmt.Sprintf("not mounted (neither on the host nor at %s in mounter %s)", route.Inner, route.Record.ID))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), execTimeout)
	defer cancel()
	argv := []string{"umount"}
	if inv.Lazy {
		argv = append(argv, "-l")
	}
	res, err := m.Exec.Exec(ctx, route.Container, append(argv, route.Inner))
	if err != nil {
		return failure("umount %s: on the host: %v; inside mounter %s at %s: %w%s",
			target, hostErr, route.Record.ID, route.Inner, err, detail(res.Stderr))
	}
	m.warnf("%s was not unmountable on the host (%v); unmounted it inside mounter %s at %s", target, hostErr, route.Record.ID, route.Inner)
	m.forgetMount(cfg, target)
	return nil
}

// notMounted answers the umount of a target mounted nowhere: still a
// failure, as umount(8) answers it, but its record goes too. The user wants
// it unmounted, and a record left behind would have mounter recover mount it
// again.
func (m *Mounter) notMounted(cfg *config.Config, target, why string) error {
	store := routedStore(cfg)
	rec, err := store.Read(target)
	switch {
	case err != nil:
		return failure("umount %s: %s; its record: %w", target, why, err)
	case rec == nil:
		return failure("umount %s: %s", target, why)
	}
	if err := store.Remove(target); err != nil {
		return failure("umount %s: %s; %w: mounter recover would mount it again; remove the file", target, why, err)
	}
	return failure("umount %s: %s; removed its record of a routed mount, so mounter recover will not mount it again", target, why)
}

// umountRoute finds the newest live mounter, of any rule, whose shared
// binds cover target; nil when there is none, an error when the registry
// cannot be read.
func (m *Mounter) umountRoute(cfg *config.Config, target string) (*Route, error) {
	recs, err := mounters(cfg, liveChecker)
	if err != nil {
		return nil, err
	}
	for _, rec := range slices.Backward(recs.Live) {
		if route, err := routeVia(cfg, rec, cfg.Rule(rec.Name), target); err == nil {
			return route, nil
		}
	}
	return nil, nil
}
