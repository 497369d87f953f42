package reliability_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/runc-shared/runc-shared/internal/testutil"
	"github.com/runc-shared/runc-shared/pkg/spec"
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
	runc, err := exec.LookPath("runc")
	if err != nil {
		t.Fatal(err)
	}
	host := testutil.PrivateDir(t)
	outside := testutil.PrivateDir(t)
	s := newSetup(t, runc, rule{name: "pl", propagate: []string{host}, annotation: "pl", extra: `mode = "preload"`})
	cfg, err := os.ReadFile(s.Config)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.Config, append([]byte("host-mntns = \"self\"\n"), cfg...), 0o644); err != nil {
		t.Fatal(err)
	}
	testutil.Bin(t, "libhostmount.so")
	r := testutil.NewRunc(t, testutil.Bin(t, "runc-shared"))
	r.ExtraGlobal = []string{"--runc-shared-config=" + s.Config}

	// The preload binds need mount points in the rootfs: a private copy.
	rootfs := filepath.Join(testutil.TempDir(t), "rootfs")
	if out, err := exec.Command("cp", "-a", testutil.HostUsrRootfs(t), rootfs).CombinedOutput(); err != nil {
		t.Fatalf("copy the rootfs: %v: %s", err, out)
	}
	b := testutil.NewBundle(t, rootfs,
		testutil.WithAnnotation(spec.AnnotationMounter, "pl"),
		testutil.WithAddCaps("SYS_ADMIN", "SYS_CHROOT"),
		testutil.WithRootfsPropagation("rprivate"),
		testutil.WithBind(host, "/host", "rbind", "rprivate"))
	r.Up(t, b, "pl-escape")

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
