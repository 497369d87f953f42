package mounter

import (
	"fmt"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/moby/sys/mountinfo"

	"github.com/runc-shared/runc-shared/internal/config"
	"github.com/runc-shared/runc-shared/internal/hostmount"
	"github.com/runc-shared/runc-shared/internal/registry"
)

// status prints the live mounters and, for each, the routed mounts it
// serves on the host: mounts of its types below its propagated paths.
// Stale records are removed, as a routed mount would.
func (m *Mounter) status(cfg *config.Config) error {
	reg := registry.New(cfg.StateDir)
	recs := liveChecker.Sort(reg)
	live := recs.Live
	if p := recs.Problems(); p != nil {
		m.warnf("%v", p)
	}
	for _, s := range recs.Stale {
		fmt.Fprintf(m.Stdout, "removed the stale record of mounter %s (rule %q): %s\n", s.Record.ID, s.Record.Name, s.Reason)
	}
	if len(live) == 0 {
		fmt.Fprintf(m.Stdout, "no live mounter is registered in %s\n", reg.Dir)
	} else {
		w := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "MOUNTER\tRULE\tPID\tRUNTIME\tROOT\tAGE")
		for _, rec := range live {
			root := rec.RuntimeRoot
			if root == "" {
				root = "(default)"
			}
			fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\t%s\n", rec.ID, rec.Name, rec.PID, rec.Runtime, root, age(m.now(), rec.Created))
		}
		if err := w.Flush(); err != nil {
			return system("write status: %w", err)
		}
	}
	for _, rule := range cfg.Mounters {
		if !slices.ContainsFunc(live, func(r *registry.Record) bool { return r.Name == rule.Name }) {
			fmt.Fprintf(m.Stdout, "rule %q (%v): no live mounter; mounts of these types fail until one starts\n", rule.Name, rule.FSTypes)
		}
	}
	if len(live) == 0 {
		return nil
	}
	served, err := servedMounts(live, cfg)
	if err != nil {
		return system("%w", err)
	}
	fmt.Fprintln(m.Stdout)
	w := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ROUTED MOUNT\tTYPE\tSOURCE\tMOUNTER")
	n := 0
	for _, rec := range live {
		for _, rm := range served[rec.ID] {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", rm.Mountpoint, rm.FSType, rm.Source, rec.ID)
			n++
		}
	}
	if n == 0 {
		fmt.Fprintln(w, "(none)\t\t\t")
	}
	if err := w.Flush(); err != nil {
		return system("write status: %w", err)
	}
	return nil
}

// routedMount is a host mount that a mounter serves.
type routedMount struct {
	Mountpoint, FSType, Source string
}

// servedMounts lists the host's mounts that some live mounter serves (of
// its types, below its paths) and groups them by mounter (the newest mounter
// of overlapping ones).
func servedMounts(live []*registry.Record, cfg *config.Config) (map[string][]routedMount, error) {
	type scope struct {
		id       string
		types    []string
		prefixes []string
	}
	scopes := make([]scope, 0, len(live))
	for i := len(live) - 1; i >= 0; i-- { // newest first
		rec := live[i]
		types, prefixes := rec.FSTypes, rec.Propagate
		if rule := cfg.Rule(rec.Name); rule != nil {
			if len(types) == 0 {
				types = rule.FSTypes
			}
			if len(prefixes) == 0 {
				prefixes = rule.Propagate
			}
		}
		scopes = append(scopes, scope{id: rec.ID, types: types, prefixes: hostmount.ExpandPrefixes(prefixes)})
	}
	var all []string
	for _, s := range scopes {
		all = append(all, s.prefixes...)
	}
	served := func(mi *mountinfo.Info) bool {
		return slices.ContainsFunc(scopes, func(s scope) bool {
			return slices.ContainsFunc(s.types, func(t string) bool { return TypeMatches(mi.FSType, t) })
		})
	}
	// Listed from the rules' paths (listmount when each is a mount point),
	// not by reading the mountinfo of a host that may have thousands.
	ms, err := hostmount.MountsUnder(all, served)
	if err != nil {
		return nil, fmt.Errorf("list the host's mounts under %v: %w", all, err)
	}
	out := map[string][]routedMount{}
	for _, mi := range ms {
		for _, s := range scopes {
			if !slices.ContainsFunc(s.types, func(t string) bool { return TypeMatches(mi.FSType, t) }) {
				continue
			}
			if _, ok := hostmount.WithinAny(mi.Mountpoint, s.prefixes); ok {
				out[s.id] = append(out[s.id], routedMount{Mountpoint: mi.Mountpoint, FSType: mi.FSType, Source: mi.Source})
				break
			}
		}
	}
	return out, nil
}

// age formats how long ago t was, to the second.
func age(now, t time.Time) string {
	if t.IsZero() {
		return "?"
	}
	d := now.Sub(t).Round(time.Second)
	if d < 0 {
		d = 0
	}
	return d.String()
}
