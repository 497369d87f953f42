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
// filesystem, so rename is atomic), is fsynced, given the original mode, and
// renamed over config.json; then the directory is fsynced so the rename
// itself survives a crash. A reader (runc, a killed wrapper's successor)
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

// WriteFileAtomic replaces path with data through a synced temporary file in
// the same directory and a rename.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) (err error) {
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
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("rename %s to %s: %w", tmp.Name(), path, err)
	}
	// The rename is durable only once the directory entry is on disk.
	if df, derr := os.Open(dir); derr == nil {
		df.Sync()
		df.Close()
	}
	return nil
}

// removeStale removes the temporary files of earlier writes that were killed
// between CreateTemp and Rename (SIGKILL of the wrapper: about one random
// kill in six leaves one). Engines hand a bundle to one runtime call at a
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
