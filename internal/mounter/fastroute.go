package mounter

import (
	"context"
	"strconv"
	"sync"

	"github.com/moby/sys/mountinfo"

	"github.com/runc-shared/runc-shared/internal/csi"
	"github.com/runc-shared/runc-shared/internal/hostmount"
	"github.com/runc-shared/runc-shared/internal/registry"
)

// lookahead is what a routed mount needs beside its route, looked up while
// the router reads the registry and the mounter's spec, since neither
// depends on the route: the host's mounts at the target before the mount
// (to tell the new one), and the servers the state directory announces.
type lookahead struct {
	sync.WaitGroup // done when the lookups are
	before         []*mountinfo.Info
	err            error
	anns           []*csi.Announcement
}

// lookAhead starts the lookups of a mount at target (absolute, resolved),
// with the servers announced under stateDir.
func lookAhead(stateDir, target string) *lookahead {
	l := &lookahead{}
	l.Go(func() {
		l.before, l.err = hostmount.MountsAt(target)
		l.anns, _ = csi.Announcements(stateDir)
	})
	return l
}

// mountByServer sends the mount to the mounter's server (`mounter csi`),
// found among the announcements anns, which spares the runtime exec (a
// runtime process, a setns into every namespace of the container, a fork
// of the helper there). Either way the helper runs in the mounter, with its
// cgroup, seccomp profile and capabilities, and the caller checks the
// result on the host. done is false
// when there is no server to ask (none announced in the mounter's mount
// namespace, it does not answer, or it is of an earlier release that
// speaks only gRPC), or when the invocation needs mount(8)
// itself: -s, -v and -n are mount(8)'s flags, and a target the mounter
// sees elsewhere than the host is for the runtime exec's translation.
func (m *Mounter) mountByServer(ctx context.Context, inv *Invocation, route *Route, anns []*csi.Announcement) (done bool, err error) {
	if inv.Sloppy || inv.Verbose || inv.NoMtab || route.Inner != route.Target {
		return false, nil
	}
	a := announcedFrom(anns, "", route.Record)
	if a == nil {
		return false, nil
	}
	c, err := csi.DialMounter(route.Record.PID, a.Endpoint)
	if err != nil {
		return false, nil
	}
	defer c.Close()
	err = c.Mount(ctx, &csi.MountRequest{Rule: route.Record.Name, FSType: inv.Type, Source: inv.Source(), Options: inv.OptionList(), Target: route.Inner})
	if csi.Unavailable(err) {
		// Nothing was asked of it: a server that stopped, a stale socket.
		return false, nil
	}
	return true, err
}

// announcedFrom returns the announcement among anns of driver's server
// ("": any driver's) that runs in the mounter rec, or nil. The server runs
// in the mounter's mount namespace and started after the mounter was
// registered: the kernel reuses the inode number of a freed namespace, so
// the announcement a killed mounter's server left can name the namespace
// of the next mounter.
func announcedFrom(anns []*csi.Announcement, driver string, rec *registry.Record) *csi.Announcement {
	if len(anns) == 0 {
		return nil
	}
	ns, err := csi.MountNSOf(strconv.Itoa(rec.PID))
	if err != nil {
		return nil
	}
	for _, a := range anns {
		if (driver == "" || a.Driver == driver) && a.MountNS == ns && startedSince(a, rec) {
			return a
		}
	}
	return nil
}

// startedSince tells whether a's server started at or after rec's mounter:
// by their start times in clock ticks since boot where both are known, which
// a host clock stepped backwards between the two does not turn around, else
// by the wall clock.
func startedSince(a *csi.Announcement, rec *registry.Record) bool {
	if a.StartTicks != 0 && rec.PIDStart != 0 {
		return a.StartTicks >= rec.PIDStart
	}
	return !a.Started.Before(rec.Created)
}
