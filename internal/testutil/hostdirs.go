package testutil

import (
	"errors"
	"io/fs"
	"os"
	"slices"
	"strings"
	"testing"
)

// KeepHostDirsClean removes, at cleanup, those of dirs that do not exist now
// and are empty then: engines leave state directories behind on the host
// (dockerd's /run/docker/plugins, the containerd shim's /run/containerd/s)
// even when all their state is elsewhere.
func KeepHostDirsClean(t testing.TB, dirs ...string) {
	t.Helper()
	var created []string
	for _, d := range dirs {
		if _, err := os.Lstat(d); errors.Is(err, fs.ErrNotExist) {
			created = append(created, d)
		}
	}
	t.Cleanup(func() {
		// Deepest first.
		slices.SortFunc(created, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
		for _, d := range created {
			if err := os.Remove(d); err != nil && !errors.Is(err, fs.ErrNotExist) {
				t.Logf("leaving %s: %v", d, err)
			}
		}
	})
}
