package reliability_test

import (
	"fmt"
	"testing"

	"github.com/runc-shared/runc-shared/internal/testutil"
)

// TestPreloadShimIsNoBoundary proves what docs/security.md says of preload
// mode: the shim's allowlist decides where well-behaved mount helpers'
// mounts go, it does not confine the mounter. Any process in a preload
// mounter (CAP_SYS_ADMIN and CAP_SYS_CHROOT) can enter the host mount
// namespace through the fd the wrapper hands over (/proc/1/fd/3) and mount
// anywhere. The "host" here is the test's own mount namespace (host-mntns =
// "self") and the target a temp dir that is neither allowlisted nor bound
// into the container.
func TestPreloadShimIsNoBoundary(t *testing.T) {
	testutil.CheckLeaks(t)
	host := testutil.PrivateDir(t)
	outside := testutil.PrivateDir(t)
	r := upPreloadMounter(t, "pl", host, "self", "pl-escape")

	script := fmt.Sprintf("nsenter --mount=/proc/1/fd/3 mount -t tmpfs rstest-escape %s", outside)
	if out, errOut, err := r.Exec(t, "pl-escape", "sh", "-c", script); err != nil {
		t.Fatalf("enter the handed-over namespace and mount: %v: %s %s", err, out, errOut)
	}
	m := testutil.MountAt(t, outside)
	if m == nil || m.Source != "rstest-escape" {
		t.Fatalf("no tmpfs at %s on the host: the mounter could not leave the shim's allowlist, docs/security.md is wrong", outside)
	}
	t.Logf("a preload mounter put %s %s on the host at %s, outside its allowlist %s: the shim is not a security boundary",
		m.FSType, m.Source, outside, host)
	// TempDir's cleanup detaches it.
}
