package csi

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

	"github.com/runc-shared/runc-shared/pkg/spec"
)

// Record is one volume this node holds: where it is staged (or, for an
// inline volume, mounted directly at its one target) and where it is
// published. The node writes it before a call returns, so `mounter status`
// on the host can list the CSI volumes and the mounter that serves them,
// and a restarted server knows what it mounted.
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

// Volume is the mounted volume the record describes.
func (r *Record) Volume() Volume {
	return Volume{FSType: r.FSType, Source: r.Source, Options: r.Options, Subdir: r.Subdir}
}

// target returns the index of path among the targets, or -1.
func (r *Record) target(path string) int {
	for i, t := range r.Targets {
		if t.Path == path {
			return i
		}
	}
	return -1
}

// RecordsDir is where the records of driver live under stateDir.
func RecordsDir(stateDir, driver string) string {
	return filepath.Join(stateDir, "csi", driver, "volumes")
}

// records is one driver's record directory.
type records struct{ dir string }

// path names a record by a hash of the volume id: ids are opaque strings
// that may hold "/" and be longer than a file name.
func (s records) path(volumeID string) string {
	sum := sha256.Sum256([]byte(volumeID))
	return filepath.Join(s.dir, hex.EncodeToString(sum[:16])+".json")
}

// read returns the record of volumeID, or nil when there is none.
func (s records) read(volumeID string) (*Record, error) {
	r, err := readRecord(s.path(volumeID))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if r.VolumeID != volumeID {
		return nil, fmt.Errorf("record %s is for volume %q, not %q: remove it", s.path(volumeID), r.VolumeID, volumeID)
	}
	return r, nil
}

// write stores r durably: after a crash of the node the record still names
// what is mounted.
func (s records) write(r *Record) error {
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return fmt.Errorf("create the CSI record directory: %w", err)
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := spec.WriteFileDurable(s.path(r.VolumeID), append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("write the record of volume %s: %w", r.VolumeID, err)
	}
	return nil
}

func (s records) remove(volumeID string) error {
	if err := os.Remove(s.path(volumeID)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove the record of volume %s: %w", volumeID, err)
	}
	return nil
}

func readRecord(path string) (*Record, error) {
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

// ListRecords returns the records of every driver under stateDir, sorted by
// driver and volume id: what `mounter status` shows. Records that cannot be
// read are returned as errors beside the others.
func ListRecords(stateDir string) ([]*Record, []error) {
	files, err := filepath.Glob(filepath.Join(stateDir, "csi", "*", "volumes", "*.json"))
	if err != nil {
		return nil, []error{err}
	}
	var out []*Record
	var errs []error
	for _, f := range files {
		if strings.HasPrefix(filepath.Base(f), ".") {
			continue
		}
		r, err := readRecord(f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Driver != out[j].Driver {
			return out[i].Driver < out[j].Driver
		}
		return out[i].VolumeID < out[j].VolumeID
	})
	return out, errs
}
