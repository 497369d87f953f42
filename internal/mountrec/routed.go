package mountrec

import (
	"path/filepath"
	"time"
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
type MountStore = Records[Mount, *Mount]

func (m *Mount) key() string { return m.Target }

func (*Mount) words() words {
	return words{dir: "mount record directory", of: "the mount at %s", isFor: "%q", noKey: "no target"}
}

// MarkDetached notes in the record of the routed mount at target, when
// there is one, that its dead mount was detached at when (Mount.Detached).
func MarkDetached(s MountStore, target string, when time.Time) error {
	m, err := s.Read(target)
	if err != nil || m == nil {
		return err
	}
	m.Detached = when.UTC()
	return s.Write(m)
}
