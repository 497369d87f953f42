package wrapper

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

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

// plan is what a matched rule does to one container. Run calls check, then
// prepare, then applies the modifier prepare returns, and after the save
// argv. Only prepare changes the host; the modifier does no I/O: the spec
// and what check and prepare found go in, the rewritten spec comes out.
type plan interface {
	// check refuses a container the rule cannot serve and reads what the
	// rewrite needs (resolved bind sources, the image's files); it changes
	// nothing.
	check(s *specs.Spec) error
	// prepare does the host-side work that must succeed before the spec is
	// saved and returns the modifier that writes its outcome into the spec.
	prepare(log *logrus.Logger) (spec.Modifier, error)
	// undo removes what prepare left on the host, when the create is
	// refused after it.
	undo()
	// argv hands over what the delegate inherits and returns its argv: the
	// last step before the exec, after all logging.
	argv() ([]string, error)
}

// rewriteError names the config.json and the rule of a rewrite that failed.
func rewriteError(path string, rule *spec.Rule, err error) error {
	return fmt.Errorf("rewrite %s for rule %q: %w", path, rule.Name, err)
}

// noBindError refuses a container that binds none of the rule's paths.
func noBindError(rule *spec.Rule) error {
	example := config.KubeletDir
	if len(rule.Propagate) > 0 {
		example = rule.Propagate[0]
	}
	return fmt.Errorf("no bind mount of the rule's paths %v: bind one into the mounter (e.g. -v %s:%s)",
		rule.Propagate, example, example)
}

func (w *Wrapper) host(cfg *config.Config) Host {
	if w.Host != nil {
		return w.Host
	}
	return hostHost{lockDir: cfg.StateDir + "/locks"}
}

// plan builds the rewrite of a matched rule.
func (w *Wrapper) plan(cfg *config.Config, rule *spec.Rule, args *runtime.Args, bundle string) plan {
	if rule.Mode == spec.ModePreload {
		return &preloader{
			rule: rule, args: args, host: w.host(cfg), bundle: bundle, self: w.self(),
			mntns: cfg.HostMntns, fd: 3 + args.PreserveFDs, ns: -1,
		}
	}
	return &propagator{host: w.host(cfg), cfg: cfg, rule: rule, args: args, bundle: bundle}
}

// propagator is the propagate mode of one container: rshared on each
// allowlisted bind and on the rootfs, and a shared host side, without which
// runc sets up the binds and silently propagates nothing (platform-facts,
// "Propagation"). Each bind source is staged: opened beneath its
// allowlisted path without following a symlink and bound at
// <state-dir>/staging/<id>/<n>, and runc is given that path
// (spec.StagedBinds). Someone who can write below the allowlist (any pod's
// emptyDir is below /var/lib/kubelet) can swap a directory for a symlink
// between any check and runc's mount by name; runc's mount of the staging
// path cannot be redirected. mount-hook detaches the staged binds at
// createRuntime, `delete` removes those of a create that failed before.
type propagator struct {
	host   Host
	cfg    *config.Config
	rule   *spec.Rule
	args   *runtime.Args
	bundle string

	mounts  []specs.Mount // the spec's mounts with the allowlisted binds shared
	sources []string      // their resolved host paths
	staging string        // the container's staging directory, once made
	log     *logrus.Logger
}

func (p *propagator) check(s *specs.Spec) error {
	mounts, sources, err := spec.SharedMounts(s, allowlist(p.host, p.rule, p.bundle))
	if err != nil {
		return err
	}
	if len(sources) == 0 {
		return noBindError(p.rule)
	}
	p.mounts, p.sources = mounts, sources
	return nil
}

func (p *propagator) prepare(log *logrus.Logger) (spec.Modifier, error) {
	p.log = log
	if err := p.share(); err != nil {
		return nil, err
	}
	staged, err := p.stage()
	if err != nil {
		return nil, err
	}
	return func(s *specs.Spec) error {
		s.Mounts = p.mounts
		return spec.Apply(s, spec.UnlistedPropagation("rslave").Modify, spec.RootfsPropagation("rshared").Modify, staged.Modify)
	}, nil
}

func (p *propagator) undo() {
	if p.staging == "" {
		return
	}
	if err := p.host.Unstage(p.staging); err != nil {
		p.log.Warnf("%v", err)
	}
}

func (p *propagator) argv() ([]string, error) { return p.args.ExecArgv(), nil }

// share makes the host side of each bind source shared, or refuses it when
// the rule may not.
func (p *propagator) share() error {
	for _, src := range p.sources {
		if !p.rule.EnsureShared {
			shared, err := p.host.IsShared(src)
			if err != nil {
				return fmt.Errorf("check propagation of %s: %w", src, err)
			}
			if !shared {
				return fmt.Errorf("host path %s is not a shared mount and rule %q has ensure-shared = false: run `mount --bind %s %s && mount --make-rshared %s` on the host, or set ensure-shared = true",
					src, p.rule.Name, src, src, src)
			}
			continue
		}
		// The allowlisted path first, so the binds below it share one peer
		// group (kubelet does the same for /var/lib/kubelet), then the
		// source, in case it lies on a private mount of its own below it.
		root, _ := hostmount.AllowlistRoot(src, p.rule.Propagate)
		for _, path := range []string{root, src} {
			if path == "" {
				continue
			}
			changed, err := p.host.EnsureShared(path)
			if err != nil {
				return fmt.Errorf("make host path %s shared: %w", path, err)
			}
			if changed {
				p.log.Infof("made host path %s a shared mount for rule %q", path, p.rule.Name)
			}
		}
	}
	return nil
}

// stage binds each source at the container's staging directory and returns
// the staging path of each.
func (p *propagator) stage() (spec.StagedBinds, error) {
	dir, err := spec.StagingDir(p.cfg.StateDir, p.args.ContainerID)
	if err != nil {
		return nil, err
	}
	root := filepath.Dir(dir)
	changed, err := p.host.PrepareStaging(root)
	if err != nil {
		return nil, fmt.Errorf("prepare the staging directory: %w; check the state-dir %s", err, p.cfg.StateDir)
	}
	if changed {
		p.log.Infof("made %s an unbindable mount point for staged binds", root)
	}
	// What a create of the same ID left when it failed before runc's
	// createRuntime.
	if err := p.host.Unstage(dir); err != nil {
		return nil, err
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create staging directory: %w", err)
	}
	p.staging = dir
	staged := spec.StagedBinds{}
	for i, src := range p.sources {
		root, ok := hostmount.AllowlistRoot(src, p.rule.Propagate)
		if !ok {
			err = fmt.Errorf("%w %v", hostmount.ErrOutsideAllowlist, p.rule.Propagate)
		} else {
			target := filepath.Join(dir, strconv.Itoa(i))
			if err = p.host.Stage(root, src, target); err == nil {
				staged[src] = target
				continue
			}
		}
		p.undo()
		p.staging = ""
		return nil, fmt.Errorf("pin bind source %s: %w; was it swapped for a symlink while the container was created?", src, err)
	}
	return staged, nil
}
