package hook

import (
	"errors"
	"path/filepath"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/runc-shared/runc-shared/internal/config"
	"github.com/runc-shared/runc-shared/internal/hookargs"
	"github.com/runc-shared/runc-shared/internal/hostmount"
	"github.com/runc-shared/runc-shared/internal/mountrec"
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
		r.removeRecord(reg, rec)
	}
	if rule == nil {
		r.log.Warnf("rule %q is no longer in %s: not looking for dead FUSE mounts", rec.Name, r.cfg.Path)
		return
	}
	r.detachDead(rule.Propagate, r.cfg.StateDir)
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

// detachDead detaches the dead FUSE mounts within the propagated paths.
// Live ones (another mounter's, or a daemon that outlived the container) and
// hung ones (their daemon may still answer) are left alone, and nothing
// outside the allowlist is ever looked at.
//
// The publish targets of the CSI volumes recorded under stateDir are kept,
// dead: a pod's bind of a target is a copy of that mount, which no unmount
// here reaches, while the bind the next mounter's recovery makes on top of
// it propagates into every pod whose bind is rslave. Their records stay for
// that recovery.
func (r *run) detachDead(propagate []string, stateDir string) {
	scan, err := hostmount.ScanFUSE(propagate, hostmount.DefaultStatTimeout)
	if err != nil {
		r.log.Warnf("%v", err)
		return
	}
	keep := map[string]string{}
	recs, errs := mountrec.List(stateDir)
	for _, err := range errs {
		r.log.Warnf("CSI volume record: %v", err)
	}
	for _, rec := range recs {
		for _, t := range rec.Targets {
			keep[t.Path] = rec.VolumeID
		}
	}
	routed := mountrec.MountStore{Dir: mountrec.MountsDir(stateDir)}
	for _, m := range scan.Dead {
		if id, ok := keep[m.Mountpoint]; ok {
			r.log.Infof("dead FUSE mount %s kept: it is a publish target of CSI volume %s, which the rule's next mounter binds again on top of it", m.Mountpoint, id)
			continue
		}
		if err := hostmount.Detach(m.Mountpoint); err != nil {
			r.log.Warnf("dead FUSE mount left in place: %v", err)
			continue
		}
		r.log.Infof("detached dead FUSE mount %s (%s %s)", m.Mountpoint, m.FSType, m.Source)
		// A routed mount's record learns that its mount is missing for
		// recovery to make again, not because a user unmounted it.
		if err := mountrec.MarkDetached(routed, m.Mountpoint, time.Now()); err != nil {
			r.log.Warnf("%v: mounter recover will forget this mount instead of mounting it again", err)
		}
	}
	for _, m := range scan.Hung {
		r.log.Warnf("FUSE mount %s did not answer within %v: left in place, check its daemon", m.Mountpoint, hostmount.DefaultStatTimeout)
	}
	r.log.Debugf("FUSE mounts under %v: %d dead, %d hung, %d live", propagate, len(scan.Dead), len(scan.Hung), len(scan.Live))
}

// poststopWithoutConfig cleans up after a mounter whose configuration broke
// or lost its rules while it ran (why says which): it finds the mounter's
// registry record in the first of dir (the configuration's, "" for none),
// the state directory the hook was given (--state-dir) and the default that
// holds one, removes it, and
// detaches the dead FUSE mounts below the paths the record says the mounter
// propagated. A container without a record is no mounter: nothing is
// logged.
//
// This is the one place a record's paths are used: only a record from a
// state directory that passes the configuration file's trust rule, and only
// to detach FUSE mounts whose daemon is gone, which fail every access
// anyway. It returns the logger of the state directory it used (stderr only
// when none).
func (h *Hook) poststopWithoutConfig(opts *hookargs.Args, st *State, dir, why string) *logrus.Logger {
	log := newLogger("", "", h.Stderr)
	seen := map[string]bool{}
	for _, dir := range []string{dir, opts.StateDir, config.DefaultStateDir} {
		if dir == "" || seen[filepath.Clean(dir)] {
			continue
		}
		dir = filepath.Clean(dir)
		seen[dir] = true
		reg := registry.New(dir)
		rec, err := reg.Read(st.ID)
		if errors.Is(err, registry.ErrNotFound) {
			continue
		}
		if err != nil {
			log.Warnf("poststop of container %s: %v", st.ID, err)
			continue
		}
		log = newLogger(filepath.Join(dir, LogName), config.DefaultLogLevel, h.Stderr)
		r := &run{Hook: h, opts: opts, state: st,
			log: log.WithFields(logrus.Fields{"id": shortID(st.ID), "stage": string(opts.Stage)})}
		r.log.Warnf("%s, so this poststop works from the registry record in %s: it removes the record and detaches dead FUSE mounts below the paths the record names %v",
			why, reg.Dir, rec.Propagate)
		r.cleanupRecord(reg, rec)
		return log
	}
	return log
}

// cleanupRecord is poststop from a record alone: remove it unless a newer
// instance of the container wrote it, then detach the dead FUSE mounts
// below its paths.
func (r *run) cleanupRecord(reg *registry.Registry, rec *registry.Record) {
	r.removeRecord(reg, rec)
	var paths []string
	for _, p := range rec.Propagate {
		// The configuration never allows these; a record that holds them
		// was not written by mount-hook.
		if filepath.IsAbs(p) && filepath.Clean(p) != "/" {
			paths = append(paths, filepath.Clean(p))
		}
	}
	if len(paths) == 0 {
		r.log.Warnf("the record names no propagated path: not looking for dead FUSE mounts")
		return
	}
	r.detachDead(paths, filepath.Dir(reg.Dir))
}

// removeRecord removes the mounter's record. A restarted container with the
// same ID registers again; a late poststop of the previous instance must not
// remove that record.
func (r *run) removeRecord(reg *registry.Registry, rec *registry.Record) {
	if st := r.state; st.PID > 0 && rec.PID != st.PID {
		r.log.Infof("record is of pid %d, not %d: left in place", rec.PID, st.PID)
	} else if err := reg.Remove(st.ID); err != nil {
		r.log.Warnf("%v", err)
	} else {
		r.log.Infof("unregistered mounter of rule %q", rec.Name)
	}
}
