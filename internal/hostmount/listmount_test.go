package hostmount

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/runc-shared/runc-shared/internal/testutil"
)

// mountsUnderMountinfo is MountsUnder's fallback, the reference.
func mountsUnderMountinfo(t *testing.T, paths []string, filter func(*mountinfo.Info) bool) []*mountinfo.Info {
	t.Helper()
	ms, err := mountinfo.GetMounts(func(m *mountinfo.Info) (bool, bool) {
		_, ok := WithinAny(m.Mountpoint, paths)
		return !ok || (filter != nil && !filter(m)), false
	})
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

func infoStrings(ms []*mountinfo.Info) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = fmt.Sprintf("%+v", *m)
	}
	return out
}

// A tree of nested mounts below a shared mount point: tmpfs children and
// grandchildren, a stack with a child hidden under its top mount, a bind, a
// bindfs FUSE mount, and a sibling "-evil" dir outside with mounts of its
// own. The listmount enumeration and mountinfo agree entry by entry, in
// order, with and without a filter.
func TestMountsUnderAgreesWithMountinfo(t *testing.T) {
	base := privateBase(t)
	shared, evil := base+"/shared", base+"/shared-evil"
	mkdirs(t, shared, evil+"/t", base+"/fusesrc", base+"/plain")
	mount(t, shared, shared, "", unix.MS_BIND, "")
	mount(t, "", shared, "", unix.MS_SHARED|unix.MS_REC, "")
	mkdirs(t, shared+"/a", shared+"/b", shared+"/stack", shared+"/dir")
	mount(t, "lm-a", shared+"/a", "tmpfs", 0, "")
	mkdirs(t, shared+"/a/x/y", shared+"/a/z")
	mount(t, "lm-ax", shared+"/a/x", "tmpfs", unix.MS_NOSUID, "")
	mkdirs(t, shared+"/a/x/y")
	mount(t, "lm-axy", shared+"/a/x/y", "tmpfs", 0, "")
	mount(t, base+"/plain", shared+"/a/z", "", unix.MS_BIND, "")
	mount(t, "lm-b", shared+"/b", "tmpfs", unix.MS_RDONLY, "")
	mount(t, "lm-stack1", shared+"/stack", "tmpfs", 0, "")
	mkdirs(t, shared+"/stack/hidden")
	mount(t, "lm-hidden", shared+"/stack/hidden", "tmpfs", 0, "")
	mount(t, "lm-stack2", shared+"/stack", "tmpfs", 0, "")
	mount(t, "lm-evil", evil+"/t", "tmpfs", 0, "")
	testutil.Bindfs(t, base+"/fusesrc", shared+"/a/fuse", "-o", "subtype=bindfs")
	symlink(t, shared, base+"/link")

	isFUSE := func(m *mountinfo.Info) bool { return IsFUSE(m.FSType) }
	cases := []struct {
		name   string
		paths  []string
		filter func(*mountinfo.Info) bool
		fast   bool // the listmount path answers
		want   int  // entries expected
	}{
		{"shared", []string{shared}, nil, true, 10},
		{"shared, trailing slash", []string{shared + "/"}, nil, true, 10},
		{"FUSE only", []string{shared}, isFUSE, true, 1},
		{"overlapping", []string{shared + "/a", shared, shared + "/a/x"}, nil, true, 10},
		{"a subtree", []string{shared + "/a"}, nil, true, 5},
		{"a stack", []string{shared + "/stack"}, nil, true, 3},
		{"evil sibling", []string{evil}, nil, false, 1},
		{"symlink skipped", []string{base + "/link", shared + "/b"}, nil, true, 1},
		{"cleaned", []string{shared + "/a/x/y/.."}, nil, true, 2},
		{"not a mount point", []string{shared + "/dir"}, nil, false, 0},
		{"mount point and not", []string{shared + "/b", base + "/plain"}, nil, false, 1},
		{"relative", []string{"shared"}, nil, false, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var clean []string
			for _, p := range tc.paths {
				if filepath.IsAbs(p) {
					clean = append(clean, filepath.Clean(p))
				}
			}
			want := mountsUnderMountinfo(t, clean, tc.filter)
			if len(want) != tc.want {
				t.Errorf("mountinfo has %d entries, the test expects %d: %s", len(want), tc.want, strings.Join(mountpoints(want), ","))
			}
			got, err := MountsUnder(tc.paths, tc.filter)
			if err != nil {
				t.Fatal(err)
			}
			if g, w := infoStrings(got), infoStrings(want); !slices.Equal(g, w) {
				t.Errorf("MountsUnder(%v):\n got  %s\n want %s", tc.paths, strings.Join(g, "\n      "), strings.Join(w, "\n      "))
			}
			fast, err := mountsUnderFast(clean, tc.filter)
			switch {
			case forceMountinfo || !tc.fast || len(clean) == 0:
				if err == nil && len(clean) > 0 {
					t.Errorf("fast path answered: %s", strings.Join(mountpoints(fast), ","))
				}
			case err != nil:
				t.Errorf("fast path: %v", err)
			case !slices.Equal(infoStrings(fast), infoStrings(want)):
				t.Errorf("fast path %s, want %s", strings.Join(mountpoints(fast), ","), strings.Join(mountpoints(want), ","))
			}
		})
	}
}

// On a kernel whose listmount lists children only (Linux 6.8 to 6.10), the
// enumeration descends itself, does not take the kernel for one that lists
// descendants, and still agrees with mountinfo.
func TestMountsUnderChildrenOnly(t *testing.T) {
	if forceMountinfo {
		t.Log("fast path forced off in this run")
		return
	}
	base := privateBase(t)
	shared := base + "/shared"
	mkdirs(t, shared+"/a", shared+"/b")
	mount(t, shared, shared, "", unix.MS_BIND, "")
	mount(t, "co-a", shared+"/a", "tmpfs", 0, "")
	mkdirs(t, shared+"/a/x/y")
	mount(t, "co-ax", shared+"/a/x", "tmpfs", 0, "")
	mkdirs(t, shared+"/a/x/y")
	mount(t, "co-axy", shared+"/a/x/y", "tmpfs", 0, "")
	mount(t, "co-b", shared+"/b", "tmpfs", 0, "")
	want := mountsUnderMountinfo(t, []string{shared}, nil)
	if len(want) != 5 {
		t.Fatalf("mountinfo: %v", mountpoints(want))
	}

	saved, savedProbed := listsDescendants.Load(), probed.Load()
	t.Cleanup(func() {
		listIDs = listmount
		listsDescendants.Store(saved)
		probed.Store(savedProbed)
	})
	listIDs = func(id uint64) ([]uint64, error) {
		all, err := listmount(id)
		var children []uint64
		for _, c := range all {
			if n, err := statmountNode(c, 0); err == nil && n.parent == id {
				children = append(children, c)
			}
		}
		return children, err
	}
	listsDescendants.Store(false)
	probed.Store(false)
	got, err := mountsUnderFast([]string{shared}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if g, w := infoStrings(got), infoStrings(want); !slices.Equal(g, w) {
		t.Errorf("got %v, want %v", mountpoints(got), mountpoints(want))
	}
	if listsDescendants.Load() {
		t.Error("a kernel that lists children only was taken for one that lists descendants")
	}
}

// MountsAt lists a whole stack, including a mount propagated under the
// mounts already there (the kernel tucks it beneath them), as mountinfo does.
func TestMountsAt(t *testing.T) {
	base := privateBase(t)
	a, b := base+"/a", base+"/b"
	mkdirs(t, a+"/y", a+"/none", b)
	mount(t, a, a, "", unix.MS_BIND, "")
	mount(t, "", a, "", unix.MS_SHARED, "")
	mount(t, "at-old", a+"/y", "tmpfs", 0, "")
	// A non-recursive bind: b is a peer of a without the mount at y.
	mount(t, a, b, "", unix.MS_BIND, "")
	mount(t, "at-new", b+"/y", "tmpfs", 0, "")

	for _, p := range []string{a + "/y", b + "/y", a + "/none", a, base + "/missing"} {
		want, err := mountinfo.GetMounts(func(m *mountinfo.Info) (bool, bool) { return m.Mountpoint != p, false })
		if err != nil {
			t.Fatal(err)
		}
		got, err := MountsAt(p)
		if err != nil {
			t.Fatal(err)
		}
		if g, w := infoStrings(got), infoStrings(want); !slices.Equal(g, w) {
			t.Errorf("MountsAt(%s):\n got  %s\n want %s", p, strings.Join(g, "\n      "), strings.Join(w, "\n      "))
		}
	}
	ms, _ := MountsAt(a + "/y")
	if len(ms) != 2 || ms[0].Source != "at-old" || ms[1].Source != "at-new" {
		t.Errorf("MountsAt(%s) = %v, want at-old and the tucked-under at-new", a+"/y", infoStrings(ms))
	}
	if _, err := MountsAt("relative"); !errors.Is(err, ErrRelativePath) {
		t.Errorf("MountsAt(relative) = %v", err)
	}
}

// A path the dentry cache cannot walk (never looked up; below a FUSE
// directory whose entries expire at once, as a revalidating file system's
// do) is answered from the mounts under its nearest cached ancestor's
// mount, not by reading the namespace's mountinfo, and agrees with
// mountinfo: none at a missing path, the stack at a mount point below the
// FUSE mount.
func TestMountsAtUncached(t *testing.T) {
	base := privateBase(t)
	fuse := base + "/fuse"
	testutil.Bindfs(t, base+"/src", fuse, "-o", "entry_timeout=0,attr_timeout=0")
	deep := fuse + "/d/m"
	mkdirs(t, deep)
	mount(t, "uncached-a", deep, "tmpfs", 0, "size=64k")
	mount(t, "uncached-b", deep, "tmpfs", 0, "size=64k")
	reads := 0
	getMounts = func(f mountinfo.FilterFunc) ([]*mountinfo.Info, error) { reads++; return mountinfo.GetMounts(f) }
	t.Cleanup(func() { getMounts = mountinfo.GetMounts })

	for _, tc := range []struct {
		path string
		want int
	}{
		{base + "/never/looked/up", 0},
		{deep, 2},
	} {
		if !forceMountinfo {
			if _, _, err := mountNodeOf(tc.path); !notCached(err) {
				t.Fatalf("%s: the dentry cache walks it (%v): the test needs a path it cannot walk", tc.path, err)
			}
		}
		reads = 0
		got, err := MountsAt(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		want, err := mountinfo.GetMounts(func(m *mountinfo.Info) (bool, bool) { return m.Mountpoint != tc.path, false })
		if err != nil {
			t.Fatal(err)
		}
		if g, w := infoStrings(got), infoStrings(want); len(want) != tc.want || !slices.Equal(g, w) {
			t.Errorf("MountsAt(%s):\n got  %s\n want %d: %s", tc.path, strings.Join(g, "\n      "), tc.want, strings.Join(w, "\n      "))
		}
		if !forceMountinfo && reads != 0 {
			t.Errorf("MountsAt(%s) read mountinfo %d times", tc.path, reads)
		}
	}
}

// A hung FUSE mount below the scanned path is listed without waiting on its
// daemon, in both modes.
func TestMountsUnderHungFUSE(t *testing.T) {
	base := privateBase(t)
	shared := base + "/shared"
	mkdirs(t, shared)
	mount(t, shared, shared, "", unix.MS_BIND, "")
	cmd := testutil.Bindfs(t, base+"/src", shared+"/hung")
	if err := cmd.Process.Signal(unix.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Signal(unix.SIGCONT) })
	done := make(chan error, 1)
	go func() {
		ms, err := MountsUnder([]string{shared}, nil)
		if err == nil && (len(ms) != 2 || ms[1].Mountpoint != shared+"/hung") {
			err = fmt.Errorf("got %v", mountpoints(ms))
		}
		if err == nil {
			_, err = MountsAt(shared + "/hung")
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Error(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("MountsUnder blocked on a hung FUSE mount")
	}
}

// BenchmarkMountsUnder measures MountsUnder and ScanFUSE on a mount point
// with a few mounts below it, while 50 or 5,000 unrelated tmpfs mounts sit
// under another (private) temp dir, with listmount and with mountinfo.
func BenchmarkMountsUnder(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Fatal("this benchmark makes mounts and must run as root")
	}
	for _, n := range []int{50, 5000} {
		b.Run(fmt.Sprintf("mounts=%d", n), func(b *testing.B) {
			benchMounts(b, n)
			scanned := benchScanned(b)
			for _, fallback := range []bool{false, true} {
				mode := "listmount"
				if fallback {
					mode = "mountinfo"
				}
				b.Run("MountsUnder/"+mode, func(b *testing.B) {
					forceMountinfo = fallback
					defer func() { forceMountinfo = false }()
					for b.Loop() {
						if ms, err := MountsUnder([]string{scanned}, nil); err != nil || len(ms) != 4 {
							b.Fatalf("MountsUnder = %v, %v", mountpoints(ms), err)
						}
					}
				})
				b.Run("ScanFUSE/"+mode, func(b *testing.B) {
					forceMountinfo = fallback
					defer func() { forceMountinfo = false }()
					for b.Loop() {
						if _, err := ScanFUSE([]string{scanned}, time.Second); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		})
	}
}

// benchScanned makes a temp dir bound onto itself with three tmpfs mounts
// below it (one nested), detached in Cleanup.
func benchScanned(b *testing.B) string {
	d := privateBase(b)
	for _, p := range []string{d + "/a", d + "/b", d + "/a/c"} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			b.Fatal(err)
		}
		mount(b, "scanned-tmpfs", p, "tmpfs", 0, "size=64k")
	}
	return d
}
