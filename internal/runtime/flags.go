package runtime

import (
	"slices"
	"strings"
	"sync"
)

// The flag tables below mirror runc's command line (runc 1.1.5 as shipped by
// Debian bookworm, checked against `runc CMD --help`, plus flags added by
// later runc releases such as --pidfd-socket). Which flags take a value is
// what matters: it decides whether the next word is a value or the container
// ID, so a missing entry here could make runc-shared read the wrong bundle.

// ConfigFlag is runc-shared's own global option naming its config file. It is
// removed from argv before the delegate runs, because runc rejects it.
const ConfigFlag = "runc-shared-config"

// globals are runc's global options, and ours. They are parsed on after a
// usage error, and unknown ones are kept (see Args.UnknownGlobals).
var globals = command{
	flags: flagSpecs([]string{"root", "log", "log-format", "criu", "rootless", ConfigFlag},
		[]string{"debug", "systemd-cgroup", "help,h", "version", "v"}),
	global: true,
}

// command describes one runc subcommand's own flags.
type command struct {
	// flags is the command's flag table, built on first use: a call
	// parses one command, and the wrapper starts on every runtime call.
	flags func() map[string]flagSpec
	// strict commands are the ones that may rewrite the bundle: an unknown
	// flag there is an error, since we could not tell whether it swallows
	// the next word and would then risk reading the wrong bundle.
	strict bool
	// takesID is true when the first positional argument is a container ID.
	takesID bool
	// noReorder is runc exec's SkipArgReorder: the process arguments that
	// follow the container ID may look like flags and must stay unparsed.
	noReorder bool
	// global marks the global options (globals).
	global bool
}

// flagSpec describes one flag of a command. A flag with a long and a short
// name is declared as one, "bundle,b", as runc declares it to urfave/cli,
// which refuses a command line that gives both: each name then has a bit of
// its own in a command line's mask of the names seen, and other and
// otherBit name the second form.
type flagSpec struct {
	valued        bool
	other         string
	bit, otherBit uint64
}

var (
	createValued = []string{"bundle,b", "console-socket", "pidfd-socket", "pid-file", "preserve-fds"}
	createBool   = []string{"no-pivot", "no-new-keyring"}
)

// commands maps each runc subcommand to its flags. urfave/cli adds --help/-h
// to every command (see newCommand).
var commands = map[string]command{
	"create": newCommand(true, true, createValued, createBool),
	"run": newCommand(true, true, createValued,
		append([]string{"detach,d", "keep", "no-subreaper"}, createBool...)),
	// runc 1.1.5 shows --auto-dedup and --lazy-pages as boolean flags of
	// restore; --parent-path, --page-server and --status-fd are checkpoint
	// options that criuOptions also reads, listed as valued in case a runc
	// version defines them for restore.
	"restore": newCommand(true, true,
		[]string{"bundle,b", "console-socket", "pid-file", "image-path", "work-path",
			"parent-path", "page-server", "manage-cgroups-mode", "empty-ns", "status-fd",
			"lsm-profile", "lsm-mount-context"},
		[]string{"tcp-established", "tcp-skip-in-flight", "link-remap", "ext-unix-sk",
			"shell-job", "file-locks", "detach,d", "no-subreaper", "no-pivot",
			"auto-dedup", "lazy-pages"}),
	"exec": {
		flags: flagSpecs([]string{"console-socket", "pidfd-socket", "cwd", "env,e", "user,u",
			"additional-gids,g", "process,p", "pid-file", "process-label",
			"apparmor", "cap,c", "preserve-fds", "cgroup"},
			[]string{"tty,t", "detach,d", "no-new-privs", "ignore-paused", "help,h"}),
		takesID:   true,
		noReorder: true,
	},
	"checkpoint": newCommand(false, true,
		[]string{"image-path", "work-path", "parent-path", "status-fd", "page-server",
			"manage-cgroups-mode", "empty-ns", "lsm-profile", "lsm-mount-context"},
		[]string{"leave-running", "tcp-established", "tcp-skip-in-flight", "link-remap",
			"ext-unix-sk", "shell-job", "lazy-pages", "file-locks", "pre-dump", "auto-dedup"}),
	"delete": newCommand(false, true, nil, []string{"force,f"}),
	"kill":   newCommand(false, true, nil, []string{"all,a"}),
	"state":  newCommand(false, true, nil, nil),
	"start":  newCommand(false, true, nil, nil),
	"pause":  newCommand(false, true, nil, nil),
	"resume": newCommand(false, true, nil, nil),
	"ps":     newCommand(false, true, []string{"format,f"}, nil),
	"events": newCommand(false, true, []string{"interval"}, []string{"stats"}),
	"update": newCommand(false, true,
		[]string{"resources,r", "blkio-weight", "cpu-period", "cpu-quota", "cpu-share",
			"cpu-rt-period", "cpu-rt-runtime", "cpuset-cpus", "cpuset-mems", "cpu-idle",
			"memory", "memory-reservation", "memory-swap", "pids-limit",
			"l3-cache-schema", "mem-bw-schema"}, nil),
	"list":     newCommand(false, false, []string{"format,f"}, []string{"quiet,q"}),
	"spec":     newCommand(false, false, []string{"bundle,b"}, []string{"rootless"}),
	"features": newCommand(false, false, nil, nil),
}

func newCommand(strict, takesID bool, valued, boolean []string) command {
	return command{
		flags:   flagSpecs(valued, append([]string{"help,h"}, boolean...)),
		strict:  strict,
		takesID: takesID,
	}
}

// flagSpecs returns the builder of a command's flag table, which builds it
// once: one lookup per option word on the call path tells whether the flag
// is known, takes a value and has a second form.
func flagSpecs(valued, boolean []string) func() map[string]flagSpec {
	return sync.OnceValue(func() map[string]flagSpec { return buildFlagSpecs(valued, boolean) })
}

func buildFlagSpecs(valued, boolean []string) map[string]flagSpec {
	m := make(map[string]flagSpec, len(valued)+len(boolean))
	var pairs uint // a uint64 mask holds 32 pairs; runc's commands have up to 8
	for i, n := range slices.Concat(valued, boolean) {
		long, short, paired := strings.Cut(n, ",")
		if !paired {
			m[n] = flagSpec{valued: i < len(valued)}
			continue
		}
		if pairs == 32 {
			// A shift past the mask would give the bits 0 and lose the
			// check without a word; TestFlagTables builds every table.
			panic("runtime: a command has more than 32 two-name flags: widen flagSpec's bits")
		}
		l, s := uint64(1)<<(2*pairs), uint64(1)<<(2*pairs+1)
		m[long] = flagSpec{valued: i < len(valued), other: short, bit: l, otherBit: s}
		m[short] = flagSpec{valued: i < len(valued), other: long, bit: s, otherBit: l}
		pairs++
	}
	return m
}
