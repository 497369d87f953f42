package mounter

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/moby/sys/mountinfo"

	"github.com/runc-shared/runc-shared/internal/config"
	"github.com/runc-shared/runc-shared/internal/hostmount"
	"github.com/runc-shared/runc-shared/internal/registry"
	"github.com/runc-shared/runc-shared/internal/runtime"
)

// status prints the registered mounters (running, paused, or held back and
// why), the routed mounts each serves on the host (mounts of its rule's
// types below its rule's paths), the dead FUSE mounts below any rule's
// paths, which are never listed as served, and the recorded mounts that
// recovery makes again (csi_status.go). Stale records are removed, as a
// routed mount would. A registry that cannot be read is exit 2.
//
// The report is made in memory, where a write cannot fail, and written out
// at the end: one write, one error to check.
func (m *Mounter) status(cfg *config.Config) error {
	recs, err := mounters(cfg, liveChecker)
	if err != nil {
		return err
	}
	if recs.Err != nil {
		m.warnf("%v", recs.Err)
	}
	var out bytes.Buffer
	for _, s := range recs.Stale {
		fmt.Fprintf(&out, "removed the stale record of mounter %s (rule %q): %s\n", s.Record.ID, s.Record.Name, s.Reason)
	}
	if len(recs.Live)+len(recs.Held) == 0 {
		fmt.Fprintf(&out, "no live mounter is registered in %s\n", registry.New(cfg.StateDir).Dir)
	} else {
		mounterTable(&out, cfg, recs)
	}
	for _, rule := range cfg.Mounters {
		if newestLive(recs.Live, rule.Name) != nil {
			continue
		}
		if i := slices.IndexFunc(recs.Held, func(h registry.HeldRecord) bool {
			return h.Record.Name == rule.Name && h.Verdict.State == "paused"
		}); i >= 0 {
			fmt.Fprintf(&out, "rule %q (%v): its mounter %s is paused; mounts of these types fail until it is resumed\n", rule.Name, rule.FSTypes, recs.Held[i].Record.ID)
			continue
		}
		fmt.Fprintf(&out, "rule %q (%v): no live mounter; mounts of these types fail until one starts\n", rule.Name, rule.FSTypes)
	}
	var paths []string // every rule's
	for _, r := range cfg.Mounters {
		paths = append(paths, r.Propagate...)
	}
	// What is made so far is printed also when a later part fails: the
	// mounters, and the stale records just removed.
	var recorded bytes.Buffer
	fuse, err := hostmount.ScanFUSE(paths, hostmount.DefaultStatTimeout)
	if err != nil {
		err = system("%w", err)
	} else if len(recs.Live) > 0 {
		err = routedTable(&out, cfg, recs.Live, fuse)
	}
	if err == nil {
		// The recorded mounts come last: the dead table needs to know
		// which are publish targets.
		deadTable(&out, fuse, m.csiTable(&recorded, cfg.StateDir, recs.Live))
	}
	if _, werr := io.Copy(m.Stdout, io.MultiReader(&out, &recorded)); werr != nil {
		return errors.Join(err, system("write status: %w", werr))
	}
	return err
}

// mounterTable lists the registered mounters with their state, and says
// below it why each one that is not running is not used.
func mounterTable(out io.Writer, cfg *config.Config, recs registry.Records) {
	bin, _ := runtime.FindRuntime(cfg.Runtime, "")
	bin = cmp.Or(bin, cfg.Runtime)
	w := newTable(out, "MOUNTER\tRULE\tSTATE\tPID\tRUNTIME\tROOT\tAGE")
	row := func(rec *registry.Record, state string) {
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", rec.ID, rec.Name, state, rec.PID, bin, cmp.Or(rec.RuntimeRoot, "(default)"), age(rec.Created))
	}
	for _, rec := range recs.Live {
		row(rec, "running")
	}
	for _, h := range recs.Held {
		state := h.Verdict.State
		if state == "" || h.Verdict.Liveness == registry.Unknown {
			state = "not used"
		}
		row(h.Record, state)
	}
	w.Flush()
	for _, h := range recs.Held {
		rec := h.Record
		if h.Verdict.State == "paused" {
			fmt.Fprintf(out, "mounter %s (rule %q) is paused (%s): resume it (docker unpause, or runc resume %s); no mount is routed to it until then\n",
				rec.ID, rec.Name, h.Verdict.Reason, rec.ID)
			continue
		}
		fmt.Fprintf(out, "mounter %s (rule %q) is not used: %s\n", rec.ID, rec.Name, h.Verdict.Reason)
	}
}

// routedTable lists the live FUSE and other mounts that live mounters serve.
func routedTable(out io.Writer, cfg *config.Config, live []*registry.Record, fuse *hostmount.FUSEScan) error {
	served, err := servedMounts(live, cfg)
	if err != nil {
		return system("%w", err)
	}
	notLive := map[string]bool{}
	for _, mi := range append(slices.Clone(fuse.Dead), fuse.Hung...) {
		notLive[mi.Mountpoint] = true
	}
	fmt.Fprintln(out)
	w := newTable(out, "ROUTED MOUNT\tTYPE\tSOURCE\tMOUNTER")
	n := 0
	for _, rec := range live {
		for _, rm := range served[rec.ID] {
			if hostmount.IsFUSE(rm.FSType) && notLive[rm.Mountpoint] {
				continue
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", rm.Mountpoint, rm.FSType, rm.Source, rec.ID)
			n++
		}
	}
	if n == 0 {
		fmt.Fprintln(w, "(none)\t\t\t")
	}
	return w.Flush()
}

// deadTable lists the FUSE mounts below the rules' paths whose daemon is
// gone or does not answer, with what to do. Recovery binds a CSI volume
// again on top of its dead publish targets (targets), which pods' binds
// copy: detaching one would cut those pods off for good.
func deadTable(out io.Writer, fuse *hostmount.FUSEScan, targets map[string]bool) {
	if len(fuse.Dead)+len(fuse.Hung) == 0 {
		return
	}
	fmt.Fprintln(out)
	w := newTable(out, "DEAD MOUNT\tTYPE\tSOURCE\tSTATE\tFIX")
	for _, mi := range fuse.Dead {
		fix := "umount -l " + mi.Mountpoint
		if targets[mi.Mountpoint] {
			fix = "mounter recover (a CSI publish target: made again on top)"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\tdead\t%s\n", mi.Mountpoint, mi.FSType, mi.Source, fix)
	}
	for _, mi := range fuse.Hung {
		fmt.Fprintf(w, "%s\t%s\t%s\tnot answering\tcheck its daemon; umount -l %s if it is gone\n", mi.Mountpoint, mi.FSType, mi.Source, mi.Mountpoint)
	}
	w.Flush()
	fmt.Fprintln(out, deadMountAdvice)
}

// deadMountAdvice explains a dead FUSE mount, below status's table of them.
const deadMountAdvice = "a dead FUSE mount has lost its daemon (the mounter that served it stopped): every access fails with " +
	"\"Transport endpoint is not connected\" and a new mount on it fails. Detach it with `umount -l PATH`, " +
	"or restart its mounter (mount-hook detaches dead mounts below the rule's paths when a mounter stops), then mount again."

// servedMounts lists the host's mounts that some live mounter serves (of
// its rule's types, below its rule's paths) and groups them by mounter (the newest mounter
// of overlapping ones).
func servedMounts(live []*registry.Record, cfg *config.Config) (map[string][]*mountinfo.Info, error) {
	type scope struct {
		id       string
		types    []string
		prefixes []string
	}
	var scopes []scope
	var all []string
	for _, rec := range slices.Backward(live) { // newest first
		if rule := cfg.Rule(rec.Name); rule != nil { // mounters holds back records without one
			s := scope{id: rec.ID, types: rule.FSTypes, prefixes: hostmount.ExpandPrefixes(rule.Propagate)}
			scopes, all = append(scopes, s), append(all, s.prefixes...)
		}
	}
	// servedBy is the index of the newest scope that serves mi, or -1.
	servedBy := func(mi *mountinfo.Info) int {
		return slices.IndexFunc(scopes, func(s scope) bool {
			_, below := hostmount.WithinAny(mi.Mountpoint, s.prefixes)
			return below && slices.ContainsFunc(s.types, func(t string) bool { return TypeMatches(mi.FSType, t) })
		})
	}
	// Listed from the rules' paths (listmount when each is a mount point),
	// not by reading the mountinfo of a host that may have thousands.
	ms, err := hostmount.MountsUnder(all, func(mi *mountinfo.Info) bool { return servedBy(mi) >= 0 })
	if err != nil {
		return nil, fmt.Errorf("list the host's mounts under %v: %w", all, err)
	}
	out := map[string][]*mountinfo.Info{}
	for _, mi := range ms {
		id := scopes[servedBy(mi)].id
		out[id] = append(out[id], mi)
	}
	return out, nil
}

// newTable starts a table on out under the tab-separated header, in the
// layout of every table the mounter prints. status's tables go to memory,
// where their Flush cannot fail; the others flush with flush.
func newTable(out io.Writer, header string) *tabwriter.Writer {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, header)
	return w
}

// flush writes the table out; what names the output in the error.
func flush(w *tabwriter.Writer, what string) error {
	if err := w.Flush(); err != nil {
		return system("write %s: %w", what, err)
	}
	return nil
}

// age formats how long ago t was, to the second (0s for a time to come).
func age(t time.Time) string {
	if t.IsZero() {
		return "?"
	}
	return max(time.Since(t).Round(time.Second), 0).String()
}
