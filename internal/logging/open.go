package logging

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// ErrUnsafeLogFile is wrapped by OpenAppend's error for a path that is not
// a plain file of this process's own.
var ErrUnsafeLogFile = errors.New("unsafe log file")

// OpenAppend opens (creating it 0644) a log file that this process owns, in
// a directory it trusts, for appending. Whoever could plant a symlink or a
// hard link at the path would otherwise have root append to a file of their
// choice: the last component must not be a symlink (O_NOFOLLOW), and the
// file opened must be a regular file with one link, owned by root or the
// effective uid. O_NONBLOCK keeps a FIFO planted there from blocking the
// open; the check then refuses it.
func OpenAppend(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0o644)
	if errors.Is(err, unix.ELOOP) {
		return nil, fmt.Errorf("log file %s: %w: it is a symlink: remove it", path, ErrUnsafeLogFile)
	}
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat log file %s: %w", path, err)
	}
	st, _ := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.Mode().IsRegular():
		err = fmt.Errorf("log file %s: %w: not a regular file (%s): remove it", path, ErrUnsafeLogFile, fi.Mode().Type())
	case st == nil:
		err = fmt.Errorf("log file %s: %w: cannot read its owner", path, ErrUnsafeLogFile)
	case st.Nlink != 1:
		err = fmt.Errorf("log file %s: %w: it has %d hard links: remove it", path, ErrUnsafeLogFile, st.Nlink)
	case st.Uid != 0 && int(st.Uid) != os.Geteuid():
		err = fmt.Errorf("log file %s: %w: owned by uid %d: remove it", path, ErrUnsafeLogFile, st.Uid)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}
