package recovery_test

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"

	"github.com/runc-shared/runc-shared/internal/csi"
	"github.com/runc-shared/runc-shared/internal/mountrec"
	"github.com/runc-shared/runc-shared/internal/testutil"
	"github.com/runc-shared/runc-shared/pkg/spec"
)

// mounterSide is where a mounter container's socket, configuration and
// state live: a directory of the host bound into the mounter at the same
// path, and again at /run/csi, where the server reads its own
// configuration (as a DaemonSet mounts one).
type mounterSide struct {
	Dir, Sock, InsideConfig string
}

const inside = "/run/csi"

func newMounterSide(t *testing.T, e *env) *mounterSide {
	t.Helper()
	side := &mounterSide{Dir: testutil.TempDir(t)}
	side.Sock = filepath.Join(side.Dir, "csi.sock")
	// The same rule; the state dir as the mounter sees the host's.
	e.StateDir = filepath.Join(side.Dir, "state")
	e.Config = filepath.Join(side.Dir, "config.toml")
	writeConfig(t, e.Host, e.Config, e.StateDir, e.Shared)
	side.InsideConfig = filepath.Join(inside, "inside.toml")
	writeConfig(t, e.Host, filepath.Join(side.Dir, "inside.toml"), filepath.Join(inside, "state"), e.Shared)
	return side
}

// startMounter starts a mounter container through runc-shared whose main
// process is `mounter csi`, and returns its init's host PID and a function
// that returns the server's output.
func startMounter(t *testing.T, r *testutil.Runc, e *env, side *mounterSide, id string) (int, func() string) {
	t.Helper()
	b := testutil.NewBundle(t, testutil.HostUsrRootfs(t),
		testutil.WithHostNetwork(), testutil.WithFuse(), testutil.WithAddCaps("SYS_ADMIN"),
		testutil.WithAnnotation(spec.AnnotationMounter, annotationValue),
		testutil.WithBind(e.Shared, e.Shared),
		testutil.WithBind(side.Dir, side.Dir),
		testutil.WithBind(side.Dir, inside),
		testutil.WithBind(filepath.Dir(testutil.Bin(t, "mounter")), "/mnt", "rbind", "ro"),
		testutil.WithArgs("/mnt/mounter", "csi", "--endpoint", "unix://"+side.Sock, "--driver-name", driverName,
			"--node-id", "node-1", "--config", side.InsideConfig))
	// A killed server leaves its socket file: wait for the new one.
	if err := os.Remove(side.Sock); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	pid := r.Up(t, b, id)
	log := func() string { o, e := b.InitOutput(t); return o + e }
	testutil.WaitSocket(t, side.Sock, 20*time.Second, testutil.Exited(pid), log)
	return pid, log
}

// TestKillAndRecover: five GlusterFS volumes provisioned, staged and
// published through `mounter csi` in a mounter container started through
// runc-shared, and a sixth, static one from a second GlusterFS volume; a
// consumer container binds the five publish paths rslave (Kubernetes'
// HostToContainer). kill -9 of the mounter's init leaves every mount dead,
// in the consumer too; deleting the container runs mount-hook's poststop.
// A new mounter for the rule makes every volume live
// again at the same host paths, and the consumer, never restarted, reads
// its files and writes new ones onto the brick. The static volume's
// GlusterFS volume was stopped meanwhile: it is reported, kept in its
// record and tried again while the server keeps serving, and comes back
// once the GlusterFS volume is started again.
//
// It runs on both host set-ups: recovery stacks binds on shared mounts,
// whose propagation differs where / is rshared.
func TestKillAndRecover(t *testing.T) {
	testutil.CheckLeaks(t)
	testutil.ForEachHost(t, killAndRecover)
}

func killAndRecover(t *testing.T, h testutil.Host) {
	g := testutil.Glusterd(t)
	glusterVolume(t, g, "v1")
	e := newEnvOn(t, h)
	side := newMounterSide(t, e)
	r := testutil.Wrapper(t, e.Config)

	pid1, log1 := startMounter(t, r, e, side, "rec-mounter-1")
	c := connect(t, side.Sock)
	ctx := ctxT(t)

	var vols []volume
	for i := range 5 {
		pv := fmt.Sprintf("pvc-rec-%d", i)
		cv, err := c.Controller.CreateVolume(ctx, &csipb.CreateVolumeRequest{Name: pv, VolumeCapabilities: []*csipb.VolumeCapability{rwCap},
			Parameters: map[string]string{csi.KeyFSType: "glusterfs", csi.KeySource: g.Server + ":/" + g.Volume}})
		if err != nil {
			t.Fatalf("CreateVolume: %v\n%s", err, log1())
		}
		v := volume{ID: cv.GetVolume().GetVolumeId(), Context: cv.GetVolume().GetVolumeContext()}
		v.Staging, v.Target = kubeletPaths(t, e.Shared, pv, "6a1e2f3c-0000-4000-8000-00000000000"+fmt.Sprint(i))
		vols = append(vols, v)
	}
	static := volume{ID: "static-v1", Context: map[string]string{csi.KeyFSType: "glusterfs", csi.KeySource: g.Server + ":/v1"}}
	static.Staging, static.Target = kubeletPaths(t, e.Shared, "pv-static-v1", "7b2f3a4d-0000-4000-8000-000000000001")
	for _, v := range append(vols, static) {
		if err := stageAndPublish(ctx, c, v); err != nil {
			t.Fatalf("%v\n%s", err, log1())
		}
	}
	var binds []testutil.BundleOpt
	for i, v := range vols {
		if err := os.WriteFile(filepath.Join(v.Target, "before"), []byte(fmt.Sprintf("volume %d before\n", i)), 0o644); err != nil {
			t.Fatal(err)
		}
		binds = append(binds, testutil.WithBind(v.Target, fmt.Sprintf("/data%d", i), "rbind", "rslave"))
	}
	consumer := testutil.NewRunc(t, "")
	cb := testutil.NewBundle(t, testutil.BusyboxRootfs(t), append(binds, testutil.WithArgs("sleep", "100000"))...)
	consumer.Up(t, cb, "rec-consumer")
	readAll := "for i in 0 1 2 3 4; do cat /data$i/before || exit 1; done"
	if out, errOut, err := consumer.Exec(t, "rec-consumer", "sh", "-c", readAll); err != nil || strings.Count(out, "before") != 5 {
		t.Fatalf("consumer before the kill: %v\n%s%s", err, out, errOut)
	}
	before := records(t, e.StateDir)
	if len(before) != 6 {
		t.Fatalf("%d records, want 6: %+v", len(before), before)
	}

	// The mounter dies: every FUSE daemon with it.
	if err := r.Kill(t, "rec-mounter-1", "KILL"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-testutil.Exited(pid1):
	case <-time.After(20 * time.Second):
		t.Fatal("the mounter's init survived SIGKILL for 20s")
	}
	// The kernel kills the rest of the mounter's PID namespace as its init
	// exits (pid_namespaces(7)); a FUSE connection aborts when its daemon's
	// last descriptor of /dev/fuse is closed.
	for _, v := range append(vols, static) {
		for _, p := range []string{v.Staging, v.Target} {
			testutil.Eventually(t, 10*time.Second, p+" dead after the kill", func() (bool, string) {
				got := liveState(t, p)
				return got == "dead fuse.glusterfs", got + ", want dead fuse.glusterfs"
			})
		}
	}
	if out, _, err := consumer.Exec(t, "rec-consumer", "cat", "/data0/before"); err == nil {
		t.Fatalf("the consumer still reads after the kill: %q", out)
	}
	// The engine deletes the dead container, as containerd does before it
	// starts the next one: mount-hook's poststop detaches the dead staging
	// mounts and keeps the dead publish targets, which the consumer's
	// binds copy, for the new mounter to bind on.
	if err := r.Delete(t, "rec-mounter-1", false); err != nil {
		t.Fatal(err)
	}
	for _, v := range append(vols, static) {
		if got := liveState(t, v.Staging); got != "none" {
			t.Errorf("staging %s after poststop: %s, want the dead mount detached", v.Staging, got)
		}
		if got := liveState(t, v.Target); got != "dead fuse.glusterfs" {
			t.Errorf("target %s after poststop: %s, want the dead bind kept", v.Target, got)
		}
	}
	if _, err := g.CLI(t, "volume", "stop", "v1", "force"); err != nil {
		t.Fatal(err)
	}

	// A new mounter for the rule.
	start := time.Now()
	pid2, log2 := startMounter(t, r, e, side, "rec-mounter-2")
	var paths []string
	for _, v := range vols {
		paths = append(paths, v.Staging, v.Target)
	}
	took := waitLive(t, paths, start, 30*time.Second, log2)
	t.Logf("5 volumes live again %v after the new mounter's start (container create and start included)", took.Round(time.Millisecond))
	for _, p := range paths {
		if got := liveState(t, p); got != "live fuse.glusterfs" {
			t.Errorf("%s: %s, want live fuse.glusterfs at the same path", p, got)
		}
	}
	c = connect(t, side.Sock)
	write := "for i in 0 1 2 3 4; do cat /data$i/before && echo after-$i > /data$i/after || exit 1; done"
	if out, errOut, err := consumer.Exec(t, "rec-consumer", "sh", "-c", write); err != nil || strings.Count(out, "before") != 5 {
		t.Fatalf("the consumer, not restarted, after recovery: %v\n%s%s\nserver log:\n%s", err, out, errOut, log2())
	}
	for i, v := range vols {
		pv := filepath.Base(filepath.Dir(v.Target))
		if got, err := os.ReadFile(filepath.Join(g.Brick, pv, "after")); err != nil || string(got) != fmt.Sprintf("after-%d\n", i) {
			t.Errorf("the consumer's write to volume %d on the brick: %q, %v", i, got, err)
		}
	}

	// The stopped GlusterFS volume: reported, retried, the server serves.
	var failed *csi.Record
	testutil.Eventually(t, 20*time.Second, "a second failed attempt of "+static.ID+" in its record", func() (bool, string) {
		recs, _ := mountrec.List(e.StateDir)
		for _, r := range recs {
			if r.VolumeID == static.ID && r.Recovery != nil && r.Recovery.Attempts >= 2 {
				failed = r
			}
		}
		return failed != nil, "server log:\n" + log2()
	})
	if failed.Recovery.Error == "" || failed.Recovery.Next.IsZero() {
		t.Errorf("failure in the record: %+v, want the error and the next attempt", failed.Recovery)
	}
	if !strings.Contains(log2(), "volume="+static.ID) || !strings.Contains(log2(), "trying again") {
		t.Errorf("the server's log does not report %s and its retry:\n%s", static.ID, log2())
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid2)); err != nil {
		t.Fatalf("the new mounter died while %s could not be recovered: %v\n%s", static.ID, err, log2())
	}
	if _, err := c.Node.NodeGetCapabilities(ctx, &csipb.NodeGetCapabilitiesRequest{}); err != nil {
		t.Errorf("the server does not answer while a volume is failing: %v", err)
	}
	if _, err := g.CLI(t, "volume", "start", "v1", "force"); err != nil {
		t.Fatal(err)
	}
	waitLive(t, []string{static.Staging, static.Target}, time.Now(), 30*time.Second, log2)
	after := records(t, e.StateDir)
	if !reflect.DeepEqual(before, after) {
		t.Errorf("records changed by recovery:\nbefore %+v\nafter  %+v", before, after)
	}
	testutil.Eventually(t, 10*time.Second, "records after recovery without a failure or an old pid", func() (bool, string) {
		recs, _ := mountrec.List(e.StateDir)
		clean := len(recs) == 6
		for _, r := range recs {
			clean = clean && r.Recovery == nil && r.PID == 1
		}
		return clean, fmt.Sprintf("%+v", recs)
	})

	// The pod goes, then kubelet unpublishes and unstages, and the
	// provisioner deletes: nothing is left, not the stacked mounts.
	if err := consumer.Kill(t, "rec-consumer", "KILL"); err != nil {
		t.Fatal(err)
	}
	if err := consumer.Delete(t, "rec-consumer", true); err != nil {
		t.Fatal(err)
	}
	for _, v := range append(vols, static) {
		if err := teardown(ctx, c, v); err != nil {
			t.Errorf("teardown: %v\n%s", err, log2())
		}
	}
	for _, v := range vols {
		if _, err := c.Controller.DeleteVolume(ctx, &csipb.DeleteVolumeRequest{VolumeId: v.ID}); err != nil {
			t.Errorf("DeleteVolume: %v", err)
		}
	}
	for _, m := range testutil.MountsUnder(t, e.Shared) {
		if m.Mountpoint != e.Shared {
			t.Errorf("mount left on the host: %s %s", m.Mountpoint, m.FSType)
		}
	}
	if recs, errs := mountrec.List(e.StateDir); len(recs)+len(errs) != 0 {
		t.Errorf("records left: %+v %v", recs, errs)
	}
}
