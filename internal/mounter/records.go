package mounter

import (
	"context"
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

// lockTarget takes the lock of the routed mount at target (its record's
// key, across processes) for the mount, umount or recovery of it, and
// returns the function that releases it: with it, a recovery that found
// the mount dead cannot make it again after an umount removed it, nor
// write its record over a new mount's. A holder can run a helper mount up
// to its exec timeout; the caller waits for it as mount(8) waits for a
// busy mount point, at most --timeout when given.
func (m *Mounter) lockTarget(cfg *config.Config, inv *Invocation, target string) (func(), error) {
	// Without --timeout, a context that cannot end: filelock then blocks
	// in flock(2) and spends nothing on polling (the route's cost).
	ctx := context.Background()
	if inv.TimeoutSet {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, inv.Timeout)
		defer cancel()
	}
	unlock, err := routedStore(cfg).Lock(ctx, target)
	switch {
	case err != nil && ctx.Err() != nil:
		return nil, failure("%s: another mounter mount, umount or recover of it is still running after --timeout %v (%w): retry when it is done", target, inv.Timeout, err)
	case err != nil:
		// As with the record itself (finishRecord): bookkeeping that fails
		// is a warning, not a failed mount or umount; the mount's own
		// errors (EPERM for a user) stay the ones it reports.
		m.warnf("%s: %v: going on without the lock of its record; mounter recover needs the state directory %s writable", target, err, cfg.StateDir)
		return func() {}, nil
	}
	return unlock, nil
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
