//go:build bench

package bench

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runc-shared/runc-shared/internal/testutil"
	"github.com/runc-shared/runc-shared/pkg/spec"
)

// benchAnnotation marks the matched containers of scenarios 1 and 2.
const benchAnnotation = "bench"

// ruleConfig is a configuration with one rule that matches containers
// annotated runc-shared.io/mounter=bench and propagates shared.
func ruleConfig(t testing.TB, dir, runtime, shared string) string {
	t.Helper()
	path := filepath.Join(dir, "config.toml")
	writeFile(t, path, fmt.Sprintf(`runtime = %q
state-dir = %q

[[mounter]]
name = "bench"
fstypes = ["glusterfs"]
propagate = [%q]

[mounter.match]
annotations = { %q = %q }
`, runtime, filepath.Join(dir, "state"), shared, spec.AnnotationMounter, benchAnnotation))
	return path
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func lookPath(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: run scripts/deps.sh base bench", name)
	}
	if p, err = filepath.EvalSymlinks(p); err != nil {
		t.Fatal(err)
	}
	return p
}

// copyBundle makes a second bundle with the same config.json: the direct
// side of a matched comparison runs the spec as the engine wrote it.
func copyBundle(t testing.TB, b *testutil.Bundle) *testutil.Bundle {
	t.Helper()
	c := &testutil.Bundle{Dir: testutil.TempDir(t), Rootfs: b.Rootfs, Spec: b.Spec}
	writeFile(t, c.ConfigPath(), string(b.ConfigBytes(t)))
	return c
}

// restore puts the engine's config.json back: the wrapper rewrote it.
func restore(b *testutil.Bundle, orig []byte) func() error {
	return func() error { return os.WriteFile(b.ConfigPath(), orig, 0o644) }
}

// runtimeCalls builds the argv of runtime calls, the way containerd-shim
// makes them: global options (the wrapper's config first, as Docker's
// runtimeArgs are), --root, --log in JSON.
type runtimeCalls struct {
	bin    string
	global []string
	root   string
	seq    int
}

func (c *runtimeCalls) argv(log string, args ...string) []string {
	argv := append([]string{c.bin}, c.global...)
	argv = append(argv, "--root", c.root, "--log", log, "--log-format", "json")
	return append(argv, args...)
}

// run is `run --bundle B ID` with a fresh ID: the container runs `true`,
// exits, and runc deletes it.
func (c *runtimeCalls) run(b *testutil.Bundle, prefix string) Cmd {
	c.seq++
	id := fmt.Sprintf("%s-%d", prefix, c.seq)
	return Cmd{Argv: c.argv(b.LogPath(), "run", "--bundle", b.Dir, id)}
}

// runTrial re-creates the Cmd each time (fresh ID); setup is not measured.
func (c *runtimeCalls) runTrial(b *testutil.Bundle, prefix string, setup func() error) Trial {
	return func() (Measure, error) {
		if setup != nil {
			if err := setup(); err != nil {
				return Measure{}, err
			}
		}
		r, err := c.run(b, prefix).Run()
		return r.measure(), err
	}
}

// cleanupRoot deletes whatever a failed run left in a runc state root.
func cleanupRoot(t testing.TB, root string) {
	t.Cleanup(func() {
		out, err := exec.Command("runc", "--root", root, "list", "-q").Output()
		if err != nil {
			return // no state root: nothing was created
		}
		for _, id := range strings.Fields(string(out)) {
			t.Logf("cleanup: deleting leftover container %s", id)
			_ = exec.Command("runc", "--root", root, "delete", "--force", id).Run()
		}
	})
}

// testWrapperCost is scenario 1: `runc run` of a `true` container directly
// and through runc-shared (pass-through and matched), and `state`.
func testWrapperCost(t *testing.T) {
	testutil.CheckLeaks(t)
	runc := lookPath(t, "runc")
	wrapper := testutil.Bin(t, "runc-shared")
	testutil.Bin(t, "mount-hook") // the matched side injects it
	dir := testutil.TempDir(t)
	shared := testutil.SharedDir(t)
	cfg := ruleConfig(t, dir, runc, shared)
	rootfs := testutil.BusyboxRootfs(t)

	direct := &runtimeCalls{bin: runc, root: filepath.Join(dir, "root-direct")}
	wrapped := &runtimeCalls{bin: wrapper, global: []string{"--runc-shared-config=" + cfg}, root: filepath.Join(dir, "root-wrapped")}
	cleanupRoot(t, direct.root)
	cleanupRoot(t, wrapped.root)

	plain := testutil.NewBundle(t, rootfs, testutil.WithArgs("true"))
	plainW := copyBundle(t, plain)
	mounter := testutil.NewBundle(t, rootfs, testutil.WithArgs("true"),
		testutil.WithAddCaps("SYS_ADMIN"), testutil.WithAnnotation(spec.AnnotationMounter, benchAnnotation),
		testutil.WithBind(shared, "/mnt/shared"))
	mounterW := copyBundle(t, mounter)
	orig := mounterW.ConfigBytes(t)

	// The matched side must really be matched: one run, then look.
	if _, err := wrapped.run(mounterW, "check").Run(); err != nil {
		t.Fatalf("matched run through runc-shared: %v\nlog.json: %s", err, mounterW.Log(t))
	}
	if got := mounterW.ReadSpec(t); got.Linux.RootfsPropagation != "rshared" || got.Hooks == nil || len(got.Hooks.CreateRuntime) == 0 {
		t.Fatalf("runc-shared did not rewrite the matched bundle (rootfsPropagation %q, hooks %+v)", got.Linux.RootfsPropagation, got.Hooks)
	}
	if err := restore(mounterW, orig)(); err != nil {
		t.Fatal(err)
	}

	n, warm := runs(), *flagWarm
	a, b := Compare(t, warm, n,
		Side{"runc", direct.runTrial(plain, "d", nil)},
		Side{"runc-shared", wrapped.runTrial(plainW, "p", nil)})
	addRows(&Row{Scenario: "1 `run` true, pass-through", A: a, B: b, AOverB: true,
		Goal: Goal{"ratio", ">=", 0.95, "A/B ≥ 0.95"}, CPU: true})

	// Where the pass-through cost comes from: the same call through a
	// static C program and a minimal Go program that only exec runc.
	cexec := &runtimeCalls{bin: buildC(t, "cexec", cExec), global: []string{runc}, root: direct.root}
	goexec := &runtimeCalls{bin: buildGoExec(t), global: []string{runc}, root: direct.root}
	a, b = Compare(t, warm, n,
		Side{"runc", direct.runTrial(plain, "d", nil)},
		Side{"C exec → runc", cexec.runTrial(plain, "c", nil)})
	addRows(&Row{Scenario: "1 `run` true through a static C exec (floor of any wrapper)", A: a, B: b, AOverB: true, CPU: true})
	a, b = Compare(t, warm, n,
		Side{"runc", direct.runTrial(plain, "d", nil)},
		Side{"Go exec → runc", goexec.runTrial(plain, "g", nil)})
	addRows(&Row{Scenario: "1 `run` true through a minimal Go exec (floor of a Go wrapper)", A: a, B: b, AOverB: true, CPU: true})

	a, b = Compare(t, warm, n,
		Side{"runc", direct.runTrial(mounter, "dm", nil)},
		Side{"runc-shared", wrapped.runTrial(mounterW, "m", restore(mounterW, orig))})
	addRows(&Row{Scenario: "1 `run` true, matched (rewrite + mount-hook)", A: a, B: b, AOverB: true,
		Goal: Goal{"ratio", ">=", 0.92, "A/B ≥ 0.92"}, CPU: true})

	// state of a running container, the call engines make most often.
	r := testutil.NewRunc(t, runc)
	sleeper := testutil.NewBundle(t, rootfs)
	r.Up(t, sleeper, "bench-state")
	direct.root, wrapped.root = r.Root, r.Root
	stateArgs := []string{"state", "bench-state"}
	a, b = Compare(t, warm, n,
		Side{"runc", Timed(nil, Cmd{Argv: direct.argv(sleeper.LogPath(), stateArgs...)})},
		Side{"runc-shared", Timed(nil, Cmd{Argv: wrapped.argv(sleeper.LogPath(), stateArgs...)})})
	addRows(&Row{Scenario: "1 `state`, pass-through", A: a, B: b, AOverB: true,
		Goal: Goal{"ratio", ">=", 0.95, "A/B ≥ 0.95"}, CPU: true})

	if *flagBefore == "" {
		return
	}
	// Before and after a change of the wrapper, same calls, same run.
	old := &runtimeCalls{bin: filepath.Join(*flagBefore, "runc-shared"), global: wrapped.global, root: filepath.Join(dir, "root-before")}
	wrapped.root = filepath.Join(dir, "root-wrapped")
	cleanupRoot(t, old.root)
	a, b = Compare(t, warm, n,
		Side{"before", old.runTrial(plainW, "bp", nil)},
		Side{"after", wrapped.runTrial(plainW, "ap", nil)})
	addRows(&Row{Scenario: "1 before → after (" + *flagBefore + "): `run` true, pass-through", A: a, B: b, CPU: true})
	a, b = Compare(t, warm, n,
		Side{"before", old.runTrial(mounterW, "bm", restore(mounterW, orig))},
		Side{"after", wrapped.runTrial(mounterW, "am", restore(mounterW, orig))})
	addRows(&Row{Scenario: "1 before → after: `run` true, matched", A: a, B: b, CPU: true})
	old.root, wrapped.root = r.Root, r.Root
	a, b = Compare(t, warm, n,
		Side{"before", Timed(nil, Cmd{Argv: old.argv(sleeper.LogPath(), stateArgs...)})},
		Side{"after", Timed(nil, Cmd{Argv: wrapped.argv(sleeper.LogPath(), stateArgs...)})})
	addRows(&Row{Scenario: "1 before → after: `state`", A: a, B: b, CPU: true})
}
