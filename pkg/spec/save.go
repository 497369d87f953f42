package spec

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Save writes the document back to its path, atomically, when a modifier
// changed it; an unchanged config.json is never written.
//
// The new content goes to a temporary file in the bundle directory (same
// filesystem, so rename is atomic), is given the original mode, and is
// renamed over config.json. A reader (runc, a killed wrapper's successor)
// therefore sees either the original or the complete rewrite, never a
// truncated file. It does not protect against another writer racing on the
// same bundle: engines hand each bundle to one runtime call at a time.
func (d *Doc) Save() (bool, error) {
	data, changed, err := d.encode()
	if err != nil || !changed {
		return false, err
	}
	if err := WriteFileAtomic(d.Path, data, d.mode); err != nil {
		return false, err
	}
	return true, nil
}

// WriteFileAtomic replaces path with data through a temporary file in the
// same directory and a rename: atomic against the death of the writing
// process at any moment (SIGKILL), which is what runc and the next runtime
// call see.
//
// It does not fsync: a bundle's config.json is read back at once and never
// needed after a crash of the machine (containerd, Docker and CRI-O write a
// new bundle for every task they start; Podman writes config.json anew
// before each start, checked with Podman 4.3). On a disk-backed bundle the
// two fsyncs (file and directory) were a large share of a matched create's
// time before the exec (docs/benchmarks.md). WriteFileDurable is for files
// that must survive a power loss.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) error {
	return replaceFile(path, data, mode, false)
}

// WriteFileDurable is WriteFileAtomic that also fsyncs the file before the
// rename and the directory after it, so that after a power loss path holds
// the old or the new content, never an empty file. The registry uses it: a
// record that came back empty could not be decoded, so never recognised as
// stale and pruned.
func WriteFileDurable(path string, data []byte, mode os.FileMode) error {
	return replaceFile(path, data, mode, true)
}

func replaceFile(path string, data []byte, mode os.FileMode, durable bool) (err error) {
	dir := filepath.Dir(path)
	prefix := "." + filepath.Base(path) + ".tmp-"
	removeStale(dir, prefix)
	tmp, err := os.CreateTemp(dir, prefix+"*")
	if err != nil {
		return fmt.Errorf("write %s: %w (is the bundle directory writable and not full?)", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = tmp.Chmod(mode); err != nil {
		return fmt.Errorf("chmod %s: %w", path, err)
	}
	if durable {
		if err = tmp.Sync(); err != nil {
			return fmt.Errorf("sync %s: %w", path, err)
		}
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("rename %s to %s: %w", tmp.Name(), path, err)
	}
	if durable {
		// The rename is durable only once the directory entry is on disk.
		if df, derr := os.Open(dir); derr == nil {
			_ = df.Sync()
			df.Close()
		}
	}
	return nil
}

// removeStale removes the temporary files of earlier writes that were killed
// between CreateTemp and Rename (a SIGKILL of the wrapper at that moment). Engines hand a bundle to one runtime call at a
// time, so a temporary file that exists now is such a leftover.
func removeStale(dir, prefix string) {
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
