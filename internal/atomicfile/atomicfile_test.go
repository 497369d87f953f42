package atomicfile

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

type writeFunc func(string, []byte, os.FileMode, ...Option) error

// eachVariant runs f as a subtest for WriteFile and for WriteFileDurable.
func eachVariant(t *testing.T, f func(t *testing.T, write writeFunc)) {
	for name, write := range map[string]writeFunc{"WriteFile": WriteFile, "WriteFileDurable": WriteFileDurable} {
		t.Run(name, func(t *testing.T) { f(t, write) })
	}
}

// names lists dir's entries, to catch temporary files left behind.
func names(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var ns []string
	for _, e := range ents {
		ns = append(ns, e.Name())
	}
	return ns
}

func TestWrite(t *testing.T) {
	eachVariant(t, func(t *testing.T, write writeFunc) {
		for _, tc := range []struct {
			name string
			old  []byte // nil: no file yet
			perm os.FileMode
		}{
			{"new file", nil, 0o644},
			{"replace", []byte("old content, longer than the new one"), 0o600},
			{"perm beyond the umask", []byte("x"), 0o666},
			{"empty data", []byte("x"), 0o640},
		} {
			t.Run(tc.name, func(t *testing.T) {
				dir := t.TempDir()
				path := filepath.Join(dir, "config.json")
				if tc.old != nil {
					if err := os.WriteFile(path, tc.old, 0o755); err != nil {
						t.Fatal(err)
					}
				}
				data := []byte("new\n")
				if tc.name == "empty data" {
					data = []byte{}
				}
				if err := write(path, data, tc.perm); err != nil {
					t.Fatal(err)
				}
				got, err := os.ReadFile(path)
				if err != nil || !bytes.Equal(got, data) {
					t.Errorf("content %q, %v; want %q", got, err, data)
				}
				if fi, err := os.Stat(path); err != nil || fi.Mode() != tc.perm {
					t.Errorf("mode %v, %v; want %v", fi.Mode(), err, tc.perm)
				}
				if ns := names(t, dir); len(ns) != 1 {
					t.Errorf("directory holds %v, want only config.json", ns)
				}
			})
		}
	})
}

// TestConcurrentWriters: readers only ever see one writer's complete
// content while several writers replace the same file.
func TestConcurrentWriters(t *testing.T) {
	eachVariant(t, func(t *testing.T, write writeFunc) {
		dir := t.TempDir()
		path := filepath.Join(dir, "record.json")
		const writers, rounds = 6, 40
		payloads := map[string]bool{}
		for i := range writers {
			// Large enough that a write takes several syscalls.
			p := bytes.Repeat([]byte{byte('a' + i)}, 256<<10)
			payloads[string(p)] = true
		}
		if err := os.WriteFile(path, bytes.Repeat([]byte{'a'}, 256<<10), 0o644); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make(chan error, writers*rounds+1)
		for i := range writers {
			wg.Go(func() {
				p := bytes.Repeat([]byte{byte('a' + i)}, 256<<10)
				for range rounds {
					if err := write(path, p, 0o644); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		stop, done := make(chan struct{}), make(chan struct{})
		reads := 0
		go func() {
			defer close(done)
			for {
				select {
				case <-stop:
					return
				default:
				}
				got, err := os.ReadFile(path)
				reads++
				if err != nil {
					errs <- fmt.Errorf("read %d: %w", reads, err)
					return
				}
				if !payloads[string(got)] {
					errs <- fmt.Errorf("read %d: %d bytes that no writer wrote whole", reads, len(got))
					return
				}
			}
		}()
		wg.Wait()
		close(stop)
		<-done
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if ns := names(t, dir); len(ns) != 1 {
			t.Errorf("directory holds %v after the writers, want only record.json", ns)
		}
		t.Logf("%d reads", reads)
	})
}

// TestFailureKeepsOld: a write that cannot complete leaves the name as it
// was and no temporary file.
func TestFailureKeepsOld(t *testing.T) {
	eachVariant(t, func(t *testing.T, write writeFunc) {
		dir := t.TempDir()
		// rename(2) of a file over a non-empty directory fails.
		busy := filepath.Join(dir, "busy")
		if err := os.MkdirAll(filepath.Join(busy, "sub"), 0o755); err != nil {
			t.Fatal(err)
		}
		err := write(busy, []byte("x"), 0o644)
		if err == nil || !errors.Is(err, syscall.EISDIR) && !errors.Is(err, syscall.EEXIST) {
			t.Errorf("write over a directory: %v, want EISDIR or EEXIST", err)
		}
		if fi, err := os.Stat(busy); err != nil || !fi.IsDir() {
			t.Errorf("the directory changed: %v", err)
		}
		if ns := names(t, dir); len(ns) != 1 {
			t.Errorf("directory holds %v, want only busy", ns)
		}
		missing := filepath.Join(dir, "no", "such", "file")
		if err := write(missing, []byte("x"), 0o644); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("write into a missing directory: %v, want ErrNotExist", err)
		}
		// An option that fails stops the write before the rename.
		path := filepath.Join(dir, "keep")
		if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
			t.Fatal(err)
		}
		boom := errors.New("boom")
		err = write(path, []byte("new"), 0o644, func(*os.File) error { return boom })
		if !errors.Is(err, boom) {
			t.Errorf("failing option: %v, want boom", err)
		}
		if got, _ := os.ReadFile(path); string(got) != "old" {
			t.Errorf("content %q after a failed write, want old", got)
		}
		if ns := names(t, dir); len(ns) != 2 {
			t.Errorf("directory holds %v, want busy and keep", ns)
		}
	})
}

// TestOwner: the file has its owner when it gets the name. Only root may
// give a file away; for anyone else the write fails and the old file stays.
func TestOwner(t *testing.T) {
	path := filepath.Join(t.TempDir(), "daemon.json")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	const uid, gid = 4321, 8765
	err := WriteFileDurable(path, []byte("new"), 0o640, Owner(uid, gid))
	fi, serr := os.Stat(path)
	if serr != nil {
		t.Fatal(serr)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if os.Geteuid() != 0 {
		if !errors.Is(err, syscall.EPERM) || st.Uid == uid {
			t.Errorf("chown as uid %d: %v, owner %d; want EPERM and the old file", os.Geteuid(), err, st.Uid)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if st.Uid != uid || st.Gid != gid || fi.Mode() != 0o640 {
		t.Errorf("owner %d:%d mode %v, want %d:%d 0640", st.Uid, st.Gid, fi.Mode(), uid, gid)
	}
}

func TestRemoveLeftovers(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.json")
	for _, n := range []string{"config.json", ".config.json.tmp-123", ".config.json.tmp-456", ".other.json.tmp-1", "config.json.tmp-7"} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	RemoveLeftovers(path)
	want := []string{".other.json.tmp-1", "config.json", "config.json.tmp-7"}
	if got := names(t, dir); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("left %v, want %v", got, want)
	}
}

// TestPrepare: a prepared content is invisible until Commit, and Abort
// leaves the old content and no temporary file.
func TestPrepare(t *testing.T) {
	for _, tc := range []struct {
		name   string
		commit bool
		want   string
	}{
		{"commit", true, "new"},
		{"abort", false, "old"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "rec.json")
			if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
				t.Fatal(err)
			}
			p, err := Prepare(path, []byte("new"), 0o600)
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := os.ReadFile(path); string(got) != "old" {
				t.Errorf("content %q before Commit, want old", got)
			}
			if ns := names(t, dir); len(ns) != 2 {
				t.Errorf("directory holds %v, want rec.json and one temporary file", ns)
			}
			if tc.commit {
				if err := p.Commit(); err != nil {
					t.Fatal(err)
				}
			} else {
				p.Abort()
			}
			if got, _ := os.ReadFile(path); string(got) != tc.want {
				t.Errorf("content %q, want %s", got, tc.want)
			}
			if fi, err := os.Stat(path); err != nil || tc.commit && fi.Mode().Perm() != 0o600 {
				t.Errorf("mode after Commit: %v, %v", fi.Mode(), err)
			}
			if ns := names(t, dir); fmt.Sprint(ns) != "[rec.json]" {
				t.Errorf("directory holds %v, want only rec.json", ns)
			}
		})
	}
}

// TestRemoveStale: only temporary files older than the cutoff go, of any
// name in the directory.
func TestRemoveStale(t *testing.T) {
	dir := t.TempDir()
	old := time.Now().Add(-2 * time.Hour)
	for n, stale := range map[string]bool{".a.json.tmp-1": true, ".b.json.tmp-2": true, ".a.json.tmp-3": false, "a.json": true, ".hidden": true} {
		p := filepath.Join(dir, n)
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if stale {
			if err := os.Chtimes(p, old, old); err != nil {
				t.Fatal(err)
			}
		}
	}
	RemoveStale(dir, time.Now().Add(-time.Hour))
	want := []string{".a.json.tmp-3", ".hidden", "a.json"}
	if got := names(t, dir); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("left %v, want %v", got, want)
	}
}
