package logging

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
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

// lazyFile is a Hook's log file: opened for appending on the first write.
// A file that cannot be opened, or one in a directory others could write
// (they could plant a symlink there to have root append to a file of
// theirs), is reported once on stderr; the program goes on.
type lazyFile struct {
	path, prefix string
	stderr       io.Writer
	checkDir     func(dir string) error
	once         sync.Once
	f            *os.File
}

func (l *lazyFile) Write(p []byte) (int, error) {
	l.once.Do(func() {
		if err := l.open(); err != nil {
			fmt.Fprintf(l.stderr, "%swarning: %v\n", l.prefix, err)
		}
	})
	if l.f == nil {
		return len(p), nil
	}
	return l.f.Write(p)
}

func (l *lazyFile) open() error {
	dir := filepath.Dir(l.path)
	check := func() error {
		if l.checkDir == nil {
			return nil
		}
		if err := l.checkDir(dir); err != nil {
			return fmt.Errorf("not logging to %s: %w", l.path, err)
		}
		return nil
	}
	if err := check(); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("cannot create the log directory: %w", err)
	}
	if err := check(); err != nil {
		return err
	}
	f, err := OpenAppend(l.path)
	if err != nil {
		return fmt.Errorf("cannot open the log file: %w", err)
	}
	l.f = f
	return nil
}
