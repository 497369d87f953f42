package mounter

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/runc-shared/runc-shared/internal/hostmount"
)

func TestTypeMatches(t *testing.T) {
	tests := []struct {
		fstype, want string
		ok           bool
	}{
		{"fuse.glusterfs", "glusterfs", true},
		{"glusterfs", "glusterfs", true},
		{"fuse.sshfs", "fuse.sshfs", true},
		{"nfs4", "nfs4", true},
		{"fuse", "glusterfs", false},
		{"fuse.glusterfs2", "glusterfs", false},
		{"tmpfs", "glusterfs", false},
	}
	for _, tt := range tests {
		if got := TypeMatches(tt.fstype, tt.want); got != tt.ok {
			t.Errorf("TypeMatches(%q, %q) = %v, want %v", tt.fstype, tt.want, got, tt.ok)
		}
	}
}

func TestNewMount(t *testing.T) {
	old := &mountinfo.Info{ID: 10, FSType: "fuse.glusterfs"} // stacked before the call
	other := &mountinfo.Info{ID: 11, FSType: "tmpfs"}
	fresh := &mountinfo.Info{ID: 12, FSType: "fuse.glusterfs"}
	before := []*mountinfo.Info{old}

	if found, _ := newMount([]*mountinfo.Info{old}, before, "glusterfs"); found != nil {
		t.Errorf("a mount that was there before counts as new: %+v", found)
	}
	found, others := newMount([]*mountinfo.Info{old, other, fresh}, before, "glusterfs")
	if found != fresh || len(others) != 1 || others[0] != other {
		t.Errorf("newMount = %+v, %+v; want the fresh glusterfs mount and the tmpfs as other", found, others)
	}
}

func TestTypeNames(t *testing.T) {
	if got := typeNames("glusterfs"); got != "glusterfs or fuse.glusterfs" {
		t.Errorf("typeNames(glusterfs) = %q", got)
	}
	if got := typeNames("fuse.sshfs"); got != "fuse.sshfs" {
		t.Errorf("typeNames(fuse.sshfs) = %q", got)
	}
}

// waitForMount on real mounts: a new mount on top of the target, one the
// kernel tucked under a mount already there (propagation onto a peer whose
// target has mounts), and a mount of another type, which it names.
func TestWaitForMountReal(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test makes mounts and must run as root")
	}
	d, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	mnt := func(src, target, fstype string, flags uintptr) {
		t.Helper()
		if err := unix.Mount(src, target, fstype, flags, ""); err != nil {
			t.Fatalf("mount %s on %s: %v", src, target, err)
		}
	}
	a, b := d+"/a", d+"/b"
	for _, p := range []string{a + "/t", a + "/other", b} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mnt(d, d, "", unix.MS_BIND)
	t.Cleanup(func() {
		if err := unix.Unmount(d, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			t.Errorf("cleanup: detach %s: %v", d, err)
		}
	})
	mnt("", d, "", unix.MS_PRIVATE)
	mnt(a, a, "", unix.MS_BIND)
	mnt("", a, "", unix.MS_SHARED)

	target := a + "/t"
	before, err := hostmount.MountsAt(target)
	if err != nil || len(before) != 0 {
		t.Fatalf("hostmount.MountsAt(%s) before = %v, %v", target, before, err)
	}
	mnt("wfm-first", target, "tmpfs", 0)
	first, err := waitForMount(target, "tmpfs", before, time.Second)
	if err != nil || first.Source != "wfm-first" {
		t.Fatalf("waitForMount(on top) = %+v, %v", first, err)
	}

	// b is a peer of a without the mount at t: a mount at b/t propagates
	// to a/t, under wfm-first.
	before, err = hostmount.MountsAt(target)
	if err != nil || len(before) != 1 {
		t.Fatalf("hostmount.MountsAt(%s) = %v, %v", target, before, err)
	}
	mnt(a, b, "", unix.MS_BIND)
	mnt("wfm-tucked", b+"/t", "tmpfs", 0)
	tucked, err := waitForMount(target, "tmpfs", before, time.Second)
	if err != nil || tucked.Source != "wfm-tucked" {
		t.Fatalf("waitForMount(tucked under) = %+v, %v", tucked, err)
	}

	before, _ = hostmount.MountsAt(a + "/other")
	mnt(d, a+"/other", "", unix.MS_BIND)
	_, err = waitForMount(a+"/other", "glusterfs", before, 20*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "a mount of another type appeared") {
		t.Fatalf("waitForMount(wrong type) = %v", err)
	}
}
