package csi

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
)

// size is the number of keys locked or waited for.
func (l *keyLocks) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.held)
}

// otherProcess is a second server on e's records, with locks of its own:
// what the host's `mounter recover` is to a mounter's server.
func (e *nodeEnv) otherProcess(t *testing.T) *Server {
	t.Helper()
	s, err := NewServer(e.S.Driver, e.S.NodeID, e.S.Config, "", newFake(), NewLogger(io.Discard, "info"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestVolumeLockAcrossProcesses: while another process holds a volume's
// lock (recovering it, with its mount point beside the target), a
// recovery of this server waits without touching the volume or that
// mount point, and goes on once the lock is released. A call whose ctx
// ends while it waits is Aborted and leaves nothing locked.
func TestVolumeLockAcrossProcesses(t *testing.T) {
	// setup publishes vol-1 at one target, kills its daemons and has
	// another process take its lock; it returns the target and that
	// process with its release.
	setup := func(t *testing.T) (*nodeEnv, string, *Server, func()) {
		e := newNodeEnv(t)
		_, targets := e.published(t, "vol-1", "127.0.0.2:/v0", 1)
		e.F.killDaemons()
		other := e.otherProcess(t)
		unlock, err := other.lockVolume(context.Background(), "vol-1")
		if err != nil {
			t.Fatal(err)
		}
		return e, targets[0], other, unlock
	}
	// released checks that nothing is left locked: the other process
	// takes the lock at once.
	released := func(t *testing.T, other *Server) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		unlock, err := other.lockVolume(ctx, "vol-1")
		if err != nil {
			t.Fatalf("the lock once every call is done: %v", err)
		}
		unlock()
	}

	t.Run("recovery waits", func(t *testing.T) {
		e, target, other, unlockOther := setup(t)
		theirs := filepath.Join(filepath.Dir(target), recoverDirPrefix+"other")
		if err := os.Mkdir(theirs, 0o700); err != nil {
			t.Fatal(err)
		}
		m0, b0, _ := e.F.count()
		done := make(chan error, 1)
		go func() { done <- e.S.Recover(context.Background(), fastPolicy) }()
		select {
		case err := <-done:
			t.Fatalf("Recover ran while another process held the volume's lock: %v", err)
		case <-time.After(300 * time.Millisecond):
		}
		if m, b, _ := e.F.count(); m != m0 || b != b0 {
			t.Errorf("the waiting recovery asked for %d mounts and %d binds", m-m0, b-b0)
		}
		if _, err := os.Stat(theirs); err != nil {
			t.Errorf("the other process's mount point %s while it holds the lock: %v", theirs, err)
		}
		// The other process is done: it removes its mount point, then
		// lets go.
		if err := os.Remove(theirs); err != nil {
			t.Fatal(err)
		}
		unlockOther()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Recover: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Recover still waits after the lock was released")
		}
		if m, b, _ := e.F.count(); m != m0+1 || b != b0+1 {
			t.Errorf("recovery asked for %d mounts and %d binds, want 1 and 1", m-m0, b-b0)
		}
		if _, live := e.top(target); !live {
			t.Errorf("target not live after the recovery")
		}
		released(t, other)
	})

	t.Run("a call gives up", func(t *testing.T) {
		e, target, other, unlockOther := setup(t)
		m0, b0, live0 := e.F.count()
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_, err := e.S.NodeUnpublishVolume(ctx, &csipb.NodeUnpublishVolumeRequest{VolumeId: "vol-1", TargetPath: target})
		wantCode(t, err, codes.Aborted)
		if !strings.Contains(err.Error(), "another call for it is still running") {
			t.Errorf("error %q does not say that another call runs", err)
		}
		if m, b, live := e.F.count(); m != m0 || b != b0 || live != live0 {
			t.Errorf("the Aborted call changed the mounts: %d mounts, %d binds, %d mounts there; want %d, %d, %d", m, b, live, m0, b0, live0)
		}
		if rec, err := e.S.records.Read("vol-1"); err != nil || rec == nil || rec.TargetIndex(target) < 0 {
			t.Errorf("record after the Aborted call: %+v, %v; want the target kept", rec, err)
		}
		if e.S.locks.size() != 0 {
			t.Errorf("%d volume locks left held after the Aborted call", e.S.locks.size())
		}
		unlockOther()
		released(t, other)
	})
}
