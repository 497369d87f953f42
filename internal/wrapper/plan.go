package wrapper

import (
	"fmt"

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
}

type hostHost struct{ lockDir string }

func (h hostHost) ResolveSource(source string, allow []string) (string, error) {
	return hostmount.ResolveSource(source, allow)
}

func (h hostHost) EnsureShared(path string) (bool, error) {
	return hostmount.EnsureShared(path, h.lockDir)
}

func (h hostHost) IsShared(path string) (bool, error) { return hostmount.IsShared(path) }

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
	argv    func(*runtime.Args) []string
	// beforeExec runs after the spec is saved and everything is logged.
	beforeExec func() error
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
		return w.withHook(cfg, args, delegate, propagatePlan(host, rule, bundle))
	}
}

// propagatePlan shares the rule's allowlisted binds with the host: rshared on
// each bind and on the rootfs, and a shared host side, without which runc
// sets up the binds and silently propagates nothing (platform-facts,
// "Propagation").
func propagatePlan(host Host, rule *spec.Rule, bundle string) *plan {
	binds := &spec.SharedBinds{Resolver: allowlist(host, rule, bundle)}
	p := &plan{}
	p.Modifiers = spec.Modifiers{
		binds,
		spec.ModifierFunc(func(*specs.Spec) error {
			if len(binds.Sources) == 0 {
				return fmt.Errorf("no bind mount of the rule's paths %v: bind one into the mounter (e.g. -v %s:%s)",
					rule.Propagate, rule.Propagate[0], rule.Propagate[0])
			}
			return nil
		}),
		spec.RootfsPropagation("rshared"),
	}
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
			changed, err := host.EnsureShared(src)
			if err != nil {
				return fmt.Errorf("make host path %s shared: %w", src, err)
			}
			if changed {
				log.Infof("made host path %s a shared mount for rule %q", src, rule.Name)
			}
		}
		return nil
	})
	return p
}
