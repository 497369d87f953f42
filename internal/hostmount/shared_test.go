package hostmount

import (
	"errors"
	"os"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

func TestEnsureSharedSelfBind(t *testing.T) {
	base := privateBase(t)
	p := base + "/kubelet"
	lockDir := base + "/locks/sub"
	mkdirs(t, p+"/pods")
	t.Cleanup(func() { detachQuiet(t, p) })

	changed, err := EnsureShared(p, lockDir)
	if err != nil || !changed {
		t.Fatalf("EnsureShared(not a mount point) = %v, %v; want changed", changed, err)
	}
	if n := mountsAt(t, p); n != 1 {
		t.Fatalf("%d mounts at %s, want exactly one self-bind", n, p)
	}
	if shared, err := IsShared(p); err != nil || !shared {
		t.Fatalf("IsShared after EnsureShared = %v, %v", shared, err)
	}
	if st, err := os.Stat(lockDir); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("lock dir: %v %v, want mode 0700", st, err)
	}
	for _, q := range []string{p, p + "/pods", p + "/"} {
		changed, err = EnsureShared(q, lockDir)
		if err != nil || changed {
			t.Fatalf("EnsureShared(%s) again = %v, %v; want no change", q, changed, err)
		}
	}
	if n := mountsAt(t, p); n != 1 {
		t.Fatalf("%d mounts at %s after repeats, want 1", n, p)
	}
	// The mount above p is untouched: still private.
	if shared, _ := IsShared(base); shared {
		t.Fatal("EnsureShared changed the parent mount")
	}
}

func TestEnsureSharedMountPoint(t *testing.T) {
	base := privateBase(t)
	p := base + "/m"
	mkdirs(t, p)
	if err := unix.Mount("tmpfs", p, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { detachQuiet(t, p) })
	mkdirs(t, p+"/sub")
	if err := unix.Mount("tmpfs", p+"/sub", "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	changed, err := EnsureShared(p, base+"/locks")
	if err != nil || !changed {
		t.Fatalf("EnsureShared(private mount point) = %v, %v; want changed", changed, err)
	}
	if n := mountsAt(t, p); n != 1 {
		t.Fatalf("%d mounts at %s, want 1 (no bind on a mount point)", n, p)
	}
	// MS_REC: the submount is shared too.
	if shared, err := IsShared(p + "/sub"); err != nil || !shared {
		t.Fatalf("submount shared = %v, %v; want rshared", shared, err)
	}
}

// 50 callers at once for one path: exactly one changes it, one self-bind.
func TestEnsureSharedConcurrent(t *testing.T) {
	base := privateBase(t)
	p := base + "/concurrent"
	mkdirs(t, p)
	t.Cleanup(func() { detachQuiet(t, p) })
	const n = 50
	var wg sync.WaitGroup
	changes := make(chan bool, n)
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := EnsureShared(p, base+"/locks")
			changes <- c
			errs <- err
		}()
	}
	wg.Wait()
	close(changes)
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	count := 0
	for c := range changes {
		if c {
			count++
		}
	}
	if count != 1 {
		t.Errorf("%d callers changed the mount, want 1", count)
	}
	if got := mountsAt(t, p); got != 1 {
		t.Errorf("%d mounts at %s, want 1", got, p)
	}
}

// What runc does with the result: an rbind of the now shared path, a mount
// below the bind, and the mount shows on the host side.
func TestEnsureSharedPropagates(t *testing.T) {
	base := privateBase(t)
	host, ctr := base+"/host", base+"/container-view"
	mkdirs(t, host, ctr)
	t.Cleanup(func() { detachQuiet(t, host+"/vol"); detachQuiet(t, ctr); detachQuiet(t, host) })
	if _, err := EnsureShared(host, base+"/locks"); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(host, ctr, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		t.Fatal(err)
	}
	mkdirs(t, ctr+"/vol")
	if err := unix.Mount("tmpfs", ctr+"/vol", "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { detachQuiet(t, ctr+"/vol") })
	if ok, err := isMountPoint(host + "/vol"); err != nil || !ok {
		t.Fatalf("mount below the bind did not reach the host path: %v, %v", ok, err)
	}
}

func TestEnsureSharedRefuses(t *testing.T) {
	base := privateBase(t)
	mkdirs(t, base+"/real")
	symlink(t, base+"/real", base+"/link")
	if _, err := EnsureShared(base+"/link", base+"/locks"); !errors.Is(err, unix.ELOOP) {
		t.Errorf("EnsureShared(symlink) = %v, want ELOOP", err)
	}
	if n := mountsAt(t, base+"/real"); n != 0 {
		t.Errorf("a refused path got %d mounts", n)
	}
	// A symlink on a shared mount that leads to a private one: the shared
	// containing mount of the link must not be taken as an answer.
	mkdirs(t, base+"/sh")
	if err := unix.Mount("tmpfs", base+"/sh", "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { detachQuiet(t, base+"/sh") })
	if err := unix.Mount("", base+"/sh", "", unix.MS_SHARED, ""); err != nil {
		t.Fatal(err)
	}
	symlink(t, base+"/real", base+"/sh/link")
	if _, err := EnsureShared(base+"/sh/link", base+"/locks"); !errors.Is(err, unix.ELOOP) {
		t.Errorf("EnsureShared(symlink on a shared mount) = %v, want ELOOP", err)
	}
	if _, err := EnsureShared("relative", base+"/locks"); !errors.Is(err, ErrRelativePath) {
		t.Errorf("EnsureShared(relative) = %v", err)
	}
	if _, err := EnsureShared(base+"/missing", base+"/locks"); !errors.Is(err, unix.ENOENT) {
		t.Errorf("EnsureShared(missing) = %v, want ENOENT", err)
	}
}

func TestUnmountAndDetach(t *testing.T) {
	base := privateBase(t)
	p := base + "/u"
	mkdirs(t, p)
	err := Unmount(p, 0)
	var me *MountError
	if !errors.Is(err, unix.EINVAL) || !errors.As(err, &me) || me.Target != p {
		t.Fatalf("Unmount(not mounted) = %v", err)
	}
	if err := Detach(p); !errors.Is(err, unix.EINVAL) || err == nil {
		t.Fatalf("Detach(not mounted) = %v", err)
	}
	for _, um := range []func(string) error{func(s string) error { return Unmount(s, 0) }, Detach} {
		if err := unix.Mount("tmpfs", p, "tmpfs", 0, ""); err != nil {
			t.Fatal(err)
		}
		if err := um(p); err != nil {
			t.Fatal(err)
		}
		if ok, _ := isMountPoint(p); ok {
			t.Fatal("still mounted")
		}
	}
}
