package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// ErrUnsafeFile is wrapped by the error for a configuration file that others
// could have written: its rules decide which containers put mounts on the
// host, so whoever can write it can take the host.
var ErrUnsafeFile = errors.New("unsafe configuration file")

// trusted reports whether a file owned by uid may be loaded: root's, and
// those of the effective uid of this process (a rootless engine runs the
// runtime as its user, who controls this process anyway). Tests replace it.
var trusted = func(uid uint32) bool { return uid == 0 || int(uid) == os.Geteuid() }

// Load reads and validates the configuration file at path.
//
// A path that does not exist, or "", gives Default() with Missing set and
// Path "": pure pass-through, not an error. Everything else that goes wrong
// is an error: an unreadable or unsafe file, invalid TOML, an unknown key or
// a bad value (an *Error naming the file, line and key).
func Load(path string) (*Config, error) {
	f, fi, err := open(path)
	if path == "" || errors.Is(err, fs.ErrNotExist) {
		c := Default()
		c.Missing = true
		return c, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open config: %w", err)
	}
	defer f.Close()
	if err := checkFile(path, fi); err != nil {
		return nil, err
	}
	if err := checkDirs(path, f); err != nil {
		return nil, err
	}
	data, err := read(path, f)
	if err != nil {
		return nil, err
	}
	return parse(path, data)
}

// open opens the file to read and stats it. O_NONBLOCK: a FIFO planted at
// the path must not hang every container start (the caller refuses it); it
// changes nothing for a regular file. Everything after is checked on the
// file opened, not the path, which could be swapped in between.
func open(path string) (*os.File, fs.FileInfo, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("stat %s: %w", path, err)
	}
	return f, fi, nil
}

func read(path string, f *os.File) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("read config %s: %w", path, err)
	}
	if len(data) > MaxSize {
		return nil, fmt.Errorf("config %s: larger than %d bytes: a configuration is a few kilobytes; check that the path names the right file", path, MaxSize)
	}
	return data, nil
}

// checkFile refuses what must not be trusted: anything but a regular file, a
// file writable by group or others, a file owned by an untrusted user.
func checkFile(path string, fi fs.FileInfo) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("config %s: not a regular file (%s): point the configuration path at a file", path, fi.Mode().Type())
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return fmt.Errorf("config %s: %w: mode %04o lets group or others write it, and it decides which containers get host mounts: run `chmod 0644 %s`",
			path, ErrUnsafeFile, perm, path)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("config %s: %w: cannot read its owner", path, ErrUnsafeFile)
	}
	if !trusted(st.Uid) {
		return fmt.Errorf("config %s: %w: owned by uid %d, not root, and it decides which containers get host mounts: run `chown root:root %s`",
			path, ErrUnsafeFile, st.Uid, path)
	}
	return nil
}

// checkDirs refuses a file that others could replace: whoever can write a
// directory on its path can rename another file over it. It checks the
// directories of the file opened (its canonical path, read back from
// /proc/self/fd), from the file's up to "/": each must be owned by a
// trusted user and not writable by group or others, unless it has the
// sticky bit (/tmp: others cannot rename or remove a file they do not own
// there). The same rule as OpenSSH's StrictModes and sudo's for sudoers.
func checkDirs(path string, f *os.File) error {
	canonical, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(f.Fd())))
	if err != nil || !filepath.IsAbs(canonical) {
		if canonical, err = filepath.EvalSymlinks(path); err == nil {
			canonical, err = filepath.Abs(canonical)
		}
		if err != nil {
			return fmt.Errorf("config %s: %w: cannot tell which directories hold it: %w", path, ErrUnsafeFile, err)
		}
	}
	if bad := firstUnsafeDir(filepath.Dir(canonical), false); bad != nil {
		return bad.error("config "+path, ErrUnsafeFile, "replace the file", "move the configuration")
	}
	return nil
}

// unsafeDir is the first directory that fails the rule of checkDirs.
type unsafeDir struct {
	dir   string
	uid   uint32
	perm  fs.FileMode
	owner bool  // owned by an untrusted user; else writable by group or others
	err   error // it could not be checked
}

// firstUnsafeDir walks from start up to "/" and returns the first directory
// that an untrusted user owns or that group or others can write (unless
// sticky, or, with strictStart, start itself even when sticky), or nil.
// Every entry met is lstat'ed: a symlink among them counts by its owner, as
// the kernel's protected_symlinks rule does.
func firstUnsafeDir(start string, strictStart bool) *unsafeDir {
	for dir := start; ; dir = filepath.Dir(dir) {
		fi, err := os.Lstat(dir)
		if err != nil {
			return &unsafeDir{dir: dir, err: fmt.Errorf("stat %s: %w", dir, err)}
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return &unsafeDir{dir: dir, err: fmt.Errorf("cannot read the owner of %s", dir)}
		}
		if st.Uid != 0 && !trusted(st.Uid) {
			return &unsafeDir{dir: dir, uid: st.Uid, owner: true}
		}
		sticky := fi.Mode()&os.ModeSticky != 0 && !(strictStart && dir == start)
		if perm := fi.Mode().Perm(); fi.Mode()&os.ModeSymlink == 0 && perm&0o022 != 0 && !sticky {
			return &unsafeDir{dir: dir, perm: perm}
		}
		if dir == "/" || dir == filepath.Dir(dir) {
			return nil
		}
	}
}

// error says what is wrong with the directory for subject (the file or
// directory checked, sentinel the kind of error), what others could do
// (harm) and the two ways out.
func (bad *unsafeDir) error(subject string, sentinel error, harm, other string) error {
	switch {
	case bad.err != nil:
		return fmt.Errorf("%s: %w: %w", subject, sentinel, bad.err)
	case bad.owner:
		return fmt.Errorf("%s: %w: directory %s is owned by uid %d, not root, who could %s: run `chown root %s` or %s",
			subject, sentinel, bad.dir, bad.uid, harm, bad.dir, other)
	}
	return fmt.Errorf("%s: %w: directory %s (mode %04o) lets group or others %s: run `chmod go-w %s` or %s",
		subject, sentinel, bad.dir, bad.perm, harm, bad.dir, other)
}
