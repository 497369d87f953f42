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
package mountrec

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/runc-shared/runc-shared/internal/atomicfile"
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

// TargetIndex returns the index of path among the targets, or -1.
func (r *Record) TargetIndex(path string) int {
	for i, t := range r.Targets {
		if t.Path == path {
			return i
		}
	}
	return -1
}

// Dir is where the records of driver live under stateDir.
func Dir(stateDir, driver string) string {
	return filepath.Join(stateDir, "csi", driver, "volumes")
}

// Store is one driver's record directory.
type Store struct{ Dir string }

// Path names the record of volumeID by a hash of it: ids are opaque
// strings that may hold "/" and be longer than a file name.
func (s Store) Path(volumeID string) string {
	sum := sha256.Sum256([]byte(volumeID))
	return filepath.Join(s.Dir, hex.EncodeToString(sum[:16])+".json")
}

// Read returns the record of volumeID, or nil when there is none.
func (s Store) Read(volumeID string) (*Record, error) {
	r, err := readFile(s.Path(volumeID))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if r.VolumeID != volumeID {
		return nil, fmt.Errorf("record %s is for volume %q, not %q: remove it", s.Path(volumeID), r.VolumeID, volumeID)
	}
	return r, nil
}

// Write stores r durably.
func (s Store) Write(r *Record) error {
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return fmt.Errorf("create the CSI record directory: %w", err)
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFileDurable(s.Path(r.VolumeID), append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("write the record of volume %s: %w", r.VolumeID, err)
	}
	return nil
}

// Remove removes the record of volumeID; none is no error.
func (s Store) Remove(volumeID string) error {
	if err := os.Remove(s.Path(volumeID)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove the record of volume %s: %w", volumeID, err)
	}
	return nil
}

// List returns the store's records and, apart, the errors of those that
// cannot be read. Temporary files of a write in progress (or killed) are
// not records.
func (s Store) List() ([]*Record, []error) {
	ents, err := os.ReadDir(s.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, []error{fmt.Errorf("read the CSI record directory: %w", err)}
	}
	var files []string
	for _, e := range ents {
		if name := e.Name(); !strings.HasPrefix(name, ".") && strings.HasSuffix(name, ".json") {
			files = append(files, filepath.Join(s.Dir, name))
		}
	}
	return readAll(files)
}

// List returns the records of every driver under stateDir, sorted by
// driver and volume id, and apart the errors of those that cannot be read.
func List(stateDir string) ([]*Record, []error) {
	files, err := filepath.Glob(filepath.Join(Dir(stateDir, "*"), "*.json"))
	if err != nil {
		return nil, []error{err}
	}
	var keep []string
	for _, f := range files {
		if !strings.HasPrefix(filepath.Base(f), ".") {
			keep = append(keep, f)
		}
	}
	out, errs := readAll(keep)
	sort.Slice(out, func(i, j int) bool {
		if out[i].Driver != out[j].Driver {
			return out[i].Driver < out[j].Driver
		}
		return out[i].VolumeID < out[j].VolumeID
	})
	return out, errs
}

func readAll(files []string) ([]*Record, []error) {
	var out []*Record
	var errs []error
	for _, f := range files {
		r, err := readFile(f)
		if err == nil && r.VolumeID == "" {
			err = fmt.Errorf("%s: no volume id", f)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, r)
	}
	return out, errs
}

func readFile(path string) (*Record, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Record
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("decode %s: %w", path, err)
	}
	return &r, nil
}
