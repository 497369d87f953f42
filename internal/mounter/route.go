package mounter

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/runc-shared/runc-shared/internal/config"
	"github.com/runc-shared/runc-shared/internal/registry"
	"github.com/runc-shared/runc-shared/internal/runtime"
	"github.com/runc-shared/runc-shared/pkg/spec"
)

// Route is where a routed mount goes: a live mounter and the target as it
// sees it.
type Route struct {
	Record    *registry.Record
	Container Container
	Target    string // host path, absolute and resolved
	Inner     string // the same path inside the mounter
	Bind      Bind   // the bind that carries Inner to Target
}

// findRoute returns the route for a mount of fstype at target (absolute,
// resolved) among the rules of cfg that route fstype: the newest live
// mounter of the first rule, in configuration order, that has one whose
// shared binds cover target. Stale records met on the way are removed.
func (m *Mounter) findRoute(cfg *config.Config, fstype, target string, rules []*spec.Rule) (*Route, error) {
	recs, err := mounters(cfg, liveChecker)
	if err != nil {
		return nil, err
	}
	for _, s := range recs.Stale {
		m.warnf("ignored the stale record of mounter %s (rule %q): %s; removed it", s.Record.ID, s.Record.Name, s.Reason)
		if s.RemoveErr != nil {
			m.warnf("could not remove it: %v", s.RemoveErr)
		}
	}
	var uncovered []error
	for _, rule := range rules {
		// Newest first: an older record of the same rule may be a mounter
		// on its way out.
		for _, rec := range slices.Backward(recs.Live) {
			if rec.Name == rule.Name {
				route, err := routeVia(cfg, rec, rule, target)
				if err == nil {
					return route, nil
				}
				uncovered = append(uncovered, err)
			}
		}
	}
	if len(uncovered) > 0 {
		return nil, errors.Join(uncovered...)
	}
	names := joinEach(rules, " or ", func(r *spec.Rule) string { return fmt.Sprintf("%q", r.Name) })
	why := fmt.Sprintf("no running mounter of rule %s is registered in %s", names, registry.New(cfg.StateDir).Dir)
	if p := recs.Problems(); p != nil {
		why += fmt.Sprintf(" (%v)", p)
	}
	return nil, failure("no live mounter for type %s: %s; start the mounter container through runc-shared (its mount-hook registers it) and retry; `mounter doctor` checks the setup",
		fstype, why)
}

// routeVia builds the route through one live mounter, or explains why
// target is out of its reach.
func routeVia(cfg *config.Config, rec *registry.Record, rule *spec.Rule, target string) (*Route, error) {
	// Only what the binds need: the whole document is not.
	var s *specs.Spec
	f, err := spec.Read(filepath.Join(rec.Bundle, "config.json"))
	if err == nil {
		s, err = f.PeekBinds()
	}
	if err != nil {
		return nil, failure("mounter %s (rule %q): %w; the registry record points at bundle %s", rec.ID, rule.Name, err, rec.Bundle)
	}
	// The configuration's paths, not the record's: a record does not
	// widen what a rule propagates.
	binds := SharedBinds(s, rec.Bundle, rule.Propagate)
	inner, bind, ok := Translate(target, binds)
	if !ok {
		return nil, noBindError(target, rec.ID, rule.Name, binds)
	}
	// The configured runtime runs the exec (the record names one too, but a
	// record does not choose the program root runs), with the record's
	// runtime root (the --root the engine gave the runtime, which the
	// configuration cannot know; mounters checks that it is a trusted
	// directory holding the container).
	bin, err := runtime.FindRuntime(cfg.Runtime, "")
	if err != nil {
		return nil, system("mounter %s: %w", rec.ID, err)
	}
	c := Container{Runtime: bin, Root: rec.RuntimeRoot, ID: rec.ID}
	return &Route{Record: rec, Container: c, Target: target, Inner: inner, Bind: bind}, nil
}

// routedMount runs a mount through a live mounter and checks that it
// reached the host; if it did not, it undoes it inside the mounter.
func (m *Mounter) routedMount(inv *Invocation, cfg *config.Config, rules []*spec.Rule) error {
	if len(inv.Unsupported) > 0 {
		return usage("%s is routed to a mounter container, which does not support %s: drop it",
			inv.Type, strings.Join(inv.Unsupported, " "))
	}
	if len(inv.Args) != 2 {
		return usage("a routed %s mount needs SOURCE and TARGET, got %q", inv.Type, inv.Args)
	}
	target, err := absTarget(inv.Args[1]) // as given
	if err != nil {
		return err
	}
	if _, err := os.Lstat(target); errors.Is(err, os.ErrNotExist) {
		return failure("mount point %s does not exist: create it first", target)
	}
	if inv.Fake {
		return nil
	}
	// Before the lookups: the mounts at target before this mount must not
	// include one that another mount of it is making.
	unlock, err := m.lockTarget(cfg, inv, target)
	if err != nil {
		return err
	}
	defer unlock()
	ahead := lookAhead(cfg.StateDir, target)
	route, err := m.findRoute(cfg, inv.Type, target, rules)
	if err != nil {
		return err
	}
	rec := m.prepareRecord(cfg, inv, route)
	err = m.mountVia(inv, route, ahead)
	m.finishRecord(rec, err == nil)
	return err
}

// mountVia runs the mount of inv through route and checks that it reached
// the host; ahead holds the lookups started for it (lookAhead).
func (m *Mounter) mountVia(inv *Invocation, route *Route, ahead *lookahead) error {
	c, rec := route.Container, route.Record
	ahead.Wait()
	if ahead.err != nil {
		return system("%w", ahead.err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), execTimeout)
	defer cancel()
	var res ExecResult
	done, err := m.mountByServer(ctx, inv, route, ahead.anns)
	if !done {
		res, err = m.Exec.Exec(ctx, c, mountArgv(inv, route.Inner))
	}
	if res.Stdout != "" {
		fmt.Fprint(m.Stdout, res.Stdout) // mount -v output
	}
	if err != nil {
		return failure("mount inside mounter %s (rule %q) failed: %w%s", rec.ID, rec.Name, err, detail(res.Stderr))
	}
	if _, err := waitForMount(route.Target, inv.Type, ahead.before, inv.Timeout); err != nil {
		undo := m.undo(c, route.Inner)
		return failure("%s was mounted inside mounter %s at %s but did not reach the host: %w; %s. "+
			"Likely the mounter's propagation is not live (it was not started through runc-shared, or %s is not a shared mount on the host): run `mounter doctor`",
			inv.Source(), rec.ID, route.Inner, err, undo, route.Bind.Source)
	}
	if res.Stderr != "" {
		fmt.Fprint(m.Stderr, res.Stderr) // the helper's warnings, as mount(8) would show them
	}
	if inv.Verbose {
		fmt.Fprintf(m.Stdout, "%s: mounted %s on %s (%s) through mounter %s (rule %q)\n",
			inv.Prog, inv.Source(), route.Target, inv.Type, rec.ID, rec.Name)
	}
	return nil
}

// undo unmounts inner inside the mounter after a failed check, and says how
// that went.
func (m *Mounter) undo(c Container, inner string) string {
	ctx, cancel := context.WithTimeout(context.Background(), execTimeout)
	defer cancel()
	res, err := m.Exec.Exec(ctx, c, []string{"umount", inner})
	if err != nil {
		return fmt.Sprintf("undoing it inside the mounter failed too: %v%s", err, detail(res.Stderr))
	}
	return "undid it inside the mounter"
}

// detail formats a command's stderr for an error message.
func detail(stderr string) string {
	s := strings.TrimSpace(stderr)
	if s == "" {
		return ""
	}
	return ": " + strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " | ")), " ")
}
