// Package atomicfile replaces a file's content as one step: the data goes to
// a temporary file in the same directory, which is then renamed over the
// name. It is the one place where runc-shared writes a file that something
// else may read at any moment (config.json, registry records, an engine's
// configuration).
//
// What it prevents:
//   - a reader seeing a truncated or half-written file, whatever happens to
//     the writer (SIGKILL, a full disk, a failed write): rename(2) swaps the
//     name from the old inode to the complete new one;
//   - two writers of the same name mixing their content: each writes its own
//     temporary file, and the last rename wins whole;
//   - with WriteFileDurable, a file that is empty or partly written after a
//     power loss or a kernel crash: the data is fsynced before the rename and
//     the directory entry after it. WriteFile skips both fsyncs, for files
//     that nobody needs after a crash of the machine;
//   - temporary files left after a failed write: every error path removes
//     its own.
//
// What it does not prevent:
//   - lost updates: two read-modify-write cycles that overlap both write,
//     and the second rename drops the first one's change. Callers that
//     merge serialise with a lock;
//   - the temporary file of a writer killed between create and rename (or
//     between Prepare and Commit): RemoveLeftovers takes those away where
//     no other writer can be running, RemoveStale those older than any
//     write;
//   - a symlink at the name is replaced, not followed, and other hard links
//     keep the old content;
//   - the old file's mode, owner, extended attributes and ACLs are not
//     carried over: the new file gets perm and the writer's owner, or the
//     owner given with Owner;
//   - a file that is itself a mount point (a bind-mounted file) cannot be
//     renamed over: the write fails with EBUSY and the file is unchanged;
//   - an error from the directory's fsync is not returned: the new content
//     is in place by then and the caller could not undo it.
//
// The sequence follows containerd's pkg/atomicfile and runc's pid-file
// writing: write, chmod, (sync), close, rename, (sync the directory).
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Option changes the temporary file before it is renamed into place.
type Option func(*os.File) error

// Owner makes the new file belong to uid and gid before it gets the name,
// so the name never points at a file with another owner (chown(2) needs
// CAP_CHOWN for anything but the writer's own groups).
func Owner(uid, gid int) Option {
	return func(f *os.File) error { return f.Chown(uid, gid) }
}

// WriteFile replaces path with data, atomically but without fsync: readers
// see the old or the new content, never a mix, as long as the machine stays
// up. The new file has mode perm (not masked by the umask).
func WriteFile(path string, data []byte, perm os.FileMode, opts ...Option) error {
	return write(path, data, perm, false, opts)
}

// WriteFileDurable is WriteFile that also survives a power loss: after a
// crash path holds the old or the new content, never an empty file.
func WriteFileDurable(path string, data []byte, perm os.FileMode, opts ...Option) error {
	return write(path, data, perm, true, opts)
}

// RemoveLeftovers removes the temporary files that writes of path left when
// they were killed between create and rename. Call it only where no other
// writer of path can be running, or it takes away a live writer's file and
// that write fails.
func RemoveLeftovers(path string) {
	prefix := tempPrefix(path)
	removeTemps(filepath.Dir(path), func(e os.DirEntry) bool { return strings.HasPrefix(e.Name(), prefix) })
}

// RemoveStale removes the temporary files in dir, of any name's writes,
// last changed before cutoff: writes killed between create and rename.
// Where no write of a file there takes as long, no live writer loses its
// file.
func RemoveStale(dir string, cutoff time.Time) {
	removeTemps(dir, func(e os.DirEntry) bool {
		if !strings.HasPrefix(e.Name(), ".") || !strings.Contains(e.Name(), ".tmp-") {
			return false
		}
		fi, err := e.Info()
		return err == nil && fi.ModTime().Before(cutoff)
	})
}

// removeTemps removes the regular files in dir that match says are
// temporary files to go.
func removeTemps(dir string, match func(os.DirEntry) bool) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if e.Type().IsRegular() && match(e) {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// tempPrefix names the temporary files of path: hidden, beside it, so that
// the rename stays on one filesystem.
func tempPrefix(path string) string { return "." + filepath.Base(path) + ".tmp-" }

func write(path string, data []byte, perm os.FileMode, durable bool, opts []Option) error {
	p, err := prepare(path, data, perm, durable, opts)
	if err != nil {
		return err
	}
	return p.Commit()
}

// Pending is a new content of a file, complete (and with Prepare on disk)
// beside it under a temporary name, not yet in place: readers still see
// the old content. Commit puts it in place, Abort throws it away. A
// process killed in between leaves the temporary file, as a killed write
// does (RemoveLeftovers, RemoveStale).
type Pending struct {
	tmp, path string
	durable   bool
}

// Prepare does the first half of WriteFileDurable: the data, its mode and
// opts in a temporary file beside path, fsynced. The caller can do other
// work meanwhile (the slow part of a durable write is over) and then
// Commit once it knows the content is right, or Abort.
func Prepare(path string, data []byte, perm os.FileMode, opts ...Option) (*Pending, error) {
	return prepare(path, data, perm, true, opts)
}

func prepare(path string, data []byte, perm os.FileMode, durable bool, opts []Option) (_ *Pending, err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, tempPrefix(path)+"*")
	if err != nil {
		return nil, fmt.Errorf("write %s: %w (is the directory there, writable and not full?)", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
			err = fmt.Errorf("write %s: %w", path, err)
		}
	}()
	if _, err = f.Write(data); err != nil {
		return nil, err
	}
	if err = f.Chmod(perm); err != nil {
		return nil, err
	}
	for _, o := range opts {
		if err = o(f); err != nil {
			return nil, err
		}
	}
	// Sync before the rename: otherwise the kernel may write the directory
	// entry first, and after a crash the name points at an empty file.
	if durable {
		if err = f.Sync(); err != nil {
			return nil, err
		}
	}
	if err = f.Close(); err != nil {
		return nil, err
	}
	return &Pending{tmp: f.Name(), path: path, durable: durable}, nil
}

// Commit renames the new content over the name (and with Prepare makes
// the rename durable).
func (p *Pending) Commit() error {
	if err := os.Rename(p.tmp, p.path); err != nil {
		os.Remove(p.tmp)
		return fmt.Errorf("write %s: %w", p.path, err)
	}
	if p.durable {
		// The rename itself is on disk only once the directory is.
		if d, derr := os.Open(filepath.Dir(p.path)); derr == nil {
			_ = d.Sync()
			d.Close()
		}
	}
	return nil
}

// Abort removes the new content; the file keeps its old one.
func (p *Pending) Abort() { _ = os.Remove(p.tmp) }
