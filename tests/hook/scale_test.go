package hook_test

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/runc-shared/runc-shared/internal/registry"
	"github.com/runc-shared/runc-shared/internal/testutil"
)

// extraMounts mounts n tmpfs below a temp dir made rprivate (so nothing
// propagates anywhere): unrelated mounts that every mountinfo read of the
// host, and of a new container's namespace, has to go through.
func extraMounts(t *testing.T, n int) {
	t.Helper()
	base := filepath.Join(testutil.TempDir(t), "many")
	if err := os.Mkdir(base, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(base, base, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind %s: %v", base, err)
	}
	// One lazy unmount takes the whole tree away, faster than TempDir's
	// one-by-one cleanup, which stays as the safety net.
	t.Cleanup(func() { _ = unix.Unmount(base, unix.MNT_DETACH) })
	if err := unix.Mount("", base, "", unix.MS_PRIVATE|unix.MS_REC, ""); err != nil {
		t.Fatalf("make %s rprivate: %v", base, err)
	}
	for i := range n {
		d := filepath.Join(base, strconv.Itoa(i))
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mount("tmpfs", d, "tmpfs", 0, "size=4k"); err != nil {
			t.Fatalf("mount tmpfs %d on %s: %v", i, d, err)
		}
	}
}

// TestManyHostMounts: with 5,000 unrelated mounts on the host, mount-hook
// still verifies and registers a mounter at createRuntime and unregisters it
// at poststop. Its latency against the number of host mounts is measured in
// `make bench` (scenario 5), not here.
func TestManyHostMounts(t *testing.T) {
	testutil.CheckLeaks(t)
	extraMounts(t, 5000)
	e := newEnv(t, testutil.SharedDir(t), "")
	r := e.wrapper(t)
	b := mounterBundle(t, testutil.BusyboxRootfs(t), e.host)
	r.Up(t, b, "many")
	if _, err := e.registry().Read("many"); err != nil {
		t.Fatalf("not registered with 5,000 host mounts: %v\nhook log:\n%s", err, e.hookLog(t))
	}
	if err := r.Delete(t, "many", true); err != nil {
		t.Fatal(err)
	}
	if _, err := e.registry().Read("many"); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("record after delete with 5,000 host mounts: %v, want none\nhook log:\n%s", err, e.hookLog(t))
	}
}
