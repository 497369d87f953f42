package mountrec

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/runc-shared/runc-shared/internal/atomicfile"
)

// Records is a directory of JSON records, one file per key, named by a
// hash of the key: keys are opaque strings that may hold "/" and be longer
// than a file name. Every write is durable and atomic. Store (CSI volumes)
// and MountStore (routed mounts) are two of them; only the words of their
// errors differ.
type Records[T any, P keyed[T]] struct{ Dir string }

// keyed is a record type: its key, and the words of its errors (a method
// that reads no field, so that a nil P answers it).
type keyed[T any] interface {
	*T
	key() string
	words() words
}

type words struct {
	dir   string // "CSI record directory"
	of    string // what a record is of, for errors: "volume %s"
	isFor string // the same, quoted: "volume %q"
	noKey string // a record without its key: "no volume id"
}

// Path names the record of key by a hash of it.
func (d Records[T, P]) Path(key string) string {
	sum := sha256.Sum256([]byte(key))
	return filepath.Join(d.Dir, hex.EncodeToString(sum[:16])+".json")
}

// Read returns the record of key, or nil when there is none.
func (d Records[T, P]) Read(key string) (*T, error) {
	v, err := ReadJSON[T](d.Path(key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if got := P(v).key(); got != key {
		return nil, fmt.Errorf("record %s is for "+P(nil).words().isFor+", not %q: remove it", d.Path(key), got, key)
	}
	return v, nil
}

// Write stores v durably.
func (d Records[T, P]) Write(v *T) error {
	p, err := d.prepare(v)
	if err != nil {
		return err
	}
	if err := p.Commit(); err != nil {
		return fmt.Errorf("write the record of "+P(nil).words().of+": %w", P(v).key(), err)
	}
	return nil
}

// Prepare writes v durably beside its record, not in place yet: a caller
// that writes the record while it makes the mount Commits it once the
// mount is there, or Aborts. Until then readers see the old record, or
// none; a writer killed in between leaves a temporary file, which is no
// record (List skips it) and which Prepare removes an hour later (no
// mount takes that long).
func (d Records[T, P]) Prepare(v *T) (*atomicfile.Pending, error) {
	atomicfile.RemoveStale(d.Dir, time.Now().Add(-staleWrite))
	return d.prepare(v)
}

func (d Records[T, P]) prepare(v *T) (*atomicfile.Pending, error) {
	if err := os.MkdirAll(d.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("create the %s: %w", P(nil).words().dir, err)
	}
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	key := P(v).key()
	p, err := atomicfile.Prepare(d.Path(key), append(data, '\n'), 0o600)
	if err != nil {
		return nil, fmt.Errorf("write the record of "+P(nil).words().of+": %w", key, err)
	}
	return p, nil
}

// staleWrite is the age from which a temporary file of the directory
// belongs to a killed writer.
const staleWrite = time.Hour

// Remove removes the record of key; none is no error.
func (d Records[T, P]) Remove(key string) error {
	if err := os.Remove(d.Path(key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove the record of "+P(nil).words().of+": %w", key, err)
	}
	return nil
}

// List returns the directory's records sorted by key, and apart the errors
// of those that cannot be read. Temporary files of a write in progress (or
// killed) are not records.
func (d Records[T, P]) List() ([]*T, []error) {
	ents, err := os.ReadDir(d.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, []error{fmt.Errorf("read the %s: %w", P(nil).words().dir, err)}
	}
	var files []string
	for _, e := range ents {
		if name := e.Name(); !strings.HasPrefix(name, ".") && strings.HasSuffix(name, ".json") {
			files = append(files, filepath.Join(d.Dir, name))
		}
	}
	out, errs := ReadFiles(files, hasKey[T, P])
	slices.SortFunc(out, func(a, b *T) int { return cmp.Compare(P(a).key(), P(b).key()) })
	return out, errs
}

// hasKey is the check of ReadFiles that refuses a record without its key.
func hasKey[T any, P keyed[T]](f string, v *T) error {
	if P(v).key() == "" {
		return fmt.Errorf("%s: %s", f, P(nil).words().noKey)
	}
	return nil
}

// ReadFiles decodes each JSON file of files that check (when not nil)
// accepts, and returns apart the errors of the others.
func ReadFiles[T any](files []string, check func(file string, v *T) error) (out []*T, errs []error) {
	for _, f := range files {
		v, err := ReadJSON[T](f)
		if err == nil && check != nil {
			err = check(f, v)
		}
		if err != nil {
			errs = append(errs, err)
		} else {
			out = append(out, v)
		}
	}
	return out, errs
}

// WriteJSON writes v as indented JSON to path, durably and atomically,
// creating its directory (mode 0700) when it is missing.
func WriteJSON(path string, v any) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFileDurable(path, append(data, '\n'), 0o600)
}

// ReadJSON decodes the JSON file at path.
func ReadJSON[T any](path string) (*T, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var v T
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("decode %s: %w", path, err)
	}
	return &v, nil
}
