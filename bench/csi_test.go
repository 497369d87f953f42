//go:build bench

package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/runc-shared/runc-shared/internal/csi"
	"github.com/runc-shared/runc-shared/internal/testutil"
)

// csiVolumes is the number of volumes staged and published at once.
const csiVolumes = 50

// testCSI is scenario 7: `mounter csi` on the host (where the helpers are,
// as in the mounter container) against the host's own mount(8), its bind
// for NodePublishVolume, 50 volumes at once, and its peak memory.
func testCSI(t *testing.T, e *glusterEnv) {
	n, warm := runs(), *flagWarm
	srv := startCSI(t, e)
	idle := vmKiB(t, srv.Process.Pid, "VmRSS")
	conn, err := grpc.NewClient("unix://"+filepath.Join(e.dir, "csi.sock"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	node, ctl := csipb.NewNodeClient(conn), csipb.NewControllerClient(conn)
	ctx := context.Background()
	rw := &csipb.VolumeCapability{
		AccessMode: &csipb.VolumeCapability_AccessMode{Mode: csipb.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER},
		AccessType: &csipb.VolumeCapability_Mount{Mount: &csipb.VolumeCapability_MountVolume{}},
	}
	vctx := func(log string) map[string]string {
		return map[string]string{csi.KeyFSType: "glusterfs", csi.KeySource: e.src, csi.KeyOptions: logOpt(e.shared, log)}
	}

	// NodeStageVolume against mount(8) of the same volume on the host.
	staging := mkdir(t, e.shared, "csi-stage")
	cleanupMount(t, staging)
	stageReq := &csipb.NodeStageVolumeRequest{VolumeId: "bench-stage", StagingTargetPath: staging, VolumeCapability: rw, VolumeContext: vctx("csi-stage")}
	stage := func() (Measure, error) {
		start := time.Now()
		if _, err := node.NodeStageVolume(ctx, stageReq); err != nil {
			return Measure{}, err
		}
		took := time.Since(start).Seconds()
		if m := testutil.MountAt(t, staging); m == nil || m.FSType != "fuse.glusterfs" {
			return Measure{}, fmt.Errorf("no fuse.glusterfs mount at %s after NodeStageVolume: %+v", staging, m)
		}
		_, err := node.NodeUnstageVolume(ctx, &csipb.NodeUnstageVolumeRequest{VolumeId: "bench-stage", StagingTargetPath: staging})
		return Measure{V: took}, err
	}
	native := mountTrial(t, Cmd{Argv: []string{"mount", "-t", "glusterfs", "-o", logOpt(e.dir, "csi-native"), e.src,
		mkdir(t, e.dir, "csi-native")}}, filepath.Join(e.dir, "csi-native"))
	a, b := Compare(t, warm, n, Side{"host mount(8)", native}, Side{"NodeStageVolume", stage})
	addRows(&Row{Scenario: "7 GlusterFS NodeStageVolume (mounter csi, in-process helper) vs host-native mount", A: a, B: b,
		Goal: Goal{"ratio", "<=", 1.10, "B/A ≤ 1.10"}})

	// NodePublishVolume: a bind of the staged volume into a pod's path.
	if _, err := node.NodeStageVolume(ctx, stageReq); err != nil {
		t.Fatal(err)
	}
	podDir := mkdir(t, e.shared, "pods", "uid-bench", "volumes", "kubernetes.io~csi", "pv-bench")
	target := filepath.Join(podDir, "mount")
	cleanupMount(t, target)
	pub := Sample{Name: "NodePublishVolume", Unit: Seconds}
	unpub := Sample{Name: "NodeUnpublishVolume", Unit: Seconds}
	for i := 0; i < warm+n; i++ {
		checkInterrupt(t)
		start := time.Now()
		if _, err := node.NodePublishVolume(ctx, &csipb.NodePublishVolumeRequest{VolumeId: "bench-stage", StagingTargetPath: staging,
			TargetPath: target, VolumeCapability: rw, VolumeContext: stageReq.VolumeContext}); err != nil {
			t.Fatal(err)
		}
		p := time.Since(start).Seconds()
		if testutil.MountAt(t, target) == nil {
			t.Fatalf("nothing mounted at %s after NodePublishVolume", target)
		}
		start = time.Now()
		if _, err := node.NodeUnpublishVolume(ctx, &csipb.NodeUnpublishVolumeRequest{VolumeId: "bench-stage", TargetPath: target}); err != nil {
			t.Fatal(err)
		}
		u := time.Since(start).Seconds()
		if i >= warm {
			pub.Values, unpub.Values = append(pub.Values, p), append(unpub.Values, u)
		}
	}
	if _, err := node.NodeUnstageVolume(ctx, &csipb.NodeUnstageVolumeRequest{VolumeId: "bench-stage", StagingTargetPath: staging}); err != nil {
		t.Fatal(err)
	}
	addRows(&Row{Scenario: "7 NodePublishVolume (a bind) and NodeUnpublishVolume, over the gRPC socket", A: unpub, B: pub, NoRatio: true,
		Goal: Goal{"b", "<", 0.005, "B median < 5 ms"}})

	// 50 volumes created, then staged and published all at once.
	type vol struct {
		v               *csipb.Volume
		staging, target string
	}
	vols := make([]vol, csiVolumes)
	for i := range vols {
		cv, err := ctl.CreateVolume(ctx, &csipb.CreateVolumeRequest{Name: fmt.Sprintf("pvc-bench-%02d", i), VolumeCapabilities: []*csipb.VolumeCapability{rw},
			Parameters: map[string]string{csi.KeyFSType: "glusterfs", csi.KeySource: e.src}})
		if err != nil {
			t.Fatal(err)
		}
		vols[i] = vol{v: cv.GetVolume(), staging: mkdir(t, e.shared, "csi-many", strconv.Itoa(i), "globalmount"),
			target: filepath.Join(mkdir(t, e.shared, "pods", "uid-many", "volumes", "kubernetes.io~csi", strconv.Itoa(i)), "mount")}
		cleanupMount(t, vols[i].target)
		cleanupMount(t, vols[i].staging)
	}
	lat := Sample{Name: fmt.Sprintf("stage+publish, each of %d", csiVolumes), Unit: Seconds}
	var mu sync.Mutex
	var failed []string
	var wg sync.WaitGroup
	all := time.Now()
	for _, v := range vols {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			_, err := node.NodeStageVolume(ctx, &csipb.NodeStageVolumeRequest{VolumeId: v.v.GetVolumeId(), StagingTargetPath: v.staging,
				VolumeCapability: rw, VolumeContext: v.v.GetVolumeContext()})
			if err == nil {
				_, err = node.NodePublishVolume(ctx, &csipb.NodePublishVolumeRequest{VolumeId: v.v.GetVolumeId(), StagingTargetPath: v.staging,
					TargetPath: v.target, VolumeCapability: rw, VolumeContext: v.v.GetVolumeContext()})
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed = append(failed, err.Error())
				return
			}
			lat.Values = append(lat.Values, time.Since(start).Seconds())
		}()
	}
	wg.Wait()
	total := Sample{Name: "all " + strconv.Itoa(csiVolumes), Unit: Seconds, Values: []float64{time.Since(all).Seconds()}}
	live := 0
	for _, v := range vols {
		if m := testutil.MountAt(t, v.target); m != nil && m.FSType == "fuse.glusterfs" {
			live++
		}
	}
	status := fmt.Sprintf("pass (%d/%d on the host)", live, csiVolumes)
	if len(failed) > 0 || live != csiVolumes {
		status = fmt.Sprintf("**miss** (%d failed, %d/%d on the host: %s)", len(failed), live, csiVolumes, strings.Join(failed, "; "))
	}
	addRows(&Row{Scenario: fmt.Sprintf("7 %d GlusterFS volumes staged and published concurrently", csiVolumes), A: lat, B: total,
		NoRatio: true, Goal: Goal{Text: "all succeed"}, Status: status})
	peak := vmKiB(t, srv.Process.Pid, "VmHWM")
	for _, v := range vols {
		_, err1 := node.NodeUnpublishVolume(ctx, &csipb.NodeUnpublishVolumeRequest{VolumeId: v.v.GetVolumeId(), TargetPath: v.target})
		_, err2 := node.NodeUnstageVolume(ctx, &csipb.NodeUnstageVolumeRequest{VolumeId: v.v.GetVolumeId(), StagingTargetPath: v.staging})
		_, err3 := ctl.DeleteVolume(ctx, &csipb.DeleteVolumeRequest{VolumeId: v.v.GetVolumeId()})
		for _, err := range []error{err1, err2, err3} {
			if err != nil {
				t.Error(err)
			}
		}
	}
	addRows(&Row{Scenario: "7 memory of mounter csi: RSS at start vs peak (VmHWM) after the runs above", NoRatio: true,
		A:    Sample{Name: "VmRSS at start", Unit: KiB, Values: []float64{idle}},
		B:    Sample{Name: "VmHWM", Unit: KiB, Values: []float64{peak}},
		Goal: Goal{"b", "<", 40 * 1024, "B < 40 MiB"}})
}

// startCSI runs bin/mounter csi on the host and stops it (SIGTERM, by its
// PID) in cleanup.
func startCSI(t *testing.T, e *glusterEnv) *exec.Cmd {
	t.Helper()
	sock := filepath.Join(e.dir, "csi.sock")
	log, err := os.Create(filepath.Join(e.dir, "logs", "csi.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(e.mounter, "csi", "--endpoint", "unix://"+sock, "--driver-name", "bench.csi.runc-shared.io",
		"--node-id", "bench", "--config", e.cfg)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); _ = log.Close(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(time.Minute):
			_ = cmd.Process.Kill()
			<-exited
			t.Error("mounter csi did not stop on SIGTERM")
		}
	})
	testutil.WaitSocket(t, sock, 10*time.Second, exited, func() string {
		b, _ := os.ReadFile(log.Name())
		return string(b)
	})
	return cmd
}

// vmKiB reads a Vm* line of /proc/PID/status, in KiB.
func vmKiB(t *testing.T, pid int, key string) float64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, key+":"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				kb, err := strconv.ParseFloat(f[0], 64)
				if err == nil {
					return kb
				}
			}
		}
	}
	t.Fatalf("no %s in /proc/%d/status", key, pid)
	return 0
}
