// Package hookargs is mount-hook's command line, defined once: the hook
// parses it, and the wrapper (the hooks it injects into a spec) and
// configure (the hooks.d files) write it, so that what one side writes the
// other reads. It never looks at a file or the environment.
package hookargs

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"
)

// Name is the base name of the mount-hook binary and the program name
// (args[0]) of its hook entries.
const Name = "mount-hook"

// Stage is a hook stage mount-hook runs for.
type Stage string

// The stages mount-hook serves. Prestart (deprecated in the runtime spec)
// runs at the same point as createRuntime in runc and is treated the same.
const (
	CreateRuntime Stage = "createRuntime"
	Prestart      Stage = "prestart"
	Poststop      Stage = "poststop"
)

// ParseStage accepts the stage names of the runtime spec in any case, with
// or without dashes or underscores (createRuntime, create-runtime,
// CREATE_RUNTIME).
func ParseStage(s string) (Stage, error) {
	name := strings.ToLower(strings.NewReplacer("-", "", "_", "").Replace(s))
	for _, st := range []Stage{CreateRuntime, Prestart, Poststop} {
		if name == strings.ToLower(string(st)) {
			return st, nil
		}
	}
	return "", fmt.Errorf("unknown stage %q: %s runs at createRuntime (or prestart) and poststop; fix the hook's args", s, Name)
}

// Creates reports whether the stage verifies and registers a mounter.
func (s Stage) Creates() bool { return s == CreateRuntime || s == Prestart }

// Args is a mount-hook command line.
type Args struct {
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

// Usage is mount-hook's usage message.
const Usage = `usage: mount-hook [--config PATH] [--runtime PATH] [--root DIR] [--state-dir DIR] STAGE

An OCI hook for runc-shared mounter containers. STAGE is createRuntime (or
prestart) or poststop; the container state comes on stdin. --state-dir is
where poststop finds the registry when the configuration cannot be loaded.`

// ErrVersion is Parse's error for --version.
var ErrVersion = errors.New("version requested")

// Parse reads a command line (without the program name) in Go flag syntax.
// Its error is flag.ErrHelp for -h, ErrVersion for --version, and one that
// ends with Usage for a command line mount-hook cannot run.
func Parse(argv []string) (*Args, error) {
	fs := flag.NewFlagSet(Name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	a := &Args{}
	fs.StringVar(&a.Config, "config", "", "configuration file")
	fs.StringVar(&a.Runtime, "runtime", "", "the delegate runtime binary, for the registry")
	fs.StringVar(&a.Root, "root", "", "the delegate runtime's --root, for the registry")
	fs.StringVar(&a.StateDir, "state-dir", "", "the registry's state directory, for a poststop whose configuration cannot be loaded")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(argv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, fmt.Errorf("%w\n%s", err, Usage)
	}
	if *showVersion {
		return nil, ErrVersion
	}
	fs.Visit(func(f *flag.Flag) { a.ConfigSet = a.ConfigSet || f.Name == "config" })
	if fs.NArg() != 1 {
		return nil, fmt.Errorf("want exactly one STAGE argument, got %q\n%s", fs.Args(), Usage)
	}
	st, err := ParseStage(fs.Arg(0))
	if err != nil {
		return nil, err
	}
	a.Stage = st
	// The hook runs in the runtime's working directory, which is not the
	// directory the wrapper ran in: relative paths are refused rather than
	// guessed. A bare runtime name is looked up on PATH.
	for _, f := range a.flags() {
		if f.value == "" || filepath.IsAbs(f.value) || f.name == "--runtime" && !strings.Contains(f.value, "/") {
			continue
		}
		return nil, fmt.Errorf("%s %q is a relative path: give an absolute path", f.name, f.value)
	}
	return a, nil
}

// Format returns the command line, program name first; flags with an empty
// value are left out.
func (a *Args) Format() []string {
	args := []string{Name}
	for _, f := range a.flags() {
		if f.value != "" {
			args = append(args, f.name, f.value)
		}
	}
	return append(args, string(a.Stage))
}

func (a *Args) flags() []struct{ name, value string } {
	return []struct{ name, value string }{
		{"--config", a.Config}, {"--runtime", a.Runtime}, {"--root", a.Root}, {"--state-dir", a.StateDir},
	}
}
