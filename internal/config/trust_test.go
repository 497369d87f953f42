package config

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// TestCheckDir: a state directory is trusted by the configuration file's
// rule, and stricter at the directory itself, where a sticky world-writable
// mode would let anyone plant the files it holds.
func TestCheckDir(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mode   os.FileMode // of the directory
		uid    int         // its owner
		parent os.FileMode // of its parent; 0 leaves it 0700
		want   string      // "" means trusted
	}{
		{"private", 0o700, 0, 0, ""},
		{"world-readable", 0o755, 0, 0, ""},
		{"not writable, traversable", 0o711, 0, 0, ""},
		{"world-writable", 0o777, 0, 0, `\(mode 0777\) lets group or others plant or replace files there: run .chmod go-w `},
		{"group-writable", 0o775, 0, 0, `\(mode 0775\) lets group or others`},
		{"sticky world-writable itself", 0o777 | os.ModeSticky, 0, 0, `\(mode 0777\) lets group or others`},
		{"owned by nobody", 0o755, 65534, 0, `is owned by uid 65534, not root, who could plant or replace files there: run .chown root `},
		{"parent world-writable", 0o755, 0, 0o777, `\(mode 0777\) lets group or others`},
		{"parent sticky world-writable, like /tmp", 0o755, 0, 0o777 | os.ModeSticky, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			dir := filepath.Join(parent, "state")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, tc.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(dir, tc.uid, tc.uid); err != nil {
				t.Fatalf("chown (tests run as root): %v", err)
			}
			if tc.parent != 0 {
				if err := os.Chmod(parent, tc.parent); err != nil {
					t.Fatal(err)
				}
			}
			err := CheckDir(dir)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("CheckDir = %v, want trusted", err)
				}
				return
			}
			if !errors.Is(err, ErrUnsafeDir) || !regexp.MustCompile(tc.want).MatchString(err.Error()) {
				t.Fatalf("CheckDir = %v; want ErrUnsafeDir matching %s", err, tc.want)
			}
		})
	}
	t.Run("missing dir is checked from its nearest parent", func(t *testing.T) {
		parent := t.TempDir()
		if err := CheckDir(filepath.Join(parent, "a", "b")); err != nil {
			t.Fatalf("CheckDir(missing below a private dir) = %v", err)
		}
		if err := os.Chmod(parent, 0o777); err != nil {
			t.Fatal(err)
		}
		if err := CheckDir(filepath.Join(parent, "a", "b")); !errors.Is(err, ErrUnsafeDir) {
			t.Fatalf("CheckDir(missing below a world-writable dir) = %v, want ErrUnsafeDir", err)
		}
	})
	t.Run("symlink into an unsafe directory", func(t *testing.T) {
		unsafe := t.TempDir()
		if err := os.Chmod(unsafe, 0o777); err != nil {
			t.Fatal(err)
		}
		target := filepath.Join(unsafe, "state")
		if err := os.Mkdir(target, 0o755); err != nil {
			t.Fatal(err)
		}
		link := filepath.Join(t.TempDir(), "state")
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
		if err := CheckDir(link); !errors.Is(err, ErrUnsafeDir) || !regexp.MustCompile(regexp.QuoteMeta(unsafe)+` \(mode 0777\)`).MatchString(err.Error()) {
			t.Fatalf("CheckDir(symlink) = %v; want %s named as unsafe", err, unsafe)
		}
	})
	t.Run("symlink planted in an unsafe directory", func(t *testing.T) {
		// The path as written goes through a world-writable directory whose
		// symlink points at a safe one: whoever can write there can
		// repoint it.
		unsafe := t.TempDir()
		if err := os.Chmod(unsafe, 0o777); err != nil {
			t.Fatal(err)
		}
		safe := t.TempDir()
		if err := os.Symlink(safe, filepath.Join(unsafe, "link")); err != nil {
			t.Fatal(err)
		}
		if err := CheckDir(filepath.Join(unsafe, "link")); !errors.Is(err, ErrUnsafeDir) {
			t.Fatalf("CheckDir(path through an unsafe dir) = %v, want ErrUnsafeDir", err)
		}
	})
	t.Run("relative", func(t *testing.T) {
		if err := CheckDir("run/state"); !errors.Is(err, ErrUnsafeDir) {
			t.Fatalf("CheckDir(relative) = %v, want ErrUnsafeDir", err)
		}
	})
}

// TestStateDirOf: the state directory of a configuration that does not load.
func TestStateDirOf(t *testing.T) {
	for _, tc := range []struct {
		name, text, want string
		ok               bool
	}{
		{"bad value elsewhere", "state-dir = \"/srv/rs\"\nlog-level = \"loud\"\n[[mounter]]\nname = 1\n", "/srv/rs", true},
		{"unknown key", "state-dir = \"/srv/rs/\"\nfrobnicate = true\n", "/srv/rs", true},
		{"no state-dir", "log-level = \"loud\"\n", DefaultStateDir, true},
		{"relative state-dir", "state-dir = \"rs\"\n", "", false},
		{"not TOML, state-dir line first", "state-dir = \"/srv/rs\"\n[[[\n", "/srv/rs", true},
		{"not TOML, state-dir line after a duplicate key", "log-level = \"a\"\nlog-level = \"b\"\n# the registry\n  state-dir = \"/srv/rs\" # here\n[[mounter]]\n", "/srv/rs", true},
		{"not TOML, state-dir only in a table", "x = [\n[[mounter]]\nstate-dir = \"/srv/rs\"\n", "", false},
		{"not TOML, no state-dir", "[[[\n", "", false},
		{"state-dir not a string", "state-dir = 3\n", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "config.toml")
			if err := os.WriteFile(path, []byte(tc.text), 0o644); err != nil {
				t.Fatal(err)
			}
			got, ok := StateDirOf(path)
			if got != tc.want || ok != tc.ok {
				t.Fatalf("StateDirOf = %q, %v; want %q, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
	if _, ok := StateDirOf(filepath.Join(t.TempDir(), "missing.toml")); ok {
		t.Fatal("StateDirOf(missing file) is ok")
	}
}
