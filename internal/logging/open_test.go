package logging

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
)

// TestOpenAppend: a log path that someone planted is refused and the file it
// points at is left untouched.
func TestOpenAppend(t *testing.T) {
	for _, tc := range []struct {
		name  string
		plant func(t *testing.T, path, victim string)
		want  string // "" means it opens
	}{
		{"new file", func(*testing.T, string, string) {}, ""},
		{"existing file", func(t *testing.T, path, _ string) { write(t, path, "old\n") }, ""},
		{"symlink", func(t *testing.T, path, victim string) { must(t, os.Symlink(victim, path)) }, "it is a symlink"},
		{"dangling symlink", func(t *testing.T, path, victim string) {
			must(t, os.Symlink(victim+".new", path))
		}, "it is a symlink"},
		{"hard link", func(t *testing.T, path, victim string) { must(t, os.Link(victim, path)) }, "2 hard links"},
		{"fifo", func(t *testing.T, path, _ string) { must(t, syscall.Mkfifo(path, 0o644)) }, "not a regular file|no such device or address"},
		{"directory", func(t *testing.T, path, _ string) { must(t, os.Mkdir(path, 0o755)) }, "is a directory|not a regular file"},
		{"owned by nobody", func(t *testing.T, path, _ string) {
			write(t, path, "")
			must(t, os.Chown(path, 65534, 65534))
		}, "owned by uid 65534"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			victim := filepath.Join(dir, "victim")
			write(t, victim, "secret\n")
			path := filepath.Join(dir, "mount-hook.log")
			tc.plant(t, path, victim)
			f, err := OpenAppend(path)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("OpenAppend = %v", err)
				}
				if _, err := f.WriteString("line\n"); err != nil {
					t.Fatal(err)
				}
				f.Close()
			} else {
				if err == nil {
					f.Close()
					t.Fatalf("OpenAppend of a planted %s succeeded", tc.name)
				}
				if !regexp.MustCompile(tc.want).MatchString(err.Error()) {
					t.Fatalf("OpenAppend = %v; want %q", err, tc.want)
				}
				if tc.name != "directory" && tc.name != "fifo" && !errors.Is(err, ErrUnsafeLogFile) {
					t.Errorf("error does not wrap ErrUnsafeLogFile: %v", err)
				}
			}
			if got, _ := os.ReadFile(victim); string(got) != "secret\n" {
				t.Fatalf("the victim file now holds %q", got)
			}
			if _, err := os.Lstat(victim + ".new"); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("a file was created through the dangling symlink: %v", err)
			}
		})
	}
}

func write(t *testing.T, path, s string) {
	t.Helper()
	must(t, os.WriteFile(path, []byte(s), 0o644))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
