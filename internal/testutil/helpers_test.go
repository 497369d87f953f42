package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/moby/sys/mountinfo"
)

func TestPoll(t *testing.T) {
	calls := 0
	if !Poll(time.Second, func() bool { calls++; return calls == 3 }) || calls != 3 {
		t.Errorf("Poll of a condition true at the third call: %d calls", calls)
	}
	start := time.Now()
	if Poll(50*time.Millisecond, func() bool { return false }) {
		t.Error("Poll of a condition never true reported true")
	}
	if d := time.Since(start); d < 50*time.Millisecond || d > 2*time.Second {
		t.Errorf("Poll with a 50ms timeout returned after %v", d)
	}
}

// fatalTB records the first Fatalf and stops its goroutine, as testing.T does.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}
func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestEventually(t *testing.T) {
	run := func(cond func() (bool, string)) string {
		f := &fatalTB{TB: t}
		done := make(chan struct{})
		go func() { defer close(done); Eventually(f, 30*time.Millisecond, "the condition", cond) }()
		<-done
		return f.msg
	}
	n := 0
	if msg := run(func() (bool, string) { n++; return n > 2, "not yet" }); msg != "" {
		t.Errorf("a condition that comes true failed the test: %q", msg)
	}
	n = 0
	msg := run(func() (bool, string) { n++; return false, fmt.Sprintf("call %d", n) })
	if want := fmt.Sprintf("waited 30ms for the condition: call %d", n); n < 2 || msg != want {
		t.Errorf("a condition never true: Fatalf with %q, want %q", msg, want)
	}
}

func TestBelow(t *testing.T) {
	for _, tc := range []struct {
		path, root string
		want       bool
	}{
		{"/tmp/a", "/tmp", true},
		{"/tmp", "/tmp", true},
		{"/tmp/a/b", "/tmp/a/", true},
		{"/tmp-evil/a", "/tmp", false},
		{"/tmp/..a", "/tmp", true},
		{"/tmp/../etc", "/tmp", false},
		{"/etc", "/", true},
		{"/", "/tmp", false},
	} {
		if got := below(tc.path, tc.root); got != tc.want {
			t.Errorf("below(%q, %q) = %v, want %v", tc.path, tc.root, got, tc.want)
		}
	}
}

func TestPeerGroup(t *testing.T) {
	for _, tc := range []struct {
		optional string
		want     int
	}{
		{"", 0},
		{"shared:7", 7},
		{"master:3", 0},
		{"shared:12 master:3", 12},
		{"master:3 shared:12", 12},
	} {
		if got := PeerGroup(&mountinfo.Info{Optional: tc.optional}); got != tc.want {
			t.Errorf("PeerGroup(%q) = %d, want %d", tc.optional, got, tc.want)
		}
	}
	if PeerGroup(nil) != 0 {
		t.Error("PeerGroup(nil) != 0")
	}
}

// TestStat: a command name with spaces and parentheses does not shift the
// fields that follow it.
func TestStat(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "a) R 1 (b")
	if err := os.Symlink(sleep, link); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(link, "10")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	p, err := findProc(cmd.Process.Pid)
	if err != nil || !p.alive() {
		t.Fatalf("findProc: %v, alive %v", err, p.alive())
	}
	Eventually(t, 5*time.Second, "the child to sleep", func() (bool, string) {
		state, ppid, start, err := stat(cmd.Process.Pid)
		return err == nil && state == 'S' && ppid == os.Getpid() && start == p.start,
			fmt.Sprintf("stat: state %c, ppid %d, start %d, %v; want S, %d, %d", state, ppid, start, err, os.Getpid(), p.start)
	})
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if p.alive() {
		t.Error("a reaped process counts as alive")
	}
}

func TestMountOf(t *testing.T) {
	for path, want := range map[string]string{"/": "/", "/proc/self/stat": "/proc", "/proc": "/proc"} {
		if m := MountOf(t, path); m.Mountpoint != want {
			t.Errorf("MountOf(%q) = %s, want %s", path, m.Mountpoint, want)
		}
	}
}
