package mounter

import (
	"errors"
	"fmt"

	"github.com/runc-shared/runc-shared/internal/registry"
)

// A registry record outlives its container when the poststop hook never ran
// (the mounter was killed with SIGKILL and its engine died too, the node
// rebooted with a persistent state-dir): its PID is then gone, or, worse, now
// belongs to another process. registry.Checker tells these apart from
// /proc/PID/stat (state and start time against the record's PIDStart).

// routeChecker decides from /proc alone and skips the checker's `runtime
// state` exec: a routed mount execs the runtime anyway, and `runtime exec`
// refuses a paused or stopped container with a clear message. That saves a
// runtime start (several milliseconds) on every mount.
var routeChecker = &registry.Checker{State: func(*registry.Record) (string, error) { return "running", nil }}

// fullChecker also asks the runtime, for status and doctor, which report
// paused and created containers as such.
var fullChecker = registry.DefaultChecker

// StaleRecord is a record of a mounter that no longer runs.
type StaleRecord struct {
	Record    *registry.Record
	Reason    string
	RemoveErr error // why it could not be removed, if it could not
}

// Records is a registry listing sorted by liveness.
type Records struct {
	Live    []*registry.Record // oldest first
	Stale   []StaleRecord      // removed (unless RemoveErr)
	Skipped []error            // not running, or undecided: kept, not used
	Err     error              // unreadable records and the listing error
}

// checkRecords lists the registry, decides each record with c and removes
// the stale ones. Removal is best effort and safe against a race: another
// client may remove the same record (Remove tolerates that), and a new
// container that registered under the same ID since the listing keeps its
// record (it is re-read and compared first).
func checkRecords(reg *registry.Registry, c *registry.Checker) Records {
	recs, err := reg.List()
	out := Records{Err: err}
	for _, rec := range recs {
		v := c.Check(rec)
		switch v.Liveness {
		case registry.Running:
			out.Live = append(out.Live, rec)
		case registry.Stale:
			s := StaleRecord{Record: rec, Reason: v.Reason}
			if cur, err := reg.Read(rec.ID); err == nil && sameRecord(cur, rec) {
				s.RemoveErr = reg.Remove(rec.ID)
			}
			out.Stale = append(out.Stale, s)
		default:
			out.Skipped = append(out.Skipped, fmt.Errorf("mounter %s (rule %q) is %s: %s", rec.ID, rec.Name, v.Liveness, v.Reason))
		}
	}
	return out
}

func sameRecord(a, b *registry.Record) bool {
	return a.PID == b.PID && a.PIDStart == b.PIDStart && a.Created.Equal(b.Created)
}

// problems joins what kept records from being used, for error messages.
func (r Records) problems() error {
	return errors.Join(append(r.Skipped, r.Err)...)
}
