package configure

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/runc-shared/runc-shared/internal/config"
	"github.com/runc-shared/runc-shared/internal/hookargs"
)

// Defaults of the flags.
const (
	defaultRuntimePath = "/usr/local/bin/runc-shared"
	DefaultRuntimeName = "shared"
	// defaultHooksDir is read by Podman and, as its only default, by CRI-O.
	defaultHooksDir = "/usr/share/containers/oci/hooks.d"
	// backupSuffix is appended to a file's path for the copy of its content
	// from before runc-shared.
	backupSuffix = ".runc-shared.bak"
)

// engines lists the engines configure knows, in the order the usage gives
// them, each with its default configuration file and the method that plans
// its edits.
var engines = []engine{
	{"docker", "/etc/docker/daemon.json", (*plan).docker},
	{"containerd", "/etc/containerd/config.toml", (*plan).containerd},
	{"podman", "/etc/containers/containers.conf", (*plan).podman},
	{"crio", "/etc/crio/crio.conf.d/99-runc-shared.conf", (*plan).crio},
}

type engine struct {
	name, file string
	plan       func(*plan, options)
}

// options are the settings of one configure run.
type options struct {
	Engine      string // docker, containerd, podman or crio
	ConfigFile  string // the engine's configuration file; "" means engines[Engine]
	RuntimePath string // the runc-shared binary the engine runs
	RuntimeName string // the runtime (Docker, Podman) or runtime handler (CRI) name
	// RuncSharedConfig is runc-shared's own configuration file; "" means
	// the default lookup ($RUNC_SHARED_CONFIG, then config.DefaultPath).
	RuncSharedConfig string
	HooksDir         string // where the hooks.d files go (Podman, CRI-O)
	HookPath         string // the mount-hook binary; "" means beside RuntimePath
	DryRun           bool   // print the change, write nothing
	Remove           bool   // undo a previous configure
}

// Run is `mounter configure`: args are the arguments after the subcommand
// name. It returns the exit code: 0 done, 1 failed, 2 usage error.
func Run(args []string, stdout, stderr io.Writer) int {
	o, err := parseArgs(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "mounter configure: %v\n", err)
		return 2
	}
	p, err := newPlan(o)
	if err != nil {
		fmt.Fprintf(stderr, "mounter configure: %v\n", err)
		return 2
	}
	if err := p.execute(stdout); err != nil {
		fmt.Fprintf(stderr, "mounter configure: %v\n", err)
		return 1
	}
	return 0
}

func parseArgs(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("mounter configure", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.Engine, "engine", "", "engine to configure: docker, containerd, podman or crio (required)")
	fs.StringVar(&o.ConfigFile, "config-file", "", "the engine's configuration file (default: per engine, see below)")
	fs.StringVar(&o.RuntimePath, "runtime-path", defaultRuntimePath, "the runc-shared binary")
	fs.StringVar(&o.RuntimeName, "runtime-name", DefaultRuntimeName, "runtime name (Docker, Podman) or CRI runtime handler (containerd, CRI-O)")
	fs.StringVar(&o.RuncSharedConfig, "runc-shared-config", "", "runc-shared's configuration file (default: $RUNC_SHARED_CONFIG, else "+config.DefaultPath+")")
	fs.StringVar(&o.HooksDir, "hooks-dir", defaultHooksDir, "OCI hooks directory for the mount-hook files (Podman, CRI-O)")
	fs.StringVar(&o.HookPath, "hook-path", "", "the mount-hook binary named in the hook files (default: mount-hook beside --runtime-path)")
	fs.BoolVar(&o.DryRun, "dry-run", false, "print the change as a unified diff and write nothing")
	fs.BoolVar(&o.Remove, "remove", false, "undo the configuration (restores the backup when the file is unchanged since)")
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: mounter configure --engine docker|containerd|podman|crio [flags]\n\n"+
			"Registers runc-shared with a container engine; idempotent. Before the first change to a\n"+
			"file it keeps FILE"+backupSuffix+". Default configuration files:\n")
		for _, e := range engines {
			fmt.Fprintf(stderr, "  %-10s %s\n", e.name, e.file)
		}
		fmt.Fprint(stderr, "\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q; see --help", fs.Arg(0))
	}
	return o, nil
}

// plan is the list of file edits for one engine, and what to tell the user.
type plan struct {
	opts    options
	targets []target
	// notes are the next steps, printed when something changed, and
	// warnings ("warning: ..."), printed always.
	notes []string
}

// target is one file that configure manages.
type target struct {
	Path   string
	What   string // for messages: `runtime "shared"`, `createRuntime hook`
	editor editor
	// Next, when set, tells the step that makes a change take effect from
	// what the file holds afterwards (nil: the file is gone). It is printed
	// after the notes, when the file changed.
	Next func(result []byte) string
}

// editor knows how runc-shared's entry looks in one file.
type editor interface {
	// Apply returns content with the entry; old is nil for a missing file.
	// When the entry is already there it returns old unchanged.
	Apply(old []byte) ([]byte, error)
	// Revert returns content without the entry, or nil when nothing else is
	// left and the file should go.
	Revert(cur []byte) ([]byte, error)
}

// newPlan validates o, fills in the defaults and builds the engine's plan.
func newPlan(o options) (*plan, error) {
	e := slices.IndexFunc(engines, func(e engine) bool { return e.name == o.Engine })
	if e < 0 {
		return nil, fmt.Errorf("--engine %q: want docker, containerd, podman or crio", o.Engine)
	}
	o.ConfigFile = cmp.Or(o.ConfigFile, engines[e].file)
	if o.RuntimeName == "" || strings.ContainsAny(o.RuntimeName, " \t\n\"'/=.[]") {
		return nil, fmt.Errorf("--runtime-name %q: want a plain name such as %q", o.RuntimeName, DefaultRuntimeName)
	}
	for flagName, p := range map[string]*string{"--runtime-path": &o.RuntimePath, "--config-file": &o.ConfigFile,
		"--hooks-dir": &o.HooksDir, "--hook-path": &o.HookPath, "--runc-shared-config": &o.RuncSharedConfig} {
		if *p == "" {
			continue
		}
		if !filepath.IsAbs(*p) {
			return nil, fmt.Errorf("%s %q: want an absolute path (the engine resolves it from another directory)", flagName, *p)
		}
		*p = filepath.Clean(*p)
	}
	if o.RuntimePath == "" {
		return nil, errors.New("--runtime-path: want the absolute path of the runc-shared binary")
	}
	o.HookPath = cmp.Or(o.HookPath, filepath.Join(filepath.Dir(o.RuntimePath), hookargs.Name))
	o.HooksDir = cmp.Or(o.HooksDir, defaultHooksDir)
	p := &plan{opts: o}
	engines[e].plan(p, o)
	if _, err := os.Stat(o.RuntimePath); err != nil && !o.Remove {
		p.notes = append(p.notes, fmt.Sprintf("warning: %s: %v; install runc-shared there (make install) before starting containers with runtime %q",
			o.RuntimePath, err, o.RuntimeName))
	}
	return p, nil
}

// customConfig tells whether the user named a runc-shared configuration
// that the binary would not find on its own.
func (o options) customConfig() bool {
	return o.RuncSharedConfig != "" && o.RuncSharedConfig != config.DefaultPath
}

// configArg is the runc-shared configuration to pass as an argument: the
// named one, else the default path.
func (o options) configArg() string {
	return cmp.Or(o.RuncSharedConfig, config.DefaultPath)
}
