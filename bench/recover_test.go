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
	"syscall"
	"testing"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/runc-shared/runc-shared/internal/csi"
	"github.com/runc-shared/runc-shared/internal/testutil"
	"github.com/runc-shared/runc-shared/pkg/spec"
)

// recoverDriver keeps this scenario's records apart from scenario 7's.
const recoverDriver = "recover.csi.runc-shared.io"

// testRecover is scenario 8: the time from a new mounter's start to all of
// its volumes live again after the old one was killed, for 1, 10 and 50
// GlusterFS volumes staged and published. The server runs as the first
// process of a PID namespace of its own, as in a mounter container, so
// that killing it kills its FUSE daemons; each trial kills the server,
// starts a new one and waits until every staging path and publish target
// answers statfs. Between trials (not timed) each target is unpublished and
// published again, so that the binds recovery stacks on the dead ones do
// not pile up on the host.
//
// RSBENCH_ROUTE_ONLY=1 in the environment runs the routed mount's rows
// only, for a quick look at the route.
func testRecover(t *testing.T, e *glusterEnv) {
	n, warm := runs(), *flagWarm
	testServerRoute(t, e, warm, n)
	if os.Getenv("RSBENCH_ROUTE_ONLY") == "1" {
		return
	}
	samples := map[int]Sample{}
	for _, count := range []int{1, 10, 50} {
		samples[count] = recoverTrials(t, e, count, warm, n)
	}
	addRows(&Row{Scenario: "8 recovery after a mounter restart (kill -9, new server): 1 vs 10 volumes live again", NoRatio: true,
		A: samples[1], B: samples[10], Goal: Goal{Text: "information"}})
	addRows(&Row{Scenario: "8 recovery after a mounter restart: 10 vs 50 volumes live again", NoRatio: true,
		A: samples[10], B: samples[50], Goal: Goal{"b", "<", 5, "B (50) < 5 s"}})
	per := func(s Sample, count int) Sample {
		out := Sample{Name: fmt.Sprintf("%s, per volume", s.Name), Unit: Seconds}
		for _, v := range s.Values {
			out.Values = append(out.Values, v/float64(count))
		}
		return out
	}
	addRows(&Row{Scenario: "8 recovery, time per volume: 10 vs 50 volumes (linear or better)",
		A: per(samples[10], 10), B: per(samples[50], 50), Goal: Goal{"ratio", "<=", 1.0, "B/A ≤ 1.0"}})
}

// recoverTrials provisions count volumes, stages and publishes them, and
// times warm+n recoveries.
func recoverTrials(t *testing.T, e *glusterEnv, count, warm, n int) Sample {
	t.Helper()
	sock := filepath.Join(e.dir, fmt.Sprintf("recover-%d.sock", count))
	srv := startRecoverServer(t, e, sock)
	node, ctl := recoverClients(t, sock)
	ctx := context.Background()
	rw := &csipb.VolumeCapability{
		AccessMode: &csipb.VolumeCapability_AccessMode{Mode: csipb.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER},
		AccessType: &csipb.VolumeCapability_Mount{Mount: &csipb.VolumeCapability_MountVolume{}},
	}
	type vol struct {
		id              string
		vctx            map[string]string
		staging, target string
	}
	vols := make([]vol, count)
	var paths []string
	publish := func(v vol) error {
		_, err := node.NodePublishVolume(ctx, &csipb.NodePublishVolumeRequest{VolumeId: v.id, StagingTargetPath: v.staging,
			TargetPath: v.target, VolumeCapability: rw, VolumeContext: v.vctx})
		return err
	}
	for i := range vols {
		name := fmt.Sprintf("pvc-recover-%d-%02d", count, i)
		cv, err := ctl.CreateVolume(ctx, &csipb.CreateVolumeRequest{Name: name, VolumeCapabilities: []*csipb.VolumeCapability{rw},
			Parameters: map[string]string{csi.KeyFSType: "glusterfs", csi.KeySource: e.src, csi.KeyOptions: logOpt(e.shared, name)}})
		if err != nil {
			t.Fatal(err)
		}
		v := vol{id: cv.GetVolume().GetVolumeId(), vctx: cv.GetVolume().GetVolumeContext(),
			staging: mkdir(t, e.shared, "recover", strconv.Itoa(count), strconv.Itoa(i), "globalmount"),
			target:  filepath.Join(mkdir(t, e.shared, "pods", "uid-recover", "volumes", "kubernetes.io~csi", name), "mount")}
		vols[i] = v
		cleanupMount(t, v.target)
		cleanupMount(t, v.staging)
		if _, err := node.NodeStageVolume(ctx, &csipb.NodeStageVolumeRequest{VolumeId: v.id, StagingTargetPath: v.staging,
			VolumeCapability: rw, VolumeContext: v.vctx}); err != nil {
			t.Fatal(err)
		}
		if err := publish(v); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, v.staging, v.target)
	}
	sample := Sample{Name: fmt.Sprintf("%d volumes", count), Unit: Seconds}
	for i := 0; i < warm+n; i++ {
		checkInterrupt(t)
		srv.kill(t)
		if allLive(paths[:1]) {
			t.Fatalf("%s still live after its server was killed", paths[0])
		}
		start := time.Now()
		srv = startRecoverServer(t, e, sock)
		for !allLive(paths) {
			if time.Since(start) > time.Minute {
				t.Fatalf("%d volumes not live a minute after the server's start:\n%s", count, srv.log())
			}
			time.Sleep(2 * time.Millisecond)
		}
		took := time.Since(start).Seconds()
		if i >= warm {
			sample.Values = append(sample.Values, took)
		}
		node, ctl = recoverClients(t, sock)
		for _, v := range vols {
			if _, err := node.NodeUnpublishVolume(ctx, &csipb.NodeUnpublishVolumeRequest{VolumeId: v.id, TargetPath: v.target}); err != nil {
				t.Fatal(err)
			}
			if err := publish(v); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, v := range vols {
		_, err1 := node.NodeUnpublishVolume(ctx, &csipb.NodeUnpublishVolumeRequest{VolumeId: v.id, TargetPath: v.target})
		_, err2 := node.NodeUnstageVolume(ctx, &csipb.NodeUnstageVolumeRequest{VolumeId: v.id, StagingTargetPath: v.staging})
		_, err3 := ctl.DeleteVolume(ctx, &csipb.DeleteVolumeRequest{VolumeId: v.id})
		for _, err := range []error{err1, err2, err3} {
			if err != nil {
				t.Error(err)
			}
		}
	}
	srv.stop(t)
	return sample
}

// allLive: every path answers statfs as a FUSE file system.
func allLive(paths []string) bool {
	for _, p := range paths {
		var st unix.Statfs_t
		if unix.Statfs(p, &st) != nil || st.Type != unix.FUSE_SUPER_MAGIC {
			return false
		}
	}
	return true
}

func recoverClients(t *testing.T, sock string) (csipb.NodeClient, csipb.ControllerClient) {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return csipb.NewNodeClient(conn), csipb.NewControllerClient(conn)
}

// recoverServer is `mounter csi` as the first process of a PID namespace.
type recoverServer struct {
	cmd     *exec.Cmd
	pid     int
	logFile string
	exited  chan struct{}
}

func (s *recoverServer) log() string {
	b, _ := os.ReadFile(s.logFile)
	return string(b)
}

// startRecoverServer starts the server and waits for its socket (a killed
// one's socket file is removed first). Cleanup kills it if it still runs.
func startRecoverServer(t *testing.T, e *glusterEnv, sock string) *recoverServer {
	t.Helper()
	if err := os.Remove(sock); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	s := &recoverServer{logFile: filepath.Join(e.dir, "logs", "recover-"+filepath.Base(sock)+".log"), exited: make(chan struct{})}
	out, err := os.OpenFile(s.logFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	// --kill-child: unshare's own death kills the server too.
	s.cmd = exec.Command("unshare", "--pid", "--fork", "--kill-child", "--", e.mounter, "csi", "--endpoint", "unix://"+sock,
		"--driver-name", recoverDriver, "--node-id", "bench", "--config", e.cfg)
	s.cmd.Stdout, s.cmd.Stderr = out, out
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.cmd.Wait(); _ = out.Close(); close(s.exited) }()
	t.Cleanup(func() { s.kill(t) })
	testutil.WaitSocket(t, sock, 10*time.Second, s.exited, s.log)
	// The server answers, so unshare has forked it.
	if s.pid = firstChild(s.cmd.Process.Pid); s.pid == 0 {
		t.Fatalf("mounter csi serves on %s, but unshare %d has no child:\n%s", sock, s.cmd.Process.Pid, s.log())
	}
	return s
}

// kill sends SIGKILL to the server, the first process of its PID
// namespace, so its FUSE daemons die with it, and waits for unshare.
func (s *recoverServer) kill(t *testing.T) {
	select {
	case <-s.exited:
		return
	default:
	}
	_ = syscall.Kill(s.pid, syscall.SIGKILL)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
		t.Errorf("unshare %d outlived its server by 10s", s.cmd.Process.Pid)
	}
}

// stop sends SIGTERM to the server and waits for a clean exit.
func (s *recoverServer) stop(t *testing.T) {
	_ = syscall.Kill(s.pid, syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(time.Minute):
		t.Error("mounter csi did not stop on SIGTERM")
		s.kill(t)
	}
}

// firstChild returns the first child of pid, or 0.
func firstChild(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	c, _ := strconv.Atoi(f[0])
	return c
}

// serverDriver is the driver name of the mounter whose server takes routed
// mounts.
const serverDriver = "route.csi.runc-shared.io"

// testServerRoute is scenario 3's routed mount through the near-native
// route: a second mounter of the rule, started through runc-shared, runs
// `mounter csi` as its main process; `mounter mount` on the host picks it
// (the newest mounter of the rule) and sends the mount to its server over
// the socket, without a runtime exec; the helper runs inside the mounter.
// Against the host's own mount(8) of the same volume, with three times the
// runs of the other rows (the goal is a margin of a few milliseconds on a
// mount whose own time varies by tens), and against the seed's `docker
// exec <mounter> mount` in the same run.
//
// A tmpfs mount through the same route against the host's mount(8) of a
// tmpfs shows the route's own cost without the spread of a GlusterFS
// mount: the rule of the server's mounter routes tmpfs too.
func testServerRoute(t *testing.T, e *glusterEnv, warm, n int) {
	cfg := filepath.Join(e.dir, "config-route.toml")
	data, err := os.ReadFile(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	withTmpfs := strings.Replace(string(data), `fstypes = ["glusterfs"]`, `fstypes = ["glusterfs", "tmpfs"]`, 1)
	if withTmpfs == string(data) {
		t.Fatalf("%s has no fstypes line to extend:\n%s", e.cfg, data)
	}
	writeFile(t, cfg, withTmpfs)
	serverLog := startServerMounter(t, e, cfg)
	target := mkdir(t, e.shared, "served")
	routed := mountTrial(t, e.mounterCmd(cfg, "mount", "-t", "glusterfs", "-o", logOpt(e.shared, "served"), e.src, target), target)
	mounts := 0
	served := func() (Measure, error) { mounts++; return routed() }
	servedTmpfs := func(mounter string) Trial {
		target := mkdir(t, e.shared, "served-tmpfs")
		trial := tmpfsTrial(t, Cmd{Argv: []string{mounter, "--config", cfg, "mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", target}}, target)
		return func() (Measure, error) { mounts++; return trial() }
	}
	native := mountTrial(t, Cmd{Argv: []string{"mount", "-t", "glusterfs", "-o", logOpt(e.dir, "native-served"), e.src,
		mkdir(t, e.dir, "native-served")}}, filepath.Join(e.dir, "native-served"))
	// The route must have gone through the server, not the runtime exec.
	checkServed := func() {
		t.Helper()
		if calls := strings.Count(serverLog(), "msg=Mount "); calls < mounts {
			t.Fatalf("%d Mount calls in the server's log for %d routed mounts: the route did not go through the server\n%s", calls, mounts, serverLog())
		}
	}
	a, b := Compare(t, warm, 3*n, Side{"host mount(8)", native}, Side{"mounter (routed through the server)", served})
	checkServed()
	addRows(&Row{Scenario: "3 GlusterFS mount: routed through the mounter's server (no runtime exec) vs host-native", A: a, B: b,
		Goal: Goal{"ratio", "<=", 1.10, "B/A ≤ 1.10"}, CPU: true, Note: pairedNote(a, b)})

	nativeTmpfs := tmpfsTrial(t, Cmd{Argv: []string{"mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mkdir(t, e.dir, "native-tmpfs")}},
		filepath.Join(e.dir, "native-tmpfs"))
	a, b = Compare(t, warm, 3*n, Side{"host mount(8) of a tmpfs", nativeTmpfs}, Side{"mounter (routed through the server)", servedTmpfs(e.mounter)})
	checkServed()
	addRows(&Row{Scenario: "3 the server route's own cost: a tmpfs mount routed through the server vs host-native", A: a, B: b,
		CPU: true, Note: pairedNote(a, b)})

	if *flagBefore != "" {
		// The same route by an earlier build's client.
		a, b := Compare(t, warm, 3*n, Side{"mounter of " + *flagBefore, servedTmpfs(filepath.Join(*flagBefore, "mounter"))},
			Side{"mounter (routed through the server)", servedTmpfs(e.mounter)})
		checkServed()
		addRows(&Row{Scenario: "3 a tmpfs mount routed through the server: before → after (" + *flagBefore + ")", A: a, B: b, CPU: true, Note: pairedNote(a, b)})
	}

	const seedRow = "3 GlusterFS mount: routed through the mounter's server vs the seed's `docker exec <mounter> mount`"
	if !*flagDocker {
		addRows(&Row{Scenario: seedRow, Status: "n/a (-bench.docker=false)"})
	} else {
		a, b = Compare(t, warm, n, Side{"`docker exec` (seed)", seedRoute(t, e, "docker-served")}, Side{"mounter (routed through the server)", served})
		checkServed()
		addRows(&Row{Scenario: seedRow, A: a, B: b, Goal: Goal{"ratio", "<=", 0.5, "B/A ≤ 0.5 (2x faster)"}})
	}
}

// pairedNote is the median and the quartiles of the differences B−A of the
// runs taken side by side: a change of a few milliseconds shows there
// even when each side's own spread is larger.
func pairedNote(a, b Sample) string {
	var d []float64
	for i := range min(len(a.Values), len(b.Values)) {
		d = append(d, b.Values[i]-a.Values[i])
	}
	return fmt.Sprintf("B−A per pair: median %+.2f ms (quartiles %+.2f, %+.2f ms, %d pairs)",
		quantile(d, 0.5)*1e3, quantile(d, 0.25)*1e3, quantile(d, 0.75)*1e3, len(d))
}

// tmpfsTrial times c, which must leave a tmpfs at target, then (not timed)
// checks it on the host and unmounts it.
func tmpfsTrial(t testing.TB, c Cmd, target string) Trial {
	cleanupMount(t, target)
	return func() (Measure, error) {
		r, err := c.Run()
		if err != nil {
			return Measure{}, err
		}
		if m := testutil.MountAt(t, target); m == nil || m.FSType != "tmpfs" {
			return Measure{}, fmt.Errorf("after %v: no tmpfs at %s on the host: %+v", c.Argv, target, m)
		}
		return r.measure(), unix.Unmount(target, 0)
	}
}

// startServerMounter starts a second mounter of the rule through
// runc-shared, configured by cfg, with `mounter csi` as its main process, waits for its socket
// and returns a reader of its output (the server's log).
func startServerMounter(t *testing.T, e *glusterEnv, cfg string) (serverLog func() string) {
	t.Helper()
	r := testutil.Wrapper(t, cfg)
	sock := filepath.Join(e.dir, "route.sock")
	b := testutil.NewBundle(t, testutil.HostUsrRootfs(t),
		testutil.WithHostNetwork(), testutil.WithFuse(), testutil.WithAddCaps("SYS_ADMIN"),
		testutil.WithAnnotation(spec.AnnotationMounter, mounterAnnotation),
		testutil.WithBind(e.shared, e.shared),
		testutil.WithBind(e.dir, e.dir),
		testutil.WithBind(filepath.Dir(e.mounter), "/mnt", "rbind", "ro"),
		testutil.WithArgs("/mnt/mounter", "csi", "--endpoint", "unix://"+sock, "--driver-name", serverDriver,
			"--node-id", "bench", "--config", cfg))
	pid := r.Up(t, b, "rsbench-server")
	serverLog = func() string { o, e := b.InitOutput(t); return o + e }
	testutil.WaitSocket(t, sock, 10*time.Second, testutil.Exited(pid), serverLog)
	return serverLog
}
