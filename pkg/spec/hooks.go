package spec

import (
	"path/filepath"
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/runc-shared/runc-shared/internal/hookargs"
)

// HookEnv is the whole environment of an injected hook. The container's env
// is never passed: it is the container's, not the host's, and a hook that
// runs on the host must not take PATH or LD_* from an image.
var HookEnv = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}

// DefaultHookTimeout is the timeout in seconds of an injected hook: the hook
// takes milliseconds, but a hung FUSE mount costs it up to a few seconds.
const DefaultHookTimeout = 10

// InjectHooks adds mount-hook to the createRuntime and poststop stages of a
// spec, so that engines which read no hooks.d (Docker, containerd) run it.
// The delegate runtime and its --root are not in the OCI state the hook gets
// on stdin, so they travel as arguments.
type InjectHooks struct {
	// Path is the absolute path of the mount-hook binary.
	Path string
	// Config is the configuration file for --config; "" passes none.
	Config string
	// Runtime is the delegate runtime binary for --runtime; "" passes none.
	Runtime string
	// Root is the delegate's --root; "" passes none (the runtime's default).
	Root string
	// StateDir is the state directory for --state-dir, where poststop finds
	// the registry when the configuration is gone or broken; "" passes none
	// (the hook then looks in the default).
	StateDir string
}

// Hook returns the hook entry for stage.
func (h InjectHooks) Hook(stage hookargs.Stage) specs.Hook {
	args := &hookargs.Args{Config: h.Config, Runtime: h.Runtime, Root: h.Root, StateDir: h.StateDir, Stage: stage}
	timeout := DefaultHookTimeout
	return specs.Hook{
		Path:    h.Path,
		Args:    args.Format(),
		Env:     slices.Clone(HookEnv),
		Timeout: &timeout,
	}
}

// Modify is the Modifier.
func (h InjectHooks) Modify(s *specs.Spec) error {
	if s.Hooks == nil {
		s.Hooks = &specs.Hooks{}
	}
	// runc runs prestart at the same point as createRuntime (before
	// pivot_root, in the runtime namespace), so our hook registered there
	// already does the createRuntime work. Our hook already in the spec
	// came from hooks.d, and an engine that reads hooks.d runs the poststop
	// hooks itself without putting them in the spec (Podman 4.3, see
	// tests/testdata/engines/README.md): adding ours would run it twice.
	// Only our own hook counts: any other binary, even one named
	// mount-hook, verifies and registers nothing.
	//lint:ignore SA1019 Prestart is deprecated but still run by runc 1.1.
	if h.Present(s.Hooks.CreateRuntime, hookargs.CreateRuntime) || h.Present(s.Hooks.Prestart, hookargs.CreateRuntime) {
		return nil
	}
	s.Hooks.CreateRuntime = append(s.Hooks.CreateRuntime, h.Hook(hookargs.CreateRuntime))
	if !h.Present(s.Hooks.Poststop, hookargs.Poststop) {
		s.Hooks.Poststop = append(s.Hooks.Poststop, h.Hook(hookargs.Poststop))
	}
	return nil
}

// Present reports whether hooks holds our hook for stage
// (hookargs.CreateRuntime or hookargs.Poststop): the binary at h.Path,
// called with a command line that mount-hook runs as that stage and, where
// it names a configuration file, with h.Config. A hook at another path, or
// one that would only print its version or fail on its arguments, is not
// ours.
func (h InjectHooks) Present(hooks []specs.Hook, stage hookargs.Stage) bool {
	return slices.ContainsFunc(hooks, func(x specs.Hook) bool {
		if filepath.Clean(x.Path) != filepath.Clean(h.Path) || len(x.Args) == 0 {
			return false
		}
		a, err := hookargs.Parse(x.Args[1:])
		if err != nil || a.Config != "" && h.Config != "" && filepath.Clean(a.Config) != filepath.Clean(h.Config) {
			return false
		}
		return a.Stage == stage || stage == hookargs.CreateRuntime && a.Stage.Creates()
	})
}
