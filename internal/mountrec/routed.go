package mountrec

import (
	"path/filepath"
	"sort"
	"time"

	"github.com/runc-shared/runc-shared/internal/atomicfile"
)

// Mount is one mount that `mounter mount` on the host routed into a
// mounter: what `mounter recover` needs to make it again through the
// rule's next mounter. `mounter umount` removes it.
type Mount struct {
	// Target is the host path, absolute and resolved.
	Target  string   `json:"target"`
	Rule    string   `json:"rule"`
	FSType  string   `json:"fstype"`
	Source  string   `json:"source"`
	Options []string `json:"options,omitempty"`
	// Mounter is the container that made the mount last.
	Mounter string    `json:"mounter"`
	Created time.Time `json:"created"`
	// Detached is when runc-shared detached the mount's dead mount (the
	// hook when its mounter stopped, or recovery): recovery makes a
	// missing mount again only then. A mount that is missing without it
	// was unmounted by someone else (a plain umount), and recovery
	// forgets it instead of mounting what the user removed.
	Detached time.Time `json:"detached,omitzero"`
	// Recovery is set while the mount could not be made live again.
	Recovery *Recovery `json:"recovery,omitempty"`
}

// MountsDir is where the records of routed mounts live under stateDir.
func MountsDir(stateDir string) string { return filepath.Join(stateDir, "mounts") }

// MountStore is the record directory of routed mounts. Its writers are
// `mounter mount`, `mounter umount` and `mounter recover`, one file per
// target, each write durable and atomic as the volume records'.
type MountStore struct{ Dir string }

func (s MountStore) dir() recordDir[Mount] {
	return recordDir[Mount]{dir: s.Dir, key: func(m *Mount) string { return m.Target },
		dirName: "mount record directory", of: "the mount at %s", isFor: "%q", noKey: "no target"}
}

// Path names the record of target by a hash of it.
func (s MountStore) Path(target string) string { return s.dir().path(target) }

// Read returns the record of target, or nil when there is none.
func (s MountStore) Read(target string) (*Mount, error) { return s.dir().read(target) }

// Write stores m durably.
func (s MountStore) Write(m *Mount) error { return s.dir().write(m) }

// Prepare writes m durably beside its record, not in place yet: a caller
// that writes the record while it makes the mount Commits it once the
// mount is there, or Aborts. Until then readers see the old record, or
// none; a writer killed in between leaves a temporary file, which is no
// record (List skips it) and which Prepare removes an hour later (no
// mount takes that long).
func (s MountStore) Prepare(m *Mount) (*atomicfile.Pending, error) {
	atomicfile.RemoveStale(s.Dir, time.Now().Add(-staleWrite))
	return s.dir().prepare(m)
}

// staleWrite is the age from which a temporary file of the directory
// belongs to a killed writer.
const staleWrite = time.Hour

// Remove removes the record of target; none is no error.
func (s MountStore) Remove(target string) error { return s.dir().remove(target) }

// MarkDetached notes in the record of the routed mount at target, when
// there is one, that its dead mount was detached at when (Mount.Detached).
func (s MountStore) MarkDetached(target string, when time.Time) error {
	m, err := s.Read(target)
	if err != nil || m == nil {
		return err
	}
	m.Detached = when.UTC()
	return s.Write(m)
}

// List returns the records sorted by target, and apart the errors of those
// that cannot be read.
func (s MountStore) List() ([]*Mount, []error) {
	out, errs := s.dir().list()
	sort.Slice(out, func(i, j int) bool { return out[i].Target < out[j].Target })
	return out, errs
}
