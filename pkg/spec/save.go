package spec

import "github.com/runc-shared/runc-shared/internal/atomicfile"

// Save writes the document back to its path, atomically, when a modifier
// changed it; an unchanged config.json is never written.
//
// The new content replaces config.json by rename (internal/atomicfile), with
// the original mode: runc, or a killed wrapper's successor, sees the original
// or the complete rewrite, never a truncated file. It does not fsync: a
// bundle's config.json is read back at once and never needed after a crash
// of the machine (containerd, Docker and CRI-O write a new bundle for every
// task they start; Podman writes config.json anew before each start, checked
// with Podman 4.3), and the two fsyncs were a large share of a matched
// create's time (docs/benchmarks.md). Engines hand a bundle to one runtime
// call at a time, so a temporary file found beside config.json is a leftover
// of a wrapper killed mid-write and is removed first.
func (d *Doc) Save() (bool, error) {
	data, err := d.encode()
	if err != nil || data == nil {
		return false, err
	}
	atomicfile.RemoveLeftovers(d.Path)
	if err := atomicfile.WriteFile(d.Path, data, d.mode); err != nil {
		return false, err
	}
	return true, nil
}
