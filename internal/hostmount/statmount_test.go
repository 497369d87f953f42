package hostmount

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/runc-shared/runc-shared/internal/testutil"
)

// modeEnv, set in a re-executed test binary, forces the mountinfo fallback.
const modeEnv = "HOSTMOUNT_TEST_FORCE_MOUNTINFO"

// TestMain runs the whole suite twice: with the statx+statmount fast path,
// then in a child test binary with the fallback forced, so both ways of
// answering MountOf pass the same tests.
func TestMain(m *testing.M) {
	if os.Getenv(modeEnv) == "1" {
		forceMountinfo = true
		os.Exit(m.Run())
	}
	code := m.Run()
	if code != 0 {
		os.Exit(code)
	}
	fmt.Println("=== hostmount: again with the mountinfo fallback forced")
	cmd := exec.Command(os.Args[0], childArgs(os.Args[1:])...)
	cmd.Env = append(os.Environ(), modeEnv+"=1")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "hostmount tests with the mountinfo fallback: %v\n", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// childArgs drops the flags whose output files the parent owns, and runs
// no benchmarks or fuzzing twice (benchmarks choose their mode themselves).
func childArgs(args []string) []string {
	var out []string
	for _, a := range args {
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		switch name {
		case "test.coverprofile", "test.cpuprofile", "test.memprofile", "test.blockprofile",
			"test.mutexprofile", "test.trace", "test.testlogfile", "test.gocoverdir",
			"test.bench", "test.fuzz", "test.fuzzcachedir", "test.fuzzworker":
			continue
		}
		out = append(out, a)
	}
	return out
}

// The fast path and mountinfo agree, field by field, on real mounts: a
// shared dir, a tmpfs below it (shared, same peer group via propagation),
// a bind of a subdirectory (root not "/"), a private one, a slave, FUSE
// mounts without and with a subtype ("fuse.bindfs"), stacked and hidden
// mounts, and paths below them.
func TestStatmountAgreesWithMountinfo(t *testing.T) {
	if forceMountinfo {
		t.Log("fast path forced off in this run; compared in the default run")
		return
	}
	base := privateBase(t)
	shared := base + "/shared"
	mkdirs(t, shared, base+"/src/sub", base+"/private", base+"/slave", base+"/fusesrc")
	mount(t, shared, shared, "", unix.MS_BIND, "")
	mount(t, "", shared, "", unix.MS_SHARED|unix.MS_REC, "")
	mkdirs(t, shared+"/tmp")
	mount(t, "agree-tmpfs", shared+"/tmp", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=711,size=1m")
	mkdirs(t, shared+"/tmp/d/e", shared+"/bind")
	mount(t, base+"/src/sub", shared+"/bind", "", unix.MS_BIND, "")
	mount(t, "agree-ro", base+"/private", "tmpfs", unix.MS_RDONLY|unix.MS_NOEXEC|unix.MS_NOATIME, "")
	mount(t, "", base+"/private", "", unix.MS_PRIVATE, "")
	mount(t, shared, base+"/slave", "", unix.MS_BIND|unix.MS_REC, "")
	mount(t, "", base+"/slave", "", unix.MS_SLAVE|unix.MS_REC, "")
	// A stack of two mounts on one point, and a mount hidden by a later
	// mount on its parent: both answer the top, visible mount.
	mkdirs(t, base+"/stack", base+"/hide/inner")
	mount(t, "stack1", base+"/stack", "tmpfs", 0, "")
	mount(t, "stack2", base+"/stack", "tmpfs", 0, "")
	mount(t, "hidden", base+"/hide/inner", "tmpfs", 0, "")
	mount(t, "hider", base+"/hide", "tmpfs", 0, "")
	mkdirs(t, base+"/hide/inner")
	testutil.Bindfs(t, base+"/fusesrc", shared+"/fuse")
	testutil.Bindfs(t, base+"/fusesrc", shared+"/fusesub", "-o", "subtype=bindfs")

	paths := []string{
		base, base + "/src", shared, shared + "/nonexistent-is-fallback-only",
		shared + "/tmp", shared + "/tmp/d/e", shared + "/bind", base + "/private",
		base + "/slave", base + "/slave/tmp", shared + "/fuse", shared + "/fusesub", "/", "/proc", "/proc/self",
		base + "/stack", base + "/hide", base + "/hide/inner",
	}
	for _, p := range paths {
		want, err := mountOfMountinfo(p)
		if err != nil {
			t.Fatalf("mountinfo: %v", err)
		}
		n, _, err := mountNodeOf(p)
		if strings.Contains(p, "nonexistent") {
			if err == nil {
				t.Errorf("fast path answered for a missing path %s", p)
			}
			continue
		}
		if err != nil {
			t.Errorf("fast path %s: %v", p, err)
			continue
		}
		if *n.info != *want {
			t.Errorf("%s:\n statmount %+v\n mountinfo %+v", p, *n.info, *want)
		}
		// The same through /proc/<pid>/root and the namespace id.
		if in, err := mountOfInFast(os.Getpid(), p); err != nil || *in != *want {
			t.Errorf("mountOfInFast(self, %s) = %+v, %v\n mountinfo %+v", p, in, err, *want)
		}
	}
	if m, _ := MountOf(shared + "/tmp/d"); PeerGroup(m) == 0 || m.FSType != "tmpfs" {
		t.Errorf("MountOf(tmpfs below shared) = %+v", m)
	}
	if m, _ := MountOf(base + "/slave/tmp"); Master(m) == 0 || PeerGroup(m) != 0 {
		t.Errorf("MountOf(slave) = %+v", m)
	}
	if m, _ := MountOf(shared + "/fusesub"); m.FSType != "fuse.bindfs" {
		t.Errorf("MountOf(FUSE with a subtype) = %+v", m)
	}
}

// A symlink on the way makes the fast path answer for another place than
// mountinfo's lexical match: MountOf must notice and fall back.
func TestStatmountSymlinkFallsBack(t *testing.T) {
	base := privateBase(t)
	mkdirs(t, base+"/m", base+"/plain")
	mount(t, "sym-tmpfs", base+"/m", "tmpfs", 0, "")
	symlink(t, base+"/m", base+"/plain/link")
	// The final symlink itself lives on base's mount (NOFOLLOW)...
	if m, err := MountOf(base + "/plain/link"); err != nil || m.Mountpoint != base {
		t.Errorf("MountOf(symlink) = %v, %v; want %s", m, err, base)
	}
	// ...and a path through it is answered lexically, like mountinfo does.
	mkdirs(t, base+"/m/x")
	if _, _, err := mountNodeOf(base + "/plain/link/x"); err == nil {
		t.Error("fast path answered through a symlink")
	}
	if m, err := MountOf(base + "/plain/link/x"); err != nil || m.Mountpoint != base {
		t.Errorf("MountOf(through symlink) = %v, %v; want %s", m, err, base)
	}
}

func mount(t testing.TB, src, target, fstype string, flags uintptr, data string) {
	t.Helper()
	if err := unix.Mount(src, target, fstype, flags, data); err != nil {
		t.Fatalf("mount %s on %s: %v", src, target, err)
	}
}

// BenchmarkMountOfHost measures MountOf and IsShared on the real mount
// table with 50 and 5,000 extra tmpfs mounts (under a private temp dir),
// with the fast path and with the mountinfo fallback.
func BenchmarkMountOfHost(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Fatal("this benchmark makes mounts and must run as root")
	}
	for _, n := range []int{50, 5000} {
		b.Run(fmt.Sprintf("mounts=%d", n), func(b *testing.B) {
			base, target := benchMounts(b, n)
			for _, fallback := range []bool{false, true} {
				mode := "statmount"
				if fallback {
					mode = "mountinfo"
				}
				b.Run("MountOf/"+mode, func(b *testing.B) {
					forceMountinfo = fallback
					defer func() { forceMountinfo = false }()
					for b.Loop() {
						if m, err := MountOf(target); err != nil || m.Mountpoint != base {
							b.Fatalf("MountOf = %v, %v", m, err)
						}
					}
				})
				b.Run("IsShared/"+mode, func(b *testing.B) {
					forceMountinfo = fallback
					defer func() { forceMountinfo = false }()
					for b.Loop() {
						if _, err := IsShared(target); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		})
	}
}

// benchMounts makes a private temp dir with n tmpfs mounts below it and
// returns it and a directory on its own mount; Cleanup detaches them all.
func benchMounts(b *testing.B, n int) (base, target string) {
	d := privateBase(b)
	for i := range n {
		p := fmt.Sprintf("%s/m%05d", d, i)
		if err := os.Mkdir(p, 0o755); err != nil {
			b.Fatal(err)
		}
		mount(b, "bench-tmpfs", p, "tmpfs", 0, "size=64k")
	}
	target = d + "/dir/below"
	if err := os.MkdirAll(target, 0o755); err != nil {
		b.Fatal(err)
	}
	return d, target
}

// The rendering of statmount's numbers into mountinfo's text, for the cases
// the real mounts above do not reach (propagate_from, unbindable, atime).
func TestStatmountRendering(t *testing.T) {
	opts := []struct {
		attr uint64
		want string
	}{
		{0, "rw,relatime"},
		{unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV | unix.MOUNT_ATTR_NOEXEC, "ro,nosuid,nodev,noexec,relatime"},
		{unix.MOUNT_ATTR_NOATIME | unix.MOUNT_ATTR_NODIRATIME, "rw,noatime,nodiratime"},
		{unix.MOUNT_ATTR_STRICTATIME | unix.MOUNT_ATTR_NOSYMFOLLOW, "rw,nosymfollow"},
	}
	for _, tc := range opts {
		if got := mountOptions(tc.attr); got != tc.want {
			t.Errorf("mountOptions(%#x) = %q, want %q", tc.attr, got, tc.want)
		}
	}
	props := []struct {
		h    statmountHdr
		want string
	}{
		{statmountHdr{MntPropagation: unix.MS_PRIVATE}, ""},
		{statmountHdr{MntPropagation: unix.MS_SHARED, MntPeerGroup: 7}, "shared:7"},
		{statmountHdr{MntPropagation: unix.MS_SLAVE, MntMaster: 3, PropagateFrom: 3}, "master:3"},
		{statmountHdr{MntPropagation: unix.MS_SHARED | unix.MS_SLAVE, MntPeerGroup: 9, MntMaster: 3, PropagateFrom: 2}, "shared:9 master:3 propagate_from:2"},
		{statmountHdr{MntPropagation: unix.MS_UNBINDABLE}, "unbindable"},
	}
	for _, tc := range props {
		m := &mountinfo.Info{Optional: optionalFields(&tc.h)}
		if m.Optional != tc.want {
			t.Errorf("optionalFields(%+v) = %q, want %q", tc.h, m.Optional, tc.want)
		}
		if PeerGroup(m) != int(tc.h.MntPeerGroup) {
			t.Errorf("PeerGroup(%q) = %d", m.Optional, PeerGroup(m))
		}
	}
	// An answer without the basic fields is not used.
	raw := make([]byte, statmountHdrSize)
	h := (*statmountHdr)(unsafe.Pointer(&raw[0]))
	h.Size, h.Mask = statmountHdrSize, statmountNeeded&^statmountPropagateFrom
	if _, err := decodeStatmount(raw); !errors.Is(err, errNoFastPath) {
		t.Errorf("decode without PROPAGATE_FROM: %v", err)
	}
}

// Like reading mountinfo, MountOf does not wait on a hung FUSE daemon: the
// fast path walks only the dentry cache, so a lookup the daemon would have to
// answer falls back to mountinfo instead of blocking.
func TestMountOfHungFUSE(t *testing.T) {
	base := privateBase(t)
	hung := base + "/hung"
	mkdirs(t, base+"/src/fresh/deeper")
	cmd := testutil.Bindfs(t, base+"/src", hung)
	if err := cmd.Process.Signal(unix.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// Registered after testutil.Bindfs, so it runs before its kill and detach,
	// and unblocks a MountOf that hangs after all.
	t.Cleanup(func() { _ = cmd.Process.Signal(unix.SIGCONT) })

	for _, p := range []string{hung, hung + "/fresh", hung + "/fresh/deeper"} {
		done := make(chan error, 1)
		go func() {
			m, err := MountOf(p)
			if err == nil && m.Mountpoint != hung {
				err = fmt.Errorf("mount point %s, want %s", m.Mountpoint, hung)
			}
			done <- err
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("MountOf(%s): %v", p, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("MountOf(%s) blocked on a hung FUSE mount", p)
		}
	}
}

// TestTableOtherNamespace: a Table answers for another process's mount
// namespace (a child in a new one, made private by unshare, with a tmpfs of
// its own), and its fast path exactly as that process's mountinfo does.
func TestTableOtherNamespace(t *testing.T) {
	base := privateBase(t)
	mkdirs(t, base+"/only-inside", base+"/both")
	mount(t, "both-tmpfs", base+"/both", "tmpfs", 0, "")
	ready := base + "/ready"
	cmd := exec.Command("unshare", "-m", "--propagation", "private", "sh", "-c",
		"mount -t tmpfs inside-tmpfs "+base+"/only-inside && touch "+ready+" && exec sleep 60")
	if err := cmd.Start(); err != nil {
		t.Fatalf("unshare: %v (util-linux)", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // our child, by its PID
		_ = cmd.Wait()
	})
	for i := 0; ; i++ {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		if i > 500 {
			t.Fatal("the child did not mount its tmpfs")
		}
		time.Sleep(10 * time.Millisecond)
	}
	pid := cmd.Process.Pid
	if m, err := TableOf(pid).MountOf(base + "/only-inside"); err != nil || m.FSType != "tmpfs" || m.Source != "inside-tmpfs" {
		t.Errorf("TableOf(child).MountOf = %+v, %v; want its own tmpfs", m, err)
	}
	if m, err := MountOf(base + "/only-inside"); err != nil || m.Source == "inside-tmpfs" {
		t.Errorf("MountOf(ours) = %+v, %v; the child's tmpfs must not show here", m, err)
	}
	if forceMountinfo {
		t.Log("fast path forced off in this run; compared in the default run")
		return
	}
	for _, p := range []string{"/", base, base + "/only-inside", base + "/only-inside/x", base + "/both"} {
		f, err := os.Open(fmt.Sprintf("/proc/%d/mountinfo", pid))
		if err != nil {
			t.Fatal(err)
		}
		want, err := MountOfReader(f, p)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		got, err := mountOfInFast(pid, p)
		if strings.HasSuffix(p, "/x") { // missing: not in the dentry cache
			if err == nil {
				t.Errorf("fast path answered for a missing path %s", p)
			}
			continue
		}
		if err != nil || *got != *want {
			t.Errorf("mountOfInFast(child, %s) = %+v, %v\n its mountinfo %+v", p, got, err, *want)
		}
	}
}
