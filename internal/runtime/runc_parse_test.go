package runtime

import (
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli"
)

// runcView is what runc does with a command line: the command it runs and,
// for create, run and restore, the bundle and container ID it uses. OK is
// false when runc refuses the command line or only prints help or version.
type runcView struct {
	OK                  bool
	Command, Bundle, ID string
}

// shortOf maps the short names of runc's flags to their long ones: urfave/cli
// declares each pair as one flag ("bundle, b") and refuses both forms given
// together.
var shortOf = map[string]string{"b": "bundle", "d": "detach"}

// urfaveParse runs argv (without the program name) through urfave/cli
// v1.22.9, the parser runc 1.1.5 is built with (Debian bookworm builds it
// with golang-github-urfave-cli-dev 1.22.9, the version runc vendors), set up
// with runc's global options and the create, run and restore flags of this
// package's table. Its action does what runc's do before they use the
// bundle: checkArgs(context, 1, exactArgs), then refuse an empty ID.
func urfaveParse(argv []string) runcView {
	var v runcView
	// For a command the app does not define, urfave/cli's default action
	// exits the process through OsExiter.
	cli.OsExiter, cli.ErrWriter = func(int) {}, io.Discard
	app := cli.NewApp()
	app.Name = "runc"
	app.Writer, app.ErrWriter = io.Discard, io.Discard
	app.Flags = []cli.Flag{
		cli.BoolFlag{Name: "debug"},
		cli.StringFlag{Name: "log"},
		cli.StringFlag{Name: "log-format", Value: "text"},
		cli.StringFlag{Name: "root", Value: "/run/runc"},
		cli.StringFlag{Name: "criu", Value: "criu"},
		cli.BoolFlag{Name: "systemd-cgroup"},
		cli.StringFlag{Name: "rootless", Value: "auto"},
	}
	for _, name := range []string{"create", "run", "restore"} {
		app.Commands = append(app.Commands, cli.Command{
			Name:  name,
			Flags: urfaveFlags(commands[name]),
			Action: func(ctx *cli.Context) error {
				if ctx.NArg() != 1 {
					return errors.New("exactly one argument")
				}
				if ctx.Args().First() == "" {
					return errors.New("empty ID")
				}
				v = runcView{OK: true, Command: name, Bundle: ctx.String("bundle"), ID: ctx.Args().First()}
				return nil
			},
		})
	}
	if app.Run(append([]string{"runc"}, argv...)) != nil {
		return runcView{}
	}
	return v
}

// urfaveFlags declares a command's flags as runc does; urfave/cli adds
// --help, -h itself.
func urfaveFlags(c command) []cli.Flag {
	var flags []cli.Flag
	add := func(valued bool) {
		names := map[string]bool{}
		for n, f := range c.flags() {
			if f.valued == valued {
				names[n] = true
			}
		}
		for _, n := range slices.Sorted(func(yield func(string) bool) {
			for n := range names {
				if !yield(n) {
					return
				}
			}
		}) {
			if n == "help" || n == "h" || shortOf[n] != "" && names[shortOf[n]] {
				continue
			}
			name := n
			for short, long := range shortOf {
				if long == n && names[short] {
					name = n + ", " + short
				}
			}
			switch {
			case n == "preserve-fds":
				flags = append(flags, cli.IntFlag{Name: name})
			case valued:
				flags = append(flags, cli.StringFlag{Name: name})
			default:
				flags = append(flags, cli.BoolFlag{Name: name})
			}
		}
	}
	add(true)
	add(false)
	return flags
}

// checkAgainstRunc fails when Parse reads argv otherwise than runc: where
// runc would run a create, run or restore, Parse must find the same
// command, bundle and ID and allow the rewrite; where runc refuses the
// command line, Parse must not allow it (the rewrite would be for nothing,
// or for a container runc runs from elsewhere).
func checkAgainstRunc(t *testing.T, argv []string) {
	t.Helper()
	a, _ := Parse(argv)
	want := urfaveParse(a.ExecArgv())
	if !want.OK && a.UnknownGlobals != nil {
		// Unknown global options are kept for a delegate that knows them;
		// runc refuses them, so runc runs nothing either way.
		return
	}
	if len(a.configIdx) > 0 && !a.ConfigSet {
		// Our own option is malformed: the call passes through
		// unchanged, whatever runc makes of the rest.
		return
	}
	got := runcView{OK: a.MayRewrite(), Command: a.Command, Bundle: a.Bundle, ID: a.ContainerID}
	if !got.OK {
		got = runcView{}
	}
	if got != want {
		t.Errorf("argv %q: Parse reads %+v, runc (urfave/cli 1.22.9) %+v", argv, got, want)
	}
}

// TestParseAgreesWithRunc: shapes where a word after a flag may or may not
// be its value, and where urfave/cli refuses what a simpler reading
// accepts.
func TestParseAgreesWithRunc(t *testing.T) {
	for _, line := range []string{
		"create --bundle /b id", "create id --bundle /b", "create -b /b id", "create --bundle=/b id",
		"create --no-pivot id --bundle /b", "create --no-pivot /x --bundle /b id",
		"create id --no-pivot --bundle /b", "create --bundle -- id", "create -- --bundle /b id",
		"create id -- --bundle /b", "create --bundle --no-pivot id", "create --pid-file --bundle /b id",
		"create --bundle /a -b /b id", "create -b /a --bundle=/b id", "create --bundle /a --bundle /b id",
		"run -d --detach id", "run -d=false id", "run --detach -b /b id", "create --bundle", "create",
		"create id extra", "create ''", "create --help id", "create -h=false id", "--help create id",
		"--root /r --log /l create id", "--root create create --bundle run id", "-- create id",
		"--debug=false create id", "--debug=x create id", "create --preserve-fds x id",
		"create --preserve-fds 0x3 id", "create --preserve-fds=-1 id", "create --bogus id",
		"create id --bogus", "create - id", "create --bundle - id", "restore -b /b --lazy-pages id",
		"restore --image-path /i id -b /b", "restore --detach -d id", "create ---bundle /b id",
		"create --bundle=/a --b=/b id", "create -bundle /b -- id", "create --no-pivot=true /x id",
	} {
		argv := strings.Fields(strings.ReplaceAll(line, "''", "\x00"))
		for i, w := range argv {
			if w == "\x00" {
				argv[i] = ""
			}
		}
		checkAgainstRunc(t, argv)
	}
}
