package spec

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// These tests run as root (CI does): root ignores directory write bits, so a
// read-only bundle is a read-only bind mount and a full one a tiny tmpfs.

func mountTmpfs(t *testing.T, dir, size string) {
	t.Helper()
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755,size="+size); err != nil {
		t.Fatalf("mount tmpfs on %s (the test needs root): %v", dir, err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
}

func bindReadOnly(t *testing.T, dir string) {
	t.Helper()
	if err := unix.Mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind %s (the test needs root): %v", dir, err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	if err := unix.Mount("", dir, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, ""); err != nil {
		t.Fatalf("remount %s read-only: %v", dir, err)
	}
}

type fileID struct {
	ino   uint64
	mtime time.Time
	mode  os.FileMode
}

func statID(t *testing.T, p string) fileID {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fileID{fi.Sys().(*syscall.Stat_t).Ino, fi.ModTime(), fi.Mode()}
}

// assertOnlyConfig fails when anything but config.json is left in dir.
func assertOnlyConfig(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if len(names) != 1 || names[0] != "config.json" {
		t.Errorf("bundle directory holds %q, want only config.json (leftover temporary file?)", names)
	}
}

func assertContent(t *testing.T, p string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s: content differs from the expected %d bytes (got %d)", p, len(want), len(got))
	}
}

func TestSaveUnchangedWritesNothing(t *testing.T) {
	for _, name := range engineConfigs {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			raw := readEngine(t, name)
			p := writeFile(t, dir, "config.json", raw, 0o640)
			past := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
			if err := os.Chtimes(p, past, past); err != nil {
				t.Fatal(err)
			}
			before := statID(t, p)
			d, err := Load(p)
			if err != nil {
				t.Fatal(err)
			}
			// A modifier that touches nothing leaves nothing to write.
			if err := (&SharedBinds{Resolver: &mapResolver{}}).Modify(d.Spec); err != nil {
				t.Fatal(err)
			}
			saved, err := d.Save()
			if saved || err != nil {
				t.Fatalf("Save = %v, %v; want false, nil", saved, err)
			}
			if after := statID(t, p); after != before {
				t.Errorf("config.json touched: %+v -> %+v", before, after)
			}
			assertContent(t, p, raw)
			assertOnlyConfig(t, dir)
		})
	}
}

func TestSaveRewrites(t *testing.T) {
	tests := []struct {
		name   string
		mode   os.FileMode
		engine string
		tmpfs  bool // the bundle is its own filesystem: rename works only within it
	}{
		{"0600 stays 0600", 0o600, engPodman, false},
		{"0644", 0o644, engDockerMounter, false},
		{"0640", 0o640, engContainerd, false},
		{"read-only file 0400", 0o400, engPodman, false},
		{"bundle on its own tmpfs", 0o600, engDockerMounter, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.tmpfs {
				dir = filepath.Join(dir, "bundle")
				if err := os.Mkdir(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				mountTmpfs(t, dir, "1m")
			}
			raw := readEngine(t, tt.engine)
			p := writeFile(t, dir, "config.json", raw, tt.mode)
			before := statID(t, p)
			d, err := Load(p)
			if err != nil {
				t.Fatal(err)
			}
			rewrite(t, d, prefixResolver(hostSource))
			want := encode(t, d)
			saved, err := d.Save()
			if !saved || err != nil {
				t.Fatalf("Save = %v, %v; want true, nil", saved, err)
			}
			after := statID(t, p)
			if after.mode != tt.mode {
				t.Errorf("mode %v, want %v", after.mode, tt.mode)
			}
			if after.ino == before.ino {
				t.Error("config.json rewritten in place (same inode), not renamed over")
			}
			assertContent(t, p, want)
			assertOnlyConfig(t, dir)

			// Reloaded, the rewrite is the typed view we saved and has
			// nothing left to change.
			d2, err := Load(p)
			if err != nil {
				t.Fatal(err)
			}
			if typedJSON(t, d2.Spec) != typedJSON(t, d.Spec) {
				t.Error("reloaded typed view differs")
			}
			rewrite(t, d2, prefixResolver(hostSource))
			if saved, err := d2.Save(); saved || err != nil {
				t.Errorf("second Save = %v, %v; want false, nil", saved, err)
			}
		})
	}
}

func TestSaveReadOnlyBundle(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "bundle")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	raw := readEngine(t, engPodman)
	p := writeFile(t, dir, "config.json", raw, 0o644)
	bindReadOnly(t, dir)

	d, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	rewrite(t, d, prefixResolver(hostSource))
	saved, err := d.Save()
	if saved {
		t.Error("Save reported a write")
	}
	wantErr(t, err, `^write `+regexp.QuoteMeta(p)+`: open `+regexp.QuoteMeta(dir)+`/\.config\.json\.tmp-[^/]+: read-only file system \(is the directory there, writable and not full\?\)$`)
	if !errors.Is(err, syscall.EROFS) {
		t.Errorf("errors.Is(%v, EROFS) = false", err)
	}
	assertContent(t, p, raw)
	assertOnlyConfig(t, dir)
}

func TestSaveFullFilesystem(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "bundle")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	mountTmpfs(t, dir, "16k")
	// About 10 KiB: the original fits, a second copy does not.
	raw := []byte(strings.Replace(string(readEngine(t, engContainerd)),
		`{"ociVersion":"1.0.2-dev",`, `{"ociVersion":"1.0.2-dev","futurePadding":"`+strings.Repeat("p", 7000)+`",`, 1))
	p := writeFile(t, dir, "config.json", raw, 0o600)

	d, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	rewrite(t, d, prefixResolver(hostSource))
	saved, err := d.Save()
	if saved {
		t.Error("Save reported a write")
	}
	wantErr(t, err, `^write `+regexp.QuoteMeta(dir)+`/.*: no space left on device`)
	// The temporary file the error names is in the bundle directory itself.
	if m := regexp.MustCompile(`(/\S*/)\.config\.json\.tmp-[^:\s]+`).FindStringSubmatch(err.Error()); m == nil || m[1] != dir+"/" {
		t.Errorf("error %q names no temporary file in %s", err, dir)
	}
	if !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("errors.Is(%v, ENOSPC) = false", err)
	}
	assertContent(t, p, raw)
	assertOnlyConfig(t, dir)
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("original: %v, %v", fi, err)
	}
}
