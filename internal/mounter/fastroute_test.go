package mounter

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/runc-shared/runc-shared/internal/csi"
	"github.com/runc-shared/runc-shared/internal/mountrec"
	"github.com/runc-shared/runc-shared/internal/registry"
)

// sameBind rewrites the fixture's mounter spec so that it binds shared/k at
// the same path inside: the server then sees the host's target paths.
func (f *fixture) sameBind(t *testing.T) {
	t.Helper()
	k := filepath.Join(f.shared, "k")
	spec := fmt.Sprintf(`{"ociVersion":"1.0.2","root":{"path":"rootfs"},"mounts":[
		{"destination":%q,"type":"bind","source":%q,"options":["rbind","rshared"]}]}`, k, k)
	if err := os.WriteFile(filepath.Join(f.dir, "bundle", "config.json"), []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestRoutedMountByServer: a routed mount goes to the mounter's server when
// it runs one in the mounter's mount namespace, with no runtime exec; the
// server's answer is the mount's result.
func TestRoutedMountByServer(t *testing.T) {
	f := newFixture(t, true)
	f.sameBind(t)
	fake := serveFake(t, f, "d.example.io")
	target := filepath.Join(f.shared, "k", "vol")
	code := f.run("--timeout", "20ms", "mount", "-t", "glusterfs", "-o", "ro,acl", "h:/v", target)
	if code != ExitFailure {
		t.Fatalf("exit %d, want %d (the fake helper mounts nothing): %s", code, ExitFailure, f.stderr.String())
	}
	if got := fake.mounts(); !reflect.DeepEqual(got, []string{"h:/v " + target}) {
		t.Errorf("the server's helper mounts %q, want h:/v at %s", got, target)
	}
	if len(f.exec.calls) != 0 {
		t.Errorf("runtime exec beside an answering server: %q", f.exec.calls)
	}
	if msg := f.stderr.String(); !strings.Contains(msg, "mount inside mounter m1") || !strings.Contains(msg, "nothing is mounted on "+target) {
		t.Errorf("stderr does not carry the server's answer: %s", msg)
	}
	// The record written during the call goes with the failed mount.
	if ents, err := os.ReadDir(mountrec.MountsDir(f.state)); len(ents) != 0 || err != nil && !os.IsNotExist(err) {
		t.Errorf("a failed mount left in the record directory: %v, %v", ents, err)
	}
}

// TestRoutedMountExecFallback: the runtime exec stays the route when the
// server cannot be used: none announced, -v for mount(8)'s own output, a
// mounter that sees the target at another path.
func TestRoutedMountExecFallback(t *testing.T) {
	for _, tt := range []struct {
		name             string
		serve, sameBind  bool
		flags, wantInner []string
	}{
		{name: "no server", sameBind: true, wantInner: []string{"mount", "-t", "glusterfs", "--", "h:/v", "TARGET"}},
		{name: "verbose", serve: true, sameBind: true, flags: []string{"-v"}, wantInner: []string{"mount", "-v", "-t", "glusterfs", "--", "h:/v", "TARGET"}},
		{name: "another path inside", serve: true, wantInner: []string{"mount", "-t", "glusterfs", "--", "h:/v", "/k/vol"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, true)
			if tt.sameBind {
				f.sameBind(t)
			}
			var fake *noMounts
			if tt.serve {
				fake = serveFake(t, f, "d.example.io")
			}
			target := filepath.Join(f.shared, "k", "vol")
			args := append(append([]string{"--timeout", "20ms", "mount"}, tt.flags...), "-t", "glusterfs", "h:/v", target)
			if code := f.run(args...); code != ExitFailure {
				t.Fatalf("exit %d, want %d: %s", code, ExitFailure, f.stderr.String())
			}
			want := []string{"m1"}
			for _, a := range tt.wantInner {
				want = append(want, strings.ReplaceAll(a, "TARGET", target))
			}
			if len(f.exec.calls) == 0 || !reflect.DeepEqual(f.exec.calls[0], want) {
				t.Errorf("exec calls %q, want first %q", f.exec.calls, want)
			}
			if fake != nil && len(fake.mounts()) != 0 {
				t.Errorf("the server was asked too: %q", fake.mounts())
			}
		})
	}
}

// TestAnnouncedFrom: an announcement counts for a mounter only when it names
// the mounter's mount namespace and was made after the mounter was
// registered; one a killed mounter's server left can name a namespace
// inode the kernel gave to the next mounter.
func TestAnnouncedFrom(t *testing.T) {
	ns, err := csi.MountNSOf("self")
	if err != nil {
		t.Fatal(err)
	}
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	rec := &registry.Record{ID: "m", PID: os.Getpid(), Created: created}
	// withTicks is the same mounter with its start time since boot known.
	withTicks := &registry.Record{ID: "m", PID: os.Getpid(), Created: created, PIDStart: 1000}
	ann := func(driver string, ns uint64, started time.Time) *csi.Announcement {
		return &csi.Announcement{Driver: driver, Endpoint: "/run/" + driver + ".sock", MountNS: ns, Started: started}
	}
	annTicks := func(started time.Time, ticks uint64) *csi.Announcement {
		a := ann("a", ns, started)
		a.StartTicks = ticks
		return a
	}
	tests := []struct {
		name   string
		anns   []*csi.Announcement
		driver string
		want   int              // index in anns, -1 for none
		rec    *registry.Record // nil: rec
	}{
		{"none", nil, "", -1, nil},
		{"this namespace, started after the mounter", []*csi.Announcement{ann("a", ns, created.Add(time.Second))}, "", 0, nil},
		{"started as the mounter was registered", []*csi.Announcement{ann("a", ns, created)}, "", 0, nil},
		{"this namespace's inode, announced before the mounter existed", []*csi.Announcement{ann("a", ns, created.Add(-time.Second))}, "", -1, nil},
		{"another namespace", []*csi.Announcement{ann("a", ns+1, created.Add(time.Second))}, "", -1, nil},
		{"the driver asked for", []*csi.Announcement{ann("a", ns, created.Add(time.Second)), ann("b", ns, created.Add(time.Second))}, "b", 1, nil},
		{"another driver only", []*csi.Announcement{ann("a", ns, created.Add(time.Second))}, "b", -1, nil},
		{"the stale one skipped for the live one", []*csi.Announcement{ann("a", ns, created.Add(-time.Hour)), ann("a", ns, created.Add(time.Minute))}, "a", 1, nil},
		{"clock stepped back: started after the mounter by the ticks since boot", []*csi.Announcement{annTicks(created.Add(-time.Hour), 1000)}, "", 0, withTicks},
		{"clock stepped forward: started before the mounter by the ticks since boot", []*csi.Announcement{annTicks(created.Add(time.Hour), 999)}, "", -1, withTicks},
		{"the server's ticks unknown: the wall clock decides", []*csi.Announcement{annTicks(created.Add(-time.Second), 0)}, "", -1, withTicks},
		{"the mounter's ticks unknown: the wall clock decides", []*csi.Announcement{annTicks(created.Add(time.Second), 1)}, "", 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := announcedFrom(tt.anns, tt.driver, cmp.Or(tt.rec, rec))
			var want *csi.Announcement
			if tt.want >= 0 {
				want = tt.anns[tt.want]
			}
			if got != want {
				t.Errorf("announcedFrom = %+v, want %+v", got, want)
			}
		})
	}
}
