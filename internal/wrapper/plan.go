package wrapper

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/sirupsen/logrus"

	"github.com/runc-shared/runc-shared/internal/config"
	"github.com/runc-shared/runc-shared/internal/hostmount"
	"github.com/runc-shared/runc-shared/internal/runtime"
	"github.com/runc-shared/runc-shared/pkg/spec"
)

// Host is the host-side work the wrapper needs; hostHost does it for real.
type Host interface {
	// ResolveSource resolves a bind source against the allowlist (see
	// hostmount.ResolveSource).
	ResolveSource(source string, allow []string) (string, error)
	// EnsureShared makes path part of a shared peer group.
	EnsureShared(path string) (changed bool, err error)
	// IsShared reports whether path is in a shared peer group.
	IsShared(path string) (bool, error)
	// PrepareStaging makes dir an unbindable mount point of its own (see
	// hostmount.PrepareStaging).
	PrepareStaging(dir string) (changed bool, err error)
	// Stage binds source, opened beneath the allowlisted root without
	// following symlinks, at target (see hostmount.Stage).
	Stage(root, source, target string) error
	// Unstage detaches the staged binds in dir and removes it.
	Unstage(dir string) error
}

type hostHost struct{ lockDir string }

func (h hostHost) ResolveSource(source string, allow []string) (string, error) {
	return hostmount.ResolveSource(source, allow)
}

func (h hostHost) EnsureShared(path string) (bool, error) {
	return hostmount.EnsureShared(path, h.lockDir)
}

func (h hostHost) IsShared(path string) (bool, error) { return hostmount.IsShared(path) }

func (h hostHost) PrepareStaging(dir string) (bool, error) {
	return hostmount.PrepareStaging(dir, h.lockDir)
}

func (h hostHost) Stage(root, source, target string) error {
	return hostmount.Stage(root, source, target)
}

func (h hostHost) Unstage(dir string) error { return hostmount.Unstage(dir) }

// allowlist resolves the bind sources of bundle against the rule's paths
// through host.
func allowlist(host Host, rule *spec.Rule, bundle string) hostmount.Allowlist {
	return hostmount.Allowlist{Paths: rule.Propagate, Bundle: bundle, Resolve: host.ResolveSource}
}

// plan is what a rule does to one container: the spec modifiers, the host
// preparation that must succeed before the spec is saved, and the argv the
// delegate gets.
type plan struct {
	spec.Modifiers
	prepare []func(*logrus.Logger) error
	// sources returns the host paths the modifiers allowlisted.
	sources func() []string
	argv    func(*runtime.Args) []string
	// beforeExec runs after the spec is saved and everything is logged.
	beforeExec func() error
	// prepared changes the spec with what the preparation made (the
	// staging paths); it runs after Prepare.
	prepared spec.Modifiers
	// undo removes what Prepare left on the host, when the create is
	// refused after it.
	undo func()
}

// Prepare runs the host-side steps in order.
func (p *plan) Prepare(log *logrus.Logger) error {
	for _, f := range p.prepare {
		if err := f(log); err != nil {
			return err
		}
	}
	return nil
}

// Argv returns the delegate's argv.
func (p *plan) Argv(args *runtime.Args) []string {
	if p.argv != nil {
		return p.argv(args)
	}
	return args.ExecArgv()
}

func (w *Wrapper) host(cfg *config.Config) Host {
	if w.Host != nil {
		return w.Host
	}
	return hostHost{lockDir: cfg.StateDir + "/locks"}
}

// plan builds the rewrite for a matched rule; delegate is the runtime the
// wrapper execs, which the injected hook is told about.
func (w *Wrapper) plan(cfg *config.Config, rule *spec.Rule, args *runtime.Args, bundle, delegate string) *plan {
	host := w.host(cfg)
	switch rule.Mode {
	case spec.ModePreload:
		return w.withHook(cfg, args, delegate, w.preloadPlan(cfg, rule, args, bundle))
	default:
		p := propagatePlan(host, rule, bundle)
		p.stage(host, cfg, rule, args.ContainerID)
		return w.withHook(cfg, args, delegate, p)
	}
}

// stagingRoot is where the wrapper stages bind sources: below the state
// directory, which only root can write.
func stagingRoot(cfg *config.Config) string { return filepath.Join(cfg.StateDir, "staging") }

// stagingDir is the staging directory of container id.
func stagingDir(cfg *config.Config, id string) (string, error) {
	if id == "" || id == "." || id == ".." || strings.ContainsRune(id, '/') {
		return "", fmt.Errorf("container ID %q cannot name a staging directory", id)
	}
	return filepath.Join(stagingRoot(cfg), id), nil
}

// propagatePlan shares the rule's allowlisted binds with the host: rshared on
// each bind and on the rootfs, and a shared host side, without which runc
// sets up the binds and silently propagates nothing (platform-facts,
// "Propagation").
func propagatePlan(host Host, rule *spec.Rule, bundle string) *plan {
	binds := &spec.SharedBinds{Resolver: allowlist(host, rule, bundle)}
	p := &plan{}
	p.Modifiers = spec.Modifiers{
		spec.WithoutStagedSources,
		binds,
		spec.ModifierFunc(func(*specs.Spec) error {
			if len(binds.Sources) == 0 {
				return fmt.Errorf("no bind mount of the rule's paths %v: bind one into the mounter (e.g. -v %s:%s)",
					rule.Propagate, rule.Propagate[0], rule.Propagate[0])
			}
			return nil
		}),
		spec.UnlistedPropagation("rslave"),
		spec.RootfsPropagation("rshared"),
	}
	p.sources = func() []string { return binds.Sources }
	p.prepare = append(p.prepare, func(log *logrus.Logger) error {
		for _, src := range binds.Sources {
			if !rule.EnsureShared {
				shared, err := host.IsShared(src)
				if err != nil {
					return fmt.Errorf("check propagation of %s: %w", src, err)
				}
				if !shared {
					return fmt.Errorf("host path %s is not a shared mount and rule %q has ensure-shared = false: run `mount --bind %s %s && mount --make-rshared %s` on the host, or set ensure-shared = true",
						src, rule.Name, src, src, src)
				}
				continue
			}
			// The allowlisted path first, so the binds below it share one
			// peer group (kubelet does the same for /var/lib/kubelet),
			// then the source, in case it lies on a private mount of its
			// own below it.
			root, _ := hostmount.AllowlistRoot(src, rule.Propagate)
			for _, path := range []string{root, src} {
				if path == "" {
					continue
				}
				changed, err := host.EnsureShared(path)
				if err != nil {
					return fmt.Errorf("make host path %s shared: %w", path, err)
				}
				if changed {
					log.Infof("made host path %s a shared mount for rule %q", path, rule.Name)
				}
			}
		}
		return nil
	})
	return p
}

// stage adds the staging of the plan's bind sources to its preparation:
// each source is opened beneath its allowlisted path without following a
// symlink and bound at <state-dir>/staging/<id>/<n>, and runc is given that
// path (spec.StagedBinds). Someone who can write below the allowlist (any
// pod's emptyDir is below /var/lib/kubelet) can swap a directory for a
// symlink between any check and runc's mount by name; runc's mount of the
// staging path cannot be redirected. mount-hook detaches the staged binds at
// createRuntime, `delete` removes those of a create that failed before.
func (p *plan) stage(host Host, cfg *config.Config, rule *spec.Rule, id string) {
	staged := spec.StagedBinds{}
	p.prepared = append(p.prepared, staged)
	p.prepare = append(p.prepare, func(log *logrus.Logger) error {
		dir, err := stagingDir(cfg, id)
		if err != nil {
			return err
		}
		changed, err := host.PrepareStaging(stagingRoot(cfg))
		if err != nil {
			return fmt.Errorf("prepare the staging directory: %w; check the state-dir %s", err, cfg.StateDir)
		}
		if changed {
			log.Infof("made %s an unbindable mount point for staged binds", stagingRoot(cfg))
		}
		// What a create of the same ID left when it failed before runc's
		// createRuntime.
		if err := host.Unstage(dir); err != nil {
			return err
		}
		if err := os.Mkdir(dir, 0o700); err != nil {
			return fmt.Errorf("create staging directory: %w", err)
		}
		p.undo = func() {
			if err := host.Unstage(dir); err != nil {
				log.Warnf("%v", err)
			}
		}
		for i, src := range p.sources() {
			root, ok := hostmount.AllowlistRoot(src, rule.Propagate)
			if !ok {
				err = fmt.Errorf("%w %v", hostmount.ErrOutsideAllowlist, rule.Propagate)
			} else {
				target := filepath.Join(dir, strconv.Itoa(i))
				if err = host.Stage(root, src, target); err == nil {
					staged[src] = target
					continue
				}
			}
			p.undo()
			return fmt.Errorf("pin bind source %s: %w; was it swapped for a symlink while the container was created?", src, err)
		}
		return nil
	})
}
