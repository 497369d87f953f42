//go:build bench

package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runc-shared/runc-shared/internal/testutil"
)

// profile runs c once under `strace -f -c` and once tracing openat, and
// logs the syscall summary and how often the process tree opened a
// mountinfo file (reading one costs O(mounts) in the kernel and the
// parser). Enabled by -bench.profile; after returns the host to the state
// before c (an unmount).
// follow traces the children too (strace -f); not for a command that
// leaves a daemon behind (a FUSE mount), which strace would wait for.
func profile(t testing.TB, label string, c Cmd, follow bool, after func() error) {
	t.Helper()
	if !*flagProf {
		return
	}
	out, err := os.CreateTemp("", "rsbench-strace-")
	if err != nil {
		t.Fatal(err)
	}
	out.Close()
	defer os.Remove(out.Name())
	run := func(args ...string) string {
		s := c
		pre := []string{"strace", "-o", out.Name()}
		if follow {
			pre = append(pre, "-f")
		}
		s.Argv = append(append(pre, args...), c.Argv...)
		if r, err := s.Run(); err != nil {
			t.Logf("profile %s: %v: %s", label, err, r.Output)
		}
		if after != nil {
			if err := after(); err != nil {
				t.Fatal(err)
			}
		}
		b, _ := os.ReadFile(out.Name())
		return string(b)
	}
	summary := strings.Split(run("-c"), "\n")
	opens := 0
	for _, l := range strings.Split(run("-e", "trace=openat"), "\n") {
		if strings.Contains(l, "mountinfo\"") {
			opens++
		}
	}
	t.Logf("profile %s: %d opens of a mountinfo file\n%s", label, opens, strings.Join(summary[:min(len(summary), 16)], "\n"))
}

// describeDaemon logs the command line, cgroups and scheduling of the FUSE
// daemon serving target: the routed one runs in the mounter container.
func describeDaemon(t testing.TB, target string) {
	t.Helper()
	for _, pid := range testutil.Pids(func(argv []string) bool { return filepath.Clean(argv[len(argv)-1]) == target }) {
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		cgroup, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
		status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		var keep []string
		for _, l := range strings.Split(string(status), "\n") {
			if strings.HasPrefix(l, "Threads:") || strings.HasPrefix(l, "Cpus_allowed_list:") || strings.HasPrefix(l, "Seccomp:") || strings.HasPrefix(l, "CapEff:") {
				keep = append(keep, l)
			}
		}
		var warn []string
		for _, a := range strings.Split(string(cmdline), "\x00") {
			if log, ok := strings.CutPrefix(a, "--log-file="); ok {
				b, _ := os.ReadFile(log)
				for _, l := range strings.Split(string(b), "\n") {
					if strings.Contains(l, "] W [") || strings.Contains(l, "] E [") {
						warn = append(warn, l)
					}
				}
			}
		}
		t.Logf("FUSE daemon of %s: pid %d\n  argv: %s\n  %s\n  cgroups: %s\n  log warnings and errors:\n  %s", target, pid,
			strings.ReplaceAll(strings.TrimSpace(string(cmdline)), "\x00", " "), strings.Join(keep, "; "),
			strings.ReplaceAll(strings.TrimSpace(string(cgroup)), "\n", ", "), strings.Join(warn, "\n  "))
	}
}
