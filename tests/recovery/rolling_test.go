package recovery_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"

	"github.com/runc-shared/runc-shared/internal/testutil"
)

// TestRollingUpdateGap is what a DaemonSet rolling update does to a node:
// the old mounter gets SIGTERM (mounter csi finishes its calls and exits,
// its FUSE daemons die with its PID namespace), the engine deletes it
// (poststop), the new one starts and recovers. The gap a running pod sees
// is from the SIGTERM to its volumes live again; it is logged, in two
// parts: the old mounter's stop and removal, and the new one's start and
// recovery. The engine's own delay between the two (kubelet creating the
// new pod, pulling its image) comes on top. Five volumes, a consumer with
// rslave binds that reads them before and after.
func TestRollingUpdateGap(t *testing.T) {
	testutil.CheckLeaks(t)
	g := testutil.Glusterd(t)
	e := newEnv(t)
	side := newMounterSide(t, e)
	r := testutil.Wrapper(t, e.Config)

	pid1, log1 := startMounter(t, r, e, side, "roll-mounter-1")
	c := dialNow(t, side.Sock)
	ctx := ctxT(t)
	var vols []volume
	var binds []testutil.BundleOpt
	for i := range 5 {
		pv := fmt.Sprintf("pvc-roll-%d", i)
		cv, err := c.Controller.CreateVolume(ctx, &csipb.CreateVolumeRequest{Name: pv, VolumeCapabilities: []*csipb.VolumeCapability{rwCap},
			Parameters: map[string]string{"fstype": "glusterfs", "source": g.Server + ":/" + g.Volume}})
		if err != nil {
			t.Fatalf("CreateVolume: %v\n%s", err, log1())
		}
		v := volume{ID: cv.GetVolume().GetVolumeId(), Context: cv.GetVolume().GetVolumeContext()}
		v.Staging, v.Target = kubeletPaths(t, e.Shared, pv, fmt.Sprintf("9d4b5c6f-0000-4000-8000-00000000000%d", i))
		if err := stageAndPublish(ctx, c, v); err != nil {
			t.Fatalf("%v\n%s", err, log1())
		}
		if err := os.WriteFile(filepath.Join(v.Target, "f"), []byte("x\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		vols = append(vols, v)
		binds = append(binds, testutil.WithBind(v.Target, fmt.Sprintf("/data%d", i), "rbind", "rslave"))
	}
	c.close()
	consumer := testutil.NewRunc(t, "")
	consumer.Up(t, testutil.NewBundle(t, testutil.BusyboxRootfs(t), append(binds, testutil.WithArgs("sleep", "100000"))...), "roll-consumer")
	readAll := "for i in 0 1 2 3 4; do cat /data$i/f || exit 1; done"

	start := time.Now()
	if err := r.Kill(t, "roll-mounter-1", "TERM"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-testutil.Exited(pid1):
	case <-time.After(time.Minute):
		t.Fatalf("mounter csi did not stop within a minute of SIGTERM:\n%s", log1())
	}
	if err := r.Delete(t, "roll-mounter-1", false); err != nil {
		t.Fatal(err)
	}
	stopped := time.Since(start)
	if out, _, err := consumer.Exec(t, "roll-consumer", "cat", "/data0/f"); err == nil {
		t.Fatalf("the consumer reads while no mounter runs: %q", out)
	}
	newStart := time.Now()
	_, log2 := startMounter(t, r, e, side, "roll-mounter-2")
	var paths []string
	for _, v := range vols {
		paths = append(paths, v.Staging, v.Target)
	}
	waitLive(t, paths, newStart, 30*time.Second, log2)
	recovered := time.Since(newStart)
	t.Logf("rolling update gap for a running pod with 5 volumes: %v (old mounter's SIGTERM, exit and removal %v; new mounter's create, start and recovery %v)",
		time.Since(start).Round(time.Millisecond), stopped.Round(time.Millisecond), recovered.Round(time.Millisecond))
	if out, errOut, err := consumer.Exec(t, "roll-consumer", "sh", "-c", readAll); err != nil || strings.Count(out, "x") != 5 {
		t.Fatalf("the consumer, not restarted, after the update: %v\n%s%s\n%s", err, out, errOut, log2())
	}

	c = connect(t, side.Sock)
	if err := consumer.Delete(t, "roll-consumer", true); err != nil {
		t.Fatal(err)
	}
	for _, v := range vols {
		if err := teardown(ctx, c, v); err != nil {
			t.Errorf("teardown: %v\n%s", err, log2())
		}
		if _, err := c.Controller.DeleteVolume(ctx, &csipb.DeleteVolumeRequest{VolumeId: v.ID}); err != nil {
			t.Errorf("DeleteVolume: %v", err)
		}
	}
}
