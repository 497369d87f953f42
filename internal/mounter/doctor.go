package mounter

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/runc-shared/runc-shared/internal/config"
	"github.com/runc-shared/runc-shared/internal/hookargs"
	"github.com/runc-shared/runc-shared/internal/hostmount"
	"github.com/runc-shared/runc-shared/internal/registry"
	"github.com/runc-shared/runc-shared/internal/runtime"
	"github.com/runc-shared/runc-shared/pkg/spec"
)

// Check is one line of `mounter doctor`.
type Check struct {
	OK     bool
	Name   string
	Detail string
	Fix    string // what to do; shown for a failed check or a warning
	// Warn marks a problem that may not apply to this host (doctor cannot
	// tell for sure): shown with its fix, but it does not fail doctor.
	Warn bool
}

func (c Check) String() string {
	switch {
	case c.OK:
		return fmt.Sprintf("ok %s: %s", c.Name, c.Detail)
	case c.Warn:
		return fmt.Sprintf("WARN %s: %s (fix: %s)", c.Name, c.Detail, c.Fix)
	}
	return fmt.Sprintf("FAIL %s: %s (fix: %s)", c.Name, c.Detail, c.Fix)
}

func pass(name, format string, args ...any) Check {
	return Check{OK: true, Name: name, Detail: fmt.Sprintf(format, args...)}
}

func fail(name, fix, format string, args ...any) Check {
	return Check{Name: name, Detail: fmt.Sprintf(format, args...), Fix: fix}
}

// doctor prints one line per check and fails when any check fails.
func (m *Mounter) doctor(inv *Invocation) error {
	checks := m.Diagnose(inv)
	failed := 0
	for _, c := range checks {
		fmt.Fprintln(m.Stdout, c)
		if !c.OK && !c.Warn {
			failed++
		}
	}
	if failed > 0 {
		return &Error{Code: ExitUsage, Err: fmt.Errorf("%d of %d checks failed", failed, len(checks))}
	}
	return nil
}

// Diagnose runs every check in order. A configuration that does not load
// stops the list: the other checks read it.
func (m *Mounter) Diagnose(inv *Invocation) []Check {
	path := config.Path(inv.ConfigPath, inv.ConfigSet)
	cfg, c := checkConfig(path)
	checks := []Check{c}
	if cfg == nil {
		return checks
	}
	wrapper := wrapperPath()
	checks = append(checks, checkRuntime(cfg, wrapper), checkWrapper(wrapper), checkHook(cfg, wrapper))
	engines := m.dockerRuntimes(wrapper)
	for i := range cfg.Mounters {
		checks = append(checks, checkPaths(&cfg.Mounters[i])...)
		if c, ok := checkMatch(&cfg.Mounters[i], cfg.Mounters, engines); ok {
			checks = append(checks, c)
		}
	}
	checks = append(checks, m.checkMounters(cfg)...)
	for i := range cfg.Mounters {
		checks = append(checks, checkDeadMounts(&cfg.Mounters[i]))
	}
	for i := range cfg.Mounters {
		if r := &cfg.Mounters[i]; r.Mode == spec.ModePreload {
			checks = append(checks, checkPreload(r, wrapper))
		}
	}
	return checks
}

func checkConfig(path string) (*config.Config, Check) {
	const name = "config"
	cfg, err := config.Load(path)
	switch {
	case err != nil:
		return nil, fail(name, "correct the file as the message says", "%v", err)
	case cfg.Missing:
		return nil, fail(name, fmt.Sprintf("write %s with a [[mounter]] rule, or pass --config PATH", path),
			"no configuration file at %q: nothing is routed and every container passes through", path)
	case len(cfg.Mounters) == 0:
		return nil, fail(name, "add a [[mounter]] rule with the fstypes to route",
			"%s has no [[mounter]] rule: nothing is routed", path)
	}
	rules := joinEach(cfg.Mounters, ", ", func(r spec.Rule) string { return fmt.Sprintf("%s %v", r.Name, r.FSTypes) })
	return cfg, pass(name, "%s is valid; rules: %s", path, rules)
}

// checkRuntime finds the delegate and shows the first line of its --version.
func checkRuntime(cfg *config.Config, wrapper string) Check {
	const name = "runtime"
	bin, err := runtime.FindRuntime(cfg.Runtime, wrapper)
	if err != nil {
		return fail(name, "install runc (apt-get install runc) or set `runtime` to its absolute path", "%v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--version").Output()
	if err != nil {
		return fail(name, fmt.Sprintf("check that %s is a working OCI runtime", bin), "%s --version: %v", bin, err)
	}
	first, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return pass(name, "%s (%s)", bin, first)
}

// checkWrapper looks for runc-shared, which engines must run as their runtime.
func checkWrapper(wrapper string) Check {
	const name = "runc-shared"
	if runtime.IsExecutable(wrapper) == nil {
		return pass(name, "%s", wrapper)
	}
	if p, err := exec.LookPath("runc-shared"); err == nil {
		return pass(name, "%s", p)
	}
	return fail(name, "install it (make install) and configure the engine to use it as its runtime",
		"runc-shared is neither at %s nor on PATH", wrapper)
}

// checkHook looks for mount-hook where the wrapper injects it from.
func checkHook(cfg *config.Config, wrapper string) Check {
	const name = hookargs.Name
	hook := cfg.HookBinary(wrapper)
	if runtime.IsExecutable(hook) == nil {
		return pass(name, "%s", hook)
	}
	where := "beside runc-shared"
	if cfg.HookPath != "" {
		where = "at hook-path"
	}
	return fail(name, "install it beside runc-shared (make install), or set hook-path to where it is",
		"%s is missing or not executable (looked %s): mounters are never registered, so no mount can be routed", hook, where)
}

// checkPaths checks that each propagated path of rule exists and is shared,
// or will be made shared by the wrapper.
func checkPaths(rule *spec.Rule) []Check {
	name := fmt.Sprintf("paths[%s]", rule.Name)
	var out []Check
	for _, p := range rule.Propagate {
		r, err := filepath.EvalSymlinks(p)
		if err != nil {
			out = append(out, fail(name, fmt.Sprintf("mkdir -p %s", p), "%s: %v", p, err))
			continue
		}
		shown := p
		if r != p {
			shown = fmt.Sprintf("%s (-> %s)", p, r)
		}
		mi, err := hostmount.MountOf(r)
		if err != nil {
			out = append(out, fail(name, "check /proc/self/mountinfo", "%s: %v", shown, err))
			continue
		}
		switch g := hostmount.PeerGroup(mi); {
		case g > 0:
			out = append(out, pass(name, "%s is on a shared mount (%s, peer group %d)", shown, mi.Mountpoint, g))
		case rule.EnsureShared:
			out = append(out, pass(name, "%s is not on a shared mount yet; runc-shared makes it one when the mounter starts (ensure-shared = true)", shown))
		default:
			out = append(out, fail(name, fmt.Sprintf("mount --bind %s %s && mount --make-rshared %s, or set ensure-shared = true", r, r, r),
				"%s is not on a shared mount and ensure-shared = false: runc-shared will refuse the mounter", shown))
		}
	}
	return out
}

// checkMounters checks that each rule has a live mounter and that the
// mounter's propagation is live: its view of each shared bind is in the
// host's peer group, so its mounts reach the host.
func (m *Mounter) checkMounters(cfg *config.Config) []Check {
	reg := registry.New(cfg.StateDir)
	// Doctor asks the configured runtime too, which reports created
	// containers as such; without one ("" when it is not found) every
	// record is undecided.
	bin, _ := runtime.FindRuntime(cfg.Runtime, "")
	recs, err := mounters(cfg, &registry.Checker{Runtime: bin})
	if err != nil {
		return []Check{fail("registry", fmt.Sprintf("make %s and the directories above it owned by root and writable by root only, or set state-dir to such a directory; then restart the mounters", cfg.StateDir),
			"%v", err)}
	}
	var out []Check
	if recs.Err != nil {
		out = append(out, fail("registry", fmt.Sprintf("remove the refused files from %s", reg.Dir), "%v", recs.Err))
	}
	for _, err := range recs.Skipped {
		out = append(out, fail("registry", "wait for the mounter to start, or resume it", "%v", err))
	}
	for _, s := range recs.Stale {
		out = append(out, pass("registry", "removed the stale record of mounter %s: %s", s.Record.ID, s.Reason))
	}
	for i := range cfg.Mounters {
		rule := &cfg.Mounters[i]
		name := fmt.Sprintf("mounter[%s]", rule.Name)
		rec := newestLive(recs.Live, rule.Name)
		if rec == nil {
			out = append(out, fail(name, "start the mounter container through runc-shared with the rule's match (its mount-hook registers it); check the engine's runtime setting",
				"no live mounter of rule %q is registered in %s: mounts of %v fail", rule.Name, reg.Dir, rule.FSTypes))
			continue
		}
		out = append(out, pass(name, "container %s, pid %d, up %s", rec.ID, rec.PID, age(rec.Created)))
		out = append(out, checkPropagation(rec, rule))
	}
	return out
}

func checkPropagation(rec *registry.Record, rule *spec.Rule) Check {
	name := fmt.Sprintf("propagation[%s]", rule.Name)
	if rule.Mode == spec.ModePreload {
		return pass(name, "rule %q uses preload: mounts go to the host namespace directly", rule.Name)
	}
	fix := "restart the mounter with runc-shared as the engine's runtime, so its binds get rshared propagation"
	doc, err := spec.Load(filepath.Join(rec.Bundle, "config.json"))
	if err != nil {
		return fail(name, "restart the mounter; its registry record points at a missing bundle", "%v", err)
	}
	binds := SharedBinds(doc.Spec, rec.Bundle, rule.Propagate)
	if len(binds) == 0 {
		return fail(name, fmt.Sprintf("bind one of %v into the mounter", rule.Propagate),
			"mounter %s binds none of the propagated paths %v", rec.ID, rule.Propagate)
	}
	var bad []string
	inMounter := hostmount.TableOf(rec.PID)
	for _, b := range binds {
		host, err := hostmount.MountOf(b.Source)
		if err != nil {
			bad = append(bad, fmt.Sprintf("%s: %v", b.Source, err))
			continue
		}
		inside, err := inMounter.MountOf(b.Destination)
		if err != nil {
			bad = append(bad, fmt.Sprintf("%s inside: %v", b.Destination, err))
			continue
		}
		hg, ig := hostmount.PeerGroup(host), hostmount.PeerGroup(inside)
		if hg == 0 || hg != ig {
			bad = append(bad, fmt.Sprintf("%s is in peer group %d on the host but %d (%q) in the mounter", b, hg, ig, inside.Optional))
		}
	}
	if len(bad) > 0 {
		return fail(name, fix, "mounts in mounter %s do not reach the host: %s", rec.ID, strings.Join(bad, "; "))
	}
	return pass(name, "mounter %s shares %s with the host", rec.ID, joinEach(binds, ", ", Bind.String))
}

// checkPreload looks for the shim a preload rule injects, where the wrapper
// at path wrapper looks for it.
func checkPreload(rule *spec.Rule, wrapper string) Check {
	name := fmt.Sprintf("preload[%s]", rule.Name)
	lib, err := config.PreloadLibrary(wrapper)
	if err != nil {
		return fail(name, "build and install it: make && make install", "rule %q uses mode preload but %v", rule.Name, err)
	}
	return pass(name, "%s", lib)
}

// wrapperPath is runc-shared in this binary's directory (symlinks
// resolved): the siblings doctor checks (mount-hook, libhostmount.so) are
// found from it.
func wrapperPath() string {
	self, _ := os.Executable()
	if r, err := filepath.EvalSymlinks(self); err == nil {
		self = r
	}
	return filepath.Join(filepath.Dir(self), "runc-shared")
}
