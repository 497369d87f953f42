package registry

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"
)

// forged is a record as an attacker would plant it: a runtime of theirs.
func forged(id string) []byte {
	b, _ := json.Marshal(&Record{ID: id, Name: "glusterfs", PID: os.Getpid(), Bundle: "/tmp/evil",
		Runtime: "/tmp/evil/runc", Created: time.Now()})
	return b
}

// TestForgedRecordsRefused: a record someone other than mount-hook could
// have written is refused, and the good record beside it still listed.
func TestForgedRecordsRefused(t *testing.T) {
	for _, tc := range []struct {
		name  string
		plant func(t *testing.T, dir, path string)
		want  string
	}{
		{"owned by nobody", func(t *testing.T, _, path string) {
			mustWrite(t, path, forged("f"), 0o644)
			must(t, os.Chown(path, 65534, 65534))
		}, `owned by uid 65534`},
		{"world-writable", func(t *testing.T, _, path string) {
			mustWrite(t, path, forged("f"), 0o644)
			must(t, os.Chmod(path, 0o666))
		}, `mode 0666 lets group or others write it`},
		{"symlink", func(t *testing.T, dir, path string) {
			target := filepath.Join(t.TempDir(), "r.json")
			mustWrite(t, target, forged("f"), 0o644)
			must(t, os.Symlink(target, path))
		}, `it is a symlink`},
		{"fifo", func(t *testing.T, _, path string) { must(t, syscall.Mkfifo(path, 0o644)) }, `not a regular file`},
		{"another container's record", func(t *testing.T, _, path string) { mustWrite(t, path, forged("other"), 0o644) }, `record of container "other"`},
		{"relative bundle", func(t *testing.T, _, path string) {
			b, _ := json.Marshal(&Record{ID: "f", Name: "glusterfs", PID: 1, Bundle: "evil"})
			mustWrite(t, path, b, 0o644)
		}, `bundle "evil" is not a clean absolute path`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := New(t.TempDir())
			if err := reg.Write(&Record{ID: "good", Name: "glusterfs", PID: 1, Created: time.Now()}); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(reg.Dir, "f.json")
			tc.plant(t, reg.Dir, path)
			_, err := reg.Read("f")
			if !errors.Is(err, ErrBadRecord) || !regexp.MustCompile(tc.want).MatchString(err.Error()) {
				t.Fatalf("Read = %v; want ErrBadRecord matching %q", err, tc.want)
			}
			recs, err := reg.List()
			if len(recs) != 1 || recs[0].ID != "good" || !errors.Is(err, ErrBadRecord) || errors.Is(err, ErrUnreadable) {
				t.Fatalf("List = %v, %v; want the good record and the forged one refused", recs, err)
			}
		})
	}
}

// TestUntrustedStateDir: a registry in a directory others can write is not
// read and not written.
func TestUntrustedStateDir(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, state string)
	}{
		{"state dir world-writable", func(t *testing.T, state string) { must(t, os.Chmod(state, 0o777)) }},
		{"state dir sticky world-writable", func(t *testing.T, state string) { must(t, os.Chmod(state, 0o777|os.ModeSticky)) }},
		{"registry dir owned by nobody", func(t *testing.T, state string) {
			must(t, os.Chown(filepath.Join(state, "mounters"), 65534, 65534))
		}},
		{"parent world-writable", func(t *testing.T, state string) { must(t, os.Chmod(filepath.Dir(state), 0o777)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			state := filepath.Join(t.TempDir(), "state")
			reg := New(state)
			if err := reg.Write(&Record{ID: "planted", Name: "glusterfs", PID: os.Getpid(), Created: time.Now()}); err != nil {
				t.Fatal(err)
			}
			tc.setup(t, state)
			if recs, err := reg.List(); len(recs) != 0 || !errors.Is(err, ErrUnreadable) {
				t.Errorf("List = %v, %v; want nothing and ErrUnreadable", recs, err)
			}
			if _, err := reg.Read("planted"); !errors.Is(err, ErrUnreadable) {
				t.Errorf("Read = %v; want ErrUnreadable", err)
			}
			if err := reg.Write(&Record{ID: "new", Name: "glusterfs", PID: 1}); !errors.Is(err, ErrUnreadable) {
				t.Errorf("Write = %v; want ErrUnreadable", err)
			}
			if _, err := os.Lstat(filepath.Join(reg.Dir, "new.json")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("Write wrote into the untrusted registry: %v", err)
			}
		})
	}
	t.Run("created below a trusted dir", func(t *testing.T) {
		reg := New(filepath.Join(t.TempDir(), "a", "state"))
		if err := reg.Write(&Record{ID: "x", Name: "g", PID: 1}); err != nil {
			t.Fatalf("Write into a new registry: %v", err)
		}
	})
}

func mustWrite(t *testing.T, path string, data []byte, mode os.FileMode) {
	t.Helper()
	must(t, os.WriteFile(path, data, mode))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
