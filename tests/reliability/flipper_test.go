package reliability_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/runtime-spec/specs-go"
	"github.com/runc-shared/runc-shared/internal/testutil"
	"github.com/runc-shared/runc-shared/pkg/spec"
)

const flipperCreates = 30

// TestFlipperNeverEscapes: a process that may write below the allowlisted
// path (any pod, through its emptyDir below /var/lib/kubelet) turns a
// directory there into a symlink to a directory outside and back, as fast as
// a shell can, while matching creates bind it. The wrapper pins the source
// before runc sees it, so:
//
//   - "bind": every create is refused before runc runs or binds the
//     allowlisted directory itself; a mount the mounter makes below the bind
//     never lands outside; a refused create leaves no mount on the host;
//   - "bind+tmpfs": a tmpfs stacked on the bind's destination is refused
//     before runc runs, whatever the flipper does (runc would mount it over
//     the host's directory, outside the allowlist when the flip won).
//
// Runs in throwaway mount namespaces, / private and / rshared.
func TestFlipperNeverEscapes(t *testing.T) {
	testutil.ForEachHostIsolated(t, func(t *testing.T, h testutil.Host) {
		runc := testutil.LookPath(t, "runc")
		for _, stacked := range []bool{false, true} {
			name := "bind"
			if stacked {
				name = "bind+tmpfs"
			}
			t.Run(name, func(t *testing.T) {
				base := testutil.TempDir(t)
				allow, outside := filepath.Join(base, "allow"), filepath.Join(base, "outside")
				for _, d := range []string{filepath.Join(allow, "flip.d"), outside} {
					if err := os.MkdirAll(d, 0o755); err != nil {
						t.Fatal(err)
					}
				}
				for _, f := range []string{filepath.Join(allow, "flip.d", "ALLOWED"), filepath.Join(outside, "OUTSIDE")} {
					if err := os.WriteFile(f, nil, 0o644); err != nil {
						t.Fatal(err)
					}
				}
				s := newSetup(t, runc, rule{name: "flip", propagate: []string{allow}, annotation: "flip"})
				r := testutil.Wrapper(t, s.Config)
				opts := []testutil.BundleOpt{
					testutil.WithAnnotation(spec.AnnotationMounter, "flip"),
					testutil.WithAddCaps("CAP_SYS_ADMIN"),
					testutil.WithBind(filepath.Join(allow, "flip"), "/mnt/flip", "rbind", "rprivate"),
				}
				if stacked {
					opts = append(opts, func(s *specs.Spec) {
						s.Mounts = append(s.Mounts, specs.Mount{Destination: "/mnt/flip", Type: "tmpfs", Source: "rstest-stacked"})
					})
				}
				startBindFlipper(t, allow)

				var refused, allowed int
				for i := range flipperCreates {
					id := fmt.Sprintf("flip-%02d", i)
					b := testutil.NewBundle(t, testutil.BusyboxRootfs(t), opts...)
					before := snapshot(t, base)
					if err := r.Create(t, b, id); err != nil {
						refused++
						// ensure-shared may have made the allowlisted dir a
						// shared mount point of its own (logged, on purpose).
						d := slices.DeleteFunc(before.diff(snapshot(t, base)), func(l string) bool { return strings.HasPrefix(l, "+ "+allow+" ") })
						if len(d) != 0 {
							t.Errorf("create %d was refused (%s) and left mounts:\n%s", i, lastError(t, b.LogPath()), strings.Join(d, "\n"))
						}
						continue
					}
					if stacked {
						t.Errorf("create %d with a tmpfs stacked on the allowlisted bind succeeded", i)
					}
					st, err := r.State(t, id)
					if err != nil {
						t.Fatal(err)
					}
					if _, err := os.Stat(fmt.Sprintf("/proc/%d/root/mnt/flip/ALLOWED", st.Pid)); err != nil {
						t.Errorf("create %d: the container's /mnt/flip is not the allowlisted directory: %v (%s)", i, err, mountRootIn(t, st.Pid, "/mnt/flip"))
					}
					allowed++
					if err := r.Start(t, id); err != nil {
						t.Fatal(err)
					}
					mountInside(t, r, id, fmt.Sprintf("/mnt/flip/m%d", i))
					if err := r.Delete(t, id, true); err != nil {
						t.Fatal(err)
					}
				}
				if ms := testutil.MountsUnder(t, outside); len(ms) != 0 {
					t.Errorf("mounts landed outside the allowlist: %v", ms)
				}
				if ents, _ := os.ReadDir(filepath.Join(s.StateDir, "staging")); len(ents) != 0 {
					t.Errorf("staging left behind: %v", ents)
				}
				t.Logf("%s: %d creates: %d refused, %d bound the allowlisted directory", name, flipperCreates, refused, allowed)
				if stacked && refused != flipperCreates {
					t.Errorf("%d of %d creates with a stacked tmpfs refused, want all", refused, flipperCreates)
				}
			})
		}
	})
}

// startBindFlipper starts a shell that turns dir/flip into the directory
// dir/flip.d and into a symlink to ../outside in turn, forever; it is
// stopped by its PID at cleanup.
func startBindFlipper(t *testing.T, dir string) {
	t.Helper()
	script := `cd "$1" || exit 1
while :; do
	mv -T flip.d flip 2>/dev/null; mv -T flip flip.d 2>/dev/null
	ln -s ../outside flip 2>/dev/null; rm -f flip
done`
	cmd := exec.Command("/bin/sh", "-c", script, "flipper", dir)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start the flipper: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		// Leave the directory in place for the cleanup's checks.
		_ = os.Rename(filepath.Join(dir, "flip"), filepath.Join(dir, "flip.d"))
	})
}
