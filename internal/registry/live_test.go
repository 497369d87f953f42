package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// statLine is a /proc/<pid>/stat line with state and start time; the command
// name holds spaces and a ')' as real ones may.
func statLine(pid int, state byte, start uint64) string {
	return fmt.Sprintf("%d (my (weird) cmd) %c 1 %d %d 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 %d 1000000 100 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n",
		pid, state, pid, pid, start)
}

// fakeProc writes a proc dir holding stat files for the given processes.
func fakeProc(t *testing.T, procs map[int]string) string {
	t.Helper()
	dir := t.TempDir()
	for pid, line := range procs {
		d := filepath.Join(dir, fmt.Sprint(pid))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "stat"), []byte(line), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestProcStat(t *testing.T) {
	proc := fakeProc(t, map[int]string{
		10: statLine(10, 'S', 123456),
		11: "11 (short) R 1 2",
		12: "12 no parenthesis",
	})
	state, start, err := procStat(proc, 10)
	if err != nil || state != 'S' || start != 123456 {
		t.Errorf("procStat = %c, %d, %v; want S, 123456", state, start, err)
	}
	for _, pid := range []int{11, 12} {
		if _, _, err := procStat(proc, pid); err == nil {
			t.Errorf("procStat of a malformed line %d: no error", pid)
		}
	}
	if _, _, err := procStat(proc, 13); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("procStat of a missing pid: %v", err)
	}
	// The real thing: our own start time is stable and nonzero.
	a, err := ProcStart(os.Getpid())
	if err != nil || a == 0 {
		t.Fatalf("ProcStart(self) = %d, %v", a, err)
	}
	if b, _ := ProcStart(os.Getpid()); a != b {
		t.Errorf("ProcStart(self) changed: %d, %d", a, b)
	}
}

func TestCheck(t *testing.T) {
	proc := fakeProc(t, map[int]string{
		100: statLine(100, 'S', 5000),
		101: statLine(101, 'Z', 5000),
		102: statLine(102, 'S', 9999),
	})
	state := func(status string, err error) func(*Record) (string, error) {
		return func(*Record) (string, error) { return status, err }
	}
	calledState := func(*Record) (string, error) { panic("the runtime must not run when /proc decides") }
	for _, tc := range []struct {
		name   string
		rec    Record
		state  func(*Record) (string, error)
		want   Liveness
		reason string
	}{
		{"running", Record{PID: 100, PIDStart: 5000}, state("running", nil), Running, ""},
		{"running, start time unknown", Record{PID: 100}, state("running", nil), Running, ""},
		{"pid gone", Record{PID: 200, PIDStart: 5000}, calledState, Stale, "init process 200 is gone"},
		{"no pid", Record{}, calledState, Stale, "no init PID"},
		{"zombie", Record{PID: 101, PIDStart: 5000}, calledState, Stale, "has exited"},
		{"pid reused", Record{PID: 102, PIDStart: 5000}, calledState, Stale, "now belongs to another process"},
		{"runtime says stopped", Record{PID: 100, PIDStart: 5000, Runtime: "/usr/sbin/runc"}, state("stopped", nil), Stale, "the runtime reports it stopped"},
		{"runtime does not know it", Record{PID: 100, PIDStart: 5000}, state("", fmt.Errorf("runc state m: %w", ErrNoContainer)), Stale, "does not know"},
		{"created, not started yet", Record{PID: 100, PIDStart: 5000, Runtime: "runc"}, state("created", nil), NotRunning, "the runtime reports it created"},
		{"paused", Record{PID: 100, PIDStart: 5000, Runtime: "runc"}, state("paused", nil), NotRunning, "paused"},
		{"runtime fails", Record{PID: 100, PIDStart: 5000}, state("", errors.New("exec: runc: not found")), Unknown, "not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &Checker{ProcDir: proc, State: tc.state}
			v := c.Check(&tc.rec)
			if v.Liveness != tc.want || !strings.Contains(v.Reason, tc.reason) {
				t.Errorf("Check = %v %q, want %v containing %q", v.Liveness, v.Reason, tc.want, tc.reason)
			}
		})
	}
}

// fakeRuntime writes a shell script that plays `runc state`.
func fakeRuntime(t *testing.T, script string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "runc")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+script+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRuntimeState(t *testing.T) {
	argsFile := filepath.Join(t.TempDir(), "args")
	for _, tc := range []struct {
		name, script, root string
		want               string
		wantArgs           string
		err                error
		errText            string
	}{
		{"running with root", `echo "$@" > ` + argsFile + `; echo '{"ociVersion":"1.0.2","id":"m","pid":1,"status":"running"}'`, "/run/r",
			"running", "--root /run/r state m", nil, ""},
		{"default root", `echo "$@" > ` + argsFile + `; echo '{"status":"created"}'`, "",
			"created", "state m", nil, ""},
		{"runc: no such container", `echo 'container does not exist' >&2; exit 1`, "", "", "", ErrNoContainer, ""},
		{"crun: no such container", `echo 'error opening file: No such file or directory' >&2; exit 1`, "", "", "", ErrNoContainer, ""},
		{"other failure", `echo 'permission denied' >&2; exit 1`, "", "", "", nil, "permission denied"},
		{"garbage", `echo hello`, "", "", "", nil, "printed no state"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(argsFile)
			rec := &Record{ID: "m", Runtime: "/nonexistent/forged-runtime", RuntimeRoot: tc.root}
			got, err := runtimeState(fakeRuntime(t, tc.script), rec)
			switch {
			case tc.err != nil:
				if !errors.Is(err, tc.err) {
					t.Errorf("runtimeState = %q, %v; want %v", got, err, tc.err)
				}
			case tc.errText != "":
				if err == nil || errors.Is(err, ErrNoContainer) || !strings.Contains(err.Error(), tc.errText) {
					t.Errorf("runtimeState = %q, %v; want an error containing %q", got, err, tc.errText)
				}
			default:
				if err != nil || got != tc.want {
					t.Errorf("runtimeState = %q, %v; want %q", got, err, tc.want)
				}
				args, _ := os.ReadFile(argsFile)
				if strings.TrimSpace(string(args)) != tc.wantArgs {
					t.Errorf("runtime args = %q, want %q", args, tc.wantArgs)
				}
			}
		})
	}
	if _, err := runtimeState("", &Record{ID: "m"}); err == nil {
		t.Error("no runtime: no error")
	}
}

func TestSortRemovesStale(t *testing.T) {
	reg := New(t.TempDir())
	proc := fakeProc(t, map[int]string{100: statLine(100, 'S', 5000), 101: statLine(101, 'S', 5000)})
	now := time.Now().UTC().Truncate(time.Second)
	recs := []*Record{
		{ID: "alive", PID: 100, PIDStart: 5000, Runtime: "runc", Created: now},
		{ID: "gone", PID: 300, PIDStart: 5000, Runtime: "runc", Created: now.Add(time.Second)},
		{ID: "reused", PID: 101, PIDStart: 4000, Runtime: "runc", Created: now.Add(2 * time.Second)},
		{ID: "undecided", PID: 101, PIDStart: 5000, Runtime: "broken", Created: now.Add(3 * time.Second)},
	}
	for _, r := range recs {
		if err := reg.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	c := &Checker{ProcDir: proc, State: func(r *Record) (string, error) {
		if r.Runtime == "broken" {
			return "", errors.New("exec: broken: not found")
		}
		return "running", nil
	}}
	got := c.Sort(reg)
	if err := got.Problems(); err == nil || !strings.Contains(err.Error(), "undecided") {
		t.Errorf("Sort problems = %v, want one naming the undecided record", err)
	}
	var ids []string
	for _, s := range got.Stale {
		ids = append(ids, s.Record.ID)
	}
	if strings.Join(ids, ",") != "gone,reused" {
		t.Errorf("removed %v, want gone,reused", ids)
	}
	left, err := reg.List()
	if err != nil {
		t.Fatal(err)
	}
	ids = nil
	for _, r := range left {
		ids = append(ids, r.ID)
	}
	if strings.Join(ids, ",") != "alive,undecided" {
		t.Errorf("left %v, want alive,undecided", ids)
	}
}

// TestAliveRealProcess checks a record of this very test process through a
// fake runtime: the cheap checks pass on real /proc, then the runtime decides.
// The runtime is the checker's (the configuration's): the program a record
// names is never run.
func TestAliveRealProcess(t *testing.T) {
	start, err := ProcStart(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	ran := filepath.Join(t.TempDir(), "forged-runtime-ran")
	forged := fakeRuntime(t, `touch `+ran+`; echo '{"status":"running"}'`)
	c := &Checker{Runtime: fakeRuntime(t, `echo '{"status":"running"}'`)}
	rec := &Record{ID: "self", Name: "r", PID: os.Getpid(), PIDStart: start, Runtime: forged}
	if v := c.Check(rec); v.Liveness != Running {
		t.Errorf("Check = %v %q; want running", v.Liveness, v.Reason)
	}
	if _, err := os.Stat(ran); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the runtime named in the record ran: %v", err)
	}
	rec.PIDStart = start + 1
	if v := c.Check(rec); v.Liveness != Stale {
		t.Errorf("Check with another start time = %v %q; want stale", v.Liveness, v.Reason)
	}
}

// TestSortByLiveness: live records are used, stale ones (zombie, PID reused,
// gone) reported and removed, a paused one skipped and kept.
func TestSortByLiveness(t *testing.T) {
	reg := New(t.TempDir())
	now := time.Now()
	proc := fakeProc(t, map[int]string{
		100: statLine(100, 'S', 5000),
		200: statLine(200, 'Z', 5000),
		300: statLine(300, 'S', 9999), // reused: recorded start 5000
		400: statLine(400, 'S', 5000),
	})
	recs := []*Record{
		{ID: "live", Name: "g", PID: 100, PIDStart: 5000, Created: now},
		{ID: "zombie", Name: "g", PID: 200, PIDStart: 5000, Created: now.Add(time.Second)},
		{ID: "reused", Name: "g", PID: 300, PIDStart: 5000, Created: now.Add(2 * time.Second)},
		{ID: "gone", Name: "g", PID: 12345, PIDStart: 5000, Created: now.Add(3 * time.Second)},
		{ID: "paused", Name: "g", PID: 400, PIDStart: 5000, Created: now.Add(4 * time.Second)},
	}
	for _, r := range recs {
		if err := reg.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	c := &Checker{ProcDir: proc, State: func(r *Record) (string, error) {
		if r.ID == "paused" {
			return "paused", nil
		}
		return "running", nil
	}}
	got := c.Sort(reg)
	if len(got.Live) != 1 || got.Live[0].ID != "live" {
		t.Errorf("live = %+v, want only the live record", got.Live)
	}
	stale := map[string]bool{}
	for _, s := range got.Stale {
		stale[s.Record.ID] = true
		if s.Reason == "" || s.RemoveErr != nil {
			t.Errorf("stale %s: reason %q, remove error %v", s.Record.ID, s.Reason, s.RemoveErr)
		}
		if _, err := reg.Read(s.Record.ID); err == nil {
			t.Errorf("stale record %s was not removed", s.Record.ID)
		}
	}
	for _, id := range []string{"zombie", "reused", "gone"} {
		if !stale[id] {
			t.Errorf("%s is not reported stale (stale: %v)", id, stale)
		}
	}
	if len(got.Skipped) != 1 {
		t.Errorf("skipped = %v, want the paused mounter", got.Skipped)
	}
	if _, err := reg.Read("paused"); err != nil {
		t.Errorf("the paused mounter's record was removed: %v", err)
	}
}

// TestSortRemovesUnderTheRecordLock: a stale record is removed only under
// its lock, which a registration holds while it writes: so a container that
// registers under the same ID (docker restart) while a client removes the
// old record keeps its new one.
func TestSortRemovesUnderTheRecordLock(t *testing.T) {
	reg := New(t.TempDir())
	proc := fakeProc(t, map[int]string{100: statLine(100, 'S', 5000)})
	now := time.Now().UTC().Truncate(time.Second)
	old := &Record{ID: "m", PID: 300, PIDStart: 5000, Runtime: "runc", Created: now}
	if err := reg.Write(old); err != nil {
		t.Fatal(err)
	}
	// A registration in progress: it holds the record's lock.
	unlock, err := reg.lock("m")
	if err != nil {
		t.Fatal(err)
	}
	c := &Checker{ProcDir: proc, State: func(*Record) (string, error) { return "running", nil }}
	done := make(chan Records, 1)
	go func() { done <- c.Sort(reg) }()
	time.Sleep(200 * time.Millisecond)
	if _, err := reg.Read("m"); err != nil {
		unlock()
		<-done
		t.Fatalf("the record was removed while a registration held its lock: %v", err)
	}
	fresh := &Record{ID: "m", PID: 100, PIDStart: 5000, Runtime: "runc", Created: now.Add(time.Second)}
	data, err := json.Marshal(fresh)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(reg.Dir, "m.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	unlock()
	got := <-done
	if len(got.Stale) != 0 {
		t.Errorf("Sort removed %+v, the record registered meanwhile", got.Stale[0].Record)
	}
	if cur, err := reg.Read("m"); err != nil || cur.PID != 100 {
		t.Errorf("record after Sort: %+v, %v; want the new registration's", cur, err)
	}
}
