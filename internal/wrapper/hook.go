package wrapper

import (
	"fmt"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/runc-shared/runc-shared/internal/config"
	"github.com/runc-shared/runc-shared/internal/runtime"
	"github.com/runc-shared/runc-shared/pkg/spec"
)

// withHook adds mount-hook to the rewrite of a matched container, whatever
// its mode: Docker and containerd read no hooks.d, so the wrapper is what
// makes them run it. The plan of every mode goes through here.
func (w *Wrapper) withHook(cfg *config.Config, args *runtime.Args, delegate string, p *plan) *plan {
	p.Modifiers = append(p.Modifiers, w.hookModifier(cfg, args, delegate))
	return p
}

// hookModifier injects createRuntime and poststop entries for the hook
// binary (hook-path, else mount-hook beside runc-shared), unless the spec
// already has mount-hook there (Podman and CRI-O add it from hooks.d). The
// delegate and its --root are not in the OCI state a hook gets, so they go
// on its command line, with the configuration file and the state directory:
// the hook runs with a minimal environment and in the runtime's working
// directory, so every path is absolute.
func (w *Wrapper) hookModifier(cfg *config.Config, args *runtime.Args, delegate string) spec.Modifier {
	return spec.ModifierFunc(func(s *specs.Spec) error {
		bin := cfg.HookBinary(w.self())
		if err := checkHookBinary(bin); err != nil {
			return err
		}
		inj := spec.InjectHooks{Path: bin, Runtime: delegate}
		var err error
		if inj.Config, err = absPath(cfg.Path); err != nil {
			return err
		}
		if inj.Root, err = absPath(args.Root); err != nil {
			return err
		}
		// A poststop whose configuration is gone by then finds the
		// registry through --state-dir; the default it finds anyway.
		if cfg.StateDir != config.DefaultStateDir {
			inj.StateDir = cfg.StateDir
		}
		return inj.Modify(s)
	})
}

// checkHookBinary fails early, with the fix, where runc would fail the
// container later with a bare "no such file or directory".
func checkHookBinary(bin string) error {
	if err := runtime.IsExecutable(bin); err != nil {
		return fmt.Errorf("mount-hook %s: %w; install it beside runc-shared (make install) or set hook-path in the runc-shared config", bin, err)
	}
	return nil
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
