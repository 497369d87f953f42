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
//   - the temporary file of a writer killed between create and rename:
//     RemoveLeftovers takes those away where no other writer can be running;
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
	dir, prefix := filepath.Dir(path), tempPrefix(path)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) && e.Type().IsRegular() {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// tempPrefix names the temporary files of path: hidden, beside it, so that
// the rename stays on one filesystem.
func tempPrefix(path string) string { return "." + filepath.Base(path) + ".tmp-" }

func write(path string, data []byte, perm os.FileMode, durable bool, opts []Option) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, tempPrefix(path)+"*")
	if err != nil {
		return fmt.Errorf("write %s: %w (is the directory there, writable and not full?)", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
			err = fmt.Errorf("write %s: %w", path, err)
		}
	}()
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Chmod(perm); err != nil {
		return err
	}
	for _, o := range opts {
		if err = o(f); err != nil {
			return err
		}
	}
	// Sync before the rename: otherwise the kernel may write the directory
	// entry first, and after a crash the name points at an empty file.
	if durable {
		if err = f.Sync(); err != nil {
			return err
		}
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return err
	}
	if durable {
		// The rename itself is on disk only once the directory is.
		if d, derr := os.Open(dir); derr == nil {
			_ = d.Sync()
			d.Close()
		}
	}
	return nil
}
