// Package registry records the live mounters: one JSON file per container,
// <state-dir>/mounters/<container-id>.json, written by mount-hook at
// createRuntime and removed at poststop. The routing client (mounter) reads
// it to find the container to run a mount in. The layout and the field
// names are part of the external contract (design.md, "Registry").
package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/runc-shared/runc-shared/internal/atomicfile"
	"github.com/runc-shared/runc-shared/internal/config"
	"github.com/runc-shared/runc-shared/internal/filelock"
	"github.com/runc-shared/runc-shared/pkg/spec"
)

// Record describes one live mounter.
type Record struct {
	ID     string `json:"id"`
	Name   string `json:"name"` // the rule's name
	PID    int    `json:"pid"`
	Bundle string `json:"bundle"`
	// Runtime, FSTypes and Propagate record what the rule said when the
	// mounter started. Readers route with the configuration's runtime,
	// types and paths, never these; only a poststop whose configuration
	// does not load uses Propagate, to detach dead FUSE mounts.
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
//
// Its records decide which container `mounter` runs mount(8) in, as root,
// so the registry is trusted only as far as the directory it lives in: the
// state directory and every directory above it must pass the configuration
// file's rule (config.CheckDir), and each record must be a regular file (no
// symlink followed) owned by root or this process's user, writable by its
// owner only. A record never chooses a program to run: readers take the
// runtime and the propagated paths from the configuration's rule the record
// names.
type Registry struct {
	Dir string
}

// New returns the registry under stateDir.
func New(stateDir string) *Registry {
	return &Registry{Dir: filepath.Join(stateDir, "mounters")}
}

// ErrNotFound is returned for a container with no record.
var ErrNotFound = errors.New("no mounter record")

// ErrUnreadable is wrapped by the error for a registry that cannot be used
// at all: its directory cannot be listed, or others could write it.
var ErrUnreadable = errors.New("the registry cannot be used")

// ErrBadRecord is wrapped by the error for one record that is refused: not a
// regular file, writable or owned by others, or not a record.
var ErrBadRecord = errors.New("refused mounter record")

// MaxRecordSize bounds a record file; a real one is a few hundred bytes.
const MaxRecordSize = 64 << 10

// Check refuses a registry in a directory that others could write: they
// could plant records there.
// The state directory itself must not be writable by others even with the
// sticky bit: mount-hook's log lives there too.
func (r *Registry) Check() error {
	for _, dir := range []string{filepath.Dir(r.Dir), r.Dir} {
		if err := config.CheckDir(dir); err != nil {
			return fmt.Errorf("%w: %w", ErrUnreadable, err)
		}
	}
	return nil
}

func (r *Registry) path(id string) (string, error) {
	// Container IDs come from engines; refuse anything that is not a plain
	// file name so a hostile ID cannot write outside the registry.
	if id == "" || id == "." || id == ".." || strings.ContainsAny(id, "/\x00") {
		return "", fmt.Errorf("invalid container id %q", id)
	}
	return filepath.Join(r.Dir, id+".json"), nil
}

// Write stores rec atomically, in a registry directory it has checked
// before and after creating it.
func (r *Registry) Write(rec *Record) error {
	p, err := r.path(rec.ID)
	if err != nil {
		return err
	}
	if err := r.Check(); err != nil {
		return err
	}
	if err := os.MkdirAll(r.Dir, 0o755); err != nil {
		return fmt.Errorf("create registry %s: %w", r.Dir, err)
	}
	if err := r.Check(); err != nil {
		return err
	}
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return fmt.Errorf("encode mounter record %s: %w", rec.ID, err)
	}
	unlock, err := r.lock(rec.ID)
	if err != nil {
		return err
	}
	defer unlock()
	return atomicfile.WriteFileDurable(p, append(data, '\n'), 0o644)
}

// lock takes the lock of container id's record, a lock file beside the
// records (filelock): a registration and a client's removal of the stale
// record it replaces (engines reuse container IDs: docker restart) do not
// interleave.
func (r *Registry) lock(id string) (func(), error) {
	unlock, err := filelock.Lock(context.Background(), r.Dir, id)
	if err != nil {
		return nil, fmt.Errorf("lock the mounter record of %s: %w", id, err)
	}
	return unlock, nil
}

// removeIf removes the record of rec.ID if it is still rec: one that a
// container registered under the same ID since rec was read stays. It
// reports whether it removed it.
func (r *Registry) removeIf(rec *Record) (bool, error) {
	unlock, err := r.lock(rec.ID)
	if err != nil {
		return false, err
	}
	defer unlock()
	if cur, err := r.Read(rec.ID); err != nil || !sameRecord(cur, rec) {
		return false, nil
	}
	return true, r.Remove(rec.ID)
}

// Read returns the record of container id.
func (r *Registry) Read(id string) (*Record, error) {
	p, err := r.path(id)
	if err != nil {
		return nil, err
	}
	if err := r.Check(); err != nil {
		return nil, err
	}
	return readRecord(p, id)
}

// readRecord opens the record at p without following a symlink and refuses
// anything but a regular file that only a trusted user could have written.
func readRecord(p, id string) (*Record, error) {
	// O_NONBLOCK: a FIFO planted there must not hang the reader; the fstat
	// below refuses it.
	f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("%w for container %s", ErrNotFound, id)
	case errors.Is(err, unix.ELOOP):
		return nil, fmt.Errorf("%w %s: it is a symlink: remove it", ErrBadRecord, p)
	case err != nil:
		return nil, fmt.Errorf("read mounter record: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read mounter record: %w", err)
	}
	st, _ := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("%w %s: not a regular file (%s): remove it", ErrBadRecord, p, fi.Mode().Type())
	case st == nil:
		return nil, fmt.Errorf("%w %s: cannot read its owner", ErrBadRecord, p)
	case st.Uid != 0 && int(st.Uid) != os.Geteuid():
		return nil, fmt.Errorf("%w %s: owned by uid %d, not root: mount-hook never wrote it; remove it", ErrBadRecord, p, st.Uid)
	case fi.Mode().Perm()&0o022 != 0:
		return nil, fmt.Errorf("%w %s: mode %04o lets group or others write it: mount-hook never wrote it; remove it", ErrBadRecord, p, fi.Mode().Perm())
	case fi.Size() > MaxRecordSize:
		return nil, fmt.Errorf("%w %s: larger than %d bytes: remove it", ErrBadRecord, p, MaxRecordSize)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxRecordSize+1))
	if err != nil {
		return nil, fmt.Errorf("read mounter record %s: %w", p, err)
	}
	var rec Record
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, fmt.Errorf("decode mounter record %s: %w", p, err)
	}
	if rec.ID != id {
		return nil, fmt.Errorf("%w %s: it is the record of container %q: remove it", ErrBadRecord, p, rec.ID)
	}
	for _, f := range []struct{ name, value string }{{"bundle", rec.Bundle}, {"runtime-root", rec.RuntimeRoot}} {
		if f.value != "" && (!filepath.IsAbs(f.value) || filepath.Clean(f.value) != f.value) {
			return nil, fmt.Errorf("%w %s: %s %q is not a clean absolute path: remove it", ErrBadRecord, p, f.name, f.value)
		}
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
// reported in the error but do not hide the others; a registry that cannot
// be used at all (ErrUnreadable) gives no record.
func (r *Registry) List() ([]*Record, error) {
	if err := r.Check(); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(r.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: list %s: %w", ErrUnreadable, r.Dir, err)
	}
	var recs []*Record
	var errs []error
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".json") || strings.HasPrefix(name, ".") {
			continue
		}
		// A directory entry is a plain name, and a dot file is skipped
		// above: the ID is one that path accepts.
		rec, err := readRecord(filepath.Join(r.Dir, name), strings.TrimSuffix(name, ".json"))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		recs = append(recs, rec)
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].Created.Before(recs[j].Created) })
	return recs, errors.Join(errs...)
}
