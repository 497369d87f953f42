package recovery_test

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"

	"github.com/runc-shared/runc-shared/internal/csi"
	"github.com/runc-shared/runc-shared/internal/mountrec"
	"github.com/runc-shared/runc-shared/internal/testutil"
)

// crashRuns is the number of recoveries killed at a random point.
const crashRuns = 200

// innerEnv marks the test binary re-run inside a throwaway mount namespace.
const innerEnv = "RSTEST_RECOVERY_INNER"

// TestRecoveryCrashSafety kills the recovering server with SIGKILL at a
// random point of its recovery, crashRuns times in a row: before, during or
// after a helper mount, a bind or a record write. Then one recovery runs to
// its end. No record may be lost, duplicated or changed, every volume must
// be live at its paths with its files, and each staging path must hold one
// mount.
//
// Each killed recovery that got as far as binding leaves one more dead bind
// under the next one at every publish target (that is how consumers keep
// seeing the volume), so the mount table grows with the runs: the test runs
// in a mount namespace of its own (unshare -m), which goes with it.
func TestRecoveryCrashSafety(t *testing.T) {
	if os.Getenv(innerEnv) == "" {
		testutil.RequireRoot(t)
		cmd := exec.Command("unshare", "--mount", "--propagation", "private", "--",
			os.Args[0], "-test.run=^TestRecoveryCrashSafety$", "-test.count=1", "-test.v", "-test.timeout=20m")
		cmd.Env = append(os.Environ(), innerEnv+"=1")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		sc := bufio.NewScanner(&out)
		for sc.Scan() {
			if l := sc.Text(); strings.HasPrefix(strings.TrimSpace(l), "crash_test.go") || err != nil {
				t.Log(l)
			}
		}
		if err != nil {
			t.Fatalf("the test in its own mount namespace failed: %v", err)
		}
		return
	}
	// The GlusterFS clients run on this namespace's files and log below
	// /var/log/glusterfs: a tmpfs there, gone with the namespace, keeps
	// the host's directory as it was.
	if err := unix.Mount("rstest-gluster-logs", "/var/log/glusterfs", "tmpfs", 0, "mode=0755"); err != nil {
		t.Fatalf("cover /var/log/glusterfs in the test's mount namespace: %v", err)
	}
	testutil.CheckLeaks(t)
	g := testutil.Glusterd(t)
	e := newEnv(t)
	mounter := testutil.Bin(t, "mounter")
	sock := filepath.Join(e.Dir, "csi.sock")

	first := startPidnsServer(t, mounter, e.Config, sock)
	testutil.WaitSocket(t, sock, 20*time.Second, first.exited, first.Log)
	c := dialNow(t, sock)
	ctx := ctxT(t)
	var vols []volume
	var paths []string
	for i := range 5 {
		pv := fmt.Sprintf("pvc-crash-%d", i)
		cv, err := c.Controller.CreateVolume(ctx, &csipb.CreateVolumeRequest{Name: pv, VolumeCapabilities: []*csipb.VolumeCapability{rwCap},
			Parameters: map[string]string{csi.KeyFSType: "glusterfs", csi.KeySource: g.Server + ":/" + g.Volume}})
		if err != nil {
			t.Fatalf("CreateVolume: %v\n%s", err, first.Log())
		}
		v := volume{ID: cv.GetVolume().GetVolumeId(), Context: cv.GetVolume().GetVolumeContext()}
		v.Staging, v.Target = kubeletPaths(t, e.Shared, pv, fmt.Sprintf("uid-%d", i))
		if err := stageAndPublish(ctx, c, v); err != nil {
			t.Fatalf("%v\n%s", err, first.Log())
		}
		if err := os.WriteFile(filepath.Join(v.Target, "file"), []byte(v.ID), 0o644); err != nil {
			t.Fatal(err)
		}
		vols = append(vols, v)
		paths = append(paths, v.Staging, v.Target)
	}
	c.close()
	before := records(t, e.StateDir)
	first.kill(t)

	// One recovery to its end, to know how long one takes.
	start := time.Now()
	s := startPidnsServer(t, mounter, e.Config, sock)
	full := waitLive(t, paths, start, 30*time.Second, s.Log)
	s.kill(t)
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	t.Logf("a full recovery of 5 volumes took %v; killing %d recoveries at random points in [0, %v] (seed %d)",
		full.Round(time.Millisecond), crashRuns, (full * 13 / 10).Round(time.Millisecond), seed)
	killedLive := 0
	for range crashRuns {
		start := time.Now()
		s := startPidnsServer(t, mounter, e.Config, sock)
		time.Sleep(time.Until(start.Add(time.Duration(rng.Int64N(int64(full * 13 / 10))))))
		s.kill(t)
		if isLive(vols[len(vols)-1].Target) {
			killedLive++ // cannot be: the daemons die with the server
		}
	}
	if killedLive > 0 {
		t.Errorf("%d times a volume stayed live after its server was killed: the FUSE daemons outlived it", killedLive)
	}

	// A recovery to its end.
	start = time.Now()
	s = startPidnsServer(t, mounter, e.Config, sock)
	took := waitLive(t, paths, start, 30*time.Second, s.Log)
	testutil.Eventually(t, 10*time.Second, "the last recovery to finish without failures", func() (bool, string) {
		log := s.Log()
		return strings.Contains(log, "0 failed, 0 records unreadable"), "server log:\n" + log
	})
	t.Logf("the recovery after %d killed ones: all live in %v", crashRuns, took.Round(time.Millisecond))
	if after := records(t, e.StateDir); !reflect.DeepEqual(before, after) {
		t.Errorf("records lost, duplicated or changed:\nbefore %+v\nafter  %+v", before, after)
	}
	dir := mountrec.Dir(e.StateDir, driverName)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, en := range ents {
		names = append(names, en.Name())
	}
	if len(names) != len(vols) {
		t.Errorf("record directory holds %v, want %d records and nothing else (no half-written file left)", names, len(vols))
	}
	recs, _ := mountrec.List(e.StateDir)
	for _, r := range recs {
		if r.Recovery != nil {
			t.Errorf("record of %s still holds a failure: %+v", r.VolumeID, r.Recovery)
		}
	}
	maxDepth := 0
	for _, v := range vols {
		if n := len(mountsAt(t, v.Staging)); n != 1 {
			t.Errorf("%s holds %d mounts, want 1 (no helper mount twice)", v.Staging, n)
		}
		maxDepth = max(maxDepth, len(mountsAt(t, v.Target)))
		if got, err := os.ReadFile(filepath.Join(v.Target, "file")); err != nil || string(got) != v.ID {
			t.Errorf("the volume's file through %s: %q, %v", v.Target, got, err)
		}
		if err := os.WriteFile(filepath.Join(v.Target, "after"), []byte("after"), 0o644); err != nil {
			t.Errorf("write through %s: %v", v.Target, err)
		}
	}
	t.Logf("deepest stack of binds at a publish target: %d", maxDepth)

	c = dialNow(t, sock)
	defer c.close()
	for _, v := range vols {
		if err := teardown(ctx, c, v); err != nil {
			t.Errorf("teardown: %v", err)
		}
		if _, err := c.Controller.DeleteVolume(ctx, &csipb.DeleteVolumeRequest{VolumeId: v.ID}); err != nil {
			t.Errorf("DeleteVolume: %v", err)
		}
	}
	for _, m := range testutil.MountsUnder(t, e.Shared) {
		if m.Mountpoint != e.Shared {
			t.Errorf("mount left: %s %s", m.Mountpoint, m.FSType)
		}
	}
}

// mountsAt lists the mounts whose mount point is path, bottom first.
func mountsAt(t *testing.T, path string) []string {
	var out []string
	for _, m := range testutil.MountsUnder(t, path) {
		if m.Mountpoint == path {
			out = append(out, m.FSType)
		}
	}
	return out
}
