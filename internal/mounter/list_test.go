package mounter

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/runc-shared/runc-shared/internal/registry"
)

// TestList: list shows the registered mounters whose container still exists
// and leaves out (without removing) the ones whose process is gone; -q prints
// IDs only, and nothing when none runs.
func TestList(t *testing.T) {
	tests := []struct {
		name       string
		live, dead bool
		args       []string
		wantCode   int
		want       []string // lines, fields separated by single spaces
	}{
		{name: "none registered", args: []string{"list"}},
		{name: "none registered quiet", args: []string{"list", "-q"}},
		{name: "only a dead one", dead: true, args: []string{"list", "-q"}},
		{name: "live and dead", live: true, dead: true, args: []string{"list"},
			want: []string{"MOUNTER RULE PID STATE RUNTIME ROOT", "m1 glusterfs " + strconv.Itoa(os.Getpid()) + " running /bin/true {root}"}},
		{name: "live and dead quiet", live: true, dead: true, args: []string{"list", "--quiet"}, want: []string{"m1"}},
		{name: "bad argument", args: []string{"list", "-a"}, wantCode: ExitUsage},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.live)
			if tc.dead {
				rec := &registry.Record{ID: "gone", Name: "glusterfs", PID: 0x3fffff, PIDStart: 1,
					Runtime: "/bin/true", Created: time.Now()}
				if err := registry.New(f.state).Write(rec); err != nil {
					t.Fatal(err)
				}
			}
			if code := f.run(tc.args...); code != tc.wantCode {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tc.wantCode, f.stderr.String())
			}
			var got []string
			for _, l := range strings.Split(strings.TrimRight(f.stdout.String(), "\n"), "\n") {
				if l != "" {
					got = append(got, strings.Join(strings.Fields(l), " "))
				}
			}
			want := strings.ReplaceAll(strings.Join(tc.want, "\n"), "{root}", filepath.Join(f.dir, "runtime-root"))
			if strings.Join(got, "\n") != want {
				t.Errorf("stdout:\n%s\nwant:\n%s", strings.Join(got, "\n"), want)
			}
			if tc.dead {
				if _, err := os.Stat(filepath.Join(f.state, "mounters", "gone.json")); err != nil {
					t.Errorf("list removed the dead record: %v", err)
				}
			}
		})
	}
}

// TestListUnreadableRecord: a record list cannot read may be a running
// mounter, so list fails with exit 2 instead of leaving it out.
func TestListUnreadableRecord(t *testing.T) {
	f := newFixture(t, true)
	if err := os.WriteFile(filepath.Join(f.state, "mounters", "broken.json"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code := f.run("list", "-q"); code != ExitSystem {
		t.Fatalf("exit %d, want %d; stdout %q stderr %q", code, ExitSystem, f.stdout.String(), f.stderr.String())
	}
	if !strings.Contains(f.stderr.String(), "broken") {
		t.Errorf("stderr does not name the unreadable record: %s", f.stderr.String())
	}
}
