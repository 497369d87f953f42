// Package hook is mount-hook, the OCI hook of runc-shared.
//
// At createRuntime (or prestart) it checks that propagation from a mounter
// container really reaches the host, and records the mounter in the registry
// so that the routing client finds it. At poststop it removes the record and
// detaches the dead FUSE mounts ("Transport endpoint is not connected") that
// the stopped mounter left below the propagated host paths. When the
// configuration cannot be loaded at poststop (it broke while the mounter
// ran), poststop works from the mounter's registry record instead, and its
// log says so (poststopWithoutConfig).
//
// It uses the wrapper's configuration and matching code (spec.FindRule), so a
// container is a mounter for the hook exactly when it is one for the wrapper.
// A container that matches no rule is none of its business: the hook exits 0
// and writes nothing, since Podman and CRI-O may run it from hooks.d for any
// container that carries the annotation.
//
// Exit status: a createRuntime failure is non-zero, so the runtime does not
// start a container whose mounts would never reach the host; a poststop
// failure is only logged (the runtime spec says poststop errors are warnings,
// and cleanup must go on).
package hook

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/runc-shared/runc-shared/internal/config"
	"github.com/runc-shared/runc-shared/internal/version"
)

// Main runs the hook and returns the process exit code.
func Main(argv []string) int {
	h := &Hook{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}
	if err := h.Run(argv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 1
	}
	return 0
}

// Hook holds what a run needs from the outside world.
type Hook struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Now returns the time recorded in the registry; nil means time.Now.
	Now func() time.Time
}

// Options are the command line of mount-hook.
type Options struct {
	Config    string // --config: the configuration file
	ConfigSet bool   // --config was given (an empty value means no file)
	Runtime   string // --runtime: the delegate runtime binary
	Root      string // --root: the delegate's state directory
	// StateDir (--state-dir) is where poststop looks for the registry when
	// the configuration cannot be loaded; the configuration's state-dir
	// wins whenever it loads.
	StateDir string
	Stage    Stage
}

const usage = `usage: mount-hook [--config PATH] [--runtime PATH] [--root DIR] [--state-dir DIR] STAGE

An OCI hook for runc-shared mounter containers. STAGE is createRuntime (or
prestart) or poststop; the container state comes on stdin. --state-dir is
where poststop finds the registry when the configuration cannot be loaded.`

// ParseArgs parses the hook's arguments (without the program name).
func ParseArgs(argv []string, stderr io.Writer) (*Options, error) {
	fs := flag.NewFlagSet("mount-hook", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	o := &Options{}
	fs.StringVar(&o.Config, "config", "", "configuration file (default $"+config.EnvVar+", else "+config.DefaultPath+")")
	fs.StringVar(&o.Runtime, "runtime", "", "the delegate runtime binary, for the registry")
	fs.StringVar(&o.Root, "root", "", "the delegate runtime's --root, for the registry")
	fs.StringVar(&o.StateDir, "state-dir", "", "the registry's state directory, for a poststop whose configuration cannot be loaded")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(argv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, usage)
			return nil, err
		}
		return nil, fmt.Errorf("%w\n%s", err, usage)
	}
	if *showVersion {
		return nil, errVersion
	}
	fs.Visit(func(f *flag.Flag) { o.ConfigSet = o.ConfigSet || f.Name == "config" })
	if fs.NArg() != 1 {
		return nil, fmt.Errorf("want exactly one STAGE argument, got %q\n%s", fs.Args(), usage)
	}
	st, err := ParseStage(fs.Arg(0))
	if err != nil {
		return nil, err
	}
	o.Stage = st
	// The hook runs in the runtime's working directory, which is not the
	// directory the wrapper ran in: relative paths are refused rather than
	// guessed. A bare runtime name is looked up on PATH.
	for _, f := range []struct {
		name, value string
		bareOK      bool
	}{{"--config", o.Config, false}, {"--runtime", o.Runtime, true}, {"--root", o.Root, false}, {"--state-dir", o.StateDir, false}} {
		if f.value == "" || filepath.IsAbs(f.value) || f.bareOK && !strings.Contains(f.value, "/") {
			continue
		}
		return nil, fmt.Errorf("%s %q is a relative path: give an absolute path", f.name, f.value)
	}
	return o, nil
}

var errVersion = errors.New("version requested")

// Run runs one hook invocation. Its error is already logged.
func (h *Hook) Run(argv []string) (err error) {
	// Until the configuration names the state directory, log to stderr.
	log := newLogger("", "", h.Stderr)
	opts, err := ParseArgs(argv, h.Stderr)
	if errors.Is(err, errVersion) {
		fmt.Fprintf(h.Stdout, "mount-hook version %s\ncommit: %s\n", version.Version, version.Commit)
		return nil
	}
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			log.Error(err.Error())
		}
		return err
	}
	defer func() {
		if err != nil {
			log.Error(err.Error())
		}
		// Poststop never fails the runtime: the runtime spec makes its
		// errors warnings, and an engine's cleanup must go on.
		if opts.Stage == Poststop {
			err = nil
		}
	}()

	state, err := ParseState(h.Stdin)
	if err != nil {
		return fmt.Errorf("%s: %w", opts.Stage, err)
	}
	path := config.Path(opts.Config, opts.ConfigSet)
	cfg, err := config.Load(path)
	if err != nil {
		err = fmt.Errorf("%s of container %s: %w", opts.Stage, state.ID, err)
		if opts.Stage == Poststop {
			// The configuration broke while the mounter ran: clean up
			// after it from its registry record. Its log goes to that
			// record's state directory, where the error lands too.
			var dirs []string
			if dir, ok := config.StateDirOf(path); ok {
				dirs = append(dirs, dir)
			}
			log = h.poststopWithoutConfig(opts, state, dirs, "the configuration cannot be loaded")
		}
		return err
	}
	if cfg.PassThrough() {
		// No rule: no container is a mounter, unless one started before
		// the file was removed or emptied.
		if opts.Stage == Poststop {
			var dirs []string
			if !cfg.Missing {
				dirs = append(dirs, cfg.StateDir)
			}
			h.poststopWithoutConfig(opts, state, dirs, "the configuration names no rule")
		}
		return nil
	}
	log = newLogger(filepath.Join(cfg.StateDir, LogName), cfg.LogLevel, h.Stderr)
	r := &run{Hook: h, opts: opts, cfg: cfg, state: state,
		log: log.WithFields(logrus.Fields{"id": shortID(state.ID), "stage": string(opts.Stage)})}
	if opts.Stage.creates() {
		return r.createRuntime()
	}
	r.poststop()
	return nil
}

// run is one invocation with its inputs.
type run struct {
	*Hook
	opts  *Options
	cfg   *config.Config
	state *State
	log   *logrus.Entry
}

func (h *Hook) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

// shortID shortens engine IDs (64 hex digits) for log lines.
func shortID(id string) string {
	if len(id) == 64 && strings.Trim(id, "0123456789abcdef") == "" {
		return id[:12]
	}
	return id
}
