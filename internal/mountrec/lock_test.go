package mountrec

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestLockIsNoRecord: the lock file of a held key lies among the records
// and no listing takes it for one; the release leaves the record alone.
func TestLockIsNoRecord(t *testing.T) {
	state := t.TempDir()
	s := Store{Dir: Dir(state, "d.example.io")}
	rec := &Record{VolumeID: "vol-1", Driver: "d.example.io", Rule: "glusterfs", FSType: "glusterfs", Source: "127.0.0.2:/v0"}
	if err := s.Write(rec); err != nil {
		t.Fatal(err)
	}
	unlock, err := s.Lock(context.Background(), "vol-1")
	if err != nil {
		t.Fatal(err)
	}
	if ents, err := os.ReadDir(s.Dir); err != nil || len(ents) != 2 {
		t.Fatalf("record directory while a lock is held: %v, %v; want the record and the lock file", ents, err)
	}
	for name, list := range map[string]func() ([]*Record, []error){"Store.List": s.List, "List": func() ([]*Record, []error) { return List(state) }} {
		if recs, errs := list(); len(recs) != 1 || recs[0].VolumeID != "vol-1" || len(errs) != 0 {
			t.Errorf("%s while a lock is held: %+v, %v; want the one record", name, recs, errs)
		}
	}
	unlock()
	ents, err := os.ReadDir(s.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || ents[0].Name() != filepath.Base(s.Path("vol-1")) {
		t.Errorf("record directory after the release: %v, want the record only", ents)
	}
}
