package mounter

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/runc-shared/runc-shared/internal/hostmount"
	"github.com/runc-shared/runc-shared/internal/mountrec"
)

// fakeProc writes a /proc with one process per entry: its mount namespace
// link, comm and mountinfo.
func fakeProc(t *testing.T, procs map[string][3]string) string {
	t.Helper()
	dir := t.TempDir()
	for pid, p := range procs {
		ns, comm, mi := p[0], p[1], p[2]
		if err := os.MkdirAll(filepath.Join(dir, pid, "ns"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(ns, filepath.Join(dir, pid, "ns", "mnt")); err != nil {
			t.Fatal(err)
		}
		for name, data := range map[string]string{"comm": comm + "\n", "mountinfo": mi} {
			if err := os.WriteFile(filepath.Join(dir, pid, name), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}

func TestScanConsumers(t *testing.T) {
	const (
		root    = "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n"
		private = "50 1 0:61 / /data0 rw,relatime - fuse.glusterfs 127.0.0.2:/v0 rw\n"
		slave   = "51 1 0:61 / /data1 rw,relatime master:7 - fuse.glusterfs 127.0.0.2:/v0 rw\n"
		shared  = "52 1 0:61 / /k/stage rw,relatime shared:7 - fuse.glusterfs 127.0.0.2:/v0 rw\n"
		newer   = "53 1 0:72 / /data2 rw,relatime - fuse.glusterfs 127.0.0.2:/v0 rw\n"
		other   = "54 1 0:99 / /other rw,relatime - fuse.glusterfs 127.0.0.2:/v9 rw\n"
	)
	proc := fakeProc(t, map[string][3]string{
		"100":  {"mnt:[1]", "sleep", root + private + slave + other}, // a pod: one private bind, one rslave
		"101":  {"mnt:[1]", "sh", root + private},                    // the same namespace: listed once
		"200":  {"mnt:[2]", "mounter", root + shared},                // the mounter: its mount is shared
		"300":  {"mnt:[3]", "app", root + newer + slave},             // a private bind of the recovered mount
		"self": {"mnt:[9]", "x", ""},
	})
	devs := map[uint64]string{unix.Mkdev(0, 61): "vol-1", unix.Mkdev(0, 72): "vol-1"}
	// Each process's table from its mountinfo under the fake /proc.
	tableOf := func(pid int) *hostmount.Table {
		data, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "mountinfo"))
		if err != nil {
			t.Fatal(err)
		}
		table, err := hostmount.ParseTable(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		return table
	}
	got := scanConsumers(proc, tableOf, devs)
	want := map[string][]consumer{"vol-1": {{PID: 100, Comm: "sleep", Mountpoint: "/data0"}, {PID: 300, Comm: "app", Mountpoint: "/data2"}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("consumers %+v, want %+v", got, want)
	}
	if got := scanConsumers(proc, tableOf, nil); len(got) != 0 {
		t.Errorf("consumers of no device: %+v", got)
	}
}

func TestPropagates(t *testing.T) {
	for opt, want := range map[string]bool{"": false, "shared:3": true, "master:4": true, "shared:3 master:4": true, "propagate_from:2": false, "unbindable": false} {
		if got := propagates(&mountinfo.Info{Optional: opt}); got != want {
			t.Errorf("propagates(%q) = %v, want %v", opt, got, want)
		}
	}
}

// TestStatusListsRecords: status lists each recorded path with its rule's
// live mounter and the state of its mount, and what recovery could not do.
func TestStatusListsRecords(t *testing.T) {
	f := newFixture(t, true)
	staging, target := f.volumeRecord(t, "d.example.io")
	store := mountrec.Store{Dir: mountrec.Dir(f.state, "d.example.io")}
	rec, err := store.Read("vol-1")
	if err != nil {
		t.Fatal(err)
	}
	rec.Recovery = &mountrec.Recovery{Attempts: 3, Error: "mount.glusterfs: volume gone", Last: time.Now().Add(-time.Minute)}
	if err := store.Write(rec); err != nil {
		t.Fatal(err)
	}
	routed := filepath.Join(f.shared, "k", "vol")
	f.routedRecord(t, routed)
	if code := f.run("status"); code != 0 {
		t.Fatalf("exit %d: %s", code, f.stderr.String())
	}
	// Columns compared with single spaces between fields.
	var lines []string
	for _, l := range strings.Split(f.stdout.String(), "\n") {
		lines = append(lines, strings.Join(strings.Fields(l), " "))
	}
	out := strings.Join(lines, "\n")
	for _, want := range []string{
		staging + " volume vol-1 (staging) glusterfs m1 missing",
		target + " volume vol-1 (target) glusterfs m1 missing",
		routed + " routed glusterfs h:/v glusterfs m1 missing",
		"volume vol-1: recovery failed 3 times, last 1m0s ago: mount.glusterfs: volume gone; waits for the next start of its server or mounter recover",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
}

// TestDeadTableFixes: a dead CSI publish target is sent to mounter
// recover (pods' binds copy it); any other dead mount, a routed one too, to
// umount -l (recovery then forgets a routed one: its user detached it).
func TestDeadTableFixes(t *testing.T) {
	f := newFixture(t, true)
	_, target := f.volumeRecord(t, "d.example.io")
	routed := filepath.Join(f.shared, "k", "vol")
	f.routedRecord(t, routed)
	m := &Mounter{Stdout: &f.stdout, Stderr: &f.stderr}
	targets := m.csiTable(io.Discard, f.state, nil)
	scan := &hostmount.FUSEScan{}
	for _, p := range []string{target, routed} {
		scan.Dead = append(scan.Dead, &mountinfo.Info{Mountpoint: p, FSType: "fuse.glusterfs", Source: "h:/v"})
	}
	deadTable(&f.stdout, scan, targets)
	for _, want := range []string{
		target + " fuse.glusterfs h:/v dead mounter recover (a CSI publish target: made again on top)",
		routed + " fuse.glusterfs h:/v dead umount -l " + routed,
	} {
		if !strings.Contains(strings.Join(strings.Fields(f.stdout.String()), " "), want) {
			t.Errorf("the dead table lacks %q:\n%s", want, f.stdout.String())
		}
	}
}
