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
	procsBefore := findProcs(func([]string) bool { return true })
	tmp, err := tempRoot()
	if err != nil {
		t.Fatal(err)
	}
	// t.TempDir's parent and our TempDir prefix are unique to this test binary.
	ours := append(tempDirsOf(tmp, os.Getpid()), filepath.Dir(t.TempDir())+"/")
	t.Cleanup(func() {
		t.Helper()
		after, err := mountinfo.GetMounts(nil)
		if err != nil {
			t.Error(err)
			return
		}
		for _, m := range DiffMounts(after, before) {
			if !Below(m.Mountpoint, tmp) || slices.ContainsFunc(ours, func(p string) bool { return strings.HasPrefix(m.Mountpoint, p) }) {
				t.Errorf("leaked mount: %s (%s %s), mount table had %d entries, now %d",
					m.Mountpoint, m.FSType, m.Source, len(before), len(after))
			}
		}
		for _, m := range DiffMounts(before, after) {
			if !Below(m.Mountpoint, tmp) {
				t.Errorf("mount disappeared during the test: %s (%s %s)", m.Mountpoint, m.FSType, m.Source)
			}
		}
		for _, p := range findProcs(func([]string) bool { return true }) {
			if slices.Contains(procsBefore, p) || !p.alive() {
				continue
			}
			_, ppid, _, _ := stat(p.pid)
			if uses, what := usesDirs(p.pid, ours); uses || ppid == os.Getpid() {
				t.Errorf("leaked process %d: %s", p.pid, what)
			}
		}
	})
}

// DiffMounts returns the mounts of a whose mount ID is not in b.
func DiffMounts(a, b []*mountinfo.Info) []*mountinfo.Info {
	ids := map[int]bool{}
	for _, m := range b {
		ids[m.ID] = true
	}
	return slices.DeleteFunc(slices.Clone(a), func(m *mountinfo.Info) bool { return ids[m.ID] })
}

// tempDirsOf returns the prefixes of the directories that the test binary
// with PID pid makes below tmp: TempDir's and the rootfs cache's.
func tempDirsOf(tmp string, pid int) []string {
	return []string{filepath.Join(tmp, fmt.Sprintf("rstest-%d-", pid)), filepath.Join(tmp, fmt.Sprintf("%s%d-", cachePrefix, pid))}
}

// usesDirs tells whether process pid has one of dirs on its command line or
// as its root (a container init: its rootfs), and describes the process.
func usesDirs(pid int, dirs []string) (bool, string) {
	argv := cmdline(pid)
	root, _ := os.Readlink(fmt.Sprintf("/proc/%d/root", pid))
	line := strings.Join(argv, " ")
	uses := slices.ContainsFunc(dirs, func(d string) bool { return strings.HasPrefix(root, d) || strings.Contains(line, d) })
	return uses, fmt.Sprintf("%q (root %s)", argv, root)
}
