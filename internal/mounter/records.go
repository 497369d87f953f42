package mounter

import (
	"strings"

	"github.com/runc-shared/runc-shared/internal/config"
	"github.com/runc-shared/runc-shared/internal/mountrec"
)

// routedStore is the record directory of routed mounts.
func routedStore(cfg *config.Config) mountrec.MountStore {
	return mountrec.MountStore{Dir: mountrec.MountsDir(cfg.StateDir)}
}

// recordMount keeps a routed mount that reached the host, for `mounter
// recover` after its mounter restarted. The mount is there either way: a
// record that cannot be written is a warning, not a failed mount.
func (m *Mounter) recordMount(cfg *config.Config, inv *Invocation, route *Route) {
	var opts []string
	if o := inv.OptionString(); o != "" {
		opts = strings.Split(o, ",")
	}
	rec := &mountrec.Mount{Target: route.Target, Rule: route.Record.Name, FSType: inv.Type, Source: inv.Source(),
		Options: opts, Mounter: route.Record.ID, Created: m.now().UTC()}
	if err := routedStore(cfg).Write(rec); err != nil {
		m.warnf("%v: mounter recover will not make this mount again after its mounter restarts", err)
	}
}

// forgetMount removes the record of the routed mount at target, after
// its unmount.
func (m *Mounter) forgetMount(cfg *config.Config, target string) {
	if err := routedStore(cfg).Remove(target); err != nil {
		m.warnf("%v: mounter recover would mount it again; remove the file", err)
	}
}
