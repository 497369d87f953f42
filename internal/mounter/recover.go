package mounter

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/runc-shared/runc-shared/internal/config"
	"github.com/runc-shared/runc-shared/internal/csi"
	"github.com/runc-shared/runc-shared/internal/mountrec"
	"github.com/runc-shared/runc-shared/internal/registry"
	"github.com/runc-shared/runc-shared/pkg/spec"
)

// `mounter recover` makes the recorded mounts of live mounters again: the
// CSI volumes (staging mount, then each publish target bound on top of
// what is there) and the mounts `mounter mount` routed. A mounter that
// serves the CSI driver does its volumes itself, asked over its socket;
// for one that runs no server the host does what the server would, with
// each helper mount run inside the mounter as a routed mount is. What
// counts is the check afterwards: every recorded mount of the rules asked
// for must be live on the host.

// recoverTimeout bounds one call of a mounter's server, which makes every
// volume of the rule again, each helper within its own bound.
const recoverTimeout = 5 * time.Minute

// recordedMount is one path a record says must hold a live mount.
type recordedMount struct {
	Path, Rule string
	// Record names the record ("volume ID", "routed FSTYPE"), Role says
	// more in status ("(staging)", "(target)", the routed mount's source),
	// and Key tells the record from every other ("volume ID", "routed PATH").
	Record, Role, Key string
	// Note is what recover did or why it could not.
	Note string
}

// recordedMounts lists the paths of the volumes' records, then those of the
// routed mounts'.
func recordedMounts(vols []*mountrec.Record, routed []*mountrec.Mount) []recordedMount {
	var out []recordedMount
	for _, v := range vols {
		vol := recordedMount{Path: v.Staging, Rule: v.Rule, Record: "volume " + v.VolumeID, Role: "(staging)", Key: "volume " + v.VolumeID}
		if v.Staging != "" {
			out = append(out, vol)
		}
		for _, t := range v.Targets {
			vol.Path, vol.Role = t.Path, "(target)"
			out = append(out, vol)
		}
	}
	for _, r := range routed {
		out = append(out, recordedMount{Path: r.Target, Rule: r.Rule, Record: "routed " + r.FSType, Role: r.Source, Key: "routed " + r.Target})
	}
	return out
}

func (m *Mounter) recoverMounts(inv *Invocation, cfg *config.Config) error {
	if inv.Rule != "" && cfg.Rule(inv.Rule) == nil {
		return usage("--rule %q: %s has no [[mounter]] rule of that name", inv.Rule, cfg.Name())
	}
	// One `mounter recover` at a time, waiting for another to finish: the
	// host-side recovery writes the records of a mounter without a server,
	// which no other process writes then.
	unlock, err := routedStore(cfg).Lock(context.Background(), "mounter recover")
	if err != nil {
		return system("%w", err)
	}
	defer unlock()
	recs, err := mounters(cfg, liveChecker)
	if err != nil {
		return err
	}
	for _, s := range recs.Stale {
		m.warnf("removed the stale record of mounter %s (rule %q): %s", s.Record.ID, s.Record.Name, s.Reason)
	}
	want := func(rule string) bool { return inv.Rule == "" || rule == inv.Rule }
	vols, routed, unreadable := m.readRecords(cfg.StateDir)
	vols = slices.DeleteFunc(vols, func(v *mountrec.Record) bool { return !want(v.Rule) })
	routed = slices.DeleteFunc(routed, func(r *mountrec.Mount) bool { return !want(r.Rule) })
	rules := map[string]bool{} // of the records
	for _, v := range vols {
		rules[v.Rule] = true
	}
	for _, r := range routed {
		rules[r.Rule] = true
	}

	notes := map[string]string{}   // by record: what this run did
	skipped := map[string]string{} // by rule: why this run did nothing
	gone := map[*mountrec.Mount]bool{}
	for _, name := range slices.Sorted(maps.Keys(rules)) {
		live, rule := newestLive(recs.Live, name), cfg.Rule(name)
		switch {
		case rule == nil:
			skipped[name] = fmt.Sprintf("rule %q is not in %s: restore the rule, or unmount and remove the record", name, cfg.Name())
			continue
		case live == nil:
			skipped[name] = fmt.Sprintf("no live mounter of rule %q: start one through runc-shared, then run mounter recover again", name)
			continue
		}
		em := &execMounter{m: m, cfg: cfg, rec: live, rule: rule, timeout: inv.Timeout}
		m.recoverVolumes(em, vols, notes)
		for _, r := range routed {
			if r.Rule == name {
				notes["routed "+r.Target], gone[r] = m.recoverRouted(em, r)
			}
		}
	}

	all := recordedMounts(vols, slices.DeleteFunc(routed, func(r *mountrec.Mount) bool { return gone[r] }))
	for i, p := range all {
		all[i].Note = cmp.Or(skipped[p.Rule], notes[p.Key])
	}
	return m.reportRecovery(all, unreadable, inv.Rule)
}

// reportRecovery checks every recorded mount on the host and prints them:
// exit 0 when all are live, 32 when some are not, 2 when some records
// cannot be read (and all readable ones are live).
func (m *Mounter) reportRecovery(all []recordedMount, unreadable []error, rule string) error {
	if len(all) == 0 {
		scope := ""
		if rule != "" {
			scope = fmt.Sprintf(" of rule %q", rule)
		}
		fmt.Fprintf(m.Stdout, "no recorded mount%s\n", scope)
	} else {
		w := newTable(m.Stdout, "RECORDED MOUNT\tRECORD\tRULE\tSTATE")
		var bad []string
		for _, rm := range all {
			state, err := csi.MountState(rm.Path)
			if err != nil {
				state = "unknown"
				rm.Note = strings.TrimPrefix(rm.Note+"; "+err.Error(), "; ")
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", rm.Path, rm.Record, rm.Rule, state)
			if state != "live" {
				line := fmt.Sprintf("%s (%s): %s", rm.Path, rm.Record, state)
				if rm.Note != "" {
					line += ": " + rm.Note
				}
				bad = append(bad, line)
			}
		}
		if err := flush(w, "the result"); err != nil {
			return err
		}
		if len(bad) > 0 {
			return failure("%d of %d recorded mounts are not live (kept for the next mounter recover; mounter status shows them):\n  %s",
				len(bad), len(all), strings.Join(bad, "\n  "))
		}
	}
	if len(unreadable) > 0 {
		return system("%d records cannot be read: %w", len(unreadable), errors.Join(unreadable...))
	}
	return nil
}

// newestLive returns the newest live mounter of rule, or nil.
func newestLive(live []*registry.Record, rule string) *registry.Record {
	for _, rec := range slices.Backward(live) {
		if rec.Name == rule {
			return rec
		}
	}
	return nil
}

// recoverVolumes makes the CSI volumes of em's rule live, driver by
// driver: through the mounter's server when it announced one and answers,
// else from the host with helper mounts run inside the mounter (em).
// notes gets what the pass did with each volume.
func (m *Mounter) recoverVolumes(em *execMounter, vols []*mountrec.Record, notes map[string]string) {
	byDriver := map[string][]*mountrec.Record{}
	for _, v := range vols {
		if v.Rule == em.rule.Name {
			byDriver[v.Driver] = append(byDriver[v.Driver], v)
		}
	}
	for _, driver := range slices.Sorted(maps.Keys(byDriver)) {
		results, how := m.recoverDriver(em, driver, byDriver[driver])
		for _, r := range results {
			note := "live, left alone"
			switch {
			case r.Error != "":
				note = r.Error
			case r.Remounted || r.Rebound > 0:
				note = fmt.Sprintf("made again %s (mounted again: %v, targets bound again: %d)", how, r.Remounted, r.Rebound)
			}
			if r.VolumeID != "" {
				notes["volume "+r.VolumeID] = note
			}
		}
	}
}

// recoverDriver runs one pass over one driver's volumes of em's rule and
// says how it went about it.
func (m *Mounter) recoverDriver(em *execMounter, driver string, vols []*mountrec.Record) ([]csi.VolumeResult, string) {
	ctx, cancel := context.WithTimeout(context.Background(), recoverTimeout)
	defer cancel()
	live, rule := em.rec, em.rule
	anns, _ := csi.Announcements(em.cfg.StateDir)
	if a := announcedFrom(anns, driver, live); a != nil {
		res, err := askServer(ctx, live.PID, a.Endpoint, rule.Name)
		if err == nil {
			return res, "by the server of mounter " + live.ID
		}
		m.warnf("the CSI server of mounter %s (rule %q) does not answer (%v): making its volumes again from the host through a runtime exec", live.ID, rule.Name, err)
	}
	s, err := csi.NewServer(driver, vols[0].Node, em.cfg, rule.Name, em, csi.NewLogger(m.Stderr, em.cfg.LogLevel))
	if err != nil {
		out := make([]csi.VolumeResult, len(vols))
		for i, v := range vols {
			out[i] = csi.VolumeResult{VolumeID: v.VolumeID, Error: err.Error()}
		}
		return out, ""
	}
	s.HelperPID = live.PID
	results := s.RecoverNow(ctx, rule.Name)
	if err := s.Close(); err != nil {
		m.warnf("%v", err)
	}
	return results, "through a runtime exec into mounter " + live.ID
}

func askServer(ctx context.Context, pid int, endpoint, rule string) ([]csi.VolumeResult, error) {
	c, err := csi.DialMounter(pid, endpoint)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.Recover(ctx, rule)
}

// execMounter is csi.Mounter for the host side of a mounter without a
// server: helper mounts run inside the mounter as a routed mount does and
// are checked to reach the host; binds and unmounts are the host's own.
type execMounter struct {
	csi.SystemMounter
	m    *Mounter
	cfg  *config.Config
	rec  *registry.Record
	rule *spec.Rule
	// timeout bounds the wait for each mount to reach the host.
	timeout time.Duration
}

// Mount runs the helper inside the mounter at target's place there.
func (e *execMounter) Mount(_ context.Context, v csi.Volume, target string) error {
	route, err := routeVia(e.cfg, e.rec, e.rule, target)
	if err != nil {
		return err
	}
	inv := &Invocation{Prog: e.m.prog, Type: v.FSType, Options: v.Options, Args: []string{v.Source, target}, Timeout: e.timeout}
	return e.m.mountVia(inv, route, lookAhead(e.cfg.StateDir, target))
}

// recoverRouted makes one routed mount live again through the rule's live
// mounter, as a staging mount is (csi.Remount), and says what it did or why
// it could not. gone is set, and the record removed, when the mount was
// taken away without `mounter umount`: it is missing though runc-shared did
// not detach it (Mount.Detached), or its mount point no longer exists. A
// user who unmounted it expects it to stay unmounted.
//
// It works under the target's lock (lockTarget), on the record as it is
// then: a `mounter umount` that removed it meanwhile leaves nothing to do,
// a `mounter mount` that wrote it anew leaves the new one to recover.
func (m *Mounter) recoverRouted(em *execMounter, r *mountrec.Mount) (note string, gone bool) {
	store := routedStore(em.cfg)
	unlock, err := store.Lock(context.Background(), r.Target)
	if err != nil {
		return err.Error(), false
	}
	defer unlock()
	now, err := store.Read(r.Target)
	switch {
	case err != nil:
		return err.Error(), false
	case now == nil:
		fmt.Fprintf(m.Stdout, "left the routed mount at %s alone: mounter umount removed its record meanwhile\n", r.Target)
		return "", true
	case now.Rule != r.Rule:
		*r = *now
		return fmt.Sprintf("mounted anew through rule %q meanwhile: left to the next mounter recover", now.Rule), false
	}
	*r = *now
	state, err := csi.MountState(r.Target)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err.Error(), false
	}
	if state == "live" {
		return "live, left alone", false
	}
	resolved, err := csi.ResolvePath("mount point", r.Target, em.rule.Propagate)
	if errors.Is(err, fs.ErrNotExist) || (state == "missing" && r.Detached.IsZero()) {
		if rerr := store.Remove(r.Target); rerr != nil {
			return rerr.Error(), false
		}
		fmt.Fprintf(m.Stdout, "forgot the routed mount at %s: it was unmounted without mounter umount (not by mount-hook when its mounter stopped)\n", r.Target)
		return "", true
	}
	if err == nil && resolved != r.Target {
		err = fmt.Errorf("the mount point %s now resolves to %s: left alone", r.Target, resolved)
	}
	if err == nil {
		if state == "dead" {
			// Detached by Remount: should the mount fail, it is missing,
			// and the next run must still make it.
			r.Detached = time.Now().UTC()
		}
		_, err = csi.Remount(context.Background(), em, csi.Volume{FSType: r.FSType, Source: r.Source, Options: r.Options}, r.Target)
	}
	if err != nil {
		r.Recovery = r.Recovery.Failed(err, time.Now(), time.Time{})
	} else {
		r.Mounter, r.Recovery, r.Detached = em.rec.ID, nil, time.Time{}
	}
	if werr := store.Write(r); werr != nil {
		m.warnf("%v", werr)
	}
	if err != nil {
		return err.Error(), false
	}
	return "mounted again through mounter " + em.rec.ID, false
}
