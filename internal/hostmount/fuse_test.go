package hostmount

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/runc-shared/runc-shared/internal/testutil"
)

func mountpoints(ms []*mountinfo.Info) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Mountpoint
	}
	return out
}

func TestFUSEMountsFromReader(t *testing.T) {
	tests := []struct {
		under []string
		want  string
	}{
		{[]string{"/var/lib/kubelet"}, "/var/lib/kubelet/pods/a b/volumes/v,/var/lib/kubelet/pods/p/dead,/var/lib/kubelet/pods/p/dead/nested,/var/lib/kubelet/blk"},
		{[]string{"/var/lib/kubelet/"}, "/var/lib/kubelet/pods/a b/volumes/v,/var/lib/kubelet/pods/p/dead,/var/lib/kubelet/pods/p/dead/nested,/var/lib/kubelet/blk"},
		{[]string{"/var/lib/kubelet/pods/a b"}, "/var/lib/kubelet/pods/a b/volumes/v"},
		{[]string{"/var/lib/kubelet/pods/a"}, ""},
		{[]string{"/var/lib/kubelet/pods/p/dead/nested"}, "/var/lib/kubelet/pods/p/dead/nested"},
		{[]string{"/var/lib/kubelet-evil"}, "/var/lib/kubelet-evil/x"},
		{[]string{"/var/lib/kube"}, ""},
		{[]string{"var/lib/kubelet"}, ""},
		{nil, ""},
	}
	for _, tt := range tests {
		got, err := FUSEMountsFromReader(strings.NewReader(hostFixture), tt.under)
		if err != nil {
			t.Fatal(err)
		}
		if s := strings.Join(mountpoints(got), ","); s != tt.want {
			t.Errorf("FUSEMountsFromReader(%v) = %s, want %s", tt.under, s, tt.want)
		}
	}
}

func TestIsFUSE(t *testing.T) {
	for fstype, want := range map[string]bool{
		"fuse": true, "fuse.glusterfs": true, "fuse.sshfs": true, "fuseblk": true,
		"fusectl": false, "fuse3": false, "tmpfs": false, "": false,
	} {
		if IsFUSE(fstype) != want {
			t.Errorf("IsFUSE(%q) != %v", fstype, want)
		}
	}
}

// classify over fixture mounts with a fake statfs: dead, hung and live.
func TestClassify(t *testing.T) {
	mounts, err := FUSEMountsFromReader(strings.NewReader(hostFixture), []string{"/var/lib/kubelet"})
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	defer close(release)
	stat := func(p string) error {
		switch p {
		case "/var/lib/kubelet/pods/a b/volumes/v":
			return unix.ENOTCONN
		case "/var/lib/kubelet/pods/p/dead":
			<-release // a hung daemon
			return nil
		case "/var/lib/kubelet/blk":
			return unix.ECONNABORTED
		}
		return nil
	}
	start := time.Now()
	scan := classify(mounts, 200*time.Millisecond, stat)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("classify took %v with a 200ms timeout", d)
	}
	if got := strings.Join(mountpoints(scan.Dead), ","); got != "/var/lib/kubelet/pods/a b/volumes/v,/var/lib/kubelet/blk" {
		t.Errorf("dead = %s", got)
	}
	if got := strings.Join(mountpoints(scan.Hung), ","); got != "/var/lib/kubelet/pods/p/dead" {
		t.Errorf("hung = %s", got)
	}
	if got := strings.Join(mountpoints(scan.Live), ","); got != "/var/lib/kubelet/pods/p/dead/nested" {
		t.Errorf("live = %s", got)
	}
	err = hungError(scan.Hung)
	if !errors.Is(err, ErrHungMount) || !strings.Contains(err.Error(), "/var/lib/kubelet/pods/p/dead") {
		t.Errorf("hungError = %v", err)
	}
	if hungError(nil) != nil {
		t.Error("hungError(nil) != nil")
	}
}

// Real FUSE mounts from bindfs: a dead one under the prefix is selected; a
// live one under the same prefix and a dead one under a prefix sibling are
// not; Detach removes the dead one.
func TestDeadFUSEMountsLive(t *testing.T) {
	base := privateBase(t)
	src := base + "/src"
	prefix := base + "/kubelet"
	dead, live, evil := prefix+"/pods/a b/dead", prefix+"/pods/live", base+"/kubelet-evil/dead"
	mkdirs(t, src)

	killBindfs(t, testutil.Bindfs(t, src, dead))
	testutil.Bindfs(t, src, live)
	killBindfs(t, testutil.Bindfs(t, src, evil))

	var st unix.Statfs_t
	if err := unix.Statfs(dead, &st); !errors.Is(err, unix.ENOTCONN) {
		t.Fatalf("statfs of the killed bindfs mount = %v, want ENOTCONN", err)
	}
	if ok, err := isMountPoint(dead); err != nil || !ok {
		t.Fatalf("isMountPoint(dead) = %v, %v", ok, err)
	}
	if m, err := MountOf(dead + "/x"); err != nil || m.Mountpoint != dead {
		t.Fatalf("MountOf below a dead mount = %v, %v", m, err)
	}

	for _, under := range [][]string{{prefix}, {prefix + "/"}, {prefix, base + "/kubelet-e"}} {
		got, err := DeadFUSEMounts(under)
		if err != nil {
			t.Fatal(err)
		}
		if s := strings.Join(mountpoints(got), ","); s != dead {
			t.Fatalf("DeadFUSEMounts(%v) = %q, want %q", under, s, dead)
		}
	}
	// A symlinked prefix matches the canonical mount points in mountinfo.
	symlink(t, prefix, base+"/symkubelet")
	if got, err := DeadFUSEMounts([]string{base + "/symkubelet"}); err != nil || len(got) != 1 || got[0].Mountpoint != dead {
		t.Fatalf("DeadFUSEMounts(symlinked prefix) = %v, %v", mountpoints(got), err)
	}
	scan, err := ScanFUSE([]string{prefix}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if s := strings.Join(mountpoints(scan.Live), ","); s != live {
		t.Fatalf("live = %q, want %q", s, live)
	}

	if err := Detach(dead); err != nil {
		t.Fatal(err)
	}
	if got, err := DeadFUSEMounts([]string{prefix}); err != nil || len(got) != 0 {
		t.Fatalf("after Detach: %v, %v", mountpoints(got), err)
	}
	if ok, _ := isMountPoint(live); !ok {
		t.Fatal("the live mount went away")
	}
}

// A hung FUSE daemon (stopped with SIGSTOP) is neither dead nor waited for.
func TestDeadFUSEMountsHung(t *testing.T) {
	base := privateBase(t)
	prefix := base + "/kubelet"
	hung := prefix + "/hung"
	cmd := testutil.Bindfs(t, base+"/src", hung)
	killBindfs(t, testutil.Bindfs(t, base+"/src", prefix+"/dead"))

	if err := cmd.Process.Signal(unix.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// Registered after testutil.Bindfs, so it runs before its kill and detach.
	t.Cleanup(func() { _ = cmd.Process.Signal(unix.SIGCONT) })

	start := time.Now()
	scan, err := ScanFUSE([]string{prefix}, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("ScanFUSE took %v on a hung mount", d)
	}
	if s := strings.Join(mountpoints(scan.Hung), ","); s != hung {
		t.Fatalf("hung = %q, want %q", s, hung)
	}
	if s := strings.Join(mountpoints(scan.Dead), ","); s != prefix+"/dead" {
		t.Fatalf("dead = %q", s)
	}

	got, err := DeadFUSEMounts([]string{prefix})
	if !errors.Is(err, ErrHungMount) || !strings.Contains(err.Error(), hung) {
		t.Fatalf("DeadFUSEMounts error = %v, want ErrHungMount naming %s", err, hung)
	}
	if s := strings.Join(mountpoints(got), ","); s != prefix+"/dead" {
		t.Fatalf("DeadFUSEMounts with a hung mount = %q", s)
	}
}
