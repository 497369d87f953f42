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
	"github.com/runc-shared/runc-shared/internal/hookargs"
	"github.com/runc-shared/runc-shared/internal/version"
)

// Main runs the hook and returns the process exit code.
func Main(argv []string) int {
	h := &Hook{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}
	if err := h.Run(argv); err != nil && !errors.Is(err, flag.ErrHelp) {
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
	// tablesOf returns the mount tables createRuntime checks the container
	// of process pid in; nil means the real ones (procTables).
	tablesOf func(pid int) mountTables
}

// Run runs one hook invocation. Its error is already logged.
func (h *Hook) Run(argv []string) (err error) {
	if h.Now == nil {
		h.Now = time.Now
	}
	if h.tablesOf == nil {
		h.tablesOf = procTables
	}
	// Until the configuration names the state directory, log to stderr.
	log := newLogger("", "", h.Stderr)
	opts, err := hookargs.Parse(argv)
	switch {
	case errors.Is(err, hookargs.ErrVersion):
		fmt.Fprintf(h.Stdout, "%s version %s\ncommit: %s\n", hookargs.Name, version.Version, version.Commit)
		return nil
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprintln(h.Stderr, hookargs.Usage)
		return err
	case err != nil:
		log.Error(err.Error())
		return err
	}
	defer func() {
		if err != nil {
			log.Error(err.Error())
		}
		// Poststop never fails the runtime: the runtime spec makes its
		// errors warnings, and an engine's cleanup must go on.
		if opts.Stage == hookargs.Poststop {
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
		if opts.Stage == hookargs.Poststop {
			// The configuration broke while the mounter ran: clean up
			// after it from its registry record. Its log goes to that
			// record's state directory, where the error lands too.
			dir, _ := config.StateDirOf(path)
			log = h.poststopWithoutConfig(opts, state, dir, "the configuration cannot be loaded")
		}
		return err
	}
	if cfg.PassThrough() {
		// No rule: no container is a mounter, unless one started before
		// the file was removed or emptied.
		if opts.Stage == hookargs.Poststop {
			dir := cfg.StateDir
			if cfg.Missing {
				dir = ""
			}
			h.poststopWithoutConfig(opts, state, dir, "the configuration names no rule")
		}
		return nil
	}
	log = newLogger(filepath.Join(cfg.StateDir, LogName), cfg.LogLevel, h.Stderr)
	r := &run{Hook: h, opts: opts, cfg: cfg, state: state,
		log: log.WithFields(logrus.Fields{"id": shortID(state.ID), "stage": string(opts.Stage)})}
	if opts.Stage.Creates() {
		return r.createRuntime()
	}
	r.poststop()
	return nil
}

// run is one invocation with its inputs.
type run struct {
	*Hook
	opts  *hookargs.Args
	cfg   *config.Config
	state *State
	log   *logrus.Entry
}

// shortID shortens engine IDs (64 hex digits) for log lines.
func shortID(id string) string {
	if len(id) == 64 && strings.Trim(id, "0123456789abcdef") == "" {
		return id[:12]
	}
	return id
}
