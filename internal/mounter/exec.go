package mounter

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// execTimeout bounds one `runtime exec` call: a mount helper that waits for
// an unreachable server must not hold kubelet's call for ever. The host-side
// check has its own, shorter timeout.
const execTimeout = 2 * time.Minute

// Container is where a command runs: a container of a runtime state root.
type Container struct {
	Runtime string // runtime binary (runc), absolute
	Root    string // its --root; "" means the runtime's default
	ID      string
}

// ExecResult is what a command run in a container printed.
type ExecResult struct {
	Stdout, Stderr string
}

// Execer runs a command inside a running container.
type Execer interface {
	Exec(ctx context.Context, c Container, argv []string) (ExecResult, error)
}

// RuntimeExec runs `<runtime> [--root R] exec ID ARGV...`. Every engine runs
// runc with a state root, so this reaches a mounter of any engine without
// talking to the engine. No terminal: runc then hands its own stdio to the
// process. stdin is /dev/null; stdout and stderr are memory files, not
// pipes: the FUSE daemon a mount helper starts inherits them, and a pipe it
// keeps open would make a reader (kubelet's CombinedOutput, exec.Cmd.Wait)
// wait until the file system is unmounted.
type RuntimeExec struct{}

// Exec implements Execer. A non-zero exit of the runtime is an error that
// wraps *exec.ExitError and holds the command's stderr.
func (RuntimeExec) Exec(ctx context.Context, c Container, argv []string) (ExecResult, error) {
	var args []string
	if c.Root != "" {
		args = []string{"--root", c.Root}
	}
	args = append(append(args, "exec", c.ID), argv...)
	stdout, err := memFile("mounter-stdout")
	if err != nil {
		return ExecResult{}, err
	}
	defer stdout.Close()
	stderr, err := memFile("mounter-stderr")
	if err != nil {
		return ExecResult{}, err
	}
	defer stderr.Close()

	cmd := exec.CommandContext(ctx, c.Runtime, args...)
	cmd.Stdout, cmd.Stderr = stdout, stderr // *os.File: passed as is, no copying goroutine
	runErr := cmd.Run()
	res := ExecResult{Stdout: readAll(stdout), Stderr: readAll(stderr)}
	if runErr != nil {
		if ctx.Err() != nil {
			runErr = fmt.Errorf("%w (no answer within %v)", runErr, execTimeout)
		}
		// The command as a person would type it.
		return res, fmt.Errorf("%s %s: %w", c.Runtime, strings.Join(args, " "), runErr)
	}
	return res, nil
}

func memFile(name string) (*os.File, error) {
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC)
	if err != nil {
		return nil, system("create memory file for the runtime's output: %w", err)
	}
	return os.NewFile(uintptr(fd), name), nil
}

// readAll reads what the command wrote to f, from the start (pread), up
// to 1 MiB.
func readAll(f *os.File) string {
	b, _ := io.ReadAll(io.NewSectionReader(f, 0, 1<<20))
	return string(b)
}
