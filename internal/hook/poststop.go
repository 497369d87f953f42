package hook

import (
	"errors"
	"path/filepath"

	"github.com/runc-shared/runc-shared/internal/hostmount"
	"github.com/runc-shared/runc-shared/internal/registry"
	"github.com/runc-shared/runc-shared/pkg/spec"
)

// poststop removes the mounter's record and detaches the dead FUSE mounts
// below the rule's paths. It only logs: nothing here may fail the runtime's
// delete.
func (r *run) poststop() {
	st := r.state
	reg := registry.New(r.cfg.StateDir)
	rec, err := reg.Read(st.ID)
	if err != nil && !errors.Is(err, registry.ErrNotFound) {
		r.log.Warnf("%v", err)
	}
	rule := r.poststopRule(rec)
	if rule == nil && rec == nil {
		return // not a mounter
	}
	if rec != nil {
		// A restarted container with the same ID registers again; a late
		// poststop of the previous instance must not remove that record.
		if st.PID > 0 && rec.PID != st.PID {
			r.log.Infof("record is of pid %d, not %d: left in place", rec.PID, st.PID)
		} else if err := reg.Remove(st.ID); err != nil {
			r.log.Warnf("%v", err)
		} else {
			r.log.Infof("unregistered mounter of rule %q", rec.Name)
		}
	}
	if rule == nil {
		r.log.Warnf("rule %q is no longer in %s: not looking for dead FUSE mounts", rec.Name, r.cfg.Path)
		return
	}
	r.detachDead(rule)
}

// poststopRule finds the rule from the bundle's config.json, or from the
// record's rule name when the bundle is gone already.
func (r *run) poststopRule(rec *registry.Record) *spec.Rule {
	doc, err := spec.Load(filepath.Join(r.state.Bundle, "config.json"))
	if err == nil {
		if rule := spec.FindRule(r.cfg.Mounters, doc.Spec); rule != nil {
			return rule
		}
	} else {
		r.log.Debugf("%v", err)
	}
	if rec != nil {
		return r.cfg.Rule(rec.Name)
	}
	return nil
}

// detachDead detaches the dead FUSE mounts within the rule's propagate paths.
// Live ones (another mounter's, or a daemon that outlived the container) and
// hung ones (their daemon may still answer) are left alone, and nothing
// outside the allowlist is ever looked at.
func (r *run) detachDead(rule *spec.Rule) {
	scan, err := hostmount.ScanFUSE(rule.Propagate, hostmount.DefaultStatTimeout)
	if err != nil {
		r.log.Warnf("%v", err)
		return
	}
	for _, m := range scan.Dead {
		if err := hostmount.Detach(m.Mountpoint); err != nil {
			r.log.Warnf("dead FUSE mount left in place: %v", err)
			continue
		}
		r.log.Infof("detached dead FUSE mount %s (%s %s)", m.Mountpoint, m.FSType, m.Source)
	}
	for _, m := range scan.Hung {
		r.log.Warnf("FUSE mount %s did not answer within %v: left in place, check its daemon", m.Mountpoint, hostmount.DefaultStatTimeout)
	}
	r.log.Debugf("FUSE mounts under %v: %d dead, %d hung, %d live", rule.Propagate, len(scan.Dead), len(scan.Hung), len(scan.Live))
}
