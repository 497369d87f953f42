package mounter_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runc-shared/runc-shared/internal/mountrec"
	"github.com/runc-shared/runc-shared/internal/testutil"
)

// TestTargetLockAcrossProcesses: while another process holds the lock of a
// routed mount's target, bin/mounter's umount and mount of it wait: without
// --timeout until the release (the record stays until then), with --timeout
// until it passes, then exit 32 naming the holder, having changed nothing.
func TestTargetLockAcrossProcesses(t *testing.T) {
	testutil.CheckLeaks(t)
	s := newSetup(t, "")
	target := mkdir(t, s.Shared, "vol")
	store := mountrec.MountStore{Dir: mountrec.MountsDir(s.StateDir)}
	if err := store.Write(&mountrec.Mount{Target: target, Rule: "glusterfs", FSType: "glusterfs", Source: "127.0.0.2:/v0", Mounter: "m0"}); err != nil {
		t.Fatal(err)
	}
	unlock, err := store.Lock(context.Background(), target)
	if err != nil {
		t.Fatal(err)
	}
	release := sync.OnceFunc(unlock)
	t.Cleanup(release)

	holder := fmt.Sprintf("held by process %d", os.Getpid())
	for _, args := range [][]string{{"umount", target}, {"mount", "-t", "glusterfs", "127.0.0.2:/v0", target}} {
		r := s.mounter(t, append([]string{"--timeout", "300ms"}, args...)...)
		if r.Code != 32 || !contains(r.Stderr, "still running after --timeout 300ms") || !contains(r.Stderr, holder) {
			t.Errorf("mounter %q while the target's lock is held: %v; want exit 32, the wait and the holder named", args, r)
		}
		if rec, err := store.Read(target); rec == nil || err != nil {
			t.Fatalf("mounter %q changed the record without the target's lock: %+v, %v", args, rec, err)
		}
	}

	cmd := exec.Command(s.Mounter, "--config", s.Config, "umount", target)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	waitBlockedInFlock(t, cmd.Process.Pid)
	if rec, err := store.Read(target); rec == nil || err != nil {
		t.Fatalf("umount removed the record while the target's lock was held: %+v, %v", rec, err)
	}
	release()
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 32 || !strings.Contains(stderr.String(), "removed its record") {
		t.Errorf("umount after the release: %v, stderr %s; want exit 32 (not mounted) and the record removed", err, stderr.String())
	}
	if rec, err := store.Read(target); rec != nil || err != nil {
		t.Errorf("record after the umount: %+v, %v; want none", rec, err)
	}
}

// waitBlockedInFlock returns once process pid waits in flock(2): a "->"
// line of /proc/locks (proc(5)) names the blocked requests.
func waitBlockedInFlock(t *testing.T, pid int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		data, err := os.ReadFile("/proc/locks")
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.Lines(string(data)) {
			if f := strings.Fields(line); len(f) == 9 && f[1] == "->" && f[2] == "FLOCK" && f[5] == fmt.Sprint(pid) {
				return
			}
		}
	}
	t.Fatalf("process %d does not wait for a lock within 10s", pid)
}
