package testutil

import (
	"fmt"
	"go/parser"
	"go/token"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
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
		if got := Below(tc.path, tc.root); got != tc.want {
			t.Errorf("Below(%q, %q) = %v, want %v", tc.path, tc.root, got, tc.want)
		}
	}
}

// sleepAs starts `sleep 60` under the command name name (a symlink to
// sleep); cleanup kills it.
func sleepAs(t *testing.T, name string) *exec.Cmd {
	t.Helper()
	link := filepath.Join(t.TempDir(), name)
	if err := os.Symlink(LookPath(t, "sleep"), link); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(link, "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd
}

// TestStat: a command name with spaces and parentheses does not shift the
// fields that follow it.
func TestStat(t *testing.T) {
	cmd := sleepAs(t, "a) R 1 (b")
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

// fatalOf runs f with a fatalTB on a goroutine of its own, as t.Fatal ends
// the goroutine, and returns the message f failed with ("" when it passed).
func fatalOf(t *testing.T, f func(tb testing.TB)) string {
	ftb := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() { defer close(done); f(ftb) }()
	<-done
	return ftb.msg
}

func TestWaitSocket(t *testing.T) {
	dir := t.TempDir()
	log := func() string { return "the log" }
	sock := filepath.Join(dir, "s.sock")
	go func() {
		time.Sleep(20 * time.Millisecond)
		if l, err := net.Listen("unix", sock); err == nil {
			t.Cleanup(func() { l.Close() })
		}
	}()
	if msg := fatalOf(t, func(tb testing.TB) { WaitSocket(tb, sock, 5*time.Second, nil, log) }); msg != "" {
		t.Errorf("a socket that comes: %q", msg)
	}
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	msg := fatalOf(t, func(tb testing.TB) { WaitSocket(tb, plain, 30*time.Millisecond, nil, log) })
	if want := "waited 30ms for the socket " + plain + ":\nthe log"; msg != want {
		t.Errorf("a file that is no socket: %q, want %q", msg, want)
	}
	// A socket file nobody serves on, as a killed server leaves behind.
	stale := filepath.Join(dir, "stale.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
	msg = fatalOf(t, func(tb testing.TB) { WaitSocket(tb, stale, 30*time.Millisecond, nil, log) })
	if want := "waited 30ms for the socket " + stale + ":\nthe log"; msg != want {
		t.Errorf("a socket nobody serves on: %q, want %q", msg, want)
	}
	exited := make(chan struct{})
	close(exited)
	msg = fatalOf(t, func(tb testing.TB) { WaitSocket(tb, filepath.Join(dir, "none"), time.Minute, exited, log) })
	if want := "the server exited before it served on " + filepath.Join(dir, "none") + ":\nthe log"; msg != want {
		t.Errorf("a server that exited: %q, want %q", msg, want)
	}
}

// TestProcesses: Alive, Pids, Exited and Stop on a child of the test.
func TestProcesses(t *testing.T) {
	cmd := sleepAs(t, "rstest-processes") // a name of its own, for Pids to find it by
	marked := cmd.Path
	pid := cmd.Process.Pid
	if !Alive(pid) {
		t.Errorf("Alive(%d) of a running child = false", pid)
	}
	if got := Pids(func(argv []string) bool { return argv[0] == marked }); !slices.Equal(got, []int{pid}) {
		t.Errorf("Pids = %v, want [%d]", got, pid)
	}
	exited := Exited(pid)
	select {
	case <-exited:
		t.Fatal("Exited is closed while the child runs")
	case <-time.After(50 * time.Millisecond):
	}
	if !Stop(pid, 5*time.Second) {
		t.Errorf("Stop(%d) of a child that takes SIGTERM = false", pid)
	}
	// Not reaped yet: a zombie, which counts as gone.
	if Alive(pid) {
		t.Errorf("Alive(%d) of a stopped child = true", pid)
	}
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		t.Error("Exited not closed 5s after the child was stopped")
	}
	if got := Pids(func(argv []string) bool { return argv[0] == marked }); len(got) != 0 {
		t.Errorf("Pids after Stop = %v, want none", got)
	}
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []time.Duration
		want time.Duration
	}{
		{[]time.Duration{3}, 3},
		{[]time.Duration{5, 1, 3}, 3},
		{[]time.Duration{4, 1, 3, 2}, 2},
	} {
		in := slices.Clone(tc.in)
		if got := Median(in); got != tc.want || !slices.Equal(in, tc.in) {
			t.Errorf("Median(%v) = %v (input now %v), want %v and the input unchanged", tc.in, got, in, tc.want)
		}
	}
}

func TestRuns(t *testing.T) {
	const env = "RSTEST_RUNS"
	for _, tc := range []struct {
		value, fatal string
		want         int
	}{
		{"", "", 21},
		{"30", "", 30},
		{"14", `RSTEST_RUNS="14": want a number of at least 15`, 0},
		{"x", `RSTEST_RUNS="x": want a number of at least 15`, 0},
	} {
		t.Setenv(env, tc.value)
		var got int
		if msg := fatalOf(t, func(tb testing.TB) { got = Runs(tb, env, 21) }); msg != tc.fatal || got != tc.want {
			t.Errorf("Runs with %s=%q = %d, failing with %q; want %d, %q", env, tc.value, got, msg, tc.want, tc.fatal)
		}
	}
}

// TestImportsNothingInternal: the package's own files import no package of
// this module, so the tests of any package, the lowest included, can use it
// without an import cycle.
func TestImportsNothingInternal(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			if path := strings.Trim(imp.Path.Value, `"`); strings.HasPrefix(path, "github.com/runc-shared/runc-shared/") {
				t.Errorf("%s imports %s: testutil must depend on nothing internal", name, path)
			}
		}
	}
}
