package registry

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/runc-shared/runc-shared/pkg/spec"
)

func TestRecordRoundTrip(t *testing.T) {
	reg := New(t.TempDir())
	rec := &Record{
		ID: "abc", Name: "gluster", PID: 42, PIDStart: 777, Bundle: "/b", Runtime: "/usr/sbin/runc",
		RuntimeRoot: "/run/r", FSTypes: []string{"glusterfs"}, Propagate: []string{"/var/lib/kubelet"},
		Mode: spec.ModePropagate, Created: time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC),
	}
	if err := reg.Write(rec); err != nil {
		t.Fatal(err)
	}
	got, err := reg.Read("abc")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, rec) {
		t.Errorf("Read = %+v, want %+v", got, rec)
	}
	// The contract's field names (design.md, Registry), plus pid-start.
	raw, err := os.ReadFile(filepath.Join(reg.Dir, "abc.json"))
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	if err := json.Unmarshal(raw, &fields); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"id", "name", "pid", "bundle", "runtime", "runtime-root", "fstypes", "propagate", "created", "pid-start"} {
		if _, ok := fields[k]; !ok {
			t.Errorf("record file lacks %q: %s", k, raw)
		}
	}
	if err := reg.Remove("abc"); err != nil {
		t.Fatal(err)
	}
	if err := reg.Remove("abc"); err != nil {
		t.Errorf("removing a missing record: %v", err)
	}
	if _, err := reg.Read("abc"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Read after Remove: %v", err)
	}
}

func TestRecordIDs(t *testing.T) {
	reg := New(t.TempDir())
	for _, id := range []string{"", ".", "..", "a/b", "../x", "a\x00b"} {
		if err := reg.Write(&Record{ID: id}); err == nil {
			t.Errorf("Write accepted id %q", id)
		}
		if _, err := reg.Read(id); err == nil || errors.Is(err, ErrNotFound) {
			t.Errorf("Read accepted id %q: %v", id, err)
		}
	}
}

func TestListSkipsTempAndReportsBroken(t *testing.T) {
	reg := New(t.TempDir())
	if recs, err := reg.List(); err != nil || recs != nil {
		t.Fatalf("List of a missing dir = %v, %v", recs, err)
	}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, id := range []string{"young", "old"} {
		if err := reg.Write(&Record{ID: id, Created: base.Add(-time.Duration(i) * time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	for name, content := range map[string]string{
		".abc.json.tmp-123": "{", // atomicfile's temporary file
		"notes.txt":         "x",
		"broken.json":       "{",
	} {
		if err := os.WriteFile(filepath.Join(reg.Dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	recs, err := reg.List()
	if err == nil || !strings.Contains(err.Error(), "broken.json") {
		t.Errorf("List error = %v, want one naming broken.json", err)
	}
	if len(recs) != 2 || recs[0].ID != "old" || recs[1].ID != "young" {
		t.Errorf("List = %+v, want old then young", recs)
	}
}
