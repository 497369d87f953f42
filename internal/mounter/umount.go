package mounter

import (
	"context"
	"errors"

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
		return failure("umount %s: %v%s", target, hostErr, notMountedHint(hostErr))
	}
	if errors.Is(hostErr, unix.EINVAL) && !mountedIn(route.Record.PID, route.Inner) {
		return failure("umount %s: not mounted (neither on the host nor at %s in mounter %s)", target, route.Inner, route.Record.ID)
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

// mountedIn reports whether path is a mount point for process pid (paths as
// it sees them); true when that cannot be read, so the caller tries.
func mountedIn(pid int, path string) bool {
	ok, err := hostmount.TableOf(pid).IsMountPoint(path)
	return err != nil || ok
}

func notMountedHint(err error) string {
	if errors.Is(err, unix.EINVAL) {
		return " (not a mount point)"
	}
	return ""
}

// umountRoute finds the newest live mounter, of any rule, whose shared
// binds cover target; nil when there is none, an error when the registry
// cannot be read.
func (m *Mounter) umountRoute(cfg *config.Config, target string) (*Route, error) {
	recs, err := mounters(cfg, liveChecker)
	if err != nil {
		return nil, err
	}
	live := recs.Live
	router := &Router{Config: cfg}
	for i := len(live) - 1; i >= 0; i-- {
		rec := live[i]
		if route, err := router.routeVia(rec, cfg.Rule(rec.Name), target); err == nil {
			return route, nil
		}
	}
	return nil, nil
}
