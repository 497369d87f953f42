package wrapper

import (
	"fmt"
	"path/filepath"

	"github.com/runc-shared/runc-shared/internal/config"
	"github.com/runc-shared/runc-shared/internal/runtime"
	"github.com/runc-shared/runc-shared/pkg/spec"
)

// hook returns the injection of mount-hook into a matched container's spec,
// whatever its mode: Docker and containerd read no hooks.d, so the wrapper
// is what makes them run it. The hook binary is hook-path, else mount-hook
// beside runc-shared; the spec keeps a mount-hook it already has (Podman and
// CRI-O add it from hooks.d). The delegate and its --root are not in the OCI
// state a hook gets, so they go on its command line, with the configuration
// file and the state directory: the hook runs with a minimal environment
// and in the runtime's working directory, so every path is absolute.
func (w *Wrapper) hook(cfg *config.Config, args *runtime.Args, delegate string) (spec.InjectHooks, error) {
	inj := spec.InjectHooks{Path: cfg.HookBinary(w.self()), Runtime: delegate}
	// Fail early, with the fix, where runc would fail the container later
	// with a bare "no such file or directory".
	if err := runtime.IsExecutable(inj.Path); err != nil {
		return inj, fmt.Errorf("mount-hook %s: %w; install it beside runc-shared (make install) or set hook-path in the runc-shared config", inj.Path, err)
	}
	var err error
	if inj.Config, err = absPath(cfg.Path); err != nil {
		return inj, err
	}
	if inj.Root, err = absPath(args.Root); err != nil {
		return inj, err
	}
	// A poststop whose configuration is gone by then finds the registry
	// through --state-dir; the default it finds anyway.
	if cfg.StateDir != config.DefaultStateDir {
		inj.StateDir = cfg.StateDir
	}
	return inj, nil
}

func absPath(p string) (string, error) {
	if p == "" {
		return "", nil
	}
	a, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("absolute path of %s: %w", p, err)
	}
	return a, nil
}
