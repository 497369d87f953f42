package reliability_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runc-shared/runc-shared/internal/hostmount"
	"github.com/runc-shared/runc-shared/internal/testutil"
)

const (
	leakCycles  = 100
	leakWorkers = 4 // cycles run on this many mounters at a time
)

// TestMounterCyclesLeakNothing runs 100 mounter lifecycles through the
// wrapper and real runc: start a mounter (host /usr as rootfs, /dev/fuse,
// CAP_SYS_ADMIN, the shared host path bound at /host), mount bindfs inside
// at /host/fN (the mount reaches the host), SIGKILL the container (the FUSE
// daemon dies with it: the host keeps a dead mount), delete it (mount-hook's
// poststop detaches the dead mount and drops the registry record). After
// every cycle the mounts below the host path must be back to the baseline,
// and at the end the registry must be empty and no process of ours left.
func TestMounterCyclesLeakNothing(t *testing.T) {
	testutil.CheckLeaks(t)
	runc := testutil.LookPath(t, "runc")
	host := testutil.SharedDir(t)
	s := newSetup(t, runc, rule{name: "leak", propagate: []string{host}, annotation: "leak"})
	r := testutil.Wrapper(t, s.Config)
	rootfs := testutil.HostUsrRootfs(t)
	baseline := snapshot(t, host)

	start := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []string
	var dead, hookDetached int
	for w := range leakWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < leakCycles; i += leakWorkers {
				d, err := cycle(t, r, rootfs, host, i)
				mu.Lock()
				if err != nil {
					errs = append(errs, fmt.Sprintf("cycle %d: %v", i, err))
				}
				if d {
					dead++
				}
				if err == nil {
					hookDetached++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	for _, e := range errs {
		t.Error(e)
	}
	if d := baseline.diff(snapshot(t, host)); len(d) != 0 {
		t.Errorf("mount table differs from the baseline after %d cycles:\n%s", leakCycles, strings.Join(d, "\n"))
	}
	s.registryEmpty(t)
	if ps := ourProcesses(t, rootfs, host); len(ps) != 0 {
		t.Errorf("processes left: %v", ps)
	}
	// A poststop detaches every dead FUSE mount below the rule's paths, so
	// with cycles running side by side one mounter's delete may take
	// another's dead mount before that one's own delete.
	t.Logf("%d mounter cycles (%d at a time) in %v: every bindfs mount reached the host; %d were still there, dead, when their container had stopped; %d cycles ended with no mount left, by mount-hook's poststop alone; %d failed",
		leakCycles, leakWorkers, took.Round(time.Millisecond), dead, hookDetached, len(errs))
}

// cycle runs one mounter lifecycle. It reports whether the kill left a dead
// FUSE mount on the host (as a mounter's death does), and an error for
// anything that went wrong or was left behind.
func cycle(t *testing.T, r *testutil.Runc, rootfs, host string, i int) (dead bool, err error) {
	id := fmt.Sprintf("leak-%03d", i)
	target := filepath.Join(host, "f"+strconv.Itoa(i))
	if err := os.Mkdir(target, 0o755); err != nil {
		return false, err
	}
	defer os.Remove(target)
	b := testutil.NewBundle(t, rootfs,
		testutil.WithAnnotation("runc-shared.io/mounter", "leak"),
		testutil.WithAddCaps("CAP_SYS_ADMIN"),
		testutil.WithFuse(),
		testutil.WithBind(host, "/host", "rbind", "rprivate"))
	if err := r.Create(t, b, id); err != nil {
		return false, err
	}
	if err := r.Start(t, id); err != nil {
		return false, err
	}
	inside := "/host/f" + strconv.Itoa(i)
	if out, errOut, err := r.Exec(t, id, "bindfs", "/usr/share/doc", inside); err != nil {
		return false, fmt.Errorf("bindfs in the mounter: %w: %s %s", err, out, errOut)
	}
	m := testutil.MountAt(t, target)
	if m == nil || !hostmount.IsFUSE(m.FSType) {
		return false, fmt.Errorf("bindfs mount at %s did not reach the host: %+v", target, m)
	}
	if err := r.Kill(t, id, "KILL"); err != nil {
		return false, err
	}
	if err := waitStopped(t, r, id); err != nil {
		return false, err
	}
	dead = testutil.MountAt(t, target) != nil
	if err := r.Delete(t, id, false); err != nil {
		return dead, err
	}
	if m := testutil.MountAt(t, target); m != nil {
		// Not cleaned by the hook: detach it so the next cycles start clean.
		_ = hostmount.Detach(target)
		return dead, fmt.Errorf("dead FUSE mount %s (%s) left after delete: mount-hook's poststop did not detach it", target, m.FSType)
	}
	return dead, nil
}

func waitStopped(t *testing.T, r *testutil.Runc, id string) error {
	var st *testutil.State
	var err error
	if testutil.Poll(10*time.Second, func() bool {
		st, err = r.State(t, id)
		return err != nil || st.Status == "stopped"
	}) {
		return err
	}
	return fmt.Errorf("container %s is %s 10s after SIGKILL", id, st.Status)
}

// ourProcesses lists live processes (no zombies, not this one) whose root is
// the test rootfs or whose command line names the host path (bindfs, sleep
// inits, FUSE daemons).
func ourProcesses(t *testing.T, rootfs, host string) []string {
	t.Helper()
	var out []string
	for _, pid := range testutil.Pids(func([]string) bool { return true }) {
		root, _ := os.Readlink(fmt.Sprintf("/proc/%d/root", pid))
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		argv := strings.ReplaceAll(strings.TrimRight(string(cmd), "\x00"), "\x00", " ")
		if root == rootfs || strings.Contains(argv, host) || strings.Contains(argv, rootfs) {
			out = append(out, fmt.Sprintf("%d %q root=%s", pid, argv, root))
		}
	}
	return out
}
