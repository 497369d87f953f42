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
	"strings"

	"github.com/runc-shared/runc-shared/internal/atomicfile"
)

// recordDir is a directory of JSON records, one file per key, named by a
// hash of the key: keys are opaque strings that may hold "/" and be longer
// than a file name. Every write is durable and atomic. Store (CSI volumes)
// and MountStore (routed mounts) are two of them; only the words of their
// errors differ.
type recordDir[T any] struct {
	dir     string
	key     func(*T) string
	dirName string // "CSI record directory"
	of      string // what a record is of, for errors: "volume %s"
	isFor   string // the same, quoted: "volume %q"
	noKey   string // a record without its key: "no volume id"
}

func (d recordDir[T]) path(key string) string {
	sum := sha256.Sum256([]byte(key))
	return filepath.Join(d.dir, hex.EncodeToString(sum[:16])+".json")
}

// read returns the record of key, or nil when there is none.
func (d recordDir[T]) read(key string) (*T, error) {
	v, err := ReadJSON[T](d.path(key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if got := d.key(v); got != key {
		return nil, fmt.Errorf("record %s is for "+d.isFor+", not %q: remove it", d.path(key), got, key)
	}
	return v, nil
}

func (d recordDir[T]) write(v *T) error {
	p, err := d.prepare(v)
	if err != nil {
		return err
	}
	if err := p.Commit(); err != nil {
		return fmt.Errorf("write the record of "+d.of+": %w", d.key(v), err)
	}
	return nil
}

// prepare writes v durably under a temporary name beside its record, for
// a Commit that puts it in place.
func (d recordDir[T]) prepare(v *T) (*atomicfile.Pending, error) {
	if err := os.MkdirAll(d.dir, 0o700); err != nil {
		return nil, fmt.Errorf("create the %s: %w", d.dirName, err)
	}
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	key := d.key(v)
	p, err := atomicfile.Prepare(d.path(key), append(data, '\n'), 0o600)
	if err != nil {
		return nil, fmt.Errorf("write the record of "+d.of+": %w", key, err)
	}
	return p, nil
}

// remove removes the record of key; none is no error.
func (d recordDir[T]) remove(key string) error {
	if err := os.Remove(d.path(key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove the record of "+d.of+": %w", key, err)
	}
	return nil
}

// list returns the directory's records, and apart the errors of those that
// cannot be read. Temporary files of a write in progress (or killed) are not
// records.
func (d recordDir[T]) list() ([]*T, []error) {
	ents, err := os.ReadDir(d.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, []error{fmt.Errorf("read the %s: %w", d.dirName, err)}
	}
	var files []string
	for _, e := range ents {
		if name := e.Name(); !strings.HasPrefix(name, ".") && strings.HasSuffix(name, ".json") {
			files = append(files, filepath.Join(d.dir, name))
		}
	}
	return d.readAll(files)
}

func (d recordDir[T]) readAll(files []string) ([]*T, []error) {
	var out []*T
	var errs []error
	for _, f := range files {
		v, err := ReadJSON[T](f)
		if err == nil && d.key(v) == "" {
			err = fmt.Errorf("%s: %s", f, d.noKey)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, v)
	}
	return out, errs
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
