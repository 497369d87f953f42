package mounter

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/sys/mountinfo"

	"github.com/runc-shared/runc-shared/internal/config"
	"github.com/runc-shared/runc-shared/internal/csi"
	"github.com/runc-shared/runc-shared/internal/mountrec"
)

// volumeRecord writes a CSI record of rule glusterfs staged at
// shared/k/stage and published at shared/k/pod, both directories.
func (f *fixture) volumeRecord(t *testing.T, driver string) (staging, target string) {
	t.Helper()
	staging, target = filepath.Join(f.shared, "k", "stage"), filepath.Join(f.shared, "k", "pod")
	for _, d := range []string{staging, target} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	rec := &mountrec.Record{VolumeID: "vol-1", Driver: driver, Node: "node-1", Rule: "glusterfs", FSType: "glusterfs",
		Source: "127.0.0.2:/v0", Staging: staging, Targets: []mountrec.Target{{Path: target}}, PID: 7}
	if err := (mountrec.Store{Dir: mountrec.Dir(f.state, driver)}).Write(rec); err != nil {
		t.Fatal(err)
	}
	return staging, target
}

// routedRecord writes the record of a routed mount at target as mount-hook
// leaves it when its mounter stopped: its dead mount detached.
func (f *fixture) routedRecord(t *testing.T, target string) mountrec.MountStore {
	t.Helper()
	store := mountrec.MountStore{Dir: mountrec.MountsDir(f.state)}
	if err := store.Write(&mountrec.Mount{Target: target, Rule: "glusterfs", FSType: "glusterfs", Source: "h:/v",
		Options: []string{"ro"}, Mounter: "m0", Detached: time.Now()}); err != nil {
		t.Fatal(err)
	}
	return store
}

func TestParseRecover(t *testing.T) {
	for _, tt := range []struct {
		args []string
		rule string
		err  bool
	}{
		{args: []string{"recover"}},
		{args: []string{"recover", "--rule", "glusterfs"}, rule: "glusterfs"},
		{args: []string{"recover", "--rule=glusterfs"}, rule: "glusterfs"},
		{args: []string{"recover", "--rule"}, err: true},
		{args: []string{"recover", "--rule="}, err: true},
		{args: []string{"recover", "glusterfs"}, err: true},
		{args: []string{"recover", "-l"}, err: true},
	} {
		inv, err := Parse(append([]string{"mounter"}, tt.args...))
		if tt.err {
			if ExitCode(err) != ExitUsage {
				t.Errorf("%q: %v, want a usage error", tt.args, err)
			}
			continue
		}
		if err != nil || inv.Command != CmdRecover || inv.Rule != tt.rule {
			t.Errorf("%q: %+v, %v; want recover of rule %q", tt.args, inv, err, tt.rule)
		}
	}
}

// TestRecoverExitCodes: what `mounter recover` answers when there is
// nothing it can do, and what it refuses.
func TestRecoverExitCodes(t *testing.T) {
	t.Run("no records", func(t *testing.T) {
		f := newFixture(t, true)
		if code := f.run("recover"); code != ExitOK {
			t.Fatalf("exit %d: %s", code, f.stderr.String())
		}
		if !strings.Contains(f.stdout.String(), "no recorded mount") || len(f.exec.calls) != 0 {
			t.Errorf("stdout %q, exec %q", f.stdout.String(), f.exec.calls)
		}
	})
	t.Run("unknown rule", func(t *testing.T) {
		f := newFixture(t, true)
		if code := f.run("recover", "--rule", "nope"); code != ExitUsage {
			t.Fatalf("exit %d, want %d: %s", code, ExitUsage, f.stderr.String())
		}
	})
	t.Run("no live mounter of the rule", func(t *testing.T) {
		f := newFixture(t, false)
		target := filepath.Join(f.shared, "k", "vol")
		f.routedRecord(t, target)
		if code := f.run("recover"); code != ExitFailure {
			t.Fatalf("exit %d, want %d: %s", code, ExitFailure, f.stderr.String())
		}
		if msg := f.stderr.String(); !strings.Contains(msg, target+" (routed glusterfs): missing: no live mounter of rule \"glusterfs\"") {
			t.Errorf("stderr does not list the mount with the reason: %s", msg)
		}
		if len(f.exec.calls) != 0 {
			t.Errorf("exec without a mounter: %q", f.exec.calls)
		}
	})
	t.Run("a record that cannot be read", func(t *testing.T) {
		f := newFixture(t, true)
		dir := mountrec.MountsDir(f.state)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		bad := filepath.Join(dir, "00.json")
		if err := os.WriteFile(bad, []byte("{"), 0o600); err != nil {
			t.Fatal(err)
		}
		if code := f.run("recover"); code != ExitSystem {
			t.Fatalf("exit %d, want %d: %s", code, ExitSystem, f.stderr.String())
		}
		if _, err := os.Stat(bad); err != nil || !strings.Contains(f.stderr.String(), bad) {
			t.Errorf("the unreadable record was not named and kept: %v; %s", err, f.stderr.String())
		}
	})
	t.Run("another rule's records are not looked at", func(t *testing.T) {
		f := newFixture(t, false)
		f.routedRecord(t, filepath.Join(f.shared, "k", "vol"))
		cfg, err := os.ReadFile(f.config)
		if err != nil {
			t.Fatal(err)
		}
		other := strings.Replace(strings.SplitN(string(cfg), "[[mounter]]", 2)[1], `name = "glusterfs"`, `name = "other"`, 1)
		if err := os.WriteFile(f.config, append(cfg, []byte("[[mounter]]"+other)...), 0o644); err != nil {
			t.Fatal(err)
		}
		if code := f.run("recover", "--rule", "other"); code != ExitOK {
			t.Fatalf("exit %d: %s", code, f.stderr.String())
		}
	})
}

// TestRecoverRoutedThroughExec: a routed mount whose mount is missing is
// mounted again inside the live mounter with its recorded type, options
// and source; one that does not reach the host is reported (exit 32) and
// its failure kept in the record. A record whose mount point is gone is
// removed.
func TestRecoverRoutedThroughExec(t *testing.T) {
	f := newFixture(t, true)
	target := filepath.Join(f.shared, "k", "vol")
	store := f.routedRecord(t, target)
	gone := filepath.Join(f.shared, "k", "gone")
	f.routedRecord(t, gone)
	if code := f.run("--timeout", "20ms", "recover"); code != ExitFailure {
		t.Fatalf("exit %d, want %d: %s", code, ExitFailure, f.stderr.String())
	}
	want := [][]string{{"m1", "mount", "-t", "glusterfs", "-o", "ro", "--", "h:/v", "/k/vol"}, {"m1", "umount", "/k/vol"}}
	if !reflect.DeepEqual(f.exec.calls, want) {
		t.Errorf("exec calls %q, want %q", f.exec.calls, want)
	}
	msg := f.stderr.String()
	if !strings.Contains(msg, "1 of 1 recorded mounts are not live") || !strings.Contains(msg, target+" (routed glusterfs): missing: h:/v was mounted inside mounter m1") {
		t.Errorf("stderr does not list the mount and why: %s", msg)
	}
	rec, err := store.Read(target)
	if err != nil || rec == nil || rec.Recovery == nil || rec.Recovery.Attempts != 1 || !strings.Contains(rec.Recovery.Error, "did not reach the host") {
		t.Errorf("record after a failed recovery: %+v, %v", rec, err)
	}
	if rec, err := store.Read(gone); rec != nil || err != nil {
		t.Errorf("the record of a mount point that is gone was kept: %+v, %v", rec, err)
	}
	if !strings.Contains(f.stdout.String(), "forgot the routed mount at "+gone) {
		t.Errorf("stdout does not say what was forgotten: %s", f.stdout.String())
	}
}

// TestRecoverForgetsUnmounted: a routed mount that is missing though
// runc-shared never detached it was unmounted by its user with a plain
// umount: recovery forgets it and mounts nothing, while the record of one
// the hook detached is mounted again.
func TestRecoverForgetsUnmounted(t *testing.T) {
	f := newFixture(t, true)
	detached := filepath.Join(f.shared, "k", "vol")
	store := f.routedRecord(t, detached)
	unmounted := filepath.Join(f.shared, "k", "unmounted")
	if err := os.MkdirAll(unmounted, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := store.Write(&mountrec.Mount{Target: unmounted, Rule: "glusterfs", FSType: "glusterfs", Source: "h:/u", Mounter: "m0"}); err != nil {
		t.Fatal(err)
	}
	f.run("--timeout", "20ms", "recover")
	remounted := false
	for _, c := range f.exec.calls {
		if slices.Contains(c, "h:/u") || slices.Contains(c, "/k/unmounted") {
			t.Errorf("recovery mounted what its user unmounted: %q", c)
		}
		remounted = remounted || slices.Contains(c, "h:/v")
	}
	if !remounted {
		t.Errorf("the detached mount was not mounted again: exec calls %q", f.exec.calls)
	}
	if rec, err := store.Read(unmounted); rec != nil || err != nil {
		t.Errorf("the record of an unmounted mount was kept: %+v, %v", rec, err)
	}
	if rec, err := store.Read(detached); rec == nil || err != nil || rec.Detached.IsZero() {
		t.Errorf("the record of a detached mount whose recovery failed lost its mark: %+v, %v", rec, err)
	}
	if !strings.Contains(f.stdout.String(), "forgot the routed mount at "+unmounted+": it was unmounted without mounter umount") {
		t.Errorf("stdout does not say what was forgotten and why: %s", f.stdout.String())
	}
}

// TestRecoverVolumeThroughExec: a CSI volume of a mounter that runs no
// server is made again from the host: its staging mount inside the mounter.
func TestRecoverVolumeThroughExec(t *testing.T) {
	f := newFixture(t, true)
	staging, target := f.volumeRecord(t, "d.example.io")
	if code := f.run("--timeout", "20ms", "recover", "--rule", "glusterfs"); code != ExitFailure {
		t.Fatalf("exit %d, want %d: %s", code, ExitFailure, f.stderr.String())
	}
	if len(f.exec.calls) == 0 || !reflect.DeepEqual(f.exec.calls[0], []string{"m1", "mount", "-t", "glusterfs", "--", "127.0.0.2:/v0", "/k/stage"}) {
		t.Errorf("exec calls %q, want the staging mount at /k/stage inside m1", f.exec.calls)
	}
	msg := f.stderr.String()
	for _, p := range []string{staging, target} {
		if !strings.Contains(msg, p+" (volume vol-1): missing") {
			t.Errorf("stderr does not list %s: %s", p, msg)
		}
	}
	rec, err := (mountrec.Store{Dir: mountrec.Dir(f.state, "d.example.io")}).Read("vol-1")
	if err != nil || rec == nil || rec.Recovery == nil || rec.Recovery.Attempts != 1 {
		t.Errorf("record after a failed recovery: %+v, %v", rec, err)
	}
}

// noMounts is a csi.Mounter whose helper exits 0 and mounts nothing.
type noMounts struct {
	mu    sync.Mutex
	calls []string
}

func (n *noMounts) Mount(_ context.Context, v csi.Volume, target string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.calls = append(n.calls, v.Source+" "+target)
	return nil
}
func (*noMounts) Bind(string, string, bool) error            { return nil }
func (*noMounts) Unmount(string) error                       { return nil }
func (*noMounts) Detach(string) error                        { return nil }
func (*noMounts) MountsAt(string) ([]*mountinfo.Info, error) { return nil, nil }
func (n *noMounts) mounts() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.calls
}

func serveFake(t *testing.T, f *fixture, driver string) *noMounts {
	return serveCSI(t, f, driver, os.Getpid())
}

// serveCSI serves a CSI server of driver for the fixture's rule, and
// announces it as running in the mount namespace of pid.
func serveCSI(t *testing.T, f *fixture, driver string, pid int) *noMounts {
	t.Helper()
	cfg, err := config.Load(f.config)
	if err != nil {
		t.Fatal(err)
	}
	fake := &noMounts{}
	s, err := csi.NewServer(driver, "node-1", cfg, "", fake, csi.NewLogger(io.Discard, "error"))
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(f.dir, "csi.sock")
	l, _, err := csi.Listen("unix://" + sock)
	if err != nil {
		t.Fatal(err)
	}
	g := s.NewGRPC()
	s.Register(g)
	go func() { _ = g.Serve(l) }()
	t.Cleanup(g.Stop)
	ns, err := csi.MountNSOf(strconv.Itoa(pid))
	if err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(csi.Announcement{Driver: driver, Endpoint: sock, PID: 1, MountNS: ns, Started: time.Now()})
	if err := os.MkdirAll(filepath.Dir(csi.AnnouncementPath(f.state, driver)), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(csi.AnnouncementPath(f.state, driver), data, 0o600); err != nil {
		t.Fatal(err)
	}
	return fake
}

// TestRecoverAsksTheServer: when the live mounter announced a server that
// answers, its volumes are made again by that server, not by a runtime
// exec from the host; what the server says is in the report.
func TestRecoverAsksTheServer(t *testing.T) {
	f := newFixture(t, true)
	staging, _ := f.volumeRecord(t, "d.example.io")
	fake := serveFake(t, f, "d.example.io")
	if code := f.run("--timeout", "20ms", "recover"); code != ExitFailure {
		t.Fatalf("exit %d, want %d: %s", code, ExitFailure, f.stderr.String())
	}
	if got := fake.mounts(); !reflect.DeepEqual(got, []string{"127.0.0.2:/v0 " + staging}) {
		t.Errorf("the server's helper mounts %q, want the staging mount", got)
	}
	if len(f.exec.calls) != 0 {
		t.Errorf("runtime exec used beside an answering server: %q", f.exec.calls)
	}
	if msg := f.stderr.String(); !strings.Contains(msg, "exited 0 but nothing is mounted on "+staging) {
		t.Errorf("the server's answer is not in the report: %s", msg)
	}
}

// TestRecoverStaleAnnouncement: an announcement that names another mount
// namespace than the live mounter's (a killed server's) is not used.
func TestRecoverStaleAnnouncement(t *testing.T) {
	f := newFixture(t, true)
	f.volumeRecord(t, "d.example.io")
	fake := serveCSI(t, f, "d.example.io", os.Getpid())
	// Another mount namespace than this process's: a new one, of a child.
	path := csi.AnnouncementPath(f.state, "d.example.io")
	var a csi.Announcement
	data, _ := os.ReadFile(path)
	if err := json.Unmarshal(data, &a); err != nil {
		t.Fatal(err)
	}
	a.MountNS++
	data, _ = json.Marshal(a)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if code := f.run("--timeout", "20ms", "recover"); code != ExitFailure {
		t.Fatalf("exit %d, want %d: %s", code, ExitFailure, f.stderr.String())
	}
	if len(fake.mounts()) != 0 || len(f.exec.calls) == 0 {
		t.Errorf("server mounts %q, exec %q: want the runtime exec, not the stale server", fake.mounts(), f.exec.calls)
	}
}
