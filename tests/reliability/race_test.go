package reliability_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runc-shared/runc-shared/internal/testutil"
)

const raceCreates = 60

// TestSymlinkSwapRace swaps a component of an allowlisted bind source
// between a directory and a symlink that leads out of the allowlist, as fast
// as it can, while matching creates run (real runc through the wrapper).
// Resolving the source once is not enough: runc mounts the path again, by
// name, later. Every create must either be refused or bind the real
// allowlisted directory, never the symlink's target; the test looks at what
// the container really got (a marker file in the bound directory).
//
// The outside target lies on the same shared mount as the allowlisted path,
// the worst case: a check of the peer group alone cannot tell them apart (on
// a systemd host / is shared and /etc is in the same peer group as
// /var/lib/kubelet).
func TestSymlinkSwapRace(t *testing.T) {
	testutil.CheckLeaks(t)
	runc := testutil.LookPath(t, "runc")
	d := testutil.SharedDir(t)
	allow, outside := filepath.Join(d, "allow"), filepath.Join(d, "outside")
	flip, other := filepath.Join(allow, "flip"), filepath.Join(allow, ".flip-other")
	for _, dir := range []string{flip, outside} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{filepath.Join(flip, "ALLOWED"), filepath.Join(outside, "OUTSIDE")} {
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("../outside", other); err != nil {
		t.Fatal(err)
	}
	s := newSetup(t, runc, rule{name: "race", propagate: []string{allow}, annotation: "race"})
	r := testutil.Wrapper(t, s.Config)
	rootfs := testutil.BusyboxRootfs(t)

	// The swapper: RENAME_EXCHANGE makes "flip" always exist, a directory
	// or the symlink in turn.
	stopSwapper := startFlipper(t, flip, other)

	var refused, allowed, escaped int
	reasons := map[string]int{}
	for i := range raceCreates {
		id := fmt.Sprintf("race-%02d", i)
		b := testutil.NewBundle(t, rootfs,
			testutil.WithAnnotation("runc-shared.io/mounter", "race"),
			testutil.WithAddCaps("CAP_SYS_ADMIN"),
			testutil.WithBind(flip, "/mnt/flip", "rbind"))
		if err := r.Create(t, b, id); err != nil {
			refused++
			reasons[reasonOf(lastError(t, b.LogPath()))]++
			continue
		}
		st, err := r.State(t, id)
		if err != nil {
			t.Fatal(err)
		}
		ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/root/mnt/flip", st.Pid))
		if err != nil {
			t.Fatalf("read the container's /mnt/flip: %v", err)
		}
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		switch {
		case contains(names, "ALLOWED"):
			allowed++
		case contains(names, "OUTSIDE"):
			escaped++
			t.Errorf("create %d: the container got %s bound rshared at /mnt/flip, outside the allowlist %s (its mountinfo: %s)",
				i, outside, allow, mountRootIn(t, st.Pid, "/mnt/flip"))
		default:
			t.Errorf("create %d: /mnt/flip holds %v", i, names)
		}
		if err := r.Delete(t, id, true); err != nil {
			t.Fatal(err)
		}
	}
	swaps := stopSwapper()
	t.Logf("%d creates during %d swaps: %d refused %v, %d bound the allowlisted dir, %d bound the outside target",
		raceCreates, swaps, refused, reasons, allowed, escaped)
	// Whether a create gets through at all is chance (about one in ten: the
	// source must be the directory at each of the three looks); that some
	// are refused shows the swapper was at work.
	if refused == 0 || swaps == 0 {
		t.Errorf("the swaps did not race the creates: %d swaps, %d refused", swaps, refused)
	}
}

// reasonOf shortens a refusal to its kind, for the summary.
func reasonOf(msg string) string {
	for _, k := range []string{"not of the allowlisted source", "resolves outside the allowlisted prefixes", "too many levels of symbolic links",
		"propagation does not reach the host", "path changed between resolution and open", "createRuntime", "hook"} {
		if strings.Contains(msg, k) {
			return k
		}
	}
	if len(msg) > 120 {
		return msg[:120]
	}
	return msg
}

// mountRootIn returns the root and source fields of the mount at path in
// process pid's mount table.
func mountRootIn(t *testing.T, pid int, path string) string {
	t.Helper()
	for _, m := range testutil.MountsUnderPid(t, pid, path) {
		if m.Mountpoint == path {
			return fmt.Sprintf("root %s, %s %s, %s", m.Root, m.FSType, m.Source, m.Optional)
		}
	}
	return "not a mount point"
}
