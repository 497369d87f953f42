package mounter

import (
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/runc-shared/runc-shared/internal/config"
	"github.com/runc-shared/runc-shared/internal/csi"
	"github.com/runc-shared/runc-shared/internal/version"
)

// Mounter runs invocations; its fields are the outside world, replaceable
// in tests.
type Mounter struct {
	Stdout, Stderr io.Writer
	Exec           Execer
	// PlainMount replaces the process with mount(8) run with argv (without
	// program name); it returns only on failure.
	PlainMount func(argv []string) error
	// DockerConfig is dockerd's default configuration file, for doctor;
	// "" means DefaultDockerConfig.
	DockerConfig string
	// ProcDir is where doctor looks for running engines; "" means /proc.
	ProcDir string

	prog string
}

// Main runs the binary with os.Args and returns the exit code.
func Main(argv []string) int {
	m := &Mounter{Stdout: os.Stdout, Stderr: os.Stderr, Exec: RuntimeExec{}, PlainMount: ExecMount}
	return m.Run(argv)
}

// Run executes one invocation and returns its exit code; errors are printed
// on stderr, prefixed with the program name.
func (m *Mounter) Run(argv []string) int {
	inv, err := Parse(argv)
	m.prog = inv.Prog
	if err != nil {
		fmt.Fprintf(m.Stderr, "%s: %v\n", m.prog, err)
		if !inv.Helper {
			fmt.Fprintf(m.Stderr, "run `%s help` for usage\n", m.prog)
		}
		return ExitCode(err)
	}
	if err := m.run(inv); err != nil {
		fmt.Fprintf(m.Stderr, "%s: %v\n", m.prog, err)
		return ExitCode(err)
	}
	return ExitOK
}

func (m *Mounter) run(inv *Invocation) error {
	switch inv.Command {
	case CmdHelp:
		fmt.Fprint(m.Stdout, Usage)
		return nil
	case CmdVersion:
		fmt.Fprintf(m.Stdout, "mounter (runc-shared) version %s\ncommit: %s\n", version.Version, version.Commit)
		return nil
	case CmdDoctor:
		return m.doctor(inv)
	}
	// The configuration the contract names: --config, else
	// $RUNC_SHARED_CONFIG, else the default path.
	cfg, err := config.Load(config.Path(inv.ConfigPath, inv.ConfigSet))
	if err != nil {
		// A configuration that does not load may route this type: mounting
		// it plainly instead would hide the problem.
		return usage("%w", err)
	}
	switch inv.Command {
	case CmdMount:
		return m.mount(inv, cfg)
	case CmdUmount:
		return m.umount(inv, cfg)
	case CmdStatus:
		return m.status(cfg)
	case CmdList:
		return m.list(inv, cfg)
	case CmdRecover:
		return m.recoverMounts(inv, cfg)
	}
	return usage("unknown command %q", inv.Command)
}

// mount routes the mount when a rule routes its type, else hands it to
// plain mount(8).
func (m *Mounter) mount(inv *Invocation, cfg *config.Config) error {
	if rules := cfg.RulesFor(inv.Type); inv.Type != "" && len(rules) > 0 {
		return m.routedMount(inv, cfg, rules)
	}
	if inv.Helper {
		// mount(8) called us for a type no rule routes: the link is there
		// but the configuration does not back it.
		m.warnf("no [[mounter]] rule in %s routes %s; trying the kernel's own %s with `mount -i` (add a rule, or remove the mount.%s link)",
			cfg.Name(), inv.Type, inv.Type, inv.Type)
	}
	if err := m.PlainMount(inv.Passthrough); err != nil {
		return system("%w", err)
	}
	return nil
}

// ExecMount replaces the process with mount(8), so its exit code and
// messages are the caller's. It returns only on failure.
func ExecMount(argv []string) error {
	bin, err := csi.MountBinary()
	if err != nil {
		return err
	}
	if err := unix.Exec(bin, append([]string{"mount"}, argv...), os.Environ()); err != nil {
		return fmt.Errorf("exec %s: %w", bin, err)
	}
	return nil
}

// joinEach joins what say makes of each item, for messages.
func joinEach[T any](items []T, sep string, say func(T) string) string {
	s := make([]string, len(items))
	for i, it := range items {
		s[i] = say(it)
	}
	return strings.Join(s, sep)
}

func (m *Mounter) warnf(format string, args ...any) {
	fmt.Fprintf(m.Stderr, "%s: warning: %s\n", m.prog, fmt.Sprintf(format, args...))
}
