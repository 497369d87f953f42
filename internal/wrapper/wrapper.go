// Package wrapper is the runc-shared pipeline, read top to bottom: argv,
// then config, then bundle and match, then spec and policy, then the mode's
// checks, host preparation and rewrite, then save, then exec of the real
// runtime. Anything that does not match a rule is executed unchanged.
package wrapper

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/sirupsen/logrus"

	"github.com/runc-shared/runc-shared/internal/config"
	"github.com/runc-shared/runc-shared/internal/logging"
	"github.com/runc-shared/runc-shared/internal/runtime"
	"github.com/runc-shared/runc-shared/internal/version"
	"github.com/runc-shared/runc-shared/pkg/spec"
)

// Main runs the wrapper and returns the process exit code. On success it
// never returns: the delegate runtime replaces the process.
func Main(argv []string) int {
	w := &Wrapper{Stdout: os.Stdout, Stderr: os.Stderr, Exec: runtime.ExecAs(os.Args[0])}
	if err := w.Run(argv); err != nil {
		return 1
	}
	return 0
}

// Wrapper holds what the pipeline needs from the outside world, so tests can
// replace the exec.
type Wrapper struct {
	Stdout, Stderr io.Writer
	// Exec replaces the process with the delegate runtime.
	Exec func(path string, argv []string, env []string) error
	// Self is the running binary; empty means os.Executable.
	Self string
	// Host prepares host paths; nil means the real host.
	Host Host

	log *logrus.Logger
}

// Run executes the pipeline. Errors are logged where the engine shows them
// (the runtime's --log file) before being returned.
func (w *Wrapper) Run(argv []string) (err error) {
	// Parse never returns nil Args: on a usage error the call still goes to
	// the delegate unchanged (MayRewrite is false), so runc prints its own
	// usage message, as it would without the wrapper.
	args, parseErr := runtime.Parse(argv)
	w.log = logging.Setup(logging.Options{
		File: args.Log, Format: args.LogFormat, Debug: args.Debug, Stderr: w.Stderr,
	})
	defer func() {
		if err != nil {
			logging.Error(w.log, err)
		}
	}()
	if parseErr != nil {
		w.log.Debugf("%v; passing the call through unchanged", parseErr)
	}

	cfg, err := w.loadConfig(args)
	if err != nil {
		return err
	}
	if lvl, lerr := logrus.ParseLevel(cfg.LogLevel); lerr == nil && !args.Debug {
		w.log.SetLevel(lvl)
	}
	delegate, err := runtime.FindRuntime(cfg.Runtime, w.self())
	if err != nil {
		return err
	}
	if args.Version {
		fmt.Fprintf(w.Stdout, "runc-shared version %s\ncommit: %s\n", version.Version, version.Commit)
		return w.exec(delegate, args.ExecArgv())
	}
	if args.Command == "delete" && len(cfg.Mounters) > 0 {
		w.removeStaging(cfg, args.ContainerID)
	}
	if !args.MayRewrite() || len(cfg.Mounters) == 0 {
		w.logPassThrough(cfg, args)
		return w.exec(delegate, args.ExecArgv())
	}

	bundle, err := args.BundleDir()
	if err != nil {
		return err
	}
	file, rule, err := w.examine(cfg, args, bundle)
	if err != nil {
		return err
	}
	if file == nil {
		return w.exec(delegate, args.ExecArgv())
	}
	doc, err := file.Doc()
	if err != nil {
		return fmt.Errorf("%w; fix the bundle or the engine that wrote it", err)
	}
	w.log.Debugf("container %s matches mounter rule %q (mode %s)", args.ContainerID, rule.Name, rule.Mode)
	// Only the propagate mode's staging writes the staged-sources
	// annotation: one from the engine would make a bind of any source
	// stand for an allowlisted path, for the checks below and, once saved,
	// for mount-hook and mounter.
	delete(doc.Spec.Annotations, spec.AnnotationStagedSources)
	if err := spec.CheckPolicy(rule, doc.Spec); err != nil {
		return err
	}

	p := w.plan(cfg, rule, args, bundle)
	if err := p.check(doc.Spec); err != nil {
		return rewriteError(doc.Path, rule, err)
	}
	hook, err := w.hook(cfg, args, delegate)
	if err != nil {
		return rewriteError(doc.Path, rule, err)
	}
	rewrite, err := p.prepare(w.log)
	if err != nil {
		return err
	}
	// A refused create leaves nothing staged on the host.
	defer func() {
		if err != nil {
			p.undo()
		}
	}()
	if err := spec.Apply(doc.Spec, rewrite, hook.Modify); err != nil {
		return rewriteError(doc.Path, rule, err)
	}
	if err := doc.ValidateChanges(); err != nil {
		return fmt.Errorf("rewritten spec of %s is invalid (a runc-shared bug, please report it): %w", doc.Path, err)
	}
	if _, err := doc.Save(); err != nil {
		return err
	}
	w.log.Debugf("rewrote %s for mounter rule %q", doc.Path, rule.Name)
	execArgv, err := p.argv()
	if err != nil {
		return err
	}
	return w.exec(delegate, execArgv)
}

// removeStaging detaches what a create of container id staged and mount-hook
// did not get to detach (runc failed before createRuntime). One lstat when
// there is nothing, which is every delete but those.
func (w *Wrapper) removeStaging(cfg *config.Config, id string) {
	dir, err := spec.StagingDir(cfg.StateDir, id)
	if err != nil {
		return
	}
	if _, err := os.Lstat(dir); err != nil {
		return
	}
	if err := w.host(cfg).Unstage(dir); err != nil {
		w.log.Warnf("container %s: %v", id, err)
		return
	}
	w.log.Infof("container %s: removed its staged binds in %s", id, dir)
}

// loadConfig loads the configuration. A broken configuration refuses only
// the calls that would use its rules: refusing `state` or `delete` too would
// leave the node's containers impossible to stop.
func (w *Wrapper) loadConfig(args *runtime.Args) (*config.Config, error) {
	path := config.Path(args.ConfigPath, args.ConfigSet)
	cfg, err := config.Load(path)
	if err == nil {
		return cfg, nil
	}
	if args.MayRewrite() {
		return nil, err
	}
	w.log.Warnf("%v; using the defaults for %q", err, args.Command)
	return config.Default(), nil
}

// self returns the running binary, looked up once: the delegate search, the
// hook path and the preload library all start from it.
func (w *Wrapper) self() string {
	if w.Self == "" {
		w.Self = "/proc/self/exe"
		if p, err := os.Executable(); err == nil {
			w.Self = p
		}
	}
	return w.Self
}

func (w *Wrapper) exec(delegate string, argv []string) error {
	err := w.Exec(delegate, argv, os.Environ())
	if err == nil {
		return nil
	}
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("exec %s: %w; set `runtime` in the runc-shared config", delegate, err)
	}
	return fmt.Errorf("exec %s: %w", delegate, err)
}
