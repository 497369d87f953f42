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

// liveChecker decides from the kernel alone (/proc, then the freezer
// cgroup) and skips the checker's `runtime state` exec. Routed mounts and
// status use it: a routed mount execs the runtime anyway, and `runtime
// exec` refuses a stopped container with a clear message; status shows what
// a routed mount would use. That saves a runtime start on every call, and
// runc's cost grows with the host's mounts (it reads all of mountinfo:
// `runc state` takes 4 ms at 20 mounts, 12 ms at 5,000 here), which
// `mounter status` paid once per mounter.
var liveChecker = &registry.Checker{Kernel: true}

// fullChecker also asks the runtime, for doctor, which reports created
// containers as such.
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
