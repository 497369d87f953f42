package mountrec

import (
	"context"
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
// `mounter mount`, `mounter umount`, `mounter recover` and mount-hook's
// poststop (MarkDetached), each under the target's lock (Records.Lock), one
// file per target, each write durable and atomic as the volume records'.
type MountStore = Records[Mount, *Mount]

func (m *Mount) key() string { return m.Target }

func (*Mount) words() words {
	return words{dir: "mount record directory", of: "the mount at %s", isFor: "%q", noKey: "no target"}
}

// MarkDetached notes in the record of the routed mount at target, when
// there is one, that its dead mount was detached at when (Mount.Detached).
// It writes under the target's lock, so that a `mounter recover` working
// on the mount meanwhile does not write its record over the mark; it waits
// for the lock at most markWait (mount-hook's poststop calls it, and a
// recovery holding the lock longer runs a helper through the very mounter
// that stopped), then writes without it.
func MarkDetached(s MountStore, target string, when time.Time) error {
	ctx, cancel := context.WithTimeout(context.Background(), markWait)
	defer cancel()
	if unlock, err := s.Lock(ctx, target); err == nil {
		defer unlock()
	}
	m, err := s.Read(target)
	if err != nil || m == nil {
		return err
	}
	m.Detached = when.UTC()
	return s.Write(m)
}

// markWait bounds MarkDetached's wait for the target's lock.
var markWait = 5 * time.Second
