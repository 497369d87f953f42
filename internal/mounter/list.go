package mounter

import (
	"cmp"
	"fmt"
	"text/tabwriter"

	"github.com/runc-shared/runc-shared/internal/config"
	"github.com/runc-shared/runc-shared/internal/registry"
)

// list prints the registered mounters whose container still exists: running,
// paused, or one whose state the kernel could not tell. It is the question an
// uninstall asks before it removes the binaries that the engine needs to stop
// those containers, so it errs towards listing: an unreadable record fails the
// call (exit 2) instead of being left out, and nothing is removed. With quiet,
// only the IDs are printed, one a line; nothing at all when none runs.
func (m *Mounter) list(inv *Invocation, cfg *config.Config) error {
	recs, err := registry.New(cfg.StateDir).List()
	if err != nil {
		return system("%w (a mounter may still run: check with `mounter status`)", err)
	}
	w := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
	header := !inv.Quiet
	for _, rec := range recs {
		v := liveChecker.Check(rec)
		if v.Liveness == registry.Stale {
			continue
		}
		if inv.Quiet {
			fmt.Fprintln(m.Stdout, rec.ID)
			continue
		}
		if header {
			fmt.Fprintln(w, "MOUNTER\tRULE\tPID\tSTATE\tRUNTIME\tROOT")
			header = false
		}
		state := v.Liveness.String()
		if v.Liveness == registry.NotRunning {
			state = "paused" // liveChecker's only NotRunning: a frozen freezer cgroup
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\t%s\n", rec.ID, rec.Name, rec.PID, state, rec.Runtime, cmp.Or(rec.RuntimeRoot, "(default)"))
	}
	return flush(w, "list")
}
