package mounter

import (
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/runc-shared/runc-shared/internal/registry"
)

// fakeProc writes <dir>/<pid>/stat with a state and start time.
func fakeProc(t *testing.T, dir string, pid int, state string, start int) {
	t.Helper()
	p := dir + "/" + strconv.Itoa(pid)
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	// Fields 3.. : state, then 18 fields, the 22nd overall is the start time.
	stat := strconv.Itoa(pid) + " (sleep) " + state + " 1 1 1 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 " + strconv.Itoa(start) + " 0 0\n"
	if err := os.WriteFile(p+"/stat", []byte(stat), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestCheckRecords(t *testing.T) {
	proc := t.TempDir()
	reg := registry.New(t.TempDir())
	now := time.Now()
	fakeProc(t, proc, 100, "S", 5000)
	fakeProc(t, proc, 200, "Z", 5000)
	fakeProc(t, proc, 300, "S", 9999) // reused: recorded start 5000
	fakeProc(t, proc, 400, "S", 5000)
	recs := []*registry.Record{
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
	c := &registry.Checker{ProcDir: proc, State: func(r *registry.Record) (string, error) {
		if r.ID == "paused" {
			return "paused", nil
		}
		return "running", nil
	}}
	got := checkRecords(reg, c)
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
