package reliability_test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/runc-shared/runc-shared/internal/testutil"
	"github.com/runc-shared/runc-shared/pkg/spec"
)

const kills = 500

// TestKillDuringRewrite SIGKILLs the wrapper at random moments of 500
// matching creates (the delegate is /bin/true, so no container is made):
// config.json must always be the original or the complete rewrite, byte for
// byte, and must parse. A kill between the temporary file's creation and the
// rename leaves a `.config.json.tmp-*` orphan (about one kill in six); the
// test counts them and checks that nothing else is ever left
// (TestStaleTempFileRemoved checks that the next run removes them).
func TestKillDuringRewrite(t *testing.T) {
	testutil.CheckLeaks(t)
	host := testutil.SharedDir(t) // already shared: no host change per run
	s := newSetup(t, "/bin/true", rule{name: "kill", propagate: []string{host}, annotation: "kill"})
	bundle, orig := writeSpec(t, testutil.BusyboxRootfs(t), mounterEdit("kill", host, "/host"))
	log := filepath.Join(testutil.TempDir(t), "log.json")
	cfg := filepath.Join(bundle, "config.json")
	argv := []string{"--runc-shared-config=" + s.Config, "--root", filepath.Join(testutil.TempDir(t), "root"),
		"--log", log, "--log-format", "json", "create", "--bundle", bundle, "--pid-file", filepath.Join(bundle, "k.pid"), "k"}
	bin := testutil.Bin(t, "runc-shared")

	// The complete rewrite, from a run that is not killed; and how long a
	// whole run takes, so the kills cover all of it.
	var full []time.Duration
	var want []byte
	for range 9 {
		restore(t, cfg, orig)
		start := time.Now()
		if out, err := exec.Command(bin, argv...).CombinedOutput(); err != nil {
			t.Fatalf("unkilled create: %v: %s", err, out)
		}
		full = append(full, time.Since(start))
		got, err := os.ReadFile(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if want != nil && !bytes.Equal(got, want) {
			t.Fatal("two unkilled runs wrote different rewrites")
		}
		want = got
	}
	if bytes.Equal(want, orig) {
		t.Fatal("the unkilled create did not rewrite config.json")
	}
	if _, err := spec.Parse(want); err != nil {
		t.Fatalf("the rewrite does not parse: %v", err)
	}
	sort.Slice(full, func(i, j int) bool { return full[i] < full[j] })
	// 0-5 ms, widened to a typical whole run (the median, plus a quarter)
	// where runs take longer, so the write, the rename and the exec are hit
	// too. The slowest run is an outlier on a busy machine.
	window := max(5*time.Millisecond, full[len(full)/2]*5/4)

	var stats struct{ original, rewritten, orphans, finished int }
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 8))
	for i := range kills {
		restore(t, cfg, orig)
		cmd := exec.Command(bin, argv...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rng.Int64N(int64(window))))
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
			t.Fatalf("kill %d: %v", i, err)
		}
		err := cmd.Wait()
		var exit *exec.ExitError
		if err == nil || errors.As(err, &exit) && exit.ExitCode() >= 0 {
			stats.finished++ // the kill came after /bin/true exited
		}

		got, rerr := os.ReadFile(cfg)
		if rerr != nil {
			t.Fatalf("kill %d: config.json is gone: %v", i, rerr)
		}
		switch {
		case bytes.Equal(got, orig):
			stats.original++
		case bytes.Equal(got, want):
			stats.rewritten++
		default:
			t.Fatalf("kill %d after up to %v: config.json is neither the original nor the rewrite (%d bytes):\n%.400s", i, window, len(got), got)
		}
		if _, err := spec.Parse(got); err != nil {
			t.Fatalf("kill %d: config.json does not parse: %v", i, err)
		}
		for _, name := range otherFiles(t, bundle, "config.json") {
			if !strings.HasPrefix(name, ".config.json.tmp-") {
				t.Fatalf("kill %d left %s in the bundle", i, name)
			}
			stats.orphans++
			// Removed here so each orphan is counted once; the
			// cleanup-by-next-run check is below.
			if err := os.Remove(filepath.Join(bundle, name)); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Logf("%d kills within %v of start (a whole run takes at least %v, median %v): %d left the original, %d the complete rewrite, %d ran to the end; %d left a .config.json.tmp-* orphan",
		kills, window.Round(time.Microsecond), full[0].Round(time.Microsecond), full[len(full)/2].Round(time.Microsecond), stats.original, stats.rewritten, stats.finished, stats.orphans)
	if stats.original == 0 || stats.rewritten == 0 {
		t.Errorf("the kills did not cover the rewrite: %d originals, %d rewrites", stats.original, stats.rewritten)
	}

}

// TestStaleTempFileRemoved: a temporary file left by a killed rewrite (see
// TestKillDuringRewrite) must not survive the next run on the bundle.
// Engines hand a bundle to one runtime call at a time, so a temporary file
// that exists when the wrapper starts is a leftover.
func TestStaleTempFileRemoved(t *testing.T) {
	host := testutil.SharedDir(t)
	s := newSetup(t, "", rule{name: "stale", propagate: []string{host}, annotation: "stale"})
	bundle, _ := writeSpec(t, testutil.BusyboxRootfs(t), mounterEdit("stale", host, "/host"))
	stale := filepath.Join(bundle, ".config.json.tmp-1234567")
	if err := os.WriteFile(stale, []byte(`{"ociVersion": "1.0.2", "moun`), 0o644); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(testutil.TempDir(t), "log.json")
	if r := s.create(t, bundle, log, "stale"); r.Code != 0 {
		t.Fatalf("create: %+v", r)
	}
	if left := otherFiles(t, bundle, "config.json"); len(left) != 0 {
		t.Errorf("the run after a killed rewrite left %v in the bundle: atomicfile never removes the "+
			"temporary file of a killed run; it should remove stale .config.json.tmp-* files first", left)
	}
}

func restore(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestFullDisk runs a matching create in a bundle on a full tmpfs: the
// rewrite cannot be written, the wrapper says so (and what to check), the
// original config.json is intact and no temporary file is left.
func TestFullDisk(t *testing.T) {
	testutil.CheckLeaks(t)
	host := testutil.SharedDir(t)
	s := newSetup(t, "", rule{name: "full", propagate: []string{host}, annotation: "full"})
	_, orig := writeSpec(t, testutil.BusyboxRootfs(t), mounterEdit("full", host, "/host"))

	bundle := filepath.Join(testutil.TempDir(t), "tmpfs")
	if err := os.Mkdir(bundle, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("rstest-full", bundle, "tmpfs", 0, "size=64k"); err != nil {
		t.Fatalf("mount a small tmpfs: %v", err)
	}
	cfg := filepath.Join(bundle, "config.json")
	if err := os.WriteFile(cfg, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	fill(t, filepath.Join(bundle, "filler"))

	log := filepath.Join(testutil.TempDir(t), "log.json")
	r := s.create(t, bundle, log, "full")
	mustRefuse(t, r, log, `^runc-shared: write .*/config.json: .*: no space left on device`)
	checkIntact(t, s, bundle, cfg, orig, "filler")
}

// fill writes path until the file system is full.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, unix.ENOSPC) {
				t.Fatalf("fill %s: %v", path, err)
			}
			return
		}
	}
}

// checkIntact: config.json unchanged, no file but keep added, the delegate
// never ran.
func checkIntact(t *testing.T, s *setup, bundle, cfg string, orig []byte, keep ...string) {
	t.Helper()
	got, err := os.ReadFile(cfg)
	if err != nil || !bytes.Equal(got, orig) {
		t.Errorf("config.json changed or unreadable after the failed create (%v)", err)
	}
	if left := otherFiles(t, bundle, append(keep, "config.json")...); len(left) != 0 {
		t.Errorf("the failed create left %v in the bundle", left)
	}
	if calls := s.delegateCalls(t); len(calls) != 0 {
		t.Errorf("the delegate ran after the failed rewrite: %q", calls)
	}
}

// TestReadOnlyBundle runs a matching create in a read-only bundle directory
// (a read-only bind mount): a clear error, the original intact.
func TestReadOnlyBundle(t *testing.T) {
	testutil.CheckLeaks(t)
	host := testutil.SharedDir(t)
	s := newSetup(t, "", rule{name: "ro", propagate: []string{host}, annotation: "ro"})
	bundle, orig := writeSpec(t, testutil.BusyboxRootfs(t), mounterEdit("ro", host, "/host"))
	if err := unix.Mount(bundle, bundle, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("", bundle, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, ""); err != nil {
		t.Fatal(err)
	}
	// A read-only bundle cannot hold the log either: engines put it there,
	// and the error must still reach stderr.
	log := filepath.Join(testutil.TempDir(t), "log.json")
	r := s.create(t, bundle, log, "ro")
	mustRefuse(t, r, log, `^runc-shared: write .*/config.json: .*read-only file system \(is the directory there, writable and not full\?\)$`)
	checkIntact(t, s, bundle, filepath.Join(bundle, "config.json"), orig)
}
