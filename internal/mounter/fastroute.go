package mounter

import (
	"context"
	"strings"

	"github.com/runc-shared/runc-shared/internal/csi"
)

// runMount runs the mount of a routed invocation inside the mounter: by the
// mounter's own server when it runs one (`mounter csi`), which spares the
// runtime exec (a runtime process, a setns into every namespace of the
// container, a fork of the helper there), else through the runtime's exec.
// Either way the helper runs in the mounter, with its cgroup, seccomp
// profile and capabilities, and the caller checks the result on the host.
func (m *Mounter) runMount(ctx context.Context, inv *Invocation, route *Route) (ExecResult, error) {
	if done, err := m.mountByServer(ctx, inv, route); done {
		return ExecResult{}, err
	}
	return m.Exec.Exec(ctx, route.Container, mountArgv(inv, route.Inner))
}

// mountByServer sends the mount to the mounter's server; done is false
// when there is no server to ask (none announced in the mounter's mount
// namespace, it does not answer, or it is of an earlier release that
// speaks only gRPC), or when the invocation needs mount(8)
// itself: -s, -v and -n are mount(8)'s flags, and a target the mounter
// sees elsewhere than the host is for the runtime exec's translation.
func (m *Mounter) mountByServer(ctx context.Context, inv *Invocation, route *Route) (done bool, err error) {
	if inv.Sloppy || inv.Verbose || inv.NoMtab || route.Inner != route.Target || route.StateDir == "" {
		return false, nil
	}
	a := announcedAny(route.StateDir, route.Record.PID)
	if a == nil {
		return false, nil
	}
	c, err := csi.DialMounter(route.Record.PID, a.Endpoint)
	if err != nil {
		return false, nil
	}
	defer c.Close()
	var opts []string
	if o := inv.OptionString(); o != "" {
		opts = strings.Split(o, ",")
	}
	err = c.Mount(ctx, &csi.MountRequest{Rule: route.Record.Name, FSType: inv.Type, Source: inv.Source(), Options: opts, Target: route.Inner})
	if csi.Unavailable(err) {
		// Nothing was asked of it: a server that stopped, a stale socket.
		return false, nil
	}
	return true, err
}

// announcedAny returns an announcement of a server of any driver in the
// mount namespace of process pid, or nil.
func announcedAny(stateDir string, pid int) *csi.Announcement {
	return announcedIn(stateDir, "", pid)
}
