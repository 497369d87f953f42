//go:build bench

package bench

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/runc-shared/runc-shared/internal/testutil"
)

var (
	flagRuns   = flag.Int("bench.runs", 21, "measured runs per side (at least 15), after the warm-up")
	flagWarm   = flag.Int("bench.warm", 3, "warm-up runs per side, not counted")
	flagOnly   = flag.String("bench.only", "", "run only the scenario groups whose name matches this regexp (wrapper, startup, mount, io, scale, preload, csi, recover)")
	flagOut    = flag.String("bench.out", "", "also write the table (with the machine header) to this file")
	flagIOSize = flag.Int("bench.iosize", 256, "MiB written and read per I/O run")
	flagIORuns = flag.Int("bench.ioruns", 15, "measured runs per side of the I/O scenario")
	flagProf   = flag.Bool("bench.profile", false, "profile the slow paths once (strace -f -c, mountinfo reads) and log the summaries")
	flagBefore = flag.String("bench.before", "", "a bin/ directory of an earlier build: scenario 1 also compares its runc-shared (before) with bin/runc-shared (after), scenario 8 its mounter's routed mount with bin/mounter's")
	flagIOCPU  = flag.Bool("bench.io-rootcpu", false, "experiment: move the routed FUSE daemon into the root cpu cgroup (v1) before the I/O runs, to see what the mounter's own CPU group costs")
	flagDocker = flag.Bool("bench.docker", true, "start a dockerd for the seed's `docker exec` route (false: skip that row)")
)

func TestMain(m *testing.M) {
	flag.Parse()
	// SIGINT/SIGTERM: let the loops stop and the cleanups run, instead of
	// dying with containers, glusterd and mounts left behind.
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	// A reader of our output (tee) that goes away must not kill us before
	// the cleanups: a write to a closed pipe returns EPIPE instead.
	signal.Ignore(syscall.SIGPIPE)
	go func() {
		for s := range sig {
			fmt.Fprintf(os.Stderr, "bench: %v: stopping after the current sample, then cleaning up\n", s)
			interrupted.Store(true)
		}
	}()
	testutil.Main(m)
}

// table collects the rows of all scenarios, in order.
var table struct {
	sync.Mutex
	rows []*Row
}

func addRows(rows ...*Row) {
	table.Lock()
	defer table.Unlock()
	table.rows = append(table.rows, rows...)
}

func runs() int {
	if *flagRuns < 15 {
		return 15
	}
	return *flagRuns
}

// group runs one scenario group as a subtest, when -bench.only selects it.
// A group that fails leaves a row saying so.
func group(t *testing.T, name, title string, f func(t *testing.T)) {
	t.Helper()
	if *flagOnly != "" && !regexp.MustCompile(*flagOnly).MatchString(name) {
		return
	}
	if interrupted.Load() {
		return
	}
	start := time.Now()
	ok := t.Run(name, f)
	t.Logf("%s: %v", name, time.Since(start).Round(time.Second))
	if !ok {
		addRows(&Row{Scenario: title, Status: "**failed** (see the log)"})
	}
}

// TestBench runs every scenario and prints the table.
func TestBench(t *testing.T) {
	testutil.RequireRoot(t)
	header := machine(t)
	defer func() {
		table.Lock()
		out := header + "\n" + Markdown(table.rows)
		table.Unlock()
		fmt.Println()
		fmt.Println(out)
		if *flagOut != "" {
			if err := os.WriteFile(*flagOut, []byte(out), 0o644); err != nil {
				t.Errorf("write %s: %v", *flagOut, err)
			}
		}
	}()
	group(t, "wrapper", "1 wrapper cost", testWrapperCost)
	group(t, "startup", "2 wrapper start-up", testStartup)
	if *flagOnly == "" || slices.ContainsFunc([]string{"mount", "io", "scale", "preload", "csi", "recover"}, regexp.MustCompile(*flagOnly).MatchString) {
		if !t.Run("gluster", testGluster) && !glusterReady {
			addRows(&Row{Scenario: "3–6 GlusterFS set-up (glusterd, mounter)", Status: "**failed** (see the log)"})
		}
	}
}

// machine describes where the numbers come from.
func machine(t *testing.T) string {
	var u unix.Utsname
	_ = unix.Uname(&u)
	kernel := unix.ByteSliceToString(u.Release[:])
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	runcVersion := "runc missing"
	if out, err := exec.Command("runc", "--version").Output(); err == nil {
		runcVersion = strings.SplitN(strings.TrimSpace(string(out)), "\n", 2)[0]
	}
	distro := ""
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "PRETTY_NAME="); ok {
				distro = strings.Trim(v, `"`) + ", "
			}
		}
	}
	commit := "unknown"
	if out, err := exec.Command("git", "-C", testutil.RepoRoot(t), "describe", "--always", "--dirty").Output(); err == nil {
		commit = strings.TrimSpace(string(out))
	}
	var mem unix.Sysinfo_t
	_ = unix.Sysinfo(&mem)
	return fmt.Sprintf("Benchmarks of %s, %s UTC.\n\n"+
		"Machine: %d cores (%s), %.0f GiB RAM, %sLinux %s, %s, %s.\n"+
		"Method: each row runs A and B alternating, every other pair in the other order (A B B A ...), %d warm-up runs each, then %d measured runs each (I/O: %d); medians with min – max.\n",
		commit, time.Now().UTC().Format("2006-01-02 15:04"),
		runtime.NumCPU(), cpu, float64(mem.Totalram)*float64(mem.Unit)/(1<<30), distro, kernel,
		runcVersion, runtime.Version(), *flagWarm, runs(), *flagIORuns)
}
