package registry

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeCgroup writes <proc>/<pid>/cgroup and files below a cgroup dir.
func fakeCgroup(t *testing.T, pid string, procCgroup string, files map[string]string) (proc, cg string) {
	t.Helper()
	proc, cg = t.TempDir(), t.TempDir()
	write := func(p, data string) {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(proc, pid, "cgroup"), procCgroup)
	for name, data := range files {
		write(filepath.Join(cg, name), data)
	}
	return proc, cg
}

// hybrid is /proc/PID/cgroup of a runc container on a hybrid host like this
// one: v1 controllers, the v2 hierarchy empty.
const hybrid = "9:name=systemd:/ctr\n8:pids:/ctr\n6:freezer:/runc/ctr\n4:memory:/ctr\n1:cpu,cpuacct:/ctr\n0::/\n"

func TestFreezerState(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cgroup  string
		files   map[string]string
		want    string
		wantErr string
	}{
		{"v1 thawed", hybrid, map[string]string{"freezer/runc/ctr/freezer.state": "THAWED\n"}, "running", ""},
		{"v1 frozen", hybrid, map[string]string{"freezer/runc/ctr/freezer.state": "FROZEN\n"}, "paused", ""},
		{"v1 freezing", hybrid, map[string]string{"freezer/runc/ctr/freezer.state": "FREEZING\n"}, "paused", ""},
		// The v1 freezer wins over the (empty) v2 hierarchy of a hybrid host.
		{"hybrid, v2 root frozen file ignored", hybrid, map[string]string{
			"freezer/runc/ctr/freezer.state": "THAWED\n", "cgroup.events": "populated 1\nfrozen 1\n"}, "running", ""},
		{"v1 freezer among other controllers", "3:cpu,freezer:/a\n", map[string]string{"freezer/a/freezer.state": "FROZEN"}, "paused", ""},
		{"v1 freezer not mounted where expected", hybrid, nil, "running", ""},
		{"v2 frozen", "0::/system.slice/ctr\n", map[string]string{"system.slice/ctr/cgroup.events": "populated 1\nfrozen 1\n"}, "paused", ""},
		{"v2 thawed", "0::/system.slice/ctr\n", map[string]string{"system.slice/ctr/cgroup.events": "populated 1\nfrozen 0\n"}, "running", ""},
		{"v2 kernel without freezer", "0::/ctr\n", map[string]string{"ctr/cgroup.events": "populated 1\n"}, "running", ""},
		// A path with .. stays below the cgroup dir.
		{"path cannot leave the cgroup dir", "0::/../../etc\n", map[string]string{"etc/cgroup.events": "frozen 1\n"}, "paused", ""},
		{"no freezer at all", "1:cpu:/a\n", nil, "running", ""},
		{"garbage lines", "nonsense\nalso:nonsense\n", nil, "running", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proc, cg := fakeCgroup(t, "42", tc.cgroup, tc.files)
			got, err := freezerState(proc, cg, 42)
			if got != tc.want || (err != nil) != (tc.wantErr != "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("freezerState = %q, %v; want %q, error %q", got, err, tc.want, tc.wantErr)
			}
		})
	}
	if _, err := freezerState(t.TempDir(), t.TempDir(), 42); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("freezerState of a missing process: %v, want not-exist", err)
	}
	// The real thing: this test process is not frozen.
	if got, err := freezerState("/proc", "/sys/fs/cgroup", os.Getpid()); got != "running" || err != nil {
		t.Errorf("freezerState(self) = %q, %v; want running", got, err)
	}
}

// TestCheckKernel: with Kernel set, the verdict comes from /proc and the
// freezer, and the runtime is never run (the record names none that exists).
func TestCheckKernel(t *testing.T) {
	proc := fakeProc(t, map[int]string{
		100: statLine(100, 'S', 5000),
		101: statLine(101, 'S', 5000),
		102: statLine(102, 'S', 5000), // its cgroup file is missing: it exited
		103: statLine(103, 'Z', 5000),
	})
	cg := t.TempDir()
	for pid, state := range map[string]string{"100": "THAWED", "101": "FROZEN"} {
		if err := os.WriteFile(filepath.Join(proc, pid, "cgroup"), []byte("6:freezer:/c"+pid+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(cg, "freezer", "c"+pid), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(cg, "freezer", "c"+pid, "freezer.state"), []byte(state+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c := &Checker{ProcDir: proc, CgroupDir: cg, Kernel: true}
	for _, tc := range []struct {
		pid    int
		want   Liveness
		reason string
	}{
		{100, Running, ""},
		{101, NotRunning, "frozen (paused)"},
		{102, Stale, "is gone"},
		{103, Stale, "has exited"},
		{104, Stale, "is gone"},
	} {
		v := c.Check(&Record{ID: "m", PID: tc.pid, PIDStart: 5000, Runtime: "/nonexistent/runc"})
		if v.Liveness != tc.want || !strings.Contains(v.Reason, tc.reason) {
			t.Errorf("pid %d: Check = %v %q, want %v containing %q", tc.pid, v.Liveness, v.Reason, tc.want, tc.reason)
		}
	}
}
