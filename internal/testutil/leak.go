package testutil

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moby/sys/mountinfo"
)

// CheckLeaks records the host mount table and process list and, when the test and
// all its cleanups are done, fails the test for any mount or process it left
// behind. Call it first in a test, so that its check runs after every other cleanup.
//
// Other work may run on the same machine at the same time (other developers' tests),
// so it only reports new mounts outside the temp dir or below this test's own temp
// dirs, mounts outside the temp dir that disappeared, and new live processes that are
// children of this test binary, or have its temp dirs on their command line or as
// their root (container inits). Children of tests running in parallel in the same
// binary would count too: do not combine it with t.Parallel.
func CheckLeaks(t testing.TB) {
	t.Helper()
	before, err := mountinfo.GetMounts(nil)
	if err != nil {
		t.Fatal(err)
	}
	procsBefore := map[proc]bool{}
	for _, p := range findProcs(func([]string) bool { return true }) {
		procsBefore[p] = true
	}
	tmp, err := tempRoot()
	if err != nil {
		t.Fatal(err)
	}
	// t.TempDir's parent and our TempDir prefix are unique to this test binary.
	ours := []string{filepath.Dir(t.TempDir()) + "/", filepath.Join(tmp, fmt.Sprintf("rstest-%d-", os.Getpid())),
		filepath.Join(tmp, fmt.Sprintf("%s%d-", cachePrefix, os.Getpid()))}
	t.Cleanup(func() {
		t.Helper()
		after, err := mountinfo.GetMounts(nil)
		if err != nil {
			t.Error(err)
			return
		}
		for _, m := range DiffMounts(after, before) {
			if !below(m.Mountpoint, tmp) || hasAnyPrefix(m.Mountpoint, ours) {
				t.Errorf("leaked mount: %s (%s %s), mount table had %d entries, now %d",
					m.Mountpoint, m.FSType, m.Source, len(before), len(after))
			}
		}
		for _, m := range DiffMounts(before, after) {
			if !below(m.Mountpoint, tmp) {
				t.Errorf("mount disappeared during the test: %s (%s %s)", m.Mountpoint, m.FSType, m.Source)
			}
		}
		for _, p := range findProcs(func([]string) bool { return true }) {
			if procsBefore[p] || !p.alive() {
				continue
			}
			argv := cmdline(p.pid)
			root, _ := os.Readlink(fmt.Sprintf("/proc/%d/root", p.pid)) // a container init: its rootfs
			if parent(p.pid) == os.Getpid() || hasAnyPrefix(root, ours) || hasAnyPrefixInside(strings.Join(argv, " "), ours) {
				t.Errorf("leaked process %d: %q", p.pid, argv)
			}
		}
	})
}

// diffMounts returns the mounts of a whose mount ID is not in b.
func DiffMounts(a, b []*mountinfo.Info) []*mountinfo.Info {
	ids := map[int]bool{}
	for _, m := range b {
		ids[m.ID] = true
	}
	var out []*mountinfo.Info
	for _, m := range a {
		if !ids[m.ID] {
			out = append(out, m)
		}
	}
	return out
}

func hasAnyPrefix(s string, prefixes []string) bool {
	return slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(s, p) })
}

func hasAnyPrefixInside(s string, prefixes []string) bool {
	return slices.ContainsFunc(prefixes, func(p string) bool { return strings.Contains(s, p) })
}

// parent returns the parent PID of pid, or 0.
func parent(pid int) int {
	_, ppid, _, _ := stat(pid)
	return ppid
}
