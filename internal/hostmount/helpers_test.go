package hostmount

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/runc-shared/runc-shared/internal/testutil"
)

// privateBase returns a temp dir bound onto itself and made rprivate, so the
// test does not depend on the host's propagation (private here, shared on a
// systemd host) and nothing it mounts below propagates anywhere. The
// TempDir's cleanup detaches the bind and everything below it.
func privateBase(t testing.TB) string {
	t.Helper()
	testutil.RequireRoot(t)
	d := testutil.TempDir(t)
	if err := unix.Mount(d, d, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		t.Fatalf("bind %s: %v", d, err)
	}
	if err := unix.Mount("", d, "", unix.MS_PRIVATE|unix.MS_REC, ""); err != nil {
		t.Fatalf("make %s rprivate: %v", d, err)
	}
	return d
}

// detachQuiet detaches every mount stacked on target; not mounted is fine.
func detachQuiet(t testing.TB, target string) {
	t.Helper()
	for range 16 {
		err := unix.Unmount(target, unix.MNT_DETACH)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			return
		}
		if err != nil {
			t.Errorf("cleanup: detach %s: %v", target, err)
			return
		}
	}
}

func mkdirs(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// mountsAt counts the mountinfo entries whose mount point is exactly p.
func mountsAt(t *testing.T, p string) int {
	t.Helper()
	ms, err := mountinfo.GetMounts(func(m *mountinfo.Info) (bool, bool) {
		return m.Mountpoint != p, false
	})
	if err != nil {
		t.Fatal(err)
	}
	return len(ms)
}

// killBindfs SIGKILLs our bindfs child: its FUSE connection aborts and the
// mount stays behind, dead (ENOTCONN).
func killBindfs(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	// Cleanup's goroutine reaps it; wait for the process to be gone.
	testutil.Eventually(t, 5*time.Second, fmt.Sprintf("bindfs %d to die", cmd.Process.Pid), func() (bool, string) {
		return unix.Kill(cmd.Process.Pid, 0) != nil, "still there"
	})
}
