package testutil

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/runc-shared/runc-shared/internal/hostmount"
)

// TestDirsOnBothHosts pins what each kind of test directory is under each
// host set-up: SharedDir is a peer group of its own (not its parent's, which
// on a shared / is /'s), so a mount below it shows once; UnsharedDir is
// shared on neither; PrivateDir is no mount point, and shared exactly where
// / is.
func TestDirsOnBothHosts(t *testing.T) {
	CheckLeaks(t)
	ForEachHost(t, func(t *testing.T, h Host) {
		RequireRoot(t)
		shared := SharedDir(t)
		parent := hostmount.PeerGroup(MountOf(t, filepath.Dir(shared)))
		if g := hostmount.PeerGroup(MountAt(t, shared)); g == 0 || g == parent {
			t.Errorf("SharedDir %s has peer group %d, want one of its own (its parent's is %d)", shared, g, parent)
		}
		sub := filepath.Join(shared, "sub")
		if err := os.Mkdir(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		mustRun(t, "mount", "-t", "tmpfs", "tmpfs", sub)
		if ms := MountsUnder(t, sub); len(ms) != 1 {
			t.Errorf("one tmpfs mounted at %s shows as %d mounts: %s", sub, len(ms), mountpoints(ms))
		}

		unshared := UnsharedDir(t)
		if m := MountAt(t, unshared); m == nil || hostmount.PeerGroup(m) != 0 {
			t.Errorf("UnsharedDir %s = %+v, want a private mount point", unshared, m)
		}

		private := PrivateDir(t)
		if m := MountAt(t, private); m != nil {
			t.Errorf("PrivateDir %s is a mount point: %+v", private, m)
		}
		if got := hostmount.PeerGroup(MountOf(t, private)) != 0; got != h.SharedRoot {
			t.Errorf("PrivateDir %s on a shared mount: %v, want %v (/ shared: %v)", private, got, h.SharedRoot, h.SharedRoot)
		}
	})
}
