// Package demo_test runs scripts/demo.sh and scripts/demo-csi.sh, what `make
// demo` and `make demo-csi` show, as they are:
// once on this machine (its / is private) and once in a throwaway mount
// namespace whose / is rshared, as systemd leaves it.
package demo_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/sys/mountinfo"

	"github.com/runc-shared/runc-shared/internal/testutil"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// TestDemo asserts the demo's verdict and, on top of the host check the
// script does itself (which leaves out /tmp), that the mount table it ran in
// is the same afterwards, /tmp included; the machine's own mount table is
// checked around both runs.
func TestDemo(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.CheckLeaks(t)
	machine := mounts(t)
	t.Cleanup(func() { sameMounts(t, "the machine's", machine) })
	testutil.ForEachHost(t, func(t *testing.T, _ testutil.Host) {
		for _, b := range []string{"runc-shared", "mount-hook", "mounter"} {
			testutil.Bin(t, b) // fails with "run make" when missing
		}
		for _, script := range []string{"demo.sh", "demo-csi.sh"} {
			runDemo(t, script)
		}
	})
}

// runDemo runs scripts/NAME and checks its verdict and the mount table around it.
func runDemo(t *testing.T, name string) {
	t.Helper()
	before := mounts(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(testutil.RepoRoot(t), "scripts", name))
	// SIGTERM runs the demo's teardown (trap), which stops what it started.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "\ndemo passed\n") {
		t.Fatalf("scripts/%s: %v, want exit 0 and \"demo passed\":\n%s", name, err, out)
	}
	sameMounts(t, "this namespace's", before)
}

func mounts(t *testing.T) []*mountinfo.Info {
	t.Helper()
	ms, err := mountinfo.GetMounts(nil)
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

// sameMounts fails t when a mount (by mount ID) came or went since before.
func sameMounts(t *testing.T, whose string, before []*mountinfo.Info) {
	t.Helper()
	after := mounts(t)
	for _, m := range testutil.DiffMounts(after, before) {
		t.Errorf("%s mount table has a new mount: %s (%s %s)", whose, m.Mountpoint, m.FSType, m.Source)
	}
	for _, m := range testutil.DiffMounts(before, after) {
		t.Errorf("%s mount table lost a mount: %s (%s %s)", whose, m.Mountpoint, m.FSType, m.Source)
	}
}
