package reliability_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/runc-shared/runc-shared/internal/testutil"
	"github.com/runc-shared/runc-shared/pkg/spec"
)

// flipCalls is how many mounts (and unmounts) the container makes at each
// flipping path.
const flipCalls = 300

// TestPreloadFlipper races the preload shim against a process that can write
// below the allowlist (any pod's emptyDir lives below /var/lib/kubelet): it
// swaps a directory there with a symlink to a directory outside, as fast as
// it can, while the mounter mounts at that directory, and below a second one,
// and unmounts below it. The shim resolves the target in the container; the
// host call must act on that place or on nothing, never follow a symlink
// planted in between.
//
// The "host" is a throwaway mount namespace (a sleeping child of this test,
// handed to the wrapper as host-mntns): whatever the shim does there goes
// away with it, and the machine's own mount table must not change at all.
// The flipper works on the directories themselves, which both namespaces
// share.
func TestPreloadFlipper(t *testing.T) {
	testutil.CheckLeaks(t)
	base := testutil.TempDir(t)
	allow := filepath.Join(base, "allow")
	dirs := []string{"flip", "flip2/sub", "flip2/sub2", "legit"}
	outs := []string{"outside", "outside2/sub", "outside2/sub2"}
	for _, d := range dirs {
		mkdirAll(t, filepath.Join(allow, d))
	}
	for _, d := range outs {
		mkdirAll(t, filepath.Join(base, d))
	}
	for name, to := range map[string]string{".flip-other": "../outside", ".flip2-other": "../outside2"} {
		if err := os.Symlink(to, filepath.Join(allow, name)); err != nil {
			t.Fatal(err)
		}
	}
	before := testutil.MountsUnder(t, base)

	host := throwawayMountNamespace(t)
	// In the throwaway host: a mount at the real flip2/sub2, which the
	// container may unmount, and one outside, which must survive.
	hostMount(t, host, "rstest-legit-sub2", filepath.Join(allow, "flip2", "sub2"))
	hostMount(t, host, "rstest-outside-sub2", filepath.Join(base, "outside2", "sub2"))

	r := upPreloadMounter(t, "fl", allow, fmt.Sprintf("/proc/%d/ns/mnt", host), "pl-flipper")

	// At the target itself, then at a parent of the target.
	stop := startFlipper(t, filepath.Join(allow, "flip"), filepath.Join(allow, ".flip-other"))
	atTarget := flipLoop(t, r, "pl-flipper", "mount -t tmpfs -o size=64k rstest-flip /host/flip")
	stop()
	stop = startFlipper(t, filepath.Join(allow, "flip2"), filepath.Join(allow, ".flip2-other"))
	atParent := flipLoop(t, r, "pl-flipper", "mount -t tmpfs -o size=64k rstest-flip /host/flip2/sub")
	unmounts := flipLoop(t, r, "pl-flipper", "umount /host/flip2/sub2")
	stop()
	t.Logf("mount /host/flip: %v; mount /host/flip2/sub: %v; umount /host/flip2/sub2: %v", atTarget, atParent, unmounts)

	for _, d := range []string{"outside", "outside2"} {
		var got []string
		for _, m := range testutil.MountsUnderPid(t, host, filepath.Join(base, d)) {
			if m.Source != "rstest-outside-sub2" {
				got = append(got, m.Mountpoint+" ("+m.Source+")")
			}
		}
		if len(got) != 0 {
			t.Errorf("the shim mounted outside the allowlist on the host: %s", strings.Join(got, ", "))
		}
	}
	if m := mountAtPid(t, host, filepath.Join(base, "outside2", "sub2")); m == "" {
		t.Error("the host mount outside the allowlist at outside2/sub2 is gone: an unmount below the allowlist followed a symlink")
	}
	for name, c := range map[string]flipCount{"mount /host/flip": atTarget, "mount /host/flip2/sub": atParent, "umount /host/flip2/sub2": unmounts} {
		if len(c.other) != 0 {
			t.Errorf("%s failed otherwise than with ELOOP or no mount point: %q", name, c.other[:min(len(c.other), 3)])
		}
		if c.loop == 0 {
			t.Errorf("%s: no call refused with ELOOP (%v): the shim refuses nothing, or the race did not happen and the test proves nothing", name, c)
		}
	}
	if n := len(testutil.MountsUnderPid(t, host, allow)); n == 0 {
		t.Error("no mount at the real directories on the host: the shim no longer mounts under the allowlist")
	}

	// Without the flipper, a mount and an unmount below the allowlist work.
	if _, errOut, err := r.Exec(t, "pl-flipper", "mount", "-t", "tmpfs", "rstest-legit", "/host/legit"); err != nil {
		t.Fatalf("mount /host/legit: %v: %s", err, errOut)
	}
	if m := mountAtPid(t, host, filepath.Join(allow, "legit")); m != "rstest-legit" {
		t.Errorf("host mount at legit: source %q, want rstest-legit", m)
	}
	if _, errOut, err := r.Exec(t, "pl-flipper", "umount", "/host/legit"); err != nil {
		t.Fatalf("umount /host/legit: %v: %s", err, errOut)
	}
	if m := mountAtPid(t, host, filepath.Join(allow, "legit")); m != "" {
		t.Errorf("after umount inside, the host still has %s at legit", m)
	}

	if d := testutil.DiffMounts(before, testutil.MountsUnder(t, base)); len(d) != 0 {
		t.Errorf("the machine's own mount table changed below %s: %v", base, d)
	}
}

func mkdirAll(t *testing.T, d string) {
	t.Helper()
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
}

// upPreloadMounter starts container id through runc-shared in preload mode:
// one rule, named and annotated name, whose allowlist is allow, with the
// host mount namespace hostMntns (a host-mntns value); the rootfs is a
// private copy of the host-/usr rootfs, as the preload binds need mount
// points in it, and allow is bound at /host rprivate.
func upPreloadMounter(t *testing.T, name, allow, hostMntns, id string) *testutil.Runc {
	t.Helper()
	runc := testutil.LookPath(t, "runc")
	s := newSetup(t, runc, rule{name: name, propagate: []string{allow}, annotation: name, extra: `mode = "preload"`})
	cfg, err := os.ReadFile(s.Config)
	if err != nil {
		t.Fatal(err)
	}
	testutil.WriteFile(t, s.Config, fmt.Sprintf("host-mntns = %q\n", hostMntns)+string(cfg))
	testutil.Bin(t, "libhostmount.so")
	r := testutil.Wrapper(t, s.Config)
	rootfs := filepath.Join(testutil.TempDir(t), "rootfs")
	if out, err := exec.Command("cp", "-a", testutil.HostUsrRootfs(t), rootfs).CombinedOutput(); err != nil {
		t.Fatalf("copy the rootfs: %v: %s", err, out)
	}
	b := testutil.NewBundle(t, rootfs,
		testutil.WithAnnotation(spec.AnnotationMounter, name),
		testutil.WithAddCaps("SYS_ADMIN", "SYS_CHROOT"),
		testutil.WithRootfsPropagation("rprivate"),
		testutil.WithBind(allow, "/host", "rbind", "rprivate"))
	r.Up(t, b, id)
	return r
}

// throwawayMountNamespace starts a sleeping child in a mount namespace of
// its own (private propagation) and returns its pid; cleanup kills it, and
// the namespace goes away with its last user.
func throwawayMountNamespace(t *testing.T) int {
	t.Helper()
	child := exec.Command("unshare", "--mount", "--propagation", "private", "sleep", "1000")
	if err := child.Start(); err != nil {
		t.Fatalf("start a throwaway mount namespace: %v", err)
	}
	t.Cleanup(func() {
		_ = child.Process.Kill()
		_ = child.Wait()
	})
	nsPath := fmt.Sprintf("/proc/%d/ns/mnt", child.Process.Pid)
	self, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, "unshare to enter a new mount namespace", func() (bool, string) {
		ns, err := os.Readlink(nsPath)
		return err == nil && ns != self, fmt.Sprintf("%s: %s, %v; ours is %s", nsPath, ns, err, self)
	})
	return child.Process.Pid
}

// hostMount mounts a tmpfs named source at target in the mount namespace of
// pid.
func hostMount(t *testing.T, pid int, source, target string) {
	t.Helper()
	out, err := exec.Command("nsenter", "--mount=/proc/"+strconv.Itoa(pid)+"/ns/mnt",
		"mount", "-t", "tmpfs", "-o", "size=64k", source, target).CombinedOutput()
	if err != nil {
		t.Fatalf("mount %s in the throwaway namespace: %v: %s", target, err, out)
	}
}

// mountAtPid returns the source of the topmost mount at path in the mount
// namespace of pid, "" when there is none.
func mountAtPid(t *testing.T, pid int, path string) string {
	t.Helper()
	src := ""
	for _, m := range testutil.MountsUnderPid(t, pid, path) {
		if m.Mountpoint == path {
			src = m.Source
		}
	}
	return src
}

// startFlipper swaps dir and link (RENAME_EXCHANGE: both names always exist)
// until the returned stop is called, which leaves dir the directory and
// returns how many swaps were made.
func startFlipper(t *testing.T, dir, link string) (stop func() int64) {
	t.Helper()
	var (
		done  = make(chan struct{})
		wg    sync.WaitGroup
		swaps atomic.Int64
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			if err := unix.Renameat2(unix.AT_FDCWD, dir, unix.AT_FDCWD, link, unix.RENAME_EXCHANGE); err != nil {
				t.Errorf("swap %s: %v", dir, err)
				return
			}
			swaps.Add(1)
			time.Sleep(20 * time.Microsecond)
		}
	}()
	var once sync.Once
	stop = func() int64 {
		once.Do(func() {
			close(done)
			wg.Wait()
			if fi, err := os.Lstat(dir); err == nil && fi.Mode()&os.ModeSymlink != 0 {
				if err := unix.Renameat2(unix.AT_FDCWD, dir, unix.AT_FDCWD, link, unix.RENAME_EXCHANGE); err != nil {
					t.Errorf("swap %s back: %v", dir, err)
				}
			}
			if swaps.Load() == 0 {
				t.Errorf("the flipper of %s never swapped", dir)
			}
		})
		return swaps.Load()
	}
	t.Cleanup(func() { stop() })
	return stop
}

// flipCount tallies the outcomes of one command run flipCalls times.
type flipCount struct {
	ok, loop, missing int // missing: no mount point (see flipLoop)
	other             []string
}

func (c flipCount) String() string {
	return fmt.Sprintf("%d done, %d ELOOP, %d no mount point, %d other", c.ok, c.loop, c.missing, len(c.other))
}

// flipLoop runs cmd flipCalls times in one exec and sorts the outcomes by
// the message of util-linux: ELOOP ("Too many levels of symbolic links",
// with the shim's log line of its refusal); a missing mount point (mount(8) resolves the target
// itself first and finds the symlink, whose target the container does not
// have: "does not exist", "symbolic link to nowhere"), for umount also no
// mount there (EINVAL: "not mounted", "no mount point specified"); anything
// else.
func flipLoop(t *testing.T, r *testutil.Runc, id, cmd string) flipCount {
	t.Helper()
	script := fmt.Sprintf(`i=0
while [ $i -lt %d ]; do
	if out=$(%s 2>&1); then echo OK; else echo "FAIL $out" | tr '\n' ' '; echo; fi
	i=$((i+1))
done`, flipCalls, cmd)
	out, errOut, err := r.Exec(t, id, "sh", "-c", script)
	if err != nil {
		t.Fatalf("%s in a loop: %v: %s", cmd, err, errOut)
	}
	var c flipCount
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		switch {
		case line == "OK":
			c.ok++
		case strings.Contains(line, "Too many levels of symbolic links") &&
			strings.Contains(line, "libhostmount: ") && strings.Contains(line, "without following symlinks"):
			c.loop++
		case strings.Contains(line, "does not exist"), strings.Contains(line, "symbolic link to nowhere"),
			strings.Contains(line, "No such file or directory"),
			strings.Contains(line, "not mounted"), strings.Contains(line, "no mount point specified"):
			c.missing++
		default:
			c.other = append(c.other, line)
		}
	}
	if n := c.ok + c.loop + c.missing + len(c.other); n != flipCalls {
		t.Fatalf("%s: %d outcomes, want %d:\n%s", cmd, n, flipCalls, out)
	}
	return c
}
