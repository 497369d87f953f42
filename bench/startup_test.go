//go:build bench

package bench

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/runc-shared/runc-shared/internal/config"
	"github.com/runc-shared/runc-shared/internal/testutil"
	"github.com/runc-shared/runc-shared/pkg/spec"
)

// enginesDir holds the config.json files captured from real engines.
func enginesDir(t testing.TB) string {
	return filepath.Join(testutil.RepoRoot(t), "tests", "testdata", "engines")
}

// goExec is the smallest Go program that does what the wrapper does last:
// exec the delegate. Built like bin/runc-shared (static, stripped), it
// separates the Go runtime's start-up from ours.
const goExec = `package main

import (
	"os"
	"syscall"
)

func main() {
	err := syscall.Exec(os.Args[1], os.Args[1:], os.Environ())
	panic(err)
}
`

// cExec is the same in C, linked statically: the floor of any wrapper that
// ends in an exec, whatever its language.
const cExec = `#include <unistd.h>
int main(int argc, char **argv, char **envp)
{
	(void)argc;
	execve(argv[1], argv + 1, envp);
	return 127;
}
`

// cMaxRSS runs a command and prints its peak RSS (ru_maxrss of wait4, in
// KiB). It forks: Go's os/exec starts children with CLONE_VM|CLONE_VFORK,
// and the kernel then counts the parent's RSS (the test binary's) into the
// child's peak at exec. Here the pre-exec image is this small program's.
const cMaxRSS = `#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
int main(int argc, char **argv)
{
	struct rusage ru;
	int st;
	pid_t pid;

	(void)argc;
	pid = fork();
	if (pid == 0) {
		execv(argv[1], argv + 1);
		_exit(127);
	}
	if (pid < 0 || wait4(pid, &st, 0, &ru) < 0)
		return 126;
	printf("\nmaxrss_kib=%ld\n", ru.ru_maxrss);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 125;
}
`

func buildC(t testing.TB, name, src string) string {
	t.Helper()
	dir := testutil.TempDir(t)
	file := filepath.Join(dir, name+".c")
	writeFile(t, file, src)
	bin := filepath.Join(dir, name)
	if out, err := exec.Command("gcc", "-O2", "-static", "-o", bin, file).CombinedOutput(); err != nil {
		t.Fatalf("build %s (needs gcc and libc6-dev): %v: %s", name, err, out)
	}
	return bin
}

var maxRSSLine = regexp.MustCompile(`maxrss_kib=(\d+)`)

// rssTrial measures the peak RSS of c (after setup) through cMaxRSS.
func rssTrial(maxrss string, setup func() error, c Cmd) Trial {
	c.Argv = append([]string{maxrss}, c.Argv...)
	return func() (Measure, error) {
		if setup != nil {
			if err := setup(); err != nil {
				return Measure{}, err
			}
		}
		r, err := c.Run()
		if err != nil {
			return Measure{}, err
		}
		m := maxRSSLine.FindStringSubmatch(r.Output)
		if m == nil {
			return Measure{}, fmt.Errorf("no maxrss line in %q", r.Output)
		}
		v, err := strconv.ParseFloat(m[1], 64)
		return Measure{V: v}, err
	}
}

func buildGoExec(t testing.TB) string {
	t.Helper()
	dir := testutil.TempDir(t)
	src := filepath.Join(dir, "main.go")
	writeFile(t, src, goExec)
	bin := filepath.Join(dir, "goexec")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, src)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the minimal Go exec program: %v: %s", err, out)
	}
	return bin
}

// testStartup is scenario 2: where the wrapper's time goes before the exec,
// and how much memory it takes. The delegate is /bin/true, so what is
// measured is the wrapper alone (the peak RSS that wait4 reports covers the
// process before and after exec; /bin/true's own is about 1 MiB).
func testStartup(t *testing.T) {
	testutil.CheckLeaks(t)
	wrapper := testutil.Bin(t, "runc-shared")
	testutil.Bin(t, "mount-hook")
	dir := testutil.TempDir(t)
	shared := testutil.SharedDir(t)
	cfg := ruleConfig(t, dir, "/bin/true", shared)
	gobin, cbin, maxrss := buildGoExec(t), buildC(t, "cexec", cExec), buildC(t, "maxrss", cMaxRSS)
	rootfs := testutil.BusyboxRootfs(t)
	root := filepath.Join(dir, "root")
	mounter := testutil.NewBundle(t, rootfs, testutil.WithAddCaps("SYS_ADMIN"),
		testutil.WithAnnotation(spec.AnnotationMounter, benchAnnotation), testutil.WithBind(shared, "/mnt/shared"))
	orig := mounter.ConfigBytes(t)
	w := &runtimeCalls{bin: wrapper, global: []string{"--runc-shared-config=" + cfg}, root: root}
	state := Cmd{Argv: w.argv(mounter.LogPath(), "state", "x")}
	create := Cmd{Argv: w.argv(mounter.LogPath(), "create", "--bundle", mounter.Dir, "--pid-file", filepath.Join(mounter.Dir, "pid"), "x")}
	reset := restore(mounter, orig)

	// The matched create must go through the whole rewrite.
	if _, err := create.Run(); err != nil {
		t.Fatal(err)
	}
	if s := mounter.ReadSpec(t); s.Linux.RootfsPropagation != "rshared" {
		t.Fatalf("create through runc-shared (delegate /bin/true) did not rewrite the spec: log %s", mounter.Log(t))
	}

	profile(t, "runc-shared state → /bin/true", state, false, nil)
	profile(t, "runc-shared matched create → /bin/true", create, false, reset)
	n, warm := runs(), *flagWarm
	a, b := Compare(t, warm, n,
		Side{"/bin/true", Timed(nil, Cmd{Argv: []string{"/bin/true"}})},
		Side{"C exec → true", Timed(nil, Cmd{Argv: []string{cbin, "/bin/true"}})})
	addRows(&Row{Scenario: "2 one more exec: the floor of any exec wrapper (static C)", A: a, B: b,
		Note: fmt.Sprintf("+%s", Seconds.format(b.Median()-a.Median()))})

	a, b = Compare(t, warm, n,
		Side{"C exec → true", Timed(nil, Cmd{Argv: []string{cbin, "/bin/true"}})},
		Side{"Go exec → true", Timed(nil, Cmd{Argv: []string{gobin, "/bin/true"}})})
	addRows(&Row{Scenario: "2 Go runtime start (minimal static Go program that execs)", A: a, B: b,
		Note: fmt.Sprintf("+%s", Seconds.format(b.Median()-a.Median()))})

	a, b = Compare(t, warm, n,
		Side{"Go exec → true", Timed(nil, Cmd{Argv: []string{gobin, "/bin/true"}})},
		Side{"runc-shared state → true", Timed(nil, state)})
	addRows(&Row{Scenario: "2 wrapper before exec: init, argv, config (pass-through `state`)", A: a, B: b,
		Note: fmt.Sprintf("+%s", Seconds.format(b.Median()-a.Median()))})

	// A create of a container no rule matches: the wrapper decodes the
	// spec in a fresh process (encoding/json builds its caches for the
	// whole specs.Spec type tree first), matches, and passes through.
	plain := testutil.NewBundle(t, rootfs)
	passCreate := Cmd{Argv: w.argv(plain.LogPath(), "create", "--bundle", plain.Dir, "--pid-file", filepath.Join(plain.Dir, "pid"), "x")}
	a, b = Compare(t, warm, n,
		Side{"runc-shared state → true", Timed(nil, state)},
		Side{"runc-shared create (no match) → true", Timed(nil, passCreate)})
	addRows(&Row{Scenario: "2 pass-through `create` before exec: cold spec decode + match", A: a, B: b,
		Note: fmt.Sprintf("+%s", Seconds.format(b.Median()-a.Median()))})

	a, b = Compare(t, warm, n,
		Side{"runc-shared state → true", Timed(nil, state)},
		Side{"runc-shared create → true", Timed(reset, create)})
	addRows(&Row{Scenario: "2 matched `create` before exec: spec load, rewrite, ensure-shared, save", A: a, B: b,
		Note: fmt.Sprintf("+%s", Seconds.format(b.Median()-a.Median()))})

	a, b = Compare(t, 1, n, Side{"`state`", rssTrial(maxrss, nil, state)}, Side{"matched `create`", rssTrial(maxrss, reset, create)})
	a.Unit, b.Unit = KiB, KiB
	addRows(&Row{Scenario: "2 wrapper peak RSS (delegate /bin/true)", A: a, B: b,
		Goal: Goal{"b", "<=", 15 * 1024, "B ≤ 15 MiB"}})

	initTrace(t, state, n)
	inProcess(t, cfg)
}

// initLine is a GODEBUG=inittrace=1 line:
// "init internal/godebug @0.32 ms, 0.064 ms clock, 312 bytes, 7 allocs".
var initLine = regexp.MustCompile(`^init (\S+) @([0-9.]+) ms, ([0-9.]+) ms clock, (\d+) bytes, (\d+) allocs`)

// initTrace runs the wrapper with GODEBUG=inittrace=1: when the last
// package init ends (since process start), how much of that is package
// init, and which packages cost most.
func initTrace(t *testing.T, c Cmd, n int) {
	c.Env = append(c.Env, "GODEBUG=inittrace=1")
	done := Sample{Name: "inits done at"}
	sum := Sample{Name: "package inits"}
	perPkg := map[string][]float64{}
	for range n {
		checkInterrupt(t)
		r, err := c.Run()
		if err != nil {
			t.Fatal(err)
		}
		var last, total float64
		for _, l := range strings.Split(r.Output, "\n") {
			m := initLine.FindStringSubmatch(l)
			if m == nil {
				continue
			}
			at, _ := strconv.ParseFloat(m[2], 64)
			clock, _ := strconv.ParseFloat(m[3], 64)
			last = max(last, at+clock)
			total += clock
			perPkg[m[1]] = append(perPkg[m[1]], clock)
		}
		if last == 0 {
			t.Fatalf("no inittrace lines in the output of %s: %q", c.Argv[0], r.Output)
		}
		done.Values = append(done.Values, last/1e3)
		sum.Values = append(sum.Values, total/1e3)
	}
	type pkg struct {
		name string
		ms   float64
	}
	var pkgs []pkg
	for name, v := range perPkg {
		pkgs = append(pkgs, pkg{name, quantile(v, 0.5)})
	}
	sort.Slice(pkgs, func(i, j int) bool { return pkgs[i].ms > pkgs[j].ms })
	var top []string
	for _, p := range pkgs[:min(4, len(pkgs))] {
		top = append(top, fmt.Sprintf("%s %.3f ms", p.name, p.ms))
	}
	addRows(&Row{Scenario: "2 GODEBUG=inittrace=1: runtime + package inits (A: end of last init since start; B: sum of init clocks)",
		A: done, B: sum, NoRatio: true, Note: "top: " + strings.Join(top, ", ")})
}

// inProcess times config.Load and spec.Load in this process, on the
// benchmark's configuration and on the real engine captures.
func inProcess(t *testing.T, cfg string) {
	bench := func(f func() error) Sample {
		var s Sample
		s.Unit = Micros
		for range 5 {
			r := testing.Benchmark(func(b *testing.B) {
				for b.Loop() {
					if err := f(); err != nil {
						b.Fatal(err)
					}
				}
			})
			s.Values = append(s.Values, float64(r.NsPerOp())/1e3)
		}
		return s
	}
	example := filepath.Join(testutil.RepoRoot(t), "internal", "config", "testdata", "example.toml")
	loadCfg := func(path string) func() error {
		return func() error { _, err := config.Load(path); return err }
	}
	a, b := bench(loadCfg(cfg)), bench(loadCfg(example))
	a.Name, b.Name = "bench config (1 rule)", "example.toml (3 rules, comments)"
	addRows(&Row{Scenario: "2 in-process config.Load (5 × testing.Benchmark)", A: a, B: b, NoRatio: true})

	files, err := filepath.Glob(filepath.Join(enginesDir(t), "*.config.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no engine captures in %s: %v", enginesDir(t), err)
	}
	slices.Sort(files)
	var loads []Sample
	for _, f := range files {
		s := bench(func() error { _, err := spec.Load(f); return err })
		s.Name = strings.TrimSuffix(filepath.Base(f), ".config.json")
		loads = append(loads, s)
	}
	for i := 0; i < len(loads); i += 2 {
		r := &Row{Scenario: "2 in-process spec.Load of an engine's config.json", A: loads[i], NoRatio: true}
		if i+1 < len(loads) {
			r.B = loads[i+1]
		}
		addRows(r)
	}
}
