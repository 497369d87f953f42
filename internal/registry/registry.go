// Package registry records the live mounters: one JSON file per container,
// <state-dir>/mounters/<container-id>.json, written by mount-hook at
// createRuntime and removed at poststop. The routing client (mounter) reads
// it to find the container to run a mount in. The layout and the field
// names are part of the external contract (design.md, "Registry").
package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/runc-shared/runc-shared/pkg/spec"
)

// Record describes one live mounter.
type Record struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"` // the rule's name
	PID         int       `json:"pid"`
	Bundle      string    `json:"bundle"`
	Runtime     string    `json:"runtime"`      // delegate runtime binary (runc)
	RuntimeRoot string    `json:"runtime-root"` // its --root; "" means the runtime's default
	FSTypes     []string  `json:"fstypes"`
	Propagate   []string  `json:"propagate"`
	Mode        spec.Mode `json:"mode,omitempty"`
	Created     time.Time `json:"created"`

	// PIDStart is the start time of PID (field 22 of /proc/<pid>/stat, in
	// clock ticks since boot): a PID reused by another process after the
	// mounter died has another start time (see Check). 0 means unknown.
	PIDStart uint64 `json:"pid-start,omitempty"`
}

// Registry is the directory of records.
type Registry struct {
	Dir string
}

// New returns the registry under stateDir.
func New(stateDir string) *Registry {
	return &Registry{Dir: filepath.Join(stateDir, "mounters")}
}

// ErrNotFound is returned for a container with no record.
var ErrNotFound = errors.New("no mounter record")

func (r *Registry) path(id string) (string, error) {
	// Container IDs come from engines; refuse anything that is not a plain
	// file name so a hostile ID cannot write outside the registry.
	if id == "" || id == "." || id == ".." || strings.ContainsAny(id, "/\x00") {
		return "", fmt.Errorf("invalid container id %q", id)
	}
	return filepath.Join(r.Dir, id+".json"), nil
}

// Write stores rec atomically.
func (r *Registry) Write(rec *Record) error {
	p, err := r.path(rec.ID)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(r.Dir, 0o755); err != nil {
		return fmt.Errorf("create registry %s: %w", r.Dir, err)
	}
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return fmt.Errorf("encode mounter record %s: %w", rec.ID, err)
	}
	return spec.WriteFileDurable(p, append(data, '\n'), 0o644)
}

// Read returns the record of container id.
func (r *Registry) Read(id string) (*Record, error) {
	p, err := r.path(id)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w for container %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("read mounter record: %w", err)
	}
	var rec Record
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, fmt.Errorf("decode mounter record %s: %w", p, err)
	}
	return &rec, nil
}

// Remove deletes the record of container id; a missing record is not an
// error (poststop may run twice).
func (r *Registry) Remove(id string) error {
	p, err := r.path(id)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove mounter record: %w", err)
	}
	return nil
}

// List returns every readable record, oldest first. Unreadable records are
// reported in the error but do not hide the others.
func (r *Registry) List() ([]*Record, error) {
	entries, err := os.ReadDir(r.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list registry %s: %w", r.Dir, err)
	}
	var recs []*Record
	var errs []error
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".json") || strings.HasPrefix(name, ".") {
			continue
		}
		rec, err := r.Read(strings.TrimSuffix(name, ".json"))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		recs = append(recs, rec)
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].Created.Before(recs[j].Created) })
	return recs, errors.Join(errs...)
}
