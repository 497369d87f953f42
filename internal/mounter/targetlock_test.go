package mounter

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/runc-shared/runc-shared/internal/config"
	"github.com/runc-shared/runc-shared/internal/filelock"
	"github.com/runc-shared/runc-shared/internal/mountrec"
)

// holdTarget takes the lock of the routed mount at target as another
// `mounter` process would, and returns its release (also run at cleanup).
func (f *fixture) holdTarget(t *testing.T, target string) func() {
	t.Helper()
	cfg, err := config.Load(f.config)
	if err != nil {
		t.Fatal(err)
	}
	unlock, err := routedStore(cfg).Lock(context.Background(), target)
	if err != nil {
		t.Fatal(err)
	}
	release := sync.OnceFunc(unlock)
	t.Cleanup(release)
	return release
}

// waitForWaiter returns once a flock(2) waits on the lock file of target:
// the "->" lines of /proc/locks (proc(5)) are the blocked requests.
func (f *fixture) waitForWaiter(t *testing.T, target string) {
	t.Helper()
	var st unix.Stat_t
	path := filelock.Path(mountrec.MountsDir(f.state), target)
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	file := fmt.Sprintf("%02x:%02x:%d", unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		data, err := os.ReadFile("/proc/locks")
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.Lines(string(data)) {
			if fields := strings.Fields(line); len(fields) == 9 && fields[1] == "->" && fields[6] == file {
				return
			}
		}
	}
	t.Fatalf("nothing waits for the lock of %s within 5s", target)
}

// runAside runs the mounter with args in a goroutine; its exit code comes
// on the channel.
func (f *fixture) runAside(args ...string) <-chan int {
	done := make(chan int, 1)
	go func() { done <- f.run(args...) }()
	return done
}

// TestRecoverRoutedTakesTargetLock: `mounter recover` makes a routed mount
// again only under its target's lock, on the record as it is then: while
// another process holds the lock it runs nothing and writes nothing; after
// the release it proceeds, with the record a `mounter mount` wrote
// meanwhile if one did; and when a `mounter umount` removed the record
// meanwhile, it mounts nothing and writes no record back.
func TestRecoverRoutedTakesTargetLock(t *testing.T) {
	for _, tt := range []struct {
		name     string
		umounted bool   // the record is removed while recover waits
		source   string // the source of the record written while recover waits
	}{
		{name: "proceeds after the release"},
		{name: "mounted anew meanwhile", source: "h:/w"},
		{name: "umounted meanwhile", umounted: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, true)
			target := filepath.Join(f.shared, "k", "vol")
			store := f.routedRecord(t, target)
			before, err := os.ReadFile(store.Path(target))
			if err != nil {
				t.Fatal(err)
			}
			release := f.holdTarget(t, target)
			done := f.runAside("--timeout", "20ms", "recover")
			f.waitForWaiter(t, target)
			if n := f.exec.called(); n != 0 {
				t.Errorf("recover ran %d commands while the target's lock was held", n)
			}
			if now, err := os.ReadFile(store.Path(target)); err != nil || string(now) != string(before) {
				t.Errorf("recover changed the record while the target's lock was held: %s, %v", now, err)
			}
			switch {
			case tt.umounted:
				if err := store.Remove(target); err != nil {
					t.Fatal(err)
				}
			case tt.source != "":
				if err := store.Write(&mountrec.Mount{Target: target, Rule: "glusterfs", FSType: "glusterfs", Source: tt.source,
					Mounter: "m1", Detached: time.Now()}); err != nil {
					t.Fatal(err)
				}
			}
			release()
			code := <-done
			rec, err := store.Read(target)
			if tt.umounted {
				if len(f.exec.calls) != 0 {
					t.Errorf("recover acted on a mount unmounted while it waited: exec calls %q", f.exec.calls)
				}
				if rec != nil || err != nil {
					t.Errorf("recover wrote back the record of a mount unmounted while it waited: %+v, %v", rec, err)
				}
				if code != ExitOK || !strings.Contains(f.stdout.String(), "left the routed mount at "+target+" alone") {
					t.Errorf("exit %d, stdout %q: want 0 and a note of what was left alone; stderr %s", code, f.stdout.String(), f.stderr.String())
				}
				return
			}
			want := cmp.Or(tt.source, "h:/v")
			if !slices.ContainsFunc(f.exec.calls, func(c []string) bool { return slices.Contains(c, "mount") && slices.Contains(c, want) }) ||
				slices.ContainsFunc(f.exec.calls, func(c []string) bool { return slices.Contains(c, "h:/v") }) != (want == "h:/v") {
				t.Errorf("recover did not mount %s (only) after the release: exec calls %q", want, f.exec.calls)
			}
			if rec != nil && rec.Source != want {
				t.Errorf("recover wrote the record of source %s, want %s", rec.Source, want)
			}
			if code != ExitFailure || err != nil || rec == nil || rec.Recovery == nil || rec.Recovery.Attempts != 1 {
				t.Errorf("exit %d, record %+v, %v: want 32 and the failed attempt recorded", code, rec, err)
			}
		})
	}
}

// TestUmountTakesTargetLock: `mounter umount` unmounts and removes the
// record of a routed mount only under its target's lock.
func TestUmountTakesTargetLock(t *testing.T) {
	f := newFixture(t, true)
	target := filepath.Join(f.shared, "k", "vol")
	store := f.routedRecord(t, target)
	release := f.holdTarget(t, target)
	done := f.runAside("umount", target)
	f.waitForWaiter(t, target)
	if rec, err := store.Read(target); rec == nil || err != nil {
		t.Errorf("umount removed the record while the target's lock was held: %+v, %v", rec, err)
	}
	release()
	if code := <-done; code != ExitFailure {
		t.Fatalf("exit %d, want %d (not mounted): %s", code, ExitFailure, f.stderr.String())
	}
	if rec, err := store.Read(target); rec != nil || err != nil {
		t.Errorf("record after the umount: %+v, %v; want none", rec, err)
	}
}

// TestRoutedMountTakesTargetLock: `mounter mount` routes a mount only under
// its target's lock: it waits for the release without --timeout, and gives
// up after --timeout when given, naming who holds it.
func TestRoutedMountTakesTargetLock(t *testing.T) {
	t.Run("waits", func(t *testing.T) {
		f := newFixture(t, true)
		f.exec.err = errors.New("exit status 32")
		target := filepath.Join(f.shared, "k", "vol")
		release := f.holdTarget(t, target)
		done := f.runAside("mount", "-t", "glusterfs", "h:/v", target)
		f.waitForWaiter(t, target)
		if n := f.exec.called(); n != 0 {
			t.Errorf("mount ran %d commands while the target's lock was held", n)
		}
		release()
		if code := <-done; code != ExitFailure || len(f.exec.calls) != 1 {
			t.Errorf("exit %d, exec calls %q: want the mount tried after the release; stderr %s", code, f.exec.calls, f.stderr.String())
		}
	})
	// The lock is bookkeeping, as the record is: a state directory where
	// its file cannot be made costs the mount a warning, not the mount.
	t.Run("no lock file", func(t *testing.T) {
		f := newFixture(t, true)
		f.exec.err = errors.New("exit status 32")
		if err := os.WriteFile(mountrec.MountsDir(f.state), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		target := filepath.Join(f.shared, "k", "vol")
		if code := f.run("mount", "-t", "glusterfs", "h:/v", target); code != ExitFailure || len(f.exec.calls) != 1 {
			t.Errorf("exit %d, exec calls %q: want the mount tried; stderr %s", code, f.exec.calls, f.stderr.String())
		}
		if msg := f.stderr.String(); !strings.Contains(msg, "going on without the lock of its record") {
			t.Errorf("stderr %q does not warn of the missing lock", msg)
		}
	})
	t.Run("--timeout", func(t *testing.T) {
		f := newFixture(t, true)
		target := filepath.Join(f.shared, "k", "vol")
		f.holdTarget(t, target)
		if code := f.run("--timeout", "50ms", "mount", "-t", "glusterfs", "h:/v", target); code != ExitFailure {
			t.Fatalf("exit %d, want %d: %s", code, ExitFailure, f.stderr.String())
		}
		if len(f.exec.calls) != 0 {
			t.Errorf("mount ran inside the mounter without the target's lock: %q", f.exec.calls)
		}
		if msg := f.stderr.String(); !strings.Contains(msg, "still running after --timeout 50ms") || !strings.Contains(msg, "another call of this process") {
			t.Errorf("stderr %q does not say what it waited for and who holds it", msg)
		}
	})
}
