//go:build bench

package preload_test

// The measurements of the closing note, outside `make test`:
//
//	go test -tags bench -run Bench -v ./tests/preload/
//	PRELOAD_BENCH_RUNS=31 go test -tags bench -run Bench -v ./tests/preload/
//
// TestBenchMountLatency times a tmpfs mount in two containers of the same
// shape (private binds of a plain host dir, rprivate root), one started in
// mode preload and one in mode propagate (which the wrapper turns into
// rshared binds and root): `runc exec ID mount ...` as the routing client
// runs it, alternating mode by mode, plus a loop of mount+umount pairs inside
// one exec (the cost of mount(8) and the shim without runc's), and, as the
// baseline of each run, the `runc exec ID mkdir` before it. Each host
// mount is removed before the next run.
//
// TestBenchExecTrue times 1,000 execs of /bin/true by a shell loop inside a
// container with the preload and inside one without (same bundle shape,
// started by plain runc), alternating.

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/runc-shared/runc-shared/internal/testutil"
)

// plainRunc drives the delegate runc on the wrapper's state root: exec is
// what the routing client runs, and it goes through no wrapper.
func plainRunc(t *testing.T, r *testutil.Runc) *testutil.Runc {
	t.Helper()
	p := testutil.NewRunc(t, "")
	p.Root = r.Root
	return p
}

func TestBenchMountLatency(t *testing.T) {
	runs := testutil.Runs(t, "PRELOAD_BENCH_RUNS", 21)
	testutil.CheckLeaks(t)
	type side struct {
		name string
		host string
		box  *box
		exec []time.Duration // runc exec ... mount
		base []time.Duration // runc exec ... true, right before
		loop []time.Duration
	}
	var sides []*side
	for _, mode := range []string{"preload", "propagate"} {
		host := testutil.PrivateDir(t)
		s := newSetup(t, mode, host)
		b := s.start(t, "bench-"+mode, bindOpt{host, "/host"})
		b.Runc = plainRunc(t, s.Runc)
		sides = append(sides, &side{name: mode, host: host, box: b})
	}
	const pairs = 20
	loop := fmt.Sprintf(`mkdir -p /host/l; a=$(date +%%s%%N); i=0; while [ $i -lt %d ]; do mount -t tmpfs tmpfs /host/l && umount /host/l || exit 1; i=$((i+1)); done; b=$(date +%%s%%N); echo $((b-a))`, pairs)
	for i := range runs {
		for k := range sides {
			sd := sides[(i+k)%len(sides)] // alternate which mode goes first
			dir := fmt.Sprintf("/host/m%d", i)
			start := time.Now()
			sd.box.sh(t, "mkdir -p "+dir)
			sd.base = append(sd.base, time.Since(start))
			start = time.Now()
			sd.box.sh(t, "mount -t tmpfs tmpfs "+dir)
			sd.exec = append(sd.exec, time.Since(start))
			target := filepath.Join(sd.host, fmt.Sprintf("m%d", i))
			wantHostMount(t, target, "tmpfs")
			if err := unix.Unmount(target, 0); err != nil {
				t.Fatalf("unmount %s: %v", target, err)
			}
			ns, err := strconv.ParseInt(strings.TrimSpace(sd.box.sh(t, loop)), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			sd.loop = append(sd.loop, time.Duration(ns)/pairs)
		}
	}
	p, q := sides[0], sides[1]
	t.Logf("runc exec ... mount -t tmpfs, median of %d alternating runs: preload %v, propagate %v (%+.1f%%)",
		runs, testutil.Median(p.exec).Round(10*time.Microsecond), testutil.Median(q.exec).Round(10*time.Microsecond),
		100*(float64(testutil.Median(p.exec))/float64(testutil.Median(q.exec))-1))
	t.Logf("runc exec ... mkdir (the exec's own cost), median: preload %v, propagate %v",
		testutil.Median(p.base).Round(10*time.Microsecond), testutil.Median(q.base).Round(10*time.Microsecond))
	t.Logf("mount+umount pair inside one exec, median of %d runs of %d pairs: preload %v, propagate %v",
		runs, pairs, testutil.Median(p.loop).Round(time.Microsecond), testutil.Median(q.loop).Round(time.Microsecond))
}

func TestBenchExecTrue(t *testing.T) {
	runs := testutil.Runs(t, "PRELOAD_BENCH_RUNS", 15)
	testutil.CheckLeaks(t)
	host := testutil.PrivateDir(t)
	s := newSetup(t, "preload", host)
	with := s.start(t, "bench-with", bindOpt{host, "/host"})
	if got := with.sh(t, "cat /etc/ld.so.preload"); !strings.Contains(got, "libhostmount.so") {
		t.Fatalf("no preload in the container: %q", got)
	}
	r := testutil.NewRunc(t, "")
	b := testutil.NewBundle(t, mounterRootfs(t), mounterOpts([]bindOpt{{host, "/host"}})...)
	without := &box{ID: "bench-without", Bundle: b, Runc: r}
	without.PID = r.Up(t, b, without.ID)
	if out, _, _ := r.Exec(t, without.ID, "cat", "/etc/ld.so.preload"); out != "" {
		t.Fatalf("preload in the plain container: %q", out)
	}

	// bash's `time` of the loop: wall, then the children's user and system
	// CPU, in seconds.
	const execs = 1000
	script := fmt.Sprintf(`TIMEFORMAT='%%R %%U %%S'; time (i=0; while [ $i -lt %d ]; do /bin/true; i=$((i+1)); done)`, execs)
	type sample struct{ wall, cpu []time.Duration }
	res := map[string]*sample{"with": {}, "without": {}}
	boxes := map[string]*box{"with": with, "without": without}
	order := []string{"with", "without"}
	for i := range runs + 1 {
		for k := range order {
			name := order[(i+k)%2]
			bx := boxes[name]
			_, errOut, err := bx.Runc.Exec(t, bx.ID, "bash", "-c", script)
			if err != nil {
				t.Fatalf("%s: %v %s", name, err, errOut)
			}
			f := strings.Fields(errOut)
			if len(f) != 3 {
				t.Fatalf("%s: time printed %q", name, errOut)
			}
			var v [3]float64
			for j := range v {
				if v[j], err = strconv.ParseFloat(f[j], 64); err != nil {
					t.Fatal(err)
				}
			}
			if i == 0 {
				continue // warm-up: page cache, ld.so.cache
			}
			per := func(sec float64) time.Duration { return time.Duration(sec * 1e9 / execs) }
			res[name].wall = append(res[name].wall, per(v[0]))
			res[name].cpu = append(res[name].cpu, per(v[1]+v[2]))
		}
	}
	w, wo := res["with"], res["without"]
	t.Logf("exec of /bin/true, per exec, median of %d alternating runs of %d: wall %v with the preload, %v without (%+.1f%%); CPU %v with, %v without (%+.1f%%)",
		runs, execs,
		testutil.Median(w.wall).Round(time.Microsecond), testutil.Median(wo.wall).Round(time.Microsecond),
		100*(float64(testutil.Median(w.wall))/float64(testutil.Median(wo.wall))-1),
		testutil.Median(w.cpu).Round(time.Microsecond), testutil.Median(wo.cpu).Round(time.Microsecond),
		100*(float64(testutil.Median(w.cpu))/float64(testutil.Median(wo.cpu))-1))
}
