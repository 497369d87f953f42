package runtime

import (
	"bytes"
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// DefaultRuntime is the delegate used when the config names none.
const DefaultRuntime = "runc"

// FallbackPath is searched when PATH is unset or empty: engines sometimes
// start runtimes with an empty environment.
const FallbackPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// FindRuntime resolves the delegate runtime: name is an absolute path, used
// as is, or a bare name looked up in $PATH (FallbackPath when PATH is empty).
// "" means DefaultRuntime. self is the running runc-shared binary
// (os.Executable()); a candidate that is self (same file through symlinks or
// hard links, or a byte-identical copy) is skipped, since exec'ing it would
// loop forever. That happens when runc-shared is installed as "runc" earlier
// in PATH than the real one.
func FindRuntime(name, self string) (string, error) {
	name = cmp.Or(name, DefaultRuntime)
	if strings.Contains(name, "/") {
		return checkAbsolute(name, self)
	}
	path := cmp.Or(os.Getenv("PATH"), FallbackPath)
	var skipped []string
	for _, dir := range filepath.SplitList(path) {
		// Relative entries (including "" for the current directory) would
		// depend on the engine's working directory: ignore them.
		if !filepath.IsAbs(dir) {
			continue
		}
		cand := filepath.Join(dir, name)
		if IsExecutable(cand) != nil {
			continue
		}
		if isSelf(cand, self) {
			skipped = append(skipped, cand)
			continue
		}
		return cand, nil
	}
	if len(skipped) > 0 {
		return "", fmt.Errorf("runtime %q: every match in PATH is runc-shared itself (%s): set `runtime` in the runc-shared config to the real runc's absolute path, e.g. runtime = \"/usr/sbin/runc\"",
			name, strings.Join(skipped, ", "))
	}
	return "", fmt.Errorf("runtime %q not found in PATH %q: install it or set `runtime` in the runc-shared config to its absolute path", name, path)
}

func checkAbsolute(name, self string) (string, error) {
	if !filepath.IsAbs(name) {
		return "", fmt.Errorf("runtime %q: a path must be absolute (the engine's working directory varies): set `runtime` in the runc-shared config to a name on PATH or an absolute path", name)
	}
	if err := IsExecutable(name); err != nil {
		return "", fmt.Errorf("runtime %q: %w: set `runtime` in the runc-shared config to the real runc", name, err)
	}
	if isSelf(name, self) {
		return "", fmt.Errorf("runtime %q is runc-shared itself: set `runtime` in the runc-shared config to the real runc, e.g. runtime = \"/usr/sbin/runc\"", name)
	}
	return name, nil
}

// IsExecutable checks that path is a regular file we may execute; the
// error says which it is not.
func IsExecutable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	if err := unix.Access(path, unix.X_OK); err != nil {
		return fmt.Errorf("%s is not executable: %w", path, err)
	}
	return nil
}

// isSelf reports whether cand is the binary self: the same inode after
// following symlinks, or a copy with the same content.
func isSelf(cand, self string) bool {
	if self == "" {
		return false
	}
	c, errC := os.Stat(cand) // Stat follows symlinks, like EvalSymlinks.
	s, errS := os.Stat(self)
	if errC != nil || errS != nil {
		return false
	}
	// A copy: compare contents only when the sizes match, so the common
	// case (runc and runc-shared differ in size) costs two stats.
	return os.SameFile(c, s) || c.Size() == s.Size() && sameContent(cand, self)
}

// sameContent compares two files of the same size whole: it runs only in
// the rare case that a candidate is as large as runc-shared.
func sameContent(a, b string) bool {
	da, err := os.ReadFile(a)
	if err != nil {
		return false
	}
	db, err := os.ReadFile(b)
	return err == nil && bytes.Equal(da, db)
}

// ExecAs returns the function that replaces the current process with the
// delegate at path, running it with argv and env; it returns only on
// failure. Nothing is written to stdout: it belongs to the delegate.
//
// called is runc-shared's own argv[0]. runc prints its argv[0] in its
// messages (`/usr/sbin/runc: "state" requires exactly 1 argument(s)`), so
// the delegate gets the name its caller would have used had it called the
// delegate directly: a caller that names runc-shared by a path (engines exec
// the path they are configured with) names the delegate by its path too; one
// that uses a bare name looked up in PATH (a shell) uses its bare name.
func ExecAs(called string) func(path string, argv, env []string) error {
	return func(path string, argv, env []string) error {
		argv0 := path
		if !strings.Contains(called, "/") {
			argv0 = filepath.Base(path)
		}
		if err := unix.Exec(path, append([]string{argv0}, argv...), env); err != nil {
			return fmt.Errorf("exec runtime %s: %w", path, err)
		}
		return nil
	}
}
