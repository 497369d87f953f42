package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"

	"github.com/BurntSushi/toml"
)

// ErrUnsafeDir is wrapped by the error for a directory that others could
// write: the state directory holds the registry, whose records name the
// containers that mounts are run in, and the hook's log.
var ErrUnsafeDir = errors.New("unsafe directory")

// CheckDir refuses a directory whose files others could write, replace or
// plant, by the rule the configuration file's directories follow (checkDirs):
// dir and every directory above it must be owned by a trusted user and not
// writable by group or others; a sticky directory is accepted above dir (no
// one can rename or remove another's file there) but not as dir itself,
// where anyone could create the files it is meant to hold.
//
// Both the path as written and its symlink-resolved form are checked, so a
// symlink on the path counts too (by its owner and its directory). A dir
// that does not exist yet is checked from its nearest existing parent: check
// it again after creating it.
func CheckDir(dir string) error {
	if !filepath.IsAbs(dir) {
		return fmt.Errorf("directory %q: %w: not an absolute path", dir, ErrUnsafeDir)
	}
	dir = filepath.Clean(dir)
	existing := dir
	for {
		_, err := os.Lstat(existing)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrNotExist) || existing == "/" {
			return fmt.Errorf("directory %s: %w: %w", dir, ErrUnsafeDir, err)
		}
		existing = filepath.Dir(existing)
	}
	canonical, err := filepath.EvalSymlinks(existing)
	if err != nil {
		return fmt.Errorf("directory %s: %w: cannot tell which directories hold it: %w", dir, ErrUnsafeDir, err)
	}
	strict := existing == dir
	for _, start := range []string{canonical, existing} {
		if bad := firstUnsafeDir(start, strict); bad != nil {
			return bad.error("directory "+dir, ErrUnsafeDir, "plant or replace files there", "choose another directory")
		}
	}
	if fi, err := os.Stat(canonical); err != nil || !fi.IsDir() {
		return fmt.Errorf("directory %s: %w: %s is not a directory", dir, ErrUnsafeDir, canonical)
	}
	return nil
}

// StateDirOf returns the state-dir named in the configuration file at path
// (DefaultStateDir when it names none) without validating the rest of the
// file, for the one caller that must find the registry while the
// configuration does not load: mount-hook's poststop, which cleans up after a
// mounter that started under a configuration since broken. ok is false when
// the file cannot be read or is not TOML, or state-dir is not an absolute
// path. The file may be one Load refuses as unsafe: the caller must check
// the directory (CheckDir) and trust nothing in it that CheckDir does not
// cover.
func StateDirOf(path string) (dir string, ok bool) {
	f, fi, err := open(path)
	if err != nil {
		return "", false
	}
	defer f.Close()
	if !fi.Mode().IsRegular() {
		return "", false
	}
	data, err := read(path, f)
	if err != nil {
		return "", false
	}
	var raw struct {
		StateDir *string `toml:"state-dir"`
	}
	if _, err := toml.Decode(blankComments(data), &raw); err != nil {
		// Not TOML (a typo elsewhere): a plain top-level state-dir line
		// before the first table still says where the registry is.
		m := stateDirLine.FindSubmatch(data)
		if m == nil {
			return "", false
		}
		dir := string(m[1])
		raw.StateDir = &dir
	}
	if raw.StateDir == nil {
		return DefaultStateDir, true
	}
	if !filepath.IsAbs(*raw.StateDir) {
		return "", false
	}
	return filepath.Clean(*raw.StateDir), true
}

// stateDirLine is a basic-string state-dir key among the top-level keys:
// (?s) and the leading [^\[]* keep it before the first table header.
var stateDirLine = regexp.MustCompile(`\A(?:[^\[]*\n)?[ \t]*state-dir[ \t]*=[ \t]*"([^"\\\n]*)"[ \t]*(?:#[^\n]*)?(?:\n|\z)`)
