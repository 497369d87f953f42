//go:build bench

package bench

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/runc-shared/runc-shared/internal/registry"
	"github.com/runc-shared/runc-shared/internal/testutil"
	"github.com/runc-shared/runc-shared/pkg/spec"
)

// privateRootfs is a private copy of HostUsrRootfs (a few files and links;
// /usr comes from the host through the bundle): runc creates the mount
// points of the preload binds (/.runc-shared, /etc/ld.so.preload) in the
// rootfs, and the cached tree must not get them.
func privateRootfs(t testing.TB) string {
	t.Helper()
	dst := filepath.Join(testutil.TempDir(t), "rootfs")
	if out, err := exec.Command("cp", "-a", testutil.HostUsrRootfs(t), dst).CombinedOutput(); err != nil {
		t.Fatalf("copy the rootfs: %v: %s", err, out)
	}
	return dst
}

// preloadShape is a preload-mode mounter: CAP_SYS_ADMIN and CAP_SYS_CHROOT
// (setns into a mount namespace needs both), /dev/fuse, the host network,
// rprivate root and a private bind of the allowlisted host dir at the same
// path.
func preloadShape(dir string) []testutil.BundleOpt {
	return []testutil.BundleOpt{
		testutil.WithAnnotation(spec.AnnotationMounter, mounterAnnotation),
		testutil.WithAddCaps("SYS_ADMIN", "SYS_CHROOT"),
		testutil.WithFuse(),
		testutil.WithHostNetwork(),
		testutil.WithRootfsPropagation("rprivate"),
		testutil.WithArgs("sleep", "100000"),
		testutil.WithBind(dir, dir, "rbind", "rprivate"),
	}
}

// execLoop is 1,000 execs of /bin/true by bash inside a container; bash's
// `time` prints the loop's wall time and its children's user and system
// CPU time, in seconds, without runc exec's own.
// $P, when set, is an LD_PRELOAD for /bin/true only.
const execLoop = `TIMEFORMAT='%R %U %S'; time (i=0; while [ $i -lt 1000 ]; do LD_PRELOAD=$P /bin/true; i=$((i+1)); done)`

// emptyDSO is a shared library with nothing in it, linked like
// libhostmount.so: what loading any preloaded library costs.
const emptyDSO = `void rsbench_empty(void) {}
`

func loopTrial(runc, root, id, preload string) Trial {
	c := Cmd{Argv: []string{runc, "--root", root, "exec", "--env", "P=" + preload, id, "bash", "-c", execLoop}}
	return func() (Measure, error) {
		r, err := c.Run()
		if err != nil {
			return Measure{}, err
		}
		f := strings.Fields(r.Output)
		if len(f) < 3 {
			return Measure{}, fmt.Errorf("bash time printed %q", r.Output)
		}
		var v [3]float64
		for i, s := range f[len(f)-3:] {
			if v[i], err = strconv.ParseFloat(s, 64); err != nil {
				return Measure{}, fmt.Errorf("bash time printed %q: %w", r.Output, err)
			}
		}
		return Measure{V: v[0], CPU: v[1] + v[2]}, nil
	}
}

// testPreload is scenario 6: the cost of libhostmount.so on every process
// start in the mounter (a loop of 1,000 execs in a preload-mode mounter
// against the same container started by plain runc), and a routed mount
// into a preload-mode mounter against one into the propagate-mode mounter.
func testPreload(t *testing.T, e *glusterEnv) {
	testutil.Bin(t, "libhostmount.so")
	dir := testutil.TempDir(t)
	host := mkdir(t, dir, "host")
	cfg := filepath.Join(dir, "config.toml")
	state := filepath.Join(dir, "state")
	writeFile(t, cfg, fmt.Sprintf(`runtime = %q
state-dir = %q
host-mntns = "self"

[[mounter]]
name = "glusterfs"
mode = "preload"
fstypes = ["glusterfs"]
propagate = [%q]

[mounter.match]
annotations = { %q = %q }
`, e.runc, state, host, spec.AnnotationMounter, mounterAnnotation))
	mkdir(t, host, "logs")

	r := testutil.Wrapper(t, cfg)
	with := testutil.NewBundle(t, privateRootfs(t), preloadShape(host)...)
	r.Up(t, with, "rsbench-preload")
	if out, _, err := r.Exec(t, "rsbench-preload", "cat", "/etc/ld.so.preload"); err != nil || !strings.Contains(out, "libhostmount.so") {
		t.Fatalf("no libhostmount.so in the preload mounter's /etc/ld.so.preload: %q, %v", out, err)
	}
	plain := testutil.NewRunc(t, e.runc)
	without := testutil.NewBundle(t, privateRootfs(t), preloadShape(host)...)
	plain.Up(t, without, "rsbench-plain")
	if out, _, _ := plain.Exec(t, "rsbench-plain", "cat", "/etc/ld.so.preload"); out != "" {
		t.Fatalf("the plain container has an /etc/ld.so.preload: %q", out)
	}

	n, warm := runs(), *flagWarm
	a, b := Compare(t, warm, n,
		Side{"without preload", loopTrial(e.runc, plain.Root, "rsbench-plain", "")},
		Side{"with libhostmount.so", loopTrial(e.runc, r.Root, "rsbench-preload", "")})
	addRows(&Row{Scenario: "6 1,000 × exec /bin/true in a mounter (bash loop, `time`)", A: a, B: b,
		Goal: Goal{"ratio", "<=", 1.03, "B/A ≤ 1.03"}, CPU: true,
		Note: fmt.Sprintf("%+.0f µs per exec", (b.Median()-a.Median())*1e3)})

	// Where the cost comes from: any preloaded library, then this one, both
	// through LD_PRELOAD in the plain container (no /etc/ld.so.preload).
	lib := mkdir(t, without.Rootfs, "opt")
	so := filepath.Join(dir, "empty.so")
	src := filepath.Join(dir, "empty.c")
	writeFile(t, src, emptyDSO)
	if out, err := exec.Command("gcc", "-O2", "-fPIC", "-shared", "-Wl,-z,noseparate-code", "-Wl,-z,norelro", "-o", so, src).CombinedOutput(); err != nil {
		t.Fatalf("build the empty library: %v: %s", err, out)
	}
	for _, f := range []string{so, testutil.Bin(t, "libhostmount.so")} {
		if out, err := exec.Command("cp", f, lib+"/").CombinedOutput(); err != nil {
			t.Fatalf("copy %s into the plain container: %v: %s", f, err, out)
		}
	}
	a, b = Compare(t, warm, n,
		Side{"none", loopTrial(e.runc, plain.Root, "rsbench-plain", "")},
		Side{"empty library", loopTrial(e.runc, plain.Root, "rsbench-plain", "/opt/empty.so")})
	addRows(&Row{Scenario: "6 floor: any preloaded library (an empty one, LD_PRELOAD) vs none", A: a, B: b, CPU: true,
		Note: fmt.Sprintf("%+.0f µs per exec", (b.Median()-a.Median())*1e3)})
	a, b = Compare(t, warm, n,
		Side{"empty library", loopTrial(e.runc, plain.Root, "rsbench-plain", "/opt/empty.so")},
		Side{"libhostmount.so", loopTrial(e.runc, plain.Root, "rsbench-plain", "/opt/libhostmount.so")})
	addRows(&Row{Scenario: "6 libhostmount.so vs the empty library (both LD_PRELOAD)", A: a, B: b, CPU: true,
		Note: fmt.Sprintf("%+.0f µs per exec", (b.Median()-a.Median())*1e3)})

	if _, err := registry.New(state).Read("rsbench-preload"); err != nil {
		t.Fatalf("the preload mounter is not registered (runc-shared should inject mount-hook in preload mode too): %v", err)
	}
	pt := mkdir(t, host, "mnt")
	preload := mountTrial(t, e.mounterCmd(cfg, "mount", "-t", "glusterfs", "-o", logOpt(host, "preload"), e.src, pt), pt)
	gt := mkdir(t, e.shared, "propagate")
	propagate := mountTrial(t, e.mounterCmd(e.cfg, "mount", "-t", "glusterfs", "-o", logOpt(e.shared, "propagate"), e.src, gt), gt)
	a, b = Compare(t, warm, n, Side{"propagate mode", propagate}, Side{"preload mode", preload})
	addRows(&Row{Scenario: "6 GlusterFS mount routed into a preload-mode vs a propagate-mode mounter", A: a, B: b,
		Note: fmt.Sprintf("%+.1f ms", (b.Median()-a.Median())*1e3)})
}
