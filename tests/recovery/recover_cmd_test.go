package recovery_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"

	"github.com/runc-shared/runc-shared/internal/csi"
	"github.com/runc-shared/runc-shared/internal/mountrec"
	"github.com/runc-shared/runc-shared/internal/testutil"
	"github.com/runc-shared/runc-shared/pkg/spec"
)

// startPlainMounter starts a mounter container through runc-shared that
// runs no server: its main process sleeps; mounts reach it only through
// `mounter` on the host (runtime exec).
func startPlainMounter(t *testing.T, r *testutil.Runc, e *env, side *mounterSide, id string) int {
	t.Helper()
	b := testutil.NewBundle(t, testutil.HostUsrRootfs(t),
		testutil.WithHostNetwork(), testutil.WithFuse(), testutil.WithAddCaps("SYS_ADMIN"),
		testutil.WithAnnotation(spec.AnnotationMounter, annotationValue),
		testutil.WithBind(e.Shared, e.Shared),
		testutil.WithBind(side.Dir, side.Dir),
		testutil.WithArgs("/usr/bin/sleep", "100000"))
	return r.Up(t, b, id)
}

// runMounter runs bin/mounter with the host's configuration and returns
// its output and exit code.
func runMounter(t *testing.T, e *env, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(testutil.Bin(t, "mounter"), append([]string{"--config", e.Config}, args...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("mounter %q: %v", args, err)
	}
	return out.String(), errOut.String(), code
}

// routedRecords returns the routed mounts' records by target.
func routedRecords(t *testing.T, stateDir string) map[string]*mountrec.Mount {
	t.Helper()
	ms, errs := mountrec.MountStore{Dir: mountrec.MountsDir(stateDir)}.List()
	if len(errs) != 0 {
		t.Fatalf("routed mount records that cannot be read: %v", errs)
	}
	out := map[string]*mountrec.Mount{}
	for _, m := range ms {
		out[m.Target] = m
	}
	return out
}

// TestRecoverWithoutServer: two CSI volumes staged and published by the
// server of a first mounter, read by a consumer through rslave binds, and
// two GlusterFS mounts routed into it by `mounter mount` on the host, each
// recorded. kill -9 of the mounter; its deletion runs poststop. The next
// mounter of the rule runs no server: `mounter recover` makes every
// recorded mount again through a runtime exec into it and exits 0; the
// consumer, never restarted, reads and writes again. A routed mount whose
// GlusterFS volume is stopped makes recover exit 32 and name it; once the
// volume is back, recover exits 0. A routed mount its user unmounted (a
// plain umount, then mounter recover or mounter umount) is forgotten, not
// made again.
func TestRecoverWithoutServer(t *testing.T) {
	testutil.CheckLeaks(t)
	g := testutil.Glusterd(t)
	glusterVolume(t, g, "v1")
	e := newEnv(t)
	side := newMounterSide(t, e)
	r := testutil.Wrapper(t, e.Config)

	pid1, log1 := startMounter(t, r, e, side, "rcv-mounter-1")
	c := connect(t, side.Sock)
	ctx := ctxT(t)
	var vols []volume
	for i := range 2 {
		v := volume{ID: fmt.Sprintf("rcv-static-%d", i), Context: map[string]string{csi.KeyFSType: "glusterfs", csi.KeySource: g.Server + ":/" + g.Volume}}
		v.Staging, v.Target = kubeletPaths(t, e.Shared, fmt.Sprintf("pv-rcv-%d", i), fmt.Sprintf("8c3a4b5e-0000-4000-8000-00000000000%d", i))
		if err := stageAndPublish(ctx, c, v); err != nil {
			t.Fatalf("%v\n%s", err, log1())
		}
		if err := os.WriteFile(filepath.Join(v.Target, fmt.Sprintf("before-%d", i)), []byte("before\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		vols = append(vols, v)
	}
	// A CSI inline volume: no staging path, the helper's mount at the
	// target itself.
	inline := volume{ID: "rcv-inline", Context: map[string]string{csi.KeyFSType: "glusterfs", csi.KeySource: g.Server + ":/" + g.Volume}}
	_, inline.Target = kubeletPaths(t, e.Shared, "pv-rcv-inline", "8c3a4b5e-0000-4000-8000-000000000009")
	if _, err := c.Node.NodePublishVolume(ctx, &csipb.NodePublishVolumeRequest{VolumeId: inline.ID, TargetPath: inline.Target,
		VolumeCapability: rwCap, VolumeContext: inline.Context}); err != nil {
		t.Fatalf("NodePublishVolume of the inline volume: %v\n%s", err, log1())
	}
	routed := map[string]string{} // target: GlusterFS volume
	for _, gv := range []string{g.Volume, "v1"} {
		target := filepath.Join(e.Shared, "routed-"+gv)
		if err := os.Mkdir(target, 0o755); err != nil {
			t.Fatal(err)
		}
		if out, errOut, code := runMounter(t, e, "mount", "-t", "glusterfs", "-o", "log-level=WARNING", g.Server+":/"+gv, target); code != 0 {
			t.Fatalf("routed mount of %s: exit %d\n%s%s", gv, code, out, errOut)
		}
		routed[target] = gv
	}
	// The first mounter runs a server: the routed mounts went to it, not
	// through a runtime exec.
	if n := strings.Count(log1(), "msg=Mount "); n != 2 {
		t.Errorf("%d Mount calls in the server's log, want one per routed mount:\n%s", n, log1())
	}
	recs := routedRecords(t, e.StateDir)
	for target, gv := range routed {
		m := recs[target]
		if m == nil || m.Source != g.Server+":/"+gv || m.Rule != "glusterfs" || m.Mounter != "rcv-mounter-1" || !reflect.DeepEqual(m.Options, []string{"log-level=WARNING"}) {
			t.Fatalf("record of the routed mount at %s: %+v", target, m)
		}
	}
	consumer := testutil.NewRunc(t, "")
	cb := testutil.NewBundle(t, testutil.BusyboxRootfs(t),
		testutil.WithBind(vols[0].Target, "/data0", "rbind", "rslave"),
		testutil.WithBind(vols[1].Target, "/data1", "rbind", "rslave"),
		testutil.WithBind(inline.Target, "/data2", "rbind", "rslave"),
		testutil.WithArgs("sleep", "100000"))
	consumerPID := consumer.Up(t, cb, "rcv-consumer")
	// A second consumer binds volume 0 privately: no mount on the host
	// reaches its bind, so status must name it after the recovery.
	pb := testutil.NewBundle(t, testutil.BusyboxRootfs(t),
		testutil.WithBind(vols[0].Target, "/private0", "rbind", "rprivate"),
		testutil.WithArgs("sleep", "100000"))
	privatePID := consumer.Up(t, pb, "rcv-private")
	before := records(t, e.StateDir)

	if err := r.Kill(t, "rcv-mounter-1", "KILL"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-testutil.Exited(pid1):
	case <-time.After(20 * time.Second):
		t.Fatal("the mounter's init survived SIGKILL for 20s")
	}
	if err := r.Delete(t, "rcv-mounter-1", false); err != nil {
		t.Fatal(err)
	}
	if out, _, err := consumer.Exec(t, "rcv-consumer", "cat", "/data0/before-0"); err == nil {
		t.Fatalf("the consumer still reads after the kill: %q", out)
	}

	// With no mounter: the dead publish targets are for recovery, not for
	// umount -l, which would cut the consumer off for good.
	out, errOut, code := runMounter(t, e, "status")
	if code != 0 {
		t.Fatalf("mounter status: exit %d\n%s%s", code, out, errOut)
	}
	_, dead, _ := strings.Cut(out, "DEAD MOUNT")
	for _, v := range vols {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(v.Target) + ` .* dead +mounter recover`).MatchString(dead) {
			t.Errorf("mounter status does not send the dead target %s to mounter recover:\n%s", v.Target, out)
		}
	}

	startPlainMounter(t, r, e, side, "rcv-mounter-2")
	start := time.Now()
	out, errOut, code = runMounter(t, e, "recover")
	took := time.Since(start)
	if code != 0 {
		t.Fatalf("mounter recover: exit %d\n%s%s", code, out, errOut)
	}
	t.Logf("mounter recover through a runtime exec: 2 volumes (2 staging mounts, 2 targets), an inline volume and 2 routed mounts live again in %v", took.Round(time.Millisecond))
	paths := []string{inline.Target}
	for _, v := range vols {
		paths = append(paths, v.Staging, v.Target)
	}
	for target := range routed {
		paths = append(paths, target)
	}
	for _, p := range paths {
		if got := liveState(t, p); got != "live fuse.glusterfs" {
			t.Errorf("%s after mounter recover: %s, want live fuse.glusterfs", p, got)
		}
		if !strings.Contains(out, p) {
			t.Errorf("mounter recover's table does not list %s:\n%s", p, out)
		}
	}
	if strings.Contains(out, "dead") || strings.Contains(out, "missing") {
		t.Errorf("mounter recover's table lists a mount that is not live:\n%s", out)
	}
	if out, errOut, err := consumer.Exec(t, "rcv-consumer", "sh", "-c", "cat /data0/before-0 /data1/before-1 /data2/before-0 && echo after > /data0/after"); err != nil || strings.Count(out, "before") != 3 {
		t.Fatalf("the consumer, not restarted, after mounter recover: %v\n%s%s", err, out, errOut)
	}
	if got, err := os.ReadFile(filepath.Join(g.Brick, "after")); err != nil || string(got) != "after\n" {
		t.Errorf("the consumer's write on the brick: %q, %v", got, err)
	}
	if after := records(t, e.StateDir); !reflect.DeepEqual(before, after) {
		t.Errorf("records changed by recovery:\nbefore %+v\nafter  %+v", before, after)
	}
	for target, m := range routedRecords(t, e.StateDir) {
		if m.Mounter != "rcv-mounter-2" || m.Recovery != nil {
			t.Errorf("routed record of %s after recovery: %+v, want made by rcv-mounter-2 with no failure", target, m)
		}
	}

	// Status: every recorded path live, the private consumer named, the
	// rslave one not.
	out, errOut, code = runMounter(t, e, "status")
	if code != 0 {
		t.Fatalf("mounter status: exit %d\n%s%s", code, out, errOut)
	}
	wantPrivate := fmt.Sprintf("volume %s: process %d (sleep) binds it privately at /private0", vols[0].ID, privatePID)
	if !strings.Contains(out, wantPrivate) || strings.Contains(out, fmt.Sprintf("process %d ", consumerPID)) {
		t.Errorf("mounter status does not name the private consumer %d alone (rslave consumer %d):\n%s", privatePID, consumerPID, out)
	}
	for _, p := range paths {
		if !strings.Contains(out, p) {
			t.Errorf("mounter status does not list %s:\n%s", p, out)
		}
	}
	if out, _, err := consumer.Exec(t, "rcv-private", "cat", "/private0/before-0"); err == nil {
		t.Errorf("the private consumer reads after recovery (%q): then status should not name it", out)
	}

	// A live mount is left alone: a second run changes nothing.
	if out, errOut, code := runMounter(t, e, "recover", "--rule", "glusterfs"); code != 0 {
		t.Fatalf("second mounter recover: exit %d\n%s%s", code, out, errOut)
	}
	if n := len(testutil.MountsUnder(t, vols[0].Target)); n != 2 {
		t.Errorf("%d mounts at %s after a second recover, want the dead one and the one on top", n, vols[0].Target)
	}

	// A routed mount whose GlusterFS volume is stopped: exit 32, named,
	// its failure kept; back once the volume is.
	v1Target := filepath.Join(e.Shared, "routed-v1")
	if err := hostUnmount(v1Target); err != nil {
		t.Fatal(err)
	}
	// Marked as mount-hook marks a mount it detached when its mounter
	// stopped: one its user unmounted would be forgotten instead.
	if err := mountrec.MarkDetached(mountrec.MountStore{Dir: mountrec.MountsDir(e.StateDir)}, v1Target, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := g.CLI(t, "volume", "stop", "v1", "force"); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = runMounter(t, e, "--timeout", "3s", "recover")
	if code != 32 || !strings.Contains(errOut, v1Target+" (routed glusterfs): missing") {
		t.Fatalf("mounter recover with v1 stopped: exit %d, want 32 naming %s\n%s%s", code, v1Target, out, errOut)
	}
	if m := routedRecords(t, e.StateDir)[v1Target]; m == nil || m.Recovery == nil || m.Recovery.Attempts != 1 {
		t.Errorf("record of %s after a failed recovery: %+v, want the failure kept", v1Target, m)
	}
	if _, err := g.CLI(t, "volume", "start", "v1", "force"); err != nil {
		t.Fatal(err)
	}
	if out, errOut, code := runMounter(t, e, "recover"); code != 0 {
		t.Fatalf("mounter recover with v1 started again: exit %d\n%s%s", code, out, errOut)
	}
	if got := liveState(t, v1Target); got != "live fuse.glusterfs" {
		t.Errorf("%s: %s after v1 is back", v1Target, got)
	}

	// A plain umount(8) of a routed mount while its mounter runs is its
	// user's: mounter recover forgets the record and does not mount it
	// again.
	v0Target := filepath.Join(e.Shared, "routed-"+g.Volume)
	if out, err := exec.Command("umount", v0Target).CombinedOutput(); err != nil {
		t.Fatalf("umount %s: %v\n%s", v0Target, err, out)
	}
	out, errOut, code = runMounter(t, e, "recover")
	if code != 0 || !strings.Contains(out, "forgot the routed mount at "+v0Target) {
		t.Errorf("mounter recover after a plain umount of %s: exit %d, want 0 and the mount forgotten\n%s%s", v0Target, code, out, errOut)
	}
	if got := liveState(t, v0Target); got != "none" {
		t.Errorf("%s after a plain umount and mounter recover: %s, want none", v0Target, got)
	}
	if m := routedRecords(t, e.StateDir)[v0Target]; m != nil {
		t.Errorf("record of %s kept after a plain umount and mounter recover: %+v", v0Target, m)
	}

	// mounter umount of a recorded target that is not mounted any more
	// fails as umount(8) does, and forgets it too.
	if out, err := exec.Command("umount", v1Target).CombinedOutput(); err != nil {
		t.Fatalf("umount %s: %v\n%s", v1Target, err, out)
	}
	out, errOut, code = runMounter(t, e, "umount", v1Target)
	if code != 32 || !strings.Contains(errOut, "not mounted") || !strings.Contains(errOut, "removed its record") {
		t.Errorf("mounter umount of the unmounted %s: exit %d, want 32, not mounted, its record removed\n%s%s", v1Target, code, out, errOut)
	}
	if left := routedRecords(t, e.StateDir); len(left) != 0 {
		t.Errorf("records left after the routed mounts were unmounted: %+v", left)
	}
	if out, errOut, code := runMounter(t, e, "recover"); code != 0 || strings.Contains(out, "routed") {
		t.Errorf("mounter recover after the routed mounts were unmounted: exit %d, want 0 and no routed mount\n%s%s", code, out, errOut)
	}
	for target := range routed {
		if got := liveState(t, target); got != "none" {
			t.Errorf("%s made again though unmounted by its user: %s", target, got)
		}
	}

	// The consumer goes; the volumes are unpublished and unstaged from the
	// host (no server runs).
	if err := consumer.Kill(t, "rcv-consumer", "KILL"); err != nil {
		t.Fatal(err)
	}
	if err := consumer.Delete(t, "rcv-consumer", true); err != nil {
		t.Fatal(err)
	}
	if err := consumer.Delete(t, "rcv-private", true); err != nil {
		t.Fatal(err)
	}
	volumePaths := []string{inline.Target}
	for _, v := range vols {
		volumePaths = append(volumePaths, v.Target, v.Staging)
	}
	for _, p := range volumePaths {
		for range testutil.MountsUnder(t, p) {
			if err := hostUnmount(p); err != nil {
				t.Error(err)
			}
		}
	}
}

// hostUnmount unmounts the top mount at path on the host.
func hostUnmount(path string) error {
	if err := unix.Unmount(path, unix.UMOUNT_NOFOLLOW); err != nil {
		return fmt.Errorf("unmount %s: %w", path, err)
	}
	return nil
}
