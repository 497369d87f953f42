package mounter

import (
	"sync"
	"time"

	"github.com/runc-shared/runc-shared/internal/atomicfile"
	"github.com/runc-shared/runc-shared/internal/config"
	"github.com/runc-shared/runc-shared/internal/mountrec"
)

// routedStore is the record directory of routed mounts.
func routedStore(cfg *config.Config) mountrec.MountStore {
	return mountrec.MountStore{Dir: mountrec.MountsDir(cfg.StateDir)}
}

// readRecords reads the records of CSI volumes and of routed mounts under
// stateDir, and warns of those it cannot read (which it returns too).
func (m *Mounter) readRecords(stateDir string) ([]*mountrec.Record, []*mountrec.Mount, []error) {
	vols, errs := mountrec.List(stateDir)
	routed, rerrs := mountrec.MountStore{Dir: mountrec.MountsDir(stateDir)}.List()
	errs = append(errs, rerrs...)
	for _, err := range errs {
		m.warnf("%v: the record is kept; fix or remove it", err)
	}
	return vols, routed, errs
}

// pendingRecord is the record of a routed mount, written while the mount
// is made: the durable part of the write (the file's fsync) runs beside
// the mounter's work, and only the rename waits for the mount.
type pendingRecord struct {
	sync.WaitGroup // done when the record is prepared
	p              *atomicfile.Pending
	err            error
}

// prepareRecord starts writing the record of a routed mount, for
// `mounter recover` after its mounter restarted; finishRecord puts it in
// place once the mount reached the host. Until then it is no record: a
// recovery or status meanwhile does not see it, and a `mounter mount`
// killed before the rename leaves no record of a mount that may not be
// there, as before the write began.
func (m *Mounter) prepareRecord(cfg *config.Config, inv *Invocation, route *Route) *pendingRecord {
	rec := &mountrec.Mount{Target: route.Target, Rule: route.Record.Name, FSType: inv.Type, Source: inv.Source(),
		Options: inv.OptionList(), Mounter: route.Record.ID, Created: time.Now().UTC()}
	r := &pendingRecord{}
	r.Go(func() { r.p, r.err = routedStore(cfg).Prepare(rec) })
	return r
}

// finishRecord puts the record in place when mounted, else drops it. The
// mount is there either way: a record that cannot be written is a
// warning, not a failed mount.
func (m *Mounter) finishRecord(r *pendingRecord, mounted bool) {
	r.Wait()
	err := r.err
	switch {
	case err == nil && !mounted:
		r.p.Abort()
	case err == nil:
		err = r.p.Commit()
	}
	if err != nil && mounted {
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
