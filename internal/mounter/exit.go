package mounter

import (
	"errors"
	"fmt"
)

// Exit codes, as mount(8) and umount(8) use them ("EXIT STATUS" in mount(8)),
// so kubelet and scripts read ours the same way.
const (
	ExitOK      = 0
	ExitUsage   = 1 // incorrect invocation or permissions
	ExitSystem  = 2 // system error: cannot fork, cannot read the registry
	ExitFailure = 32
)

// Error carries the exit code an error should end the process with.
type Error struct {
	Code int
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// failure wraps a mount failure (exit 32).
func failure(format string, args ...any) error {
	return &Error{Code: ExitFailure, Err: fmt.Errorf(format, args...)}
}

// usage wraps an incorrect invocation (exit 1).
func usage(format string, args ...any) error {
	return &Error{Code: ExitUsage, Err: fmt.Errorf(format, args...)}
}

// system wraps a system error (exit 2).
func system(format string, args ...any) error {
	return &Error{Code: ExitSystem, Err: fmt.Errorf(format, args...)}
}

// ExitCode returns the exit code for err: 0 for nil, the code of an *Error
// in its chain, else ExitSystem.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Code
	}
	return ExitSystem
}
