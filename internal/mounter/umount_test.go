package mounter

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/runc-shared/runc-shared/internal/mountrec"
)

// TestUmountNotMounted: `mounter umount` of a target mounted nowhere fails
// as umount(8) does (exit 32), and a record of a routed mount at it goes,
// so that mounter recover does not mount it again.
func TestUmountNotMounted(t *testing.T) {
	for _, tt := range []struct {
		name     string
		mounter  bool // a live mounter whose shared binds cover the target
		recorded bool
		want     string
	}{
		{name: "recorded, a live mounter", mounter: true, recorded: true,
			want: "not mounted (neither on the host nor at /k/vol in mounter m1); removed its record of a routed mount"},
		{name: "recorded, no live mounter", recorded: true,
			want: "(not a mount point); removed its record of a routed mount"},
		{name: "not recorded", mounter: true,
			want: "not mounted (neither on the host nor at /k/vol in mounter m1)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.mounter)
			target := filepath.Join(f.shared, "k", "vol")
			store := mountrec.MountStore{Dir: mountrec.MountsDir(f.state)}
			if tt.recorded {
				f.routedRecord(t, target)
			}
			if code := f.run("umount", target); code != ExitFailure {
				t.Fatalf("exit %d, want %d: %s", code, ExitFailure, f.stderr.String())
			}
			msg := f.stderr.String()
			if !strings.Contains(msg, tt.want) {
				t.Errorf("stderr %q, want it to say %q", msg, tt.want)
			}
			if !tt.recorded && strings.Contains(msg, "its record") {
				t.Errorf("stderr %q speaks of a record there was not", msg)
			}
			if rec, err := store.Read(target); rec != nil || err != nil {
				t.Errorf("record after umount: %+v, %v; want none", rec, err)
			}
			if len(f.exec.calls) != 0 {
				t.Errorf("exec into the mounter for a target mounted nowhere: %q", f.exec.calls)
			}
		})
	}
}
