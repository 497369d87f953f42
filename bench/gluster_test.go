//go:build bench

package bench

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/runc-shared/runc-shared/internal/registry"
	"github.com/runc-shared/runc-shared/internal/testutil"
	"github.com/runc-shared/runc-shared/pkg/spec"
)

// glusterEnv is what scenarios 3 to 6 share: a glusterd on 127.0.0.2 with
// volume v0, and a live mounter started through runc-shared (propagate
// mode), registered by the mount-hook that runc-shared injected.
type glusterEnv struct {
	g       *testutil.Gluster
	src     string // 127.0.0.2:/v0
	dir     string // configs, logs, host-native targets
	shared  string // the rule's propagated path: a shared mount, bound at the same path in the mounter
	cfg     string // config.toml, rule "glusterfs" in propagate mode
	state   string // state-dir (registry)
	runc    string // the delegate runc
	root    string // the mounter's runtime state root
	id      string // the mounter container
	pid     int
	bundle  *testutil.Bundle
	mounter string // bin/mounter
	hook    string // bin/mount-hook
}

// glusterReady tells TestBench that a failure of the gluster group came
// from a scenario (which left its own row), not from the set-up.
var glusterReady bool

// mounterAnnotation marks the GlusterFS mounters.
const mounterAnnotation = "glusterfs"

// waitPortFree waits for another test's glusterd (they all use port 24007)
// to go away, up to timeout.
func waitPortFree(t testing.TB, addr string, timeout time.Duration) {
	t.Helper()
	var err error
	logged := false
	if !testutil.Poll(timeout, func() bool {
		var ln net.Listener
		if ln, err = net.Listen("tcp", addr); err == nil {
			ln.Close()
			return true
		}
		if !logged {
			t.Logf("%s is taken (another glusterd runs): waiting up to %v", addr, timeout)
			logged = true
		}
		checkInterrupt(t)
		return false
	}) {
		t.Fatalf("%s still taken after %v (another glusterd runs): %v", addr, timeout, err)
	}
}

func testGluster(t *testing.T) {
	testutil.CheckLeaks(t)
	waitPortFree(t, "127.0.0.2:24007", 15*time.Minute)
	g := testutil.Glusterd(t)
	// The client's io-cache would serve a read after drop_caches from the
	// FUSE daemon's memory, not from the brick.
	if _, err := g.CLI(t, "volume", "set", g.Volume, "performance.io-cache", "off"); err != nil {
		t.Fatal(err)
	}
	env := newGlusterEnv(t, g)
	glusterReady = true
	group(t, "mount", "3 routed mount", func(t *testing.T) { testRoutedMount(t, env) })
	group(t, "io", "4 I/O through a routed mount", func(t *testing.T) { testIO(t, env) })
	group(t, "scale", "5 scale", func(t *testing.T) { testScale(t, env) })
	group(t, "preload", "6 preload", func(t *testing.T) { testPreload(t, env) })
	group(t, "csi", "7 CSI driver", func(t *testing.T) { testCSI(t, env) })
	group(t, "recover", "8 recovery after a mounter restart", func(t *testing.T) { testRecover(t, env) })
}

func newGlusterEnv(t *testing.T, g *testutil.Gluster) *glusterEnv {
	t.Helper()
	e := &glusterEnv{
		g: g, src: g.Server + ":/" + g.Volume,
		dir:     testutil.TempDir(t),
		shared:  testutil.SharedDir(t),
		runc:    lookPath(t, "runc"),
		mounter: testutil.Bin(t, "mounter"),
		hook:    testutil.Bin(t, "mount-hook"),
		id:      "rsbench-mounter",
	}
	e.state = filepath.Join(e.dir, "state")
	e.cfg = filepath.Join(e.dir, "config.toml")
	writeFile(t, e.cfg, testutil.GlusterRuleConfig(e.state, e.shared, spec.AnnotationMounter, mounterAnnotation, ""))
	for _, d := range []string{filepath.Join(e.dir, "logs"), filepath.Join(e.shared, "logs")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	r := testutil.Wrapper(t, e.cfg)
	e.root = r.Root
	e.bundle = testutil.NewBundle(t, testutil.HostUsrRootfs(t),
		testutil.WithHostNetwork(), testutil.WithFuse(), testutil.WithAddCaps("SYS_ADMIN"),
		testutil.WithAnnotation(spec.AnnotationMounter, mounterAnnotation),
		testutil.WithArgs("sleep", "100000"),
		testutil.WithBind(e.shared, e.shared))
	e.pid = r.Up(t, e.bundle, e.id)
	if _, err := registry.New(e.state).Read(e.id); err != nil {
		t.Fatalf("mounter %s is not registered (runc-shared should inject mount-hook, which registers it): %v\nlog.json: %s",
			e.id, err, e.bundle.Log(t))
	}
	return e
}

// mkdir makes a directory and returns it.
func mkdir(t testing.TB, parts ...string) string {
	t.Helper()
	d := filepath.Join(parts...)
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

// unmount removes the mount at target on the host and waits for its FUSE
// daemon (found by target on its command line) to exit, so that every run
// starts from the same state.
func unmount(target string) error {
	err := unix.Unmount(target, 0)
	if errors.Is(err, unix.EBUSY) {
		err = unix.Unmount(target, unix.MNT_DETACH)
	}
	if err != nil {
		return fmt.Errorf("unmount %s: %w", target, err)
	}
	return waitGone(filepath.Clean(target), 10*time.Second)
}

// cleanupMount unmounts target at the end of the test if it is still a
// mount point (registered before the mount, it runs before the mounter
// stops: the FUSE daemon lives there).
func cleanupMount(t testing.TB, target string) {
	t.Cleanup(func() {
		if testutil.MountAt(t, target) != nil {
			if err := unmount(target); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	})
}

// mountTrial times c, which must leave a fuse.glusterfs mount at target,
// then (not timed) checks it on the host and unmounts it.
func mountTrial(t testing.TB, c Cmd, target string) Trial {
	cleanupMount(t, target)
	return func() (Measure, error) {
		r, err := c.Run()
		if err != nil {
			return Measure{}, err
		}
		if m := testutil.MountAt(t, target); m == nil || m.FSType != "fuse.glusterfs" {
			return Measure{}, fmt.Errorf("after %v: no fuse.glusterfs mount at %s on the host: %+v", c.Argv, target, m)
		}
		return r.measure(), unmount(target)
	}
}

// logOpt keeps the FUSE client's log out of /var/log/glusterfs: a file
// below dir, which the host and the mounter see at the same path.
func logOpt(dir, name string) string { return "log-file=" + filepath.Join(dir, "logs", name+".log") }

// mounterCmd is `mounter --config CFG ARGS...`.
func (e *glusterEnv) mounterCmd(cfg string, args ...string) Cmd {
	return Cmd{Argv: append([]string{e.mounter, "--config", cfg}, args...)}
}

// testRoutedMount is scenario 3: a GlusterFS mount through the routing
// client against the host's own mount(8), against the seed's route
// (`docker exec <mounter> mount`) and against a bare `runc exec` (what the
// client runs, without its routing and host check).
func testRoutedMount(t *testing.T, e *glusterEnv) {
	n, warm := runs(), *flagWarm
	routed := mountTrial(t, e.mounterCmd(e.cfg, "mount", "-t", "glusterfs", "-o", logOpt(e.shared, "routed"), e.src,
		mkdir(t, e.shared, "routed")), filepath.Join(e.shared, "routed"))
	native := mountTrial(t, Cmd{Argv: []string{"mount", "-t", "glusterfs", "-o", logOpt(e.dir, "native"), e.src,
		mkdir(t, e.dir, "native")}}, filepath.Join(e.dir, "native"))
	a, b := Compare(t, warm, n, Side{"host mount(8)", native}, Side{"mounter (routed)", routed})
	addRows(&Row{Scenario: "3 GlusterFS mount: routed through the mounter vs host-native", A: a, B: b,
		Goal: Goal{"ratio", "<=", 1.25, "B/A ≤ 1.25"}, CPU: true})

	rexec := mountTrial(t, Cmd{Argv: []string{e.runc, "--root", e.root, "exec", e.id, "mount", "-t", "glusterfs",
		"-o", logOpt(e.shared, "rexec"), e.src, mkdir(t, e.shared, "rexec")}}, filepath.Join(e.shared, "rexec"))
	a, b = Compare(t, warm, n, Side{"bare `runc exec … mount`", rexec}, Side{"mounter (routed)", routed})
	addRows(&Row{Scenario: "3 routing client's own cost: mounter vs the `runc exec` it makes", A: a, B: b,
		Note: fmt.Sprintf("+%s", Seconds.format(b.Median()-a.Median()))})

	// What a route that joins the mounter's namespaces itself (setns, as
	// nsenter does) instead of `runc exec` would cost: the FUSE daemon still
	// lands in the mounter's mount, network and PID namespaces (and dies with
	// it), but not in its cgroup, and without its seccomp and capability set.
	nsenter := mountTrial(t, Cmd{Argv: []string{"nsenter", "-t", fmt.Sprint(e.pid), "-m", "-n", "-p", "-i", "-u", "--",
		"mount", "-t", "glusterfs", "-o", logOpt(e.shared, "nsenter"), e.src, mkdir(t, e.shared, "nsenter")}},
		filepath.Join(e.shared, "nsenter"))
	a, b = Compare(t, warm, n, Side{"host mount(8)", native}, Side{"`nsenter -t PID -m -n -p -i -u mount`", nsenter})
	addRows(&Row{Scenario: "3 stand-in for a setns route (no `runc exec`) vs host-native", A: a, B: b,
		Note: "what the goal would need"})

	if !*flagDocker {
		addRows(&Row{Scenario: "3 seed's route `docker exec <mounter> mount`", Status: "n/a (-bench.docker=false)"})
		return
	}
	a, b = Compare(t, warm, n, Side{"`docker exec` (seed)", seedRoute(t, e, "docker")}, Side{"mounter (routed)", routed})
	addRows(&Row{Scenario: "3 GlusterFS mount: routed vs the seed's `docker exec <mounter> mount`", A: a, B: b,
		Goal: Goal{"ratio", "<", 1, "B/A < 1 (faster)"}})
}

// testIO is scenario 4: sequential write then read of the same size through
// a routed mount and a host-native one of the same volume. Throughput is
// the size over fio's wall time; the page cache is dropped before each
// read.
func testIO(t *testing.T, e *glusterEnv) {
	fio := lookPath(t, "fio")
	native := mkdir(t, e.dir, "native-io")
	routed := mkdir(t, e.shared, "routed-io")
	cleanupMount(t, native)
	cleanupMount(t, routed)
	if r, err := (Cmd{Argv: []string{"mount", "-t", "glusterfs", "-o", logOpt(e.dir, "native-io"), e.src, native}}).Run(); err != nil {
		t.Fatalf("%v %s", err, r.Output)
	}
	if r, err := e.mounterCmd(e.cfg, "mount", "-t", "glusterfs", "-o", logOpt(e.shared, "routed-io"), e.src, routed).Run(); err != nil {
		t.Fatalf("%v %s", err, r.Output)
	}
	if *flagIOCPU {
		for _, pid := range testutil.Pids(func(argv []string) bool { return filepath.Clean(argv[len(argv)-1]) == routed }) {
			if err := os.WriteFile("/sys/fs/cgroup/cpu/cgroup.procs", []byte(fmt.Sprint(pid)), 0o644); err != nil {
				t.Fatalf("move the routed FUSE daemon %d to the root cpu cgroup: %v", pid, err)
			}
		}
	}
	if *flagProf || *flagIOCPU {
		for _, m := range []string{native, routed} {
			describeDaemon(t, m)
		}
	}
	size := int64(*flagIOSize) << 20
	job := func(rw, file string) Cmd {
		argv := []string{fio, "--name=seq" + rw, "--filename=" + file, "--rw=" + rw, "--bs=1M",
			fmt.Sprintf("--size=%d", size), "--ioengine=psync", "--output-format=terse"}
		if rw == "write" {
			argv = append(argv, "--end_fsync=1")
		} else {
			argv = append(argv, "--readonly")
		}
		return Cmd{Argv: argv, Timeout: 10 * time.Minute}
	}
	throughput := func(c Cmd) (float64, error) {
		r, err := c.Run()
		if err != nil {
			return 0, err
		}
		return float64(size) / r.Wall.Seconds(), nil
	}
	dropped := true
	drop := func() {
		if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0o200); err != nil {
			dropped = false
		}
	}
	mounts := []string{native, routed}
	write := []Sample{{Name: "host-native", Unit: BytesPerSec}, {Name: "routed", Unit: BytesPerSec}}
	read := []Sample{{Name: "host-native", Unit: BytesPerSec}, {Name: "routed", Unit: BytesPerSec}}
	for i := range *flagIORuns + 1 { // the first round warms up
		checkInterrupt(t)
		// Which side goes first alternates: the first run after a
		// drop_caches or a long write pays more for the same work.
		order := []int{0, 1}
		if i%2 == 1 {
			order = []int{1, 0}
		}
		files := make([]string, len(mounts))
		for _, k := range order {
			m := mounts[k]
			// Both mounts are the same volume: one file each.
			files[k] = filepath.Join(m, fmt.Sprintf("seq-%d-%d", k, i))
			v, err := throughput(job("write", files[k]))
			if err != nil {
				t.Fatal(err)
			}
			if i > 0 {
				write[k].Values = append(write[k].Values, v)
			}
		}
		for _, k := range order {
			// Before each read, not once for both: drop_caches also drops
			// fio's and the FUSE daemon's code pages, and the first read
			// after it would pay for reloading them.
			drop()
			v, err := throughput(job("read", files[k]))
			if err != nil {
				t.Fatal(err)
			}
			if i > 0 {
				read[k].Values = append(read[k].Values, v)
			}
			if err := os.Remove(files[k]); err != nil {
				t.Fatal(err)
			}
		}
	}
	note := ""
	if !dropped {
		note = "drop_caches refused: reads may come from the page cache"
	}
	mib := *flagIOSize
	addRows(&Row{Scenario: fmt.Sprintf("4 sequential write, %d MiB, fio psync bs=1M + fsync", mib), A: write[0], B: write[1],
		Goal: Goal{"ratio", ">=", 0.97, "B/A ≥ 0.97"}, Note: note})
	addRows(&Row{Scenario: fmt.Sprintf("4 sequential read, %d MiB, after drop_caches", mib), A: read[0], B: read[1],
		Goal: Goal{"ratio", ">=", 0.97, "B/A ≥ 0.97"}, Note: note})
}
