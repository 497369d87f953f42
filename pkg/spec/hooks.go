package spec

import (
	"path/filepath"
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// HookName is the base name of the mount-hook binary. A hook with this base
// name already in a stage (Podman and CRI-O add it from hooks.d) is not added
// a second time.
const HookName = "mount-hook"

// Hook stages as mount-hook takes them on its command line.
const (
	StageCreateRuntime = "createRuntime"
	StagePoststop      = "poststop"
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
	// Timeout is in seconds; 0 means DefaultHookTimeout.
	Timeout int
}

// Hook returns the hook entry for stage.
func (h InjectHooks) Hook(stage string) specs.Hook {
	args := []string{HookName}
	for _, f := range []struct{ flag, value string }{
		{"--config", h.Config}, {"--runtime", h.Runtime}, {"--root", h.Root},
	} {
		if f.value != "" {
			args = append(args, f.flag, f.value)
		}
	}
	timeout := h.Timeout
	if timeout <= 0 {
		timeout = DefaultHookTimeout
	}
	return specs.Hook{
		Path:    h.Path,
		Args:    append(args, stage),
		Env:     slices.Clone(HookEnv),
		Timeout: &timeout,
	}
}

// Modify implements Modifier.
func (h InjectHooks) Modify(s *specs.Spec) error {
	if s.Hooks == nil {
		s.Hooks = &specs.Hooks{}
	}
	// runc runs prestart at the same point as createRuntime (before
	// pivot_root, in the runtime namespace), so a mount-hook registered
	// there already does the createRuntime work. A mount-hook already in
	// the spec came from hooks.d, and an engine that reads hooks.d runs the
	// poststop hooks itself without putting them in the spec (Podman 4.3,
	// see testdata/engines/README.md): adding ours would run it twice.
	//lint:ignore SA1019 Prestart is deprecated but still run by runc 1.1.
	if HasHook(s.Hooks.CreateRuntime) || HasHook(s.Hooks.Prestart) {
		return nil
	}
	s.Hooks.CreateRuntime = append(s.Hooks.CreateRuntime, h.Hook(StageCreateRuntime))
	if !HasHook(s.Hooks.Poststop) {
		s.Hooks.Poststop = append(s.Hooks.Poststop, h.Hook(StagePoststop))
	}
	return nil
}

// HasHook reports whether hooks holds a hook whose binary is named
// mount-hook.
func HasHook(hooks []specs.Hook) bool {
	return slices.ContainsFunc(hooks, func(h specs.Hook) bool {
		return filepath.Base(h.Path) == HookName
	})
}
