package mountrec

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStore(t *testing.T) {
	state := t.TempDir()
	s := Store{Dir: Dir(state, "d.example.io")}
	if r, err := s.Read("vol/1"); r != nil || err != nil {
		t.Fatalf("Read of nothing: %+v, %v", r, err)
	}
	rec := &Record{VolumeID: "vol/1", Driver: "d.example.io", Rule: "glusterfs", FSType: "glusterfs", Source: "127.0.0.2:/v0",
		Staging: "/k/stage", Targets: []Target{{Path: "/k/pod/mount"}}}
	if err := s.Write(rec); err != nil {
		t.Fatal(err)
	}
	got, err := s.Read("vol/1")
	if err != nil || got == nil || got.Staging != "/k/stage" || got.TargetIndex("/k/pod/mount") != 0 || got.TargetIndex("/x") != -1 {
		t.Fatalf("Read: %+v, %v", got, err)
	}
	// What is not a record: a killed write's temporary file, other names.
	for name, data := range map[string]string{".0011.json.tmp-123": "{", "notes.txt": "x"} {
		if err := os.WriteFile(filepath.Join(s.Dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// What is a record that cannot be read: reported, not dropped.
	bad := filepath.Join(s.Dir, "ffff.json")
	if err := os.WriteFile(bad, []byte(`{"volume-id": 3`), 0o600); err != nil {
		t.Fatal(err)
	}
	noID := filepath.Join(s.Dir, "eeee.json")
	if err := os.WriteFile(noID, []byte(`{}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, list := range map[string]func() ([]*Record, []error){"Store.List": s.List, "List": func() ([]*Record, []error) { return List(state) }} {
		recs, errs := list()
		if len(recs) != 1 || recs[0].VolumeID != "vol/1" || len(errs) != 2 {
			t.Errorf("%s: %d records %+v, errors %v; want vol/1 and two errors", name, len(recs), recs, errs)
		}
		joined := ""
		for _, e := range errs {
			joined += e.Error() + "\n"
		}
		if !strings.Contains(joined, bad) || !strings.Contains(joined, noID) {
			t.Errorf("%s: errors %q do not name %s and %s", name, joined, bad, noID)
		}
	}
	// A record under another id's name is refused.
	if err := os.Rename(s.Path("vol/1"), s.Path("vol/2")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Read("vol/2"); err == nil || !strings.Contains(err.Error(), "not \"vol/2\"") {
		t.Errorf("Read of a misplaced record: %v", err)
	}
	if err := s.Remove("vol/2"); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove("vol/2"); err != nil {
		t.Fatalf("second Remove: %v", err)
	}
}
