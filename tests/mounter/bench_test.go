//go:build bench

package mounter_test

// The latency comparison of the closing note, outside `make test`:
//
//	go test -tags bench -run TestBenchLatency -v ./tests/mounter/
//	MOUNTER_BENCH_RUNS=31 go test -tags bench -run TestBenchLatency -v ./tests/mounter/
//
// It times, alternating run by run on the same volume, the same mount done
// three ways: routed (`mounter mount -t glusterfs ...`), the host's native
// `mount -t glusterfs ...`, and `runc exec <mounter> mount ...` straight, the
// stand-in for the seed's `docker exec <mounter> mount ...` (the engine's
// own exec adds its API round trips on top of runc's; Docker is not started
// here). Only the mount command is timed; each mount is unmounted, and its
// FUSE client waited for, before the next.

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/runc-shared/runc-shared/internal/testutil"
)

func TestBenchLatency(t *testing.T) {
	runs := testutil.Runs(t, "MOUNTER_BENCH_RUNS", 21)
	testutil.CheckLeaks(t)
	g := testutil.Glusterd(t)
	s := newSetup(t, "")
	kube := mkdir(t, s.Shared, "k")
	box := s.startMounter(t, "mounter-bench", map[string]string{kube: kube})
	src := g.Server + ":/" + g.Volume
	runc := testutil.LookPath(t, "runc")

	type way struct {
		name string
		argv func(target string, i int) []string
	}
	ways := []way{
		{"routed: mounter mount", func(target string, i int) []string {
			return []string{s.Mounter, "--config", s.Config, "mount", "-t", "glusterfs", "-o", fmt.Sprintf("log-file=/tmp/bench-r%d.log", i), src, target}
		}},
		{"native: mount -t glusterfs", func(target string, i int) []string {
			return []string{"/bin/mount", "-t", "glusterfs", "-o", filepath.Join("log-file="+g.Dir, "log", fmt.Sprintf("bench-n%d.log", i)), src, target}
		}},
		{"runc exec <mounter> mount", func(target string, i int) []string {
			return []string{runc, "--root", s.Runc.Root, "exec", box.ID, "mount", "-t", "glusterfs", "-o", fmt.Sprintf("log-file=/tmp/bench-e%d.log", i), src, target}
		}},
	}
	times := make([][]time.Duration, len(ways))
	for i := 0; i < runs; i++ {
		for k := range ways {
			// Alternate the order too, so no way always follows the same one.
			idx := (k + i) % len(ways)
			w := ways[idx]
			target := mkdir(t, kube, fmt.Sprintf("b%d-%d", idx, i))
			testutil.UnmountLater(t, target)
			argv := w.argv(target, i)
			start := time.Now()
			out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
			took := time.Since(start)
			if err != nil {
				t.Fatalf("%s: %v: %s", w.name, err, out)
			}
			if m := testutil.MountAt(t, target); m == nil || m.FSType != "fuse.glusterfs" {
				t.Fatalf("%s: no fuse.glusterfs mount at %s on the host: %+v", w.name, target, m)
			}
			times[idx] = append(times[idx], took)
			if err := unix.Unmount(target, 0); err != nil {
				t.Fatalf("unmount %s: %v", target, err)
			}
			waitNoClient(t, target)
		}
	}
	med := make([]time.Duration, len(ways))
	var b strings.Builder
	fmt.Fprintf(&b, "median of %d runs each, alternating, volume %s:\n", runs, src)
	for k, w := range ways {
		med[k] = testutil.Median(times[k])
		fmt.Fprintf(&b, "  %-28s median %7.1f ms  (min %6.1f, max %6.1f)\n", w.name, ms(med[k]), ms(slices.Min(times[k])), ms(slices.Max(times[k])))
	}
	fmt.Fprintf(&b, "  routed / native = %.2fx (goal <= 1.25x); routed / runc exec = %.2fx", float64(med[0])/float64(med[1]), float64(med[0])/float64(med[2]))
	t.Log(b.String())
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// waitNoClient waits until no glusterfs client for target runs, so that its
// exit does not overlap the next timed mount.
func waitNoClient(t *testing.T, target string) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, "the glusterfs client of "+target+" to exit after unmount", func() (bool, string) {
		pids := testutil.Pids(func(argv []string) bool {
			return filepath.Base(argv[0]) == "glusterfs" && argv[len(argv)-1] == target
		})
		return len(pids) == 0, fmt.Sprintf("still runs: %v", pids)
	})
}
