package mountrec

import (
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
	if err := s.MarkDetached("/k/none", time.Now()); err != nil {
		t.Errorf("MarkDetached of no record: %v", err)
	}
	if m, err := s.Read("/k/none"); m != nil || err != nil {
		t.Errorf("MarkDetached of no record made one: %+v, %v", m, err)
	}
	if got, err := s.Read("/k/b"); err != nil || got == nil || !got.Detached.IsZero() {
		t.Fatalf("a new record is marked detached: %+v, %v", got, err)
	}
	if err := s.MarkDetached("/k/b", time.Now()); err != nil {
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
