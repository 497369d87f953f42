// Package runtime reads the runc command line an engine hands to runc-shared,
// finds the real runtime (the delegate) and hands the call over to it by exec.
//
// Parsing follows what runc itself does with urfave/cli v1 and Go's flag
// package, so that runc-shared reads the same bundle runc will use:
//   - global options come before the subcommand; parsing stops at the first
//     word that is not an option, or after "--";
//   - "-name" and "--name" are the same option; a value is given as
//     "--name value" or "--name=value", and a valued option takes the next
//     word whatever it looks like ("--root create" sets the root);
//   - boolean options accept "--name=true|false";
//   - a subcommand's flags may also follow its positional arguments (urfave
//     moves known flags to the front), except for exec, whose process
//     arguments must stay untouched.
//
// Unknown global options are kept and passed through; they are taken as
// boolean unless written "--name=value" (runc rejects them anyway, but another
// runtime configured as the delegate may know them).
package runtime

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// ErrUsage marks a command line runc-shared cannot make sense of. The caller
// should not rewrite anything; passing the call through lets the delegate
// print its own usage error.
var ErrUsage = errors.New("invalid runtime command line")

// Args is a parsed runtime command line.
type Args struct {
	// Argv is the command line without the program name, as given.
	Argv []string
	// runc's global options that runc-shared reads, given before the
	// subcommand; the others are only skipped with their values.
	Root, Log, LogFormat string
	Debug                bool
	// UnknownGlobals holds global options runc-shared does not know, as
	// written; they stay in ExecArgv.
	UnknownGlobals []string
	// ConfigPath is runc-shared's own --runc-shared-config value; ConfigSet
	// tells whether the option was given at all.
	ConfigPath string
	ConfigSet  bool
	// Command is the subcommand ("create", "state", ...), "" when there is
	// none (e.g. "--version"); CommandIndex is its index in Argv, or -1.
	Command      string
	CommandIndex int
	// Bundle is the --bundle/-b value as given; "" means the current
	// directory (see BundleDir).
	Bundle string
	// ContainerID is the first positional argument of commands that take
	// one (create, run, restore, start, state, delete, kill, exec, ...).
	ContainerID string
	// PreserveFDs is --preserve-fds of create, run and exec (0 if unset).
	PreserveFDs int
	// Version is the global --version/-v; Help is --help/-h, global or of
	// the subcommand. runc then prints and runs nothing else.
	Version, Help bool

	configIdx []int         // Argv indices of our --runc-shared-config option(s)
	preserve  []preserveRef // where --preserve-fds is written
	err       error         // the parse error, if any
}

// preserveRef locates one --preserve-fds option in Argv.
type preserveRef struct {
	flag   int    // index of the option word
	value  int    // index of its value word, or -1 for "--preserve-fds=N"
	dashes string // "-" or "--", as written
}

// Parse parses argv (without the program name). It always returns a non-nil
// *Args: on error (which wraps ErrUsage) only Argv and ExecArgv are
// meaningful and MayRewrite reports false, so the caller can still hand the
// call to the delegate unchanged.
func Parse(argv []string) (*Args, error) {
	a := &Args{Argv: append([]string(nil), argv...), CommandIndex: -1}
	var buf [32]int // an engine's argv fits: no allocation on the call path
	idx := buf[:0]
	for i := range a.Argv {
		idx = append(idx, i)
	}
	rest, err := a.parseOptions(globals, idx)
	if err == nil && len(rest) > 0 {
		a.Command, a.CommandIndex = a.Argv[rest[0]], rest[0]
		err = a.parseCommand(rest[1:])
	}
	if err != nil {
		a.err = fmt.Errorf("%w: %w", ErrUsage, err)
	}
	return a, a.err
}

// parseCommand reads the subcommand's flags and positional arguments, at
// the Argv indices idx.
func (a *Args) parseCommand(idx []int) error {
	c, ok := commands[a.Command]
	if !ok {
		// "help" or a command this table does not know: nothing to find.
		return nil
	}
	if !c.noReorder {
		idx = reorder(c, a.Argv, idx)
	}
	positional, err := a.parseOptions(c, idx)
	if err != nil {
		return fmt.Errorf("%s: %w", a.Command, err)
	}
	if c.takesID && len(positional) > 0 {
		a.ContainerID = a.Argv[positional[0]]
	}
	if c.strict && !a.Help {
		// runc's checkArgs(context, 1, exactArgs): anything else fails in
		// runc, so there is nothing to rewrite either.
		if len(positional) != 1 {
			return fmt.Errorf("%s needs exactly one container ID, got %d arguments", a.Command, len(positional))
		}
		if a.ContainerID == "" {
			return fmt.Errorf("%s: empty container ID", a.Command)
		}
	}
	return nil
}

// parseOptions parses the options of c (globals or a subcommand's) at the
// Argv indices idx, in parse order, with Go flag semantics, and returns the
// indices from the first positional argument on. A usage error ends a
// subcommand's options; the global options are read on after one (runc
// will report it), so that a later --runc-shared-config is still recorded
// for ExecArgv to drop.
func (a *Args) parseOptions(c command, idx []int) ([]int, error) {
	var firstErr error
	var seen uint64 // the bits of the names of flags given (flagSpec.bit)
	for k := 0; k < len(idx); k++ {
		flagAt, valueAt := idx[k], -1
		w := a.Argv[flagAt]
		kind, f, err := classify(w)
		if err == nil && kind != wordFlag {
			if kind == wordEnd {
				k++
			}
			return idx[k:], firstErr
		}
		spec, known := c.flags()[f.name]
		if err == nil && seen&spec.otherBit != 0 {
			// urfave/cli's normalizeFlags refuses both forms of one flag
			// ("--bundle /a -b /b"); the same form twice keeps the last.
			err = fmt.Errorf("both %s and %s given: runc refuses two forms of one flag", spec.other, f.name)
		}
		seen |= spec.bit
		switch {
		case err != nil:
		case known && spec.valued:
			if f.name == ConfigFlag {
				// Recorded before the value check so that ExecArgv drops
				// the option even when its value is missing.
				a.configIdx = append(a.configIdx, flagAt)
			}
			if !f.hasValue && k+1 >= len(idx) {
				err = fmt.Errorf("option %s needs a value", w)
				break
			}
			if !f.hasValue {
				k++
				valueAt = idx[k]
				f.value = a.Argv[valueAt]
			}
			err = a.set(f, flagAt, valueAt)
		case known:
			var v bool
			if v, err = boolValue(w, f); err == nil {
				a.setBool(f.name, v)
			}
		case c.global:
			a.UnknownGlobals = append(a.UnknownGlobals, w)
		case f.name == ConfigFlag:
			err = fmt.Errorf("--%s must come before the subcommand", ConfigFlag)
		case c.strict:
			err = fmt.Errorf("unknown option %s (runc-shared cannot tell whether it takes a value)", w)
		default:
			// Best effort for pass-through commands: taken as boolean.
		}
		if err != nil && !c.global {
			return nil, err
		}
		firstErr = cmp.Or(firstErr, err)
	}
	return nil, firstErr
}

// set records the value of an option that runc-shared reads; the others
// are only skipped with their values. No subcommand has an option of a
// global's name.
func (a *Args) set(f flagWord, flagAt, valueAt int) error {
	switch f.name {
	case "root":
		a.Root = f.value
	case "log":
		a.Log = f.value
	case "log-format":
		a.LogFormat = f.value
	case ConfigFlag:
		if valueAt >= 0 {
			a.configIdx = append(a.configIdx, valueAt)
		}
		if f.value == "" {
			return fmt.Errorf("--%s needs a non-empty path", ConfigFlag)
		}
		a.ConfigPath, a.ConfigSet = f.value, true
	case "bundle", "b":
		a.Bundle = f.value
	case "preserve-fds":
		// Go's flag package parses ints with base prefixes ("0x3").
		n, err := strconv.ParseInt(f.value, 0, strconv.IntSize)
		if err != nil {
			return fmt.Errorf("invalid --preserve-fds value %q: want a number", f.value)
		}
		a.PreserveFDs = int(n)
		a.preserve = append(a.preserve, preserveRef{flag: flagAt, value: valueAt, dashes: f.dashes})
	}
	return nil
}

// setBool records a boolean option that runc-shared reads.
func (a *Args) setBool(name string, v bool) {
	switch name {
	case "debug":
		a.Debug = v
	case "help", "h":
		a.Help = v
	case "version", "v":
		a.Version = v
	}
}

// reorder moves the command's known flags (and the word after each, which
// may be its value) in front of the other words, as urfave/cli v1 does
// before parsing; "--" goes in front of the other words and the words after
// it keep their place. It reorders idx in place: the call path allocates
// nothing for it.
func reorder(c command, argv []string, idx []int) []int {
	front, mayBeValue := 0, false // idx[:front] are the words moved so far
	for k, i := range idx {
		w := argv[i]
		flag := isCommandFlag(c, w)
		switch {
		case mayBeValue && !flag:
			mayBeValue = false
		case w == "--":
			copy(idx[front+1:k+1], idx[front:k])
			idx[front] = i
			return idx
		case flag:
			mayBeValue = !strings.Contains(w, "=")
		default:
			continue
		}
		copy(idx[front+1:k+1], idx[front:k])
		idx[front] = i
		front++
	}
	return idx
}

// isCommandFlag is urfave/cli v1's argIsFlag: a word naming a known flag.
func isCommandFlag(c command, w string) bool {
	kind, f, err := classify(w)
	_, known := c.flags()[f.name]
	return err == nil && kind == wordFlag && known
}

type wordKind int

const (
	wordPositional wordKind = iota
	wordEnd                 // "--"
	wordFlag
)

// flagWord is one option word split into its parts.
type flagWord struct {
	name, value string
	hasValue    bool
	dashes      string
}

// classify splits one word the way Go's flag package does.
func classify(w string) (wordKind, flagWord, error) {
	if len(w) < 2 || w[0] != '-' {
		return wordPositional, flagWord{}, nil
	}
	dashes := "-"
	if w[1] == '-' {
		if len(w) == 2 {
			return wordEnd, flagWord{}, nil
		}
		dashes = "--"
	}
	name := w[len(dashes):]
	if name[0] == '-' || name[0] == '=' {
		return wordFlag, flagWord{}, fmt.Errorf("bad option syntax: %s", w)
	}
	f := flagWord{name: name, dashes: dashes}
	if n, v, ok := strings.Cut(name, "="); ok {
		f.name, f.value, f.hasValue = n, v, true
	}
	return wordFlag, f, nil
}

func boolValue(w string, f flagWord) (bool, error) {
	if !f.hasValue {
		return true, nil
	}
	v, err := strconv.ParseBool(f.value)
	if err != nil {
		return false, fmt.Errorf("invalid boolean value in %s", w)
	}
	return v, nil
}

// MayRewrite reports whether this call may get its bundle rewritten: a
// well-formed create, run or restore that runc will really carry out.
func (a *Args) MayRewrite() bool {
	return a.err == nil && !a.Help && !a.Version && (a.Command == "create" || a.Command == "run" || a.Command == "restore")
}

// BundleDir returns the absolute bundle directory: --bundle made absolute
// against the current directory (runc chdirs into it), or the current
// directory when --bundle is not given.
func (a *Args) BundleDir() (string, error) {
	if filepath.IsAbs(a.Bundle) {
		return filepath.Clean(a.Bundle), nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("bundle directory: get current directory: %w", err)
	}
	return filepath.Join(wd, a.Bundle), nil
}

// ExecArgv returns the argv (without program name) for the delegate: Argv
// unchanged except that runc-shared's own --runc-shared-config option is
// removed.
func (a *Args) ExecArgv() []string { return a.withoutConfig(a.Argv) }

// withoutConfig returns argv, which has the words of Argv at least up to the
// subcommand, without runc-shared's own --runc-shared-config option.
func (a *Args) withoutConfig(argv []string) []string {
	out := make([]string, 0, len(argv))
	for i, w := range argv {
		if !slices.Contains(a.configIdx, i) {
			out = append(out, w)
		}
	}
	return out
}

// WithPreserveFDs returns ExecArgv with --preserve-fds set to n: every
// existing value is replaced in place, or "--preserve-fds=N" is inserted
// right after the subcommand. Only create, run and exec take the option.
func (a *Args) WithPreserveFDs(n int) ([]string, error) {
	if a.err != nil {
		return nil, fmt.Errorf("set --preserve-fds: %w", a.err)
	}
	if c, ok := commands[a.Command]; !ok || !c.flags()["preserve-fds"].valued {
		return nil, fmt.Errorf("set --preserve-fds: %q does not take it", a.Command)
	}
	if n < 0 {
		return nil, fmt.Errorf("set --preserve-fds: negative count %d", n)
	}
	num := strconv.Itoa(n)
	argv := slices.Clone(a.Argv)
	for _, p := range a.preserve {
		if p.value >= 0 {
			argv[p.value] = num
		} else {
			argv[p.flag] = p.dashes + "preserve-fds=" + num
		}
	}
	if len(a.preserve) == 0 {
		// Our option comes before the subcommand: its indices stand.
		argv = slices.Insert(argv, a.CommandIndex+1, "--preserve-fds="+num)
	}
	return a.withoutConfig(argv), nil
}
