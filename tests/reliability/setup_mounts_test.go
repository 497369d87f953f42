package reliability_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runc-shared/runc-shared/internal/testutil"
	"github.com/runc-shared/runc-shared/pkg/spec"
)

const setupStarts = 5

// TestNoSetupMountReachesHost: a mounter whose spec binds allowlisted paths
// nested in each other, stacked on one destination, or the way a CSI node
// plugin binds the kubelet's directories (all rprivate, as engines write
// them) is started setupStarts times in a row. After each start the mounter
// mounts one tmpfs below the outer bind; the host must then hold exactly the
// mounts made on purpose, one more per start, and nothing runc made while
// setting the container up (runc's own mounts below an rshared bind land on
// the host: 1, 3, 7, 15, 31 extra mounts in a row for two nested binds).
// The test runs in throwaway mount namespaces only (/ private and / rshared):
// its failure multiplies mounts.
func TestNoSetupMountReachesHost(t *testing.T) {
	testutil.ForEachHostIsolated(t, func(t *testing.T, h testutil.Host) {
		runc := testutil.LookPath(t, "runc")
		for _, tc := range []struct {
			name  string
			binds [][2]string // source below the allowlisted dir, destination
		}{
			{"nested", [][2]string{{"", "/host"}, {"d", "/host/d"}}},
			{"nested-first", [][2]string{{"d", "/host/d"}, {"", "/host"}}},
			{"stacked", [][2]string{{"", "/host"}, {"", "/host"}, {"", "/host"}}},
			{"csi", [][2]string{
				{"", "/var/lib/kubelet"}, {"plugins", "/var/lib/kubelet/plugins"},
				{"plugins/drv", "/csi"}, {"plugins_registry", "/registration"},
			}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				allow := testutil.PrivateDir(t)
				for _, d := range []string{"d", "plugins/drv", "plugins_registry"} {
					if err := os.MkdirAll(filepath.Join(allow, d), 0o755); err != nil {
						t.Fatal(err)
					}
				}
				s := newSetup(t, runc, rule{name: "nest", propagate: []string{allow}, annotation: "nest"})
				r := testutil.Wrapper(t, s.Config)
				rootfs := filepath.Join(testutil.TempDir(t), "rootfs") // runc makes the destinations in it
				if out, err := exec.Command("cp", "-a", testutil.BusyboxRootfs(t), rootfs).CombinedOutput(); err != nil {
					t.Fatalf("copy the rootfs: %v: %s", err, out)
				}
				opts := []testutil.BundleOpt{
					testutil.WithAnnotation(spec.AnnotationMounter, "nest"),
					testutil.WithAddCaps("CAP_SYS_ADMIN"),
				}
				for _, b := range tc.binds {
					opts = append(opts, testutil.WithBind(filepath.Join(allow, b[0]), b[1], "rbind", "rprivate"))
				}
				outer := tc.binds[0][1]
				if tc.name == "nested-first" {
					outer = tc.binds[1][1]
				}
				for start := 1; start <= setupStarts; start++ {
					id := fmt.Sprintf("%s-%d", tc.name, start)
					b := testutil.NewBundle(t, rootfs, opts...)
					r.Up(t, b, id)
					mountInside(t, r, id, fmt.Sprintf("%s/m%d", outer, start))
					if err := r.Delete(t, id, true); err != nil {
						t.Fatal(err)
					}
					var below []string
					for _, m := range testutil.MountsUnder(t, allow) {
						if m.Mountpoint != allow {
							below = append(below, fmt.Sprintf("%s (%s %s)", strings.TrimPrefix(m.Mountpoint, allow), m.FSType, m.Source))
						}
					}
					if len(below) != start {
						t.Fatalf("start %d: %d mounts below the allowlisted dir on the host, want the %d the mounter made:\n%s",
							start, len(below), start, strings.Join(below, "\n"))
					}
				}
			})
		}
	})
}

// mountInside mounts a tmpfs at dir inside container id.
func mountInside(t *testing.T, r *testutil.Runc, id, dir string) {
	t.Helper()
	if out, errOut, err := r.Exec(t, id, "sh", "-c", "mkdir -p "+dir+" && mount -t tmpfs rstest-on-purpose "+dir); err != nil {
		t.Fatalf("mount inside %s: %v: %s %s", id, err, out, errOut)
	}
}
