package mountrec

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestMountStore(t *testing.T) {
	s := MountStore{Dir: MountsDir(t.TempDir())}
	if m, err := s.Read("/k/m"); m != nil || err != nil {
		t.Fatalf("Read of nothing: %+v, %v", m, err)
	}
	if ms, errs := s.List(); len(ms)+len(errs) != 0 {
		t.Fatalf("List of no directory: %+v, %v", ms, errs)
	}
	for _, target := range []string{"/k/b", "/k/a"} {
		if err := s.Write(&Mount{Target: target, Rule: "glusterfs", FSType: "glusterfs", Source: "127.0.0.2:/v0", Options: []string{"ro"}, Mounter: "m1"}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Read("/k/a")
	if err != nil || got == nil || got.Source != "127.0.0.2:/v0" || got.Options[0] != "ro" || got.Mounter != "m1" {
		t.Fatalf("Read: %+v, %v", got, err)
	}
	// A killed write's temporary file is no record; a record that cannot
	// be read is reported, never dropped; one without a target too.
	for name, data := range map[string]string{".00.json.tmp-1": "{", "ffff.json": `{"target": 3`, "eeee.json": `{}`} {
		if err := os.WriteFile(filepath.Join(s.Dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ms, errs := s.List()
	if len(ms) != 2 || ms[0].Target != "/k/a" || ms[1].Target != "/k/b" {
		t.Errorf("List: %+v, want /k/a and /k/b in order", ms)
	}
	if len(errs) != 2 || !strings.Contains(errs[0].Error()+errs[1].Error(), "ffff.json") || !strings.Contains(errs[0].Error()+errs[1].Error(), "eeee.json: no target") {
		t.Errorf("List errors: %v, want both bad records named", errs)
	}
	// A record under another target's name is refused.
	data, err := os.ReadFile(s.Path("/k/a"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.Path("/k/c"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	if m, err := s.Read("/k/c"); err == nil {
		t.Errorf("Read of a record for another target: %+v", m)
	}
	// MarkDetached notes a detach in an existing record only.
	if err := MarkDetached(s, "/k/none", time.Now()); err != nil {
		t.Errorf("MarkDetached of no record: %v", err)
	}
	if m, err := s.Read("/k/none"); m != nil || err != nil {
		t.Errorf("MarkDetached of no record made one: %+v, %v", m, err)
	}
	if got, err := s.Read("/k/b"); err != nil || got == nil || !got.Detached.IsZero() {
		t.Fatalf("a new record is marked detached: %+v, %v", got, err)
	}
	if err := MarkDetached(s, "/k/b", time.Now()); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Read("/k/b"); err != nil || got == nil || got.Detached.IsZero() || got.Source != "127.0.0.2:/v0" {
		t.Errorf("after MarkDetached: %+v, %v", got, err)
	}
	if err := s.Remove("/k/a"); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove("/k/a"); err != nil {
		t.Errorf("Remove of nothing: %v", err)
	}
	if m, err := s.Read("/k/a"); m != nil || err != nil {
		t.Errorf("Read after Remove: %+v, %v", m, err)
	}
}

// TestMountStorePrepare: a prepared record is no record until Commit (a
// recovery or status that lists meanwhile does not see it), Abort leaves
// none, and Prepare takes away what a writer killed long ago left.
func TestMountStorePrepare(t *testing.T) {
	s := MountStore{Dir: MountsDir(t.TempDir())}
	m := &Mount{Target: "/k/p", Rule: "glusterfs", FSType: "glusterfs", Source: "127.0.0.2:/v0", Mounter: "m1"}
	for _, commit := range []bool{false, true} {
		p, err := s.Prepare(m)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := s.Read(m.Target); got != nil || err != nil {
			t.Errorf("Read before Commit: %+v, %v", got, err)
		}
		if ms, errs := s.List(); len(ms)+len(errs) != 0 {
			t.Errorf("List before Commit: %+v, %v", ms, errs)
		}
		if !commit {
			p.Abort()
			if ents, _ := os.ReadDir(s.Dir); len(ents) != 0 {
				t.Errorf("Abort left %v", ents)
			}
			continue
		}
		if err := p.Commit(); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Read(m.Target); err != nil || got == nil || got.Mounter != "m1" {
			t.Errorf("Read after Commit: %+v, %v", got, err)
		}
	}
	// A killed writer's file: kept while a write could still be running,
	// removed once it is older than any.
	killed, live := filepath.Join(s.Dir, ".00.json.tmp-1"), filepath.Join(s.Dir, ".00.json.tmp-2")
	for _, f := range []string{killed, live} {
		if err := os.WriteFile(f, []byte("{"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * staleWrite)
	if err := os.Chtimes(killed, old, old); err != nil {
		t.Fatal(err)
	}
	p, err := s.Prepare(&Mount{Target: "/k/q", Rule: "glusterfs"})
	if err != nil {
		t.Fatal(err)
	}
	p.Abort()
	if _, err := os.Stat(killed); !os.IsNotExist(err) {
		t.Errorf("a killed write's file outlived Prepare: %v", err)
	}
	if _, err := os.Stat(live); err != nil {
		t.Errorf("a recent write's file went: %v", err)
	}
}

// TestMarkDetachedTakesTheLock: while a recovery holds the target's lock,
// the mark waits, so that the recovery's write of the record cannot land
// over it; a holder that keeps the lock past markWait costs the mark that
// wait, and it is written anyway.
func TestMarkDetachedTakesTheLock(t *testing.T) {
	s := MountStore{Dir: MountsDir(t.TempDir())}
	rec := &Mount{Target: "/k/a", Rule: "glusterfs", FSType: "glusterfs", Source: "127.0.0.2:/v0", Mounter: "m1"}
	if err := s.Write(rec); err != nil {
		t.Fatal(err)
	}
	unlock, err := s.Lock(context.Background(), rec.Target)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- MarkDetached(s, rec.Target, time.Now()) }()
	select {
	case err := <-done:
		unlock()
		t.Fatalf("MarkDetached returned (%v) while the target's lock was held", err)
	case <-time.After(200 * time.Millisecond):
	}
	// The holder (a recovery) writes its record, then releases the lock.
	rec.Mounter = "m2"
	if err := s.Write(rec); err != nil {
		t.Fatal(err)
	}
	unlock()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got, err := s.Read(rec.Target); err != nil || got.Detached.IsZero() || got.Mounter != "m2" {
		t.Fatalf("after the holder's write and the mark: %+v, %v; want m2's record, marked", got, err)
	}

	defer func(w time.Duration) { markWait = w }(markWait)
	markWait = 100 * time.Millisecond
	if unlock, err = s.Lock(context.Background(), rec.Target); err != nil {
		t.Fatal(err)
	}
	defer unlock()
	rec.Detached = time.Time{}
	if err := s.Write(rec); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := MarkDetached(s, rec.Target, time.Now()); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < markWait || took > 5*time.Second {
		t.Errorf("MarkDetached with the lock held throughout took %v, want about %v", took, markWait)
	}
	if got, err := s.Read(rec.Target); err != nil || got.Detached.IsZero() {
		t.Errorf("the mark is not written after the wait: %+v, %v", got, err)
	}
}
