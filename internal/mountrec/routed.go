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
	// Recovery is set while the mount could not be made live again.
	Recovery *Recovery `json:"recovery,omitempty"`
}

// MountsDir is where the records of routed mounts live under stateDir.
func MountsDir(stateDir string) string { return filepath.Join(stateDir, "mounts") }

// MountStore is the record directory of routed mounts. Its writers are
// `mounter mount`, `mounter umount` and `mounter recover`, one file per
// target, each write durable and atomic as the volume records'.
type MountStore struct{ Dir string }

// Path names the record of target by a hash of it.
func (s MountStore) Path(target string) string {
	sum := sha256.Sum256([]byte(target))
	return filepath.Join(s.Dir, hex.EncodeToString(sum[:16])+".json")
}

// Read returns the record of target, or nil when there is none.
func (s MountStore) Read(target string) (*Mount, error) {
	m, err := readMount(s.Path(target))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if m.Target != target {
		return nil, fmt.Errorf("record %s is for %q, not %q: remove it", s.Path(target), m.Target, target)
	}
	return m, nil
}

// Write stores m durably.
func (s MountStore) Write(m *Mount) error {
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return fmt.Errorf("create the mount record directory: %w", err)
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFileDurable(s.Path(m.Target), append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("write the record of the mount at %s: %w", m.Target, err)
	}
	return nil
}

// Remove removes the record of target; none is no error.
func (s MountStore) Remove(target string) error {
	if err := os.Remove(s.Path(target)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove the record of the mount at %s: %w", target, err)
	}
	return nil
}

// List returns the records sorted by target, and apart the errors of those
// that cannot be read.
func (s MountStore) List() ([]*Mount, []error) {
	ents, err := os.ReadDir(s.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, []error{fmt.Errorf("read the mount record directory: %w", err)}
	}
	var out []*Mount
	var errs []error
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, ".") || !strings.HasSuffix(name, ".json") {
			continue
		}
		m, err := readMount(filepath.Join(s.Dir, name))
		if err == nil && m.Target == "" {
			err = fmt.Errorf("%s: no target", filepath.Join(s.Dir, name))
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Target < out[j].Target })
	return out, errs
}

func readMount(path string) (*Mount, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m Mount
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("decode %s: %w", path, err)
	}
	return &m, nil
}
