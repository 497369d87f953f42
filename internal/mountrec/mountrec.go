// Package mountrec keeps the records of the mounts made through
// runc-shared on the host, the volumes of its CSI driver and the mounts
// `mounter mount` routed into a mounter: what it takes to make each mount
// again after its mounter restarted (file system type, source, options,
// staging path, publish targets, the rule), and what recovery could not
// do.
//
// It is a package of its own, free of the CSI and gRPC code, because
// mount-hook reads the records too (poststop must not detach a dead publish
// target that recovery will bind again) and the hook binary stays small.
//
// A record is one JSON file, named by a hash of the volume id, in
// <state-dir>/csi/<driver>/volumes/. Each write replaces the file durably
// (write a temporary file, fsync, rename, fsync the directory): after a
// crash of the node or of the writer a record holds the old or the new
// content. A record that cannot be read is reported, never dropped.
// Its writers take the key's lock first (Records.Lock), a hidden lock file
// beside the record that lives while the lock is held: a mounter's server
// and the host's `mounter recover` may act on one volume at once.
package mountrec

import (
	"cmp"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Record is one volume a node holds: where it is staged (or, for an inline
// volume, mounted directly at its one target) and where it is published.
type Record struct {
	VolumeID string   `json:"volume-id"`
	Driver   string   `json:"driver"`
	Node     string   `json:"node"`
	Rule     string   `json:"rule"`
	FSType   string   `json:"fstype"`
	Source   string   `json:"source"`
	Options  []string `json:"options,omitempty"`
	Subdir   string   `json:"subdir,omitempty"`
	// Staging is the resolved staging path; "" for an inline volume.
	Staging string   `json:"staging,omitempty"`
	Targets []Target `json:"targets,omitempty"`
	// PID is the `mounter csi` process whose helpers hold the mount (the
	// FUSE daemons are its children), as it sees itself: 1 when it is the
	// main process of a mounter with a PID namespace of its own. The rule
	// names the mounter in the registry.
	PID     int       `json:"pid"`
	Created time.Time `json:"created"`
	// Recovery is set while the volume could not be made live again
	// after its mounter restarted.
	Recovery *Recovery `json:"recovery,omitempty"`
}

// Target is one publish target.
type Target struct {
	Path     string `json:"path"`
	ReadOnly bool   `json:"readonly,omitempty"`
}

// Recovery is the state of a volume that could not be made live again.
type Recovery struct {
	Attempts int       `json:"attempts"`
	Error    string    `json:"error"`
	Last     time.Time `json:"last"`
	// Next is when the server tries again; zero when it has given up
	// until it restarts or `mounter recover` runs.
	Next time.Time `json:"next,omitzero"`
}

// Failed returns the state after one more failed attempt, at now, with
// err; next is when recovery tries again by itself (zero: it does not).
// r may be nil: the first failure.
func (r *Recovery) Failed(err error, now, next time.Time) *Recovery {
	var out Recovery
	if r != nil {
		out = *r
	}
	out.Attempts++
	out.Error, out.Last, out.Next = err.Error(), now.UTC(), next.UTC() // the zero time stays zero
	return &out
}

// TargetIndex returns the index of path among the targets, or -1.
func (r *Record) TargetIndex(path string) int {
	return slices.IndexFunc(r.Targets, func(t Target) bool { return t.Path == path })
}

// Dir is where the records of driver live under stateDir.
func Dir(stateDir, driver string) string {
	return filepath.Join(stateDir, "csi", driver, "volumes")
}

// Store is one driver's record directory.
type Store = Records[Record, *Record]

func (r *Record) key() string { return r.VolumeID }

func (*Record) words() words {
	return words{dir: "CSI record directory", of: "volume %s", isFor: "volume %q", noKey: "no volume id"}
}

// List returns the records of every driver under stateDir, sorted by
// driver and volume id, and apart the errors of those that cannot be read.
func List(stateDir string) ([]*Record, []error) {
	files, err := filepath.Glob(filepath.Join(Dir(stateDir, "*"), "*.json"))
	if err != nil {
		return nil, []error{err}
	}
	// A name starting with "." is a write's temporary file, not a record.
	keep := slices.DeleteFunc(files, func(f string) bool { return strings.HasPrefix(filepath.Base(f), ".") })
	out, errs := ReadFiles(keep, hasKey[Record])
	slices.SortFunc(out, func(a, b *Record) int {
		return cmp.Or(cmp.Compare(a.Driver, b.Driver), cmp.Compare(a.VolumeID, b.VolumeID))
	})
	return out, errs
}
