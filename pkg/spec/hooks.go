package spec

import (
	"flag"
	"io"
	"path/filepath"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// HookName is the base name of the mount-hook binary, and the program name
// (args[0]) of an injected hook.
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
	// pivot_root, in the runtime namespace), so our hook registered there
	// already does the createRuntime work. Our hook already in the spec
	// came from hooks.d, and an engine that reads hooks.d runs the poststop
	// hooks itself without putting them in the spec (Podman 4.3, see
	// tests/testdata/engines/README.md): adding ours would run it twice.
	// Only our own hook counts: any other binary, even one named
	// mount-hook, verifies and registers nothing.
	//lint:ignore SA1019 Prestart is deprecated but still run by runc 1.1.
	if h.Present(s.Hooks.CreateRuntime, StageCreateRuntime) || h.Present(s.Hooks.Prestart, StageCreateRuntime) {
		return nil
	}
	s.Hooks.CreateRuntime = append(s.Hooks.CreateRuntime, h.Hook(StageCreateRuntime))
	if !h.Present(s.Hooks.Poststop, StagePoststop) {
		s.Hooks.Poststop = append(s.Hooks.Poststop, h.Hook(StagePoststop))
	}
	return nil
}

// Present reports whether hooks holds our hook for stage (StageCreateRuntime
// or StagePoststop): the binary at h.Path, called with a command line that
// mount-hook runs as that stage and, where it names a configuration file,
// with h.Config. A hook at another path, or one that would only print its
// version or fail on its arguments, is not ours.
func (h InjectHooks) Present(hooks []specs.Hook, stage string) bool {
	return slices.ContainsFunc(hooks, func(x specs.Hook) bool {
		if filepath.Clean(x.Path) != filepath.Clean(h.Path) || len(x.Args) == 0 {
			return false
		}
		got, config, ok := hookStage(x.Args[1:])
		if !ok || config != "" && h.Config != "" && filepath.Clean(config) != filepath.Clean(h.Config) {
			return false
		}
		return got == stage || stage == StageCreateRuntime && got == "prestart"
	})
}

// hookStage reads a mount-hook command line (without the program name) as
// mount-hook does (internal/hook ParseArgs, Go flag syntax): its stage, in
// the spelling of the Stage constants or "prestart", and its --config.
func hookStage(args []string) (stage, config string, ok bool) {
	fs := flag.NewFlagSet(HookName, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&config, "config", "", "")
	root, stateDir, runtime := fs.String("root", "", ""), fs.String("state-dir", "", ""), fs.String("runtime", "", "")
	version := fs.Bool("version", false, "")
	if fs.Parse(args) != nil || *version || fs.NArg() != 1 {
		return "", "", false
	}
	// mount-hook refuses relative paths (it runs in the runtime's working
	// directory); a bare runtime name is looked up on PATH.
	for _, p := range []string{config, *root, *stateDir} {
		if p != "" && !filepath.IsAbs(p) {
			return "", "", false
		}
	}
	if strings.Contains(*runtime, "/") && !filepath.IsAbs(*runtime) {
		return "", "", false
	}
	switch strings.ToLower(strings.NewReplacer("-", "", "_", "").Replace(fs.Arg(0))) {
	case "createruntime":
		return StageCreateRuntime, config, true
	case "prestart":
		return "prestart", config, true
	case "poststop":
		return StagePoststop, config, true
	}
	return "", "", false
}

// HasHook reports whether hooks holds a hook whose binary is named
// mount-hook, wherever it is: a quick look for tests and diagnostics. The
// injection decides with InjectHooks.Present, which checks path and
// arguments.
func HasHook(hooks []specs.Hook) bool {
	return slices.ContainsFunc(hooks, func(h specs.Hook) bool {
		return filepath.Base(h.Path) == HookName
	})
}
