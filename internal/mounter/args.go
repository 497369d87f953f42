package mounter

import (
	"path/filepath"
	"strings"
	"time"
)

// Command is what an invocation asks for.
type Command string

// The subcommands.
const (
	CmdMount   Command = "mount"
	CmdUmount  Command = "umount"
	CmdStatus  Command = "status"
	CmdDoctor  Command = "doctor"
	CmdList    Command = "list"
	CmdRecover Command = "recover"
	CmdHelp    Command = "help"
	CmdVersion Command = "version"
)

// DefaultTimeout bounds the wait for a routed mount to show up on the host.
const DefaultTimeout = 10 * time.Second

// helperPrefix starts the name mount(8) runs a helper under: mount.TYPE.
const helperPrefix = "mount."

// Invocation is one call of the binary, whichever form it came in.
type Invocation struct {
	// Prog names the program in messages: "mounter", or "mount.glusterfs"
	// in the helper form.
	Prog       string
	Command    Command
	ConfigPath string
	ConfigSet  bool
	// Timeout bounds the wait for a routed mount to show up on the host;
	// when given (TimeoutSet), it bounds the wait for a target's lock too.
	Timeout    time.Duration
	TimeoutSet bool
	// Helper is set when the binary runs as a mount(8) helper, mount.TYPE.
	Helper bool

	// Mount: the type (-t, or TYPE of mount.TYPE), the -o values in order
	// (each may hold commas; -r and -w add "ro" and "rw"), the positional
	// arguments and the flags that change nothing in the mounter.
	Type                          string
	Options                       []string
	Args                          []string // positional: SRC TGT (or TGT for umount)
	Fake, Verbose, Sloppy, NoMtab bool
	// Unsupported holds flags a routed mount cannot honour (-N, --bind,
	// anything unknown); plain mount gets them as given.
	Unsupported []string
	// Passthrough is the argv (without program name) for plain /bin/mount.
	Passthrough []string

	// Lazy is umount -l: detach now, clean up when no longer busy.
	Lazy bool

	// Quiet is list -q: IDs only.
	Quiet bool

	// Rule is recover --rule: that rule's records only.
	Rule string
}

// Source of a mount: the first positional argument, or "".
func (inv *Invocation) Source() string {
	if len(inv.Args) > 0 {
		return inv.Args[0]
	}
	return ""
}

// OptionList is the -o values split at their commas, empty ones dropped.
func (inv *Invocation) OptionList() []string {
	var opts []string
	for _, o := range inv.Options {
		opts = append(opts, strings.FieldsFunc(o, func(r rune) bool { return r == ',' })...)
	}
	return opts
}

// Usage is the help text.
const Usage = `usage:
  mounter [--config PATH] [--timeout DURATION] mount [-t TYPE] [-o OPTIONS] [-r|-w] [-n] [-v] [-s] [-f] SOURCE TARGET
  mounter [--config PATH] [--timeout DURATION] umount [-l] TARGET
  mounter [--config PATH] status
  mounter [--config PATH] doctor
  mounter [--config PATH] list [-q]   (registered mounters that still run or are paused; -q: IDs only)
  mounter [--config PATH] [--timeout DURATION] recover [--rule NAME]   (make the recorded mounts of live mounters again)
  mounter configure --engine docker|containerd|podman|crio [--dry-run] [--remove] ...   (mounter configure --help)
  mount.TYPE SOURCE TARGET [-o OPTIONS] [-n] [-v] [-s] [-f]   (as a mount(8) helper: ln -s mounter /sbin/mount.TYPE)

A TYPE that a [[mounter]] rule routes is mounted inside that rule's live mounter
container and checked to appear on the host at TARGET within --timeout (default 10s);
every other TYPE goes to /bin/mount unchanged. The configuration is --config PATH,
else $RUNC_SHARED_CONFIG, else /etc/runc-shared/config.toml.
A routed mount or umount of a TARGET that another mounter mount, umount or recover
is working on waits until that one is done: as long as it takes, or at most
--timeout when given.
recover makes every recorded mount (CSI volumes, routed mounts) of a live mounter
that is dead or missing again at its place: through the mounter's own server when it
serves one, else inside it as a routed mount; it exits 0 when every recorded mount of
the rules asked for is live afterwards, 32 when some are not (it lists them).
Exit codes as mount(8): 0 success, 1 incorrect invocation, 2 system error, 32 mount failure.
`

// Parse reads argv (argv[0] is the program name) into an Invocation, which
// it returns even with an error, for the program's name. A usage error is
// an *Error with ExitUsage.
func Parse(argv []string) (*Invocation, error) {
	if len(argv) == 0 {
		return &Invocation{Prog: "mounter"}, usage("no program name in argv")
	}
	prog := filepath.Base(argv[0])
	inv := &Invocation{Prog: prog, Timeout: DefaultTimeout}
	if t, ok := strings.CutPrefix(prog, helperPrefix); ok && t != "" {
		inv.Helper, inv.Command = true, CmdMount
		return inv, inv.parseHelper(argv[1:], t)
	}
	rest, err := inv.parseGlobal(argv[1:])
	if err != nil {
		return inv, err
	}
	if len(rest) == 0 {
		return inv, usage("missing command: mount, umount, recover, status or doctor")
	}
	cmd, args := rest[0], rest[1:]
	if cmd == "unmount" {
		cmd = "umount"
	}
	switch inv.Command = Command(cmd); inv.Command {
	case CmdMount:
		return inv, inv.parseMount(args, true)
	case CmdUmount:
		return inv, inv.parseUmount(args)
	case CmdStatus, CmdDoctor:
		if len(args) > 0 {
			return inv, usage("%s takes no arguments, got %q", cmd, args)
		}
		return inv, nil
	case CmdRecover:
		return inv, inv.parseRecover(args)
	case CmdList:
		for _, a := range args {
			if a != "-q" && a != "--quiet" {
				return inv, usage("list takes only -q, got %q", a)
			}
			inv.Quiet = true
		}
		return inv, nil
	case CmdHelp, CmdVersion:
		return inv, nil
	}
	return inv, usage("unknown command %q: use mount, umount, recover, status or doctor", cmd)
}

// parseGlobal reads the options before the command and returns the rest.
func (inv *Invocation) parseGlobal(args []string) ([]string, error) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		var err error
		switch name, _, _ := strings.Cut(a, "="); name {
		case "--config", "-config":
			i, err = value(args, i, func(v string) error {
				inv.ConfigPath, inv.ConfigSet = v, true
				return nil
			})
		case "--timeout":
			i, err = value(args, i, inv.setTimeout)
		case "-h", "--help":
			return []string{string(CmdHelp)}, nil
		case "--version", "-version":
			return []string{string(CmdVersion)}, nil
		default:
			if strings.HasPrefix(a, "-") {
				return nil, usage("unknown option %q before the command", a)
			}
			return args[i:], nil
		}
		if err != nil {
			return nil, err
		}
	}
	return nil, nil
}

// value gives set the value of the option at i: after "=" or the next
// argument; it returns the index of the last argument used.
func value(args []string, i int, set func(string) error) (int, error) {
	name, v, hasVal := strings.Cut(args[i], "=")
	if !hasVal {
		if i+1 >= len(args) {
			return i, usage("option %s needs a value", name)
		}
		v, i = args[i+1], i+1
	}
	return i, set(v)
}

func (inv *Invocation) setTimeout(v string) error {
	d, err := time.ParseDuration(v)
	if err != nil {
		// A bare number means seconds, as in `timeout 10`.
		if d2, err2 := time.ParseDuration(v + "s"); err2 == nil {
			d, err = d2, nil
		}
	}
	if err != nil || d <= 0 {
		return usage("--timeout %q: give a positive duration like 10s or 500ms", v)
	}
	inv.Timeout, inv.TimeoutSet = d, true
	return nil
}

// parseMount reads the arguments of `mounter mount`, which are mount(8)'s
// (kubelet calls `<mounter-path> mount -t T -o O S D`). Passthrough keeps them
// as given, without --timeout when timeout is set, for plain mount.
func (inv *Invocation) parseMount(args []string, timeout bool) error {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			inv.Args = append(inv.Args, args[i+1:]...)
			inv.Passthrough = append(inv.Passthrough, args[i:]...)
			break
		}
		if name, _, _ := strings.Cut(a, "="); timeout && name == "--timeout" {
			var err error
			if i, err = value(args, i, inv.setTimeout); err != nil {
				return err
			}
			continue
		}
		n, err := inv.mountOption(args, i)
		if err != nil {
			return err
		}
		inv.Passthrough = append(inv.Passthrough, args[i:n+1]...)
		i = n
	}
	return nil
}

// parseHelper reads the helper form of mount.TYPE: SOURCE TARGET [-sfnv]
// [-N NS] [-o OPTIONS] [-t TYPE.SUBTYPE], options anywhere (mount(8),
// "EXTERNAL HELPERS"); all of them are mount(8)'s. Plain mount gets -i so
// that it does not call the mount.TYPE helper, which may be this very
// binary, again.
func (inv *Invocation) parseHelper(args []string, typ string) error {
	if err := inv.parseMount(args, false); err != nil {
		return err
	}
	if len(inv.Args) != 2 {
		return usage("%s called with %d arguments %q; a mount helper takes SOURCE TARGET [-o OPTIONS]", inv.Prog, len(inv.Args), inv.Args)
	}
	pass := []string{"-i"}
	if inv.Type == "" {
		inv.Type, pass = typ, append(pass, "-t", typ)
	}
	inv.Passthrough = append(pass, inv.Passthrough...)
	return nil
}

// mountOptions are what mount(8)'s options set in the mounter, by short
// name; the short ones may be combined ("-nv"), and those in withValue take
// a value. --no-canonicalize and --internal-only are about the host's
// mount(8) only: nothing to do in the mounter.
var mountOptions = map[byte]func(inv *Invocation, v string){
	'f': func(inv *Invocation, _ string) { inv.Fake = true },
	'n': func(inv *Invocation, _ string) { inv.NoMtab = true },
	'v': func(inv *Invocation, _ string) { inv.Verbose = true },
	's': func(inv *Invocation, _ string) { inv.Sloppy = true },
	'r': func(inv *Invocation, _ string) { inv.Options = append(inv.Options, "ro") },
	'w': func(inv *Invocation, _ string) { inv.Options = append(inv.Options, "rw") },
	'c': func(*Invocation, string) {},
	'i': func(*Invocation, string) {},
	't': func(inv *Invocation, v string) { inv.Type = v },
	'o': func(inv *Invocation, v string) { inv.Options = append(inv.Options, v) },
	'N': func(inv *Invocation, v string) { inv.Unsupported = append(inv.Unsupported, "-N "+v) },
}

// withValue are the short names of the options that take a value.
const withValue = "toN"

// longOptions are the short names of mount(8)'s long options that the
// mounter reads.
var longOptions = map[string]byte{
	"--fake": 'f', "--no-mtab": 'n', "--verbose": 'v', "--sloppy": 's', "--read-only": 'r', "--rw": 'w',
	"--read-write": 'w', "--no-canonicalize": 'c', "--internal-only": 'i',
	"--types": 't', "--options": 'o', "--namespace": 'N',
}

// mountOption reads the argument at i (an option and maybe its value, or a
// positional argument) and returns the index of the last argument used.
func (inv *Invocation) mountOption(args []string, i int) (int, error) {
	a := args[i]
	switch {
	case a == "-" || !strings.HasPrefix(a, "-"):
		inv.Args = append(inv.Args, a)
		return i, nil
	case strings.HasPrefix(a, "--"):
		name, _, _ := strings.Cut(a, "=")
		c, ok := longOptions[name]
		switch {
		case !ok:
			// Unknown to us: a routed mount refuses it, plain mount gets it.
			inv.Unsupported = append(inv.Unsupported, a)
		case strings.IndexByte(withValue, c) < 0:
			mountOptions[c](inv, "")
		default:
			return value(args, i, func(v string) error {
				mountOptions[c](inv, v)
				return nil
			})
		}
		return i, nil
	}
	// Short options: a cluster of flags, possibly ending in -t or -o with
	// its value attached ("-tglusterfs", "-oro") or in the next argument.
	for j := 1; j < len(a); j++ {
		c := a[j]
		set := mountOptions[c]
		switch {
		case set == nil:
			inv.Unsupported = append(inv.Unsupported, "-"+string(c))
		case strings.IndexByte(withValue, c) < 0:
			set(inv, "")
		default:
			v, n := a[j+1:], i
			if v == "" {
				if i+1 >= len(args) {
					return i, usage("option -%c needs a value", c)
				}
				v, n = args[i+1], i+1
			}
			set(inv, v)
			return n, nil
		}
	}
	return i, nil
}

// mountArgv is the mount(8) command that makes inv's mount at inner, run
// inside the mounter: the other side of mountOption.
func mountArgv(inv *Invocation, inner string) []string {
	argv := []string{"mount"}
	if inv.NoMtab {
		argv = append(argv, "-n")
	}
	if inv.Sloppy {
		argv = append(argv, "-s")
	}
	if inv.Verbose {
		argv = append(argv, "-v")
	}
	argv = append(argv, "-t", inv.Type)
	if o := strings.Join(inv.OptionList(), ","); o != "" {
		argv = append(argv, "-o", o)
	}
	return append(argv, "--", inv.Source(), inner)
}

// parseRecover reads `mounter recover [--rule NAME]`.
func (inv *Invocation) parseRecover(args []string) error {
	for i := 0; i < len(args); i++ {
		if name, _, _ := strings.Cut(args[i], "="); name != "--rule" && name != "-rule" {
			return usage("recover takes only --rule NAME, got %q", args[i])
		}
		var err error
		i, err = value(args, i, func(v string) error {
			if v == "" {
				return usage("recover --rule: give a rule name")
			}
			inv.Rule = v
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// parseUmount reads `mounter umount [-l] TARGET`.
func (inv *Invocation) parseUmount(args []string) error {
	for _, a := range args {
		switch {
		case a == "-l" || a == "--lazy":
			inv.Lazy = true
		case strings.HasPrefix(a, "-") && a != "-":
			return usage("umount: unknown option %q (only -l is supported)", a)
		default:
			inv.Args = append(inv.Args, a)
		}
	}
	if len(inv.Args) != 1 {
		return usage("umount takes one TARGET, got %q", inv.Args)
	}
	return nil
}
