package testutil

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// RequireRoot fails the test when it does not run as root. The e2e tests never
// skip: CI runs them as root, and a skipped test would hide a missing setup.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root (it mounts, runs runc and glusterd): run `make test`, or `go test` as root")
	}
}

var repoRoot = sync.OnceValues(func() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("get working directory: %w", err)
	}
	return findRepoRoot(wd)
})

// findRepoRoot walks up from dir to the first directory that holds go.mod.
func findRepoRoot(dir string) (string, error) {
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("look for go.mod in %s: %w", d, err)
		}
		if d == filepath.Dir(d) {
			return "", fmt.Errorf("no go.mod in %s or above: run the tests inside the repository", dir)
		}
	}
}

// RepoRoot returns the repository root: the nearest directory above the test's
// working directory that holds go.mod.
func RepoRoot(t testing.TB) string {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// Bin returns the absolute path of a binary built into the repository's bin/
// (runc-shared, mount-hook, mounter, libhostmount.so).
func Bin(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(RepoRoot(t), "bin", name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s is missing: run make first (%v)", p, err)
	}
	return p
}

// LookPath returns the path of the command name, or fails the test with
// what installs it.
func LookPath(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: %v (make deps installs what the tests use)", name, err)
	}
	return p
}
