//go:build bench

package bench

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/moby/sys/mountinfo"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/runc-shared/runc-shared/internal/registry"
	"github.com/runc-shared/runc-shared/internal/testutil"
	"github.com/runc-shared/runc-shared/pkg/spec"
)

// tmpfsLevels sets the number of unrelated tmpfs mounts below a private
// temp dir (the host / is private here, so they propagate nowhere).
type tmpfsLevels struct {
	base string
	made []string
}

func (l *tmpfsLevels) set(n int) error {
	for len(l.made) < n {
		p := filepath.Join(l.base, fmt.Sprintf("m%05d", len(l.made)))
		if err := os.Mkdir(p, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
		if err := unix.Mount("rsbench", p, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "size=4k"); err != nil {
			return fmt.Errorf("mount tmpfs at %s: %w", p, err)
		}
		l.made = append(l.made, p)
	}
	for len(l.made) > n {
		p := l.made[len(l.made)-1]
		if err := unix.Unmount(p, unix.MNT_DETACH); err != nil {
			return fmt.Errorf("unmount %s: %w", p, err)
		}
		l.made = l.made[:len(l.made)-1]
	}
	return nil
}

// hostMounts counts the entries of our mountinfo.
func hostMounts() int {
	ms, _ := mountinfo.GetMounts(nil)
	return len(ms)
}

// ociState is the state a runtime hands a hook on stdin.
type ociState struct {
	OCIVersion string `json:"ociVersion"`
	ID         string `json:"id"`
	Status     string `json:"status"`
	PID        int    `json:"pid,omitempty"`
	Bundle     string `json:"bundle"`
}

func writeState(t testing.TB, path string, st ociState) string {
	t.Helper()
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, string(b))
	return path
}

// unstagedBundle writes into dir the config.json of bundle as mount-hook
// createRuntime may check it again: runc-shared bound each allowlisted source
// at a staging path for runc, and the first createRuntime detached those, so
// the binds are pointed back at the host paths they stand for. It returns dir.
func unstagedBundle(t testing.TB, bundle, dir string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s specs.Spec
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatal(err)
	}
	staged := spec.StagedSources(&s)
	for i, m := range s.Mounts {
		if host, ok := staged[m.Source]; ok {
			s.Mounts[i].Source = host
		}
	}
	delete(s.Annotations, spec.AnnotationStagedSources)
	if !filepath.IsAbs(s.Root.Path) {
		s.Root.Path = filepath.Join(bundle, s.Root.Path)
	}
	out, err := json.Marshal(&s)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "config.json"), string(out))
	return dir
}

// testScale is scenario 5: the latency of mount-hook (createRuntime and
// poststop, run by hand with the state runc would pass) and of the routing
// client (status, and a routed mount) with 50, 500 and 5,000 unrelated
// mounts on the host. The levels go up and down in rounds (50 500 5000,
// then 5000 500 50, ...), a few samples per level per round, so that drift
// hits all levels alike.
func testScale(t *testing.T, e *glusterEnv) {
	levels := []int{50, 500, 5000}
	l := &tmpfsLevels{base: testutil.TempDir(t)}
	t.Cleanup(func() {
		if err := l.set(0); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	// Each createRuntime below registers the live mounter again, with the
	// copy of its bundle that goes with this scenario's temp dir: the
	// scenarios after this one route through the record as it was.
	reg := registry.New(e.state)
	rec, err := reg.Read(e.id)
	if err != nil {
		t.Fatalf("the mounter's registry record: %v", err)
	}
	t.Cleanup(func() {
		if err := reg.Write(rec); err != nil {
			t.Errorf("cleanup: put back the mounter's registry record: %v", err)
		}
	})
	dir := testutil.TempDir(t)
	created := writeState(t, filepath.Join(dir, "created.json"),
		ociState{OCIVersion: "1.0.2", ID: e.id, Status: "created", PID: e.pid, Bundle: unstagedBundle(t, e.bundle.Dir, mkdir(t, dir, "bundle"))})
	stopped := writeState(t, filepath.Join(dir, "stopped.json"),
		ociState{OCIVersion: "1.0.2", ID: e.id, Status: "stopped", Bundle: e.bundle.Dir})
	hook := func(stage, state string) Cmd {
		return Cmd{Argv: []string{e.hook, "--config", e.cfg, "--runtime", e.runc, "--root", e.root, stage}, Stdin: state}
	}
	// The wrapper alone (delegate /bin/true): a pass-through call and a
	// matched create, whose ensure-shared step looks at the host's mounts.
	wcfg := ruleConfig(t, dir, "/bin/true", e.shared)
	wb := testutil.NewBundle(t, testutil.BusyboxRootfs(t), testutil.WithAddCaps("SYS_ADMIN"),
		testutil.WithAnnotation(spec.AnnotationMounter, benchAnnotation), testutil.WithBind(e.shared, "/mnt/shared"))
	worig := wb.ConfigBytes(t)
	w := &runtimeCalls{bin: testutil.Bin(t, "runc-shared"), global: []string{"--runc-shared-config=" + wcfg}, root: filepath.Join(dir, "root")}
	wstate := Cmd{Argv: w.argv(wb.LogPath(), "state", "x")}
	wcreate := Cmd{Argv: w.argv(wb.LogPath(), "create", "--bundle", wb.Dir, "--pid-file", filepath.Join(wb.Dir, "pid"), "x")}

	target := mkdir(t, e.shared, "scale")
	mount := e.mounterCmd(e.cfg, "mount", "-t", "glusterfs", "-o", logOpt(e.shared, "scale"), e.src, target)
	metrics := []struct {
		name  string
		cmd   Cmd
		trial Trial
		after func() error // for profile: undo what cmd did
	}{
		{"mount-hook createRuntime", hook("createRuntime", created), Timed(nil, hook("createRuntime", created)), nil},
		{"mounter status", e.mounterCmd(e.cfg, "status"), Timed(nil, e.mounterCmd(e.cfg, "status")), nil},
		{"mounter mount (routed)", mount, mountTrial(t, mount, target), func() error { return unmount(target) }},
		{"mount-hook poststop", hook("poststop", stopped), Timed(nil, hook("poststop", stopped)), nil},
		{"runc-shared `state` → /bin/true", wstate, Timed(nil, wstate), nil},
		{"runc-shared matched `create` → /bin/true", wcreate, Timed(restore(wb, worig), wcreate), restore(wb, worig)},
	}
	// The mounter must stay registered for the scenarios after this one.
	t.Cleanup(func() {
		if _, err := hook("createRuntime", created).Run(); err != nil {
			t.Errorf("re-register the mounter: %v", err)
		}
	})

	samples := make(map[int][]Sample)
	total := make(map[int]int)
	for _, n := range levels {
		for range metrics {
			samples[n] = append(samples[n], Sample{Name: fmt.Sprintf("+%d mounts", n)})
		}
	}
	const perRound = 3
	rounds := (runs() + perRound - 1) / perRound
	for r := range rounds + 1 { // round 0 warms up
		order := levels
		if r%2 == 1 {
			order = []int{levels[2], levels[1], levels[0]}
		}
		for _, n := range order {
			if err := l.set(n); err != nil {
				t.Fatal(err)
			}
			total[n] = hostMounts()
			if r == 0 && n == levels[len(levels)-1] {
				for _, m := range metrics {
					profile(t, fmt.Sprintf("%s, %d host mounts", m.name, total[n]), m.cmd, m.name != "mounter mount (routed)", m.after)
				}
			}
			for range perRound {
				for k, m := range metrics {
					checkInterrupt(t)
					v, err := m.trial()
					if err != nil {
						t.Fatalf("%s with %d mounts: %v", m.name, n, err)
					}
					if r > 0 {
						samples[n][k].add(v)
					}
				}
			}
		}
	}
	if err := l.set(0); err != nil {
		t.Fatal(err)
	}
	lo, mid, hi := levels[0], levels[1], levels[2]
	for k, m := range metrics {
		addRows(&Row{Scenario: fmt.Sprintf("5 %s, +%d vs +%d tmpfs mounts (host: %d vs %d entries)", m.name, lo, hi, total[lo], total[hi]),
			A: samples[lo][k], B: samples[hi][k], Goal: Goal{"ratio", "<=", 1.2, "B/A ≤ 1.2"}, CPU: true,
			Note: fmt.Sprintf("+%d: %s", mid, Seconds.format(samples[mid][k].Median()))})
	}
}
