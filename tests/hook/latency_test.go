package hook_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/runc-shared/runc-shared/internal/testutil"
)

// extraMounts mounts n tmpfs below a temp dir made rprivate (so nothing
// propagates anywhere): unrelated mounts that every mountinfo read of the
// host, and of a new container's namespace, has to go through.
func extraMounts(t *testing.T, n int) {
	t.Helper()
	base := filepath.Join(testutil.TempDir(t), "many")
	if err := os.Mkdir(base, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(base, base, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind %s: %v", base, err)
	}
	// One lazy unmount takes the whole tree away, faster than TempDir's
	// one-by-one cleanup, which stays as the safety net.
	t.Cleanup(func() { _ = unix.Unmount(base, unix.MNT_DETACH) })
	if err := unix.Mount("", base, "", unix.MS_PRIVATE|unix.MS_REC, ""); err != nil {
		t.Fatalf("make %s rprivate: %v", base, err)
	}
	for i := range n {
		d := filepath.Join(base, strconv.Itoa(i))
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mount("tmpfs", d, "tmpfs", 0, "size=4k"); err != nil {
			t.Fatalf("mount tmpfs %d on %s: %v", i, d, err)
		}
	}
}

// timedHook is a hook-path script that runs bin/mount-hook and appends
// "STAGE NANOSECONDS" to a file: the latency as the runtime sees it,
// fork and exec included.
func timedHook(t *testing.T) (script, times string) {
	t.Helper()
	dir := testutil.TempDir(t)
	script, times = filepath.Join(dir, "mount-hook-timed"), filepath.Join(dir, "times")
	body := fmt.Sprintf(`#!/bin/sh
start=$(date +%%s%%N)
%s "$@"
rc=$?
end=$(date +%%s%%N)
for stage; do :; done
echo "$stage $((end - start))" >> %s
exit $rc
`, testutil.Bin(t, "mount-hook"), times)
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return script, times
}

// TestHookLatency measures createRuntime and poststop of mount-hook as runc
// runs them, with 50 and with 5,000 unrelated mounts on the host. Each run
// must stay well under a second; the numbers are logged for the report.
func TestHookLatency(t *testing.T) {
	for _, n := range []int{50, 5000} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			testutil.CheckLeaks(t)
			extraMounts(t, n)
			host := testutil.SharedDir(t)
			script, times := timedHook(t)
			e := newEnv(t, host, "")
			// hook-path is a top-level key: it goes before the tables.
			raw, err := os.ReadFile(e.config)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(e.config, []byte(fmt.Sprintf("hook-path = %q\n%s", script, raw)), 0o644); err != nil {
				t.Fatal(err)
			}
			r := e.wrapper(t)
			rootfs := testutil.BusyboxRootfs(t)
			const runs = 5
			for i := range runs {
				id := fmt.Sprintf("lat-%d-%d", n, i)
				b := mounterBundle(t, rootfs, host)
				r.Up(t, b, id)
				if _, err := e.registry().Read(id); err != nil {
					t.Fatalf("not registered: %v", err)
				}
				if err := r.Delete(t, id, true); err != nil {
					t.Fatal(err)
				}
			}
			got := map[string][]time.Duration{}
			raw, err = os.ReadFile(times)
			if err != nil {
				t.Fatal(err)
			}
			for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
				stage, ns, _ := strings.Cut(line, " ")
				v, err := strconv.ParseInt(ns, 10, 64)
				if err != nil {
					t.Fatalf("bad timing line %q", line)
				}
				got[stage] = append(got[stage], time.Duration(v))
			}
			for _, stage := range []string{"createRuntime", "poststop"} {
				d := got[stage]
				if len(d) != runs {
					t.Fatalf("%d %s timings, want %d: %q", len(d), stage, runs, raw)
				}
				slices.Sort(d)
				t.Logf("%d extra mounts: %s median %v, max %v (of %d runs)", n, stage,
					d[len(d)/2].Round(100*time.Microsecond), d[len(d)-1].Round(100*time.Microsecond), runs)
				if d[len(d)-1] > 500*time.Millisecond {
					t.Errorf("%s took %v with %d mounts, want well under a second", stage, d[len(d)-1], n)
				}
			}
		})
	}
}
