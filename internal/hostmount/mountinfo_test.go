package hostmount

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// hostFixture is a host's mountinfo with the shapes that break naive code:
// an escaped space, a prefix sibling, nested and stacked mounts, and a mount
// hidden by a later mount on its ancestor (/opt/lib, then /opt over it).
const hostFixture = `1 0 8:1 / / rw,relatime shared:1 - ext4 /dev/vda rw
20 1 8:2 / /var rw,relatime shared:2 - ext4 /dev/vdb rw
21 20 8:3 / /var/lib/kubelet rw,relatime - xfs /dev/vdc rw
22 21 0:42 / /var/lib/kubelet/pods/a\040b/volumes/v rw,nosuid,nodev shared:4 - fuse.glusterfs 127.0.0.2:/v0 rw,user_id=0,group_id=0
23 20 0:43 / /var/lib/kubelet-evil/x rw shared:5 - fuse.sshfs host:/ rw
24 21 0:44 / /var/lib/kubelet/pods/p/dead rw master:3 - fuse /src rw
25 24 0:45 / /var/lib/kubelet/pods/p/dead/nested rw shared:7 master:3 - fuse.bindfs /src2 rw
26 21 0:46 / /var/lib/kubelet/plugins rw - tmpfs tmpfs rw
27 26 0:47 / /var/lib/kubelet/plugins rw shared:9 - tmpfs tmpfs rw
30 1 0:50 / /opt/lib rw shared:10 - tmpfs tmpfs rw
31 1 0:51 / /opt rw - tmpfs tmpfs rw
32 21 0:52 / /var/lib/kubelet/blk rw - fuseblk /dev/sdx rw
33 21 0:53 / /var/lib/kubelet/fusectl rw - fusectl fusectl rw
`

// containerFixture is a container's view: its root's parent is not listed.
const containerFixture = `600 500 0:60 / / rw - overlay overlay rw,lowerdir=/l
601 600 0:61 / /proc rw - proc proc rw
602 600 8:3 /pods /var/lib/kubelet rw shared:3 - xfs /dev/vdc rw
603 602 0:62 / /var/lib/kubelet/mnt rw master:3 - tmpfs tmpfs rw
`

func TestMountOfReader(t *testing.T) {
	tests := []struct {
		fixture string
		path    string
		wantID  int
	}{
		{hostFixture, "/", 1},
		{hostFixture, "/etc/passwd", 1},
		{hostFixture, "/var", 20},
		{hostFixture, "/var/lib", 20},
		{hostFixture, "/var/lib/kubelet", 21},
		{hostFixture, "/var/lib/kubelet/", 21},
		{hostFixture, "/var/lib/kubelet/pods/a", 21},
		{hostFixture, "/var/lib/kubelet/pods/a b/volumes/v/file", 22},
		{hostFixture, "/var/lib/kubelet/pods/a b/volumes/v2", 21},
		{hostFixture, "/var/lib/kubelet-evil", 20},
		{hostFixture, "/var/lib/kubelet-evil/x/y", 23},
		{hostFixture, "/var/lib/kubelet/pods/p/dead/nested/deeper", 25},
		{hostFixture, "/var/lib/kubelet/plugins/x", 27}, // top of the stack
		{hostFixture, "/opt/lib/x", 31},                 // 30 is hidden by 31
		{containerFixture, "/var/lib/kubelet/pods", 602},
		{containerFixture, "/var/lib/kubelet/mnt/x", 603},
		{containerFixture, "/etc", 600},
		// Without a root entry: the longest mount point, last listed.
		{"40 1 0:1 / /a rw - tmpfs t rw\n41 40 0:2 / /a/b rw - tmpfs t rw\n42 41 0:3 / /a/b rw - tmpfs t rw\n", "/a/b/c", 42},
	}
	for _, tt := range tests {
		m, err := MountOfReader(strings.NewReader(tt.fixture), tt.path)
		if err != nil {
			t.Errorf("MountOfReader(%q): %v", tt.path, err)
			continue
		}
		if m.ID != tt.wantID {
			t.Errorf("MountOfReader(%q) = %d (%s), want %d", tt.path, m.ID, m.Mountpoint, tt.wantID)
		}
		table, err := ParseTable(strings.NewReader(tt.fixture))
		if err != nil {
			t.Fatal(err)
		}
		if m, err := table.MountOf(tt.path); err != nil || m.ID != tt.wantID {
			t.Errorf("ParseTable(...).MountOf(%q) = %+v, %v; want %d", tt.path, m, err, tt.wantID)
		}
	}
}

func TestMountOfReaderErrors(t *testing.T) {
	if _, err := MountOfReader(strings.NewReader(hostFixture), "var/lib"); !errors.Is(err, ErrRelativePath) {
		t.Errorf("relative path: %v", err)
	}
	if _, err := MountOfReader(strings.NewReader("40 1 0:1 / /a rw - tmpfs t rw\n"), "/b"); err == nil {
		t.Error("no containing mount: no error")
	}
	if _, err := MountOfReader(strings.NewReader("garbage\n"), "/"); err == nil {
		t.Error("malformed mountinfo: no error")
	}
	if _, err := ParseTable(strings.NewReader("garbage\n")); err == nil {
		t.Error("ParseTable(malformed mountinfo): no error")
	}
	table, err := ParseTable(strings.NewReader(hostFixture))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := table.MountOf("var/lib"); !errors.Is(err, ErrRelativePath) {
		t.Errorf("Table.MountOf(relative): %v", err)
	}
	// A parent cycle in malformed input must not loop.
	cyc := "1 2 0:1 / / rw - x x rw\n2 1 0:2 / / rw - x x rw\n"
	if _, err := MountOfReader(strings.NewReader(cyc), "/x"); err != nil {
		t.Errorf("cycle: %v", err)
	}
}

// TestTableMounts: the entries a filter keeps, in mountinfo order, up to
// the one it stops at.
func TestTableMounts(t *testing.T) {
	table, err := ParseTable(strings.NewReader(containerFixture))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name   string
		filter mountinfo.FilterFunc
		want   []int
	}{
		{"all", nil, []int{600, 601, 602, 603}},
		{"propagating", func(m *mountinfo.Info) (bool, bool) { return PeerGroup(m)+Master(m) == 0, false }, []int{602, 603}},
		{"stop", func(m *mountinfo.Info) (bool, bool) { return false, m.ID == 601 }, []int{600, 601}},
		{"none", func(*mountinfo.Info) (bool, bool) { return true, false }, nil},
	} {
		ms, err := table.Mounts(tt.filter)
		var got []int
		for _, m := range ms {
			got = append(got, m.ID)
		}
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("%s: Mounts = %v, %v; want %v", tt.name, got, err, tt.want)
		}
	}
	if _, err := TableOf(-1).Mounts(nil); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("TableOf(-1).Mounts = %v, want the missing mountinfo", err)
	}
	ownTable := TableOf(os.Getpid())
	own, err := ownTable.Mounts(func(m *mountinfo.Info) (bool, bool) { return m.Mountpoint != "/", false })
	if err != nil || len(own) == 0 {
		t.Errorf("this process's mounts on /: %v, %v", own, err)
	}
	// A scan of every namespace asks each table once: what the filter
	// skips must not be parsed into the table and kept.
	if ownTable.loaded || len(ownTable.mounts) != 0 {
		t.Errorf("Mounts kept the whole table (%d entries) of a process it streamed", len(ownTable.mounts))
	}
}

// MountsOfDevices parses only the lines of the devices asked for, and
// answers what Mounts with the same device test would: in order, with the
// filter applied after the device test, with the parser's error on a
// malformed line, and a device field the parser reads its own way.
func TestMountsOfDevices(t *testing.T) {
	devs := func(ds ...uint64) func(uint64) bool { return func(d uint64) bool { return slices.Contains(ds, d) } }
	propagating := func(m *mountinfo.Info) (bool, bool) { return PeerGroup(m)+Master(m) == 0, false }
	for _, tt := range []struct {
		name    string
		text    string
		has     func(uint64) bool
		filter  mountinfo.FilterFunc
		want    []int
		wantErr bool
	}{
		{"one device", hostFixture, devs(unix.Mkdev(0, 42)), nil, []int{22}, false},
		{"stacked devices, in order", hostFixture, devs(unix.Mkdev(0, 47), unix.Mkdev(0, 46)), nil, []int{26, 27}, false},
		{"device and filter", hostFixture, devs(unix.Mkdev(0, 44), unix.Mkdev(0, 46), unix.Mkdev(0, 47)), propagating, []int{24, 27}, false},
		{"shared block device", hostFixture, devs(unix.Mkdev(8, 3)), nil, []int{21}, false},
		{"absent device", hostFixture, devs(unix.Mkdev(0, 99)), nil, nil, false},
		{"stop", hostFixture, devs(unix.Mkdev(8, 1), unix.Mkdev(8, 2)), func(m *mountinfo.Info) (bool, bool) { return false, m.ID == 1 }, []int{1}, false},
		{"malformed line", hostFixture + "garbage\n", devs(unix.Mkdev(0, 42)), nil, nil, true},
		{"unreadable device", hostFixture + "40 1 x:y / /bad rw - tmpfs tmpfs rw\n", devs(unix.Mkdev(0, 42)), nil, []int{22}, false},
	} {
		ms, err := devicesFromReader(strings.NewReader(tt.text), tt.has, tt.filter)
		var got []int
		for _, m := range ms {
			got = append(got, m.ID)
		}
		if (err != nil) != tt.wantErr || !slices.Equal(got, tt.want) {
			t.Errorf("%s: %v, %v; want %v (error: %v)", tt.name, got, err, tt.want, tt.wantErr)
		}
		table, perr := ParseTable(strings.NewReader(tt.text))
		if perr != nil {
			continue
		}
		loaded, err := table.MountsOfDevices(tt.has, tt.filter)
		if err != nil || !slices.EqualFunc(loaded, ms, func(a, b *mountinfo.Info) bool { return *a == *b }) {
			t.Errorf("%s: a parsed table answers %v, %v; the stream %v", tt.name, loaded, err, ms)
		}
	}
	// A live table, streamed: this process's /proc, whose device no other
	// mount of the host shares.
	proc, err := MountOf("/proc")
	if err != nil {
		t.Fatal(err)
	}
	dev := unix.Mkdev(uint32(proc.Major), uint32(proc.Minor))
	ms, err := TableOf(os.Getpid()).MountsOfDevices(devs(dev), nil)
	if err != nil || len(ms) != 1 || ms[0].Mountpoint != "/proc" {
		t.Errorf("MountsOfDevices(/proc's device %d:%d) = %v, %v; want /proc", proc.Major, proc.Minor, ms, err)
	}
}

// TestTableIsMountPoint: a container's mount points, as it sees them,
// from its mountinfo; only an exact mount point counts.
func TestTableIsMountPoint(t *testing.T) {
	table, err := ParseTable(strings.NewReader(containerFixture))
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]bool{
		"/": true, "/var/lib/kubelet": true, "/var/lib/kubelet/mnt": true,
		"/var/lib": false, "/var/lib/kubelet/mnt/x": false, "/var/lib/kubelet-evil": false,
	} {
		got, err := table.IsMountPoint(path)
		if err != nil || got != want {
			t.Errorf("IsMountPoint(%s) = %v, %v; want %v", path, got, err, want)
		}
	}
	if _, err := TableOf(-1).IsMountPoint("/"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("TableOf(-1).IsMountPoint = %v, want the missing mountinfo", err)
	}
	if _, err := TableOf(os.Getpid()).IsMountPoint("var/lib"); !errors.Is(err, ErrRelativePath) {
		t.Errorf("IsMountPoint(relative) = %v, want ErrRelativePath", err)
	}
}

func TestPeerGroupAndMaster(t *testing.T) {
	tests := []struct {
		optional     string
		shared, mstr int
	}{
		{"", 0, 0},
		{"shared:1", 1, 0},
		{"master:3", 0, 3},
		{"shared:7 master:3", 7, 3},
		{"master:3 shared:7", 7, 3},
		{"shared:12 propagate_from:2", 12, 0},
		{"unbindable", 0, 0},
		{"shared:", 0, 0},
		{"shared:x", 0, 0},
		{"sharedd:4", 0, 0},
	}
	for _, tt := range tests {
		m := &mountinfo.Info{Optional: tt.optional}
		if got := PeerGroup(m); got != tt.shared {
			t.Errorf("PeerGroup(%q) = %d, want %d", tt.optional, got, tt.shared)
		}
		if got := Master(m); got != tt.mstr {
			t.Errorf("Master(%q) = %d, want %d", tt.optional, got, tt.mstr)
		}
	}
	if PeerGroup(nil) != 0 || Master(nil) != 0 {
		t.Error("nil info")
	}
}

func TestMountOfLive(t *testing.T) {
	base := privateBase(t)
	mkdirs(t, base+"/a/b", base+"/m")
	if err := unix.Mount("tmpfs", base+"/m", "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { detachQuiet(t, base+"/m") })
	self := TableOf(os.Getpid()) // parsed once when the fast path cannot answer
	for path, want := range map[string]string{
		base:                base,
		base + "/a/b":       base,
		base + "/m":         base + "/m",
		base + "/m/x/y":     base + "/m",
		base + "/m-sibling": base,
	} {
		m, err := MountOf(path)
		if err != nil {
			t.Fatal(err)
		}
		if m.Mountpoint != want {
			t.Errorf("MountOf(%s) = %s, want %s", path, m.Mountpoint, want)
		}
		if tm, err := self.MountOf(path); err != nil || tm.ID != m.ID {
			t.Errorf("TableOf(self).MountOf(%s) = %+v, %v; MountOf = %d", path, tm, err, m.ID)
		}
	}
	if _, err := TableOf(-1).MountOf("/"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("TableOf(-1).MountOf: %v, want the missing mountinfo", err)
	}
	for path, want := range map[string]bool{base: true, base + "/m": true, base + "/m/": true, base + "/a": false, "/": true} {
		got, err := isMountPoint(path)
		if err != nil || got != want {
			t.Errorf("isMountPoint(%s) = %v, %v; want %v", path, got, err, want)
		}
		if got, err := TableOf(os.Getpid()).IsMountPoint(path); err != nil || got != want {
			t.Errorf("TableOf(self).IsMountPoint(%s) = %v, %v; want %v", path, got, err, want)
		}
		if got, err := self.IsMountPoint(path); err != nil || got != want {
			t.Errorf("TableOf(self), asked before, IsMountPoint(%s) = %v, %v; want %v", path, got, err, want)
		}
	}
	if shared, err := IsShared(base + "/a"); err != nil || shared {
		t.Errorf("IsShared(private) = %v, %v", shared, err)
	}
	if err := unix.Mount("", base+"/m", "", unix.MS_SHARED, ""); err != nil {
		t.Fatal(err)
	}
	if shared, err := IsShared(base + "/m/x"); err != nil || !shared {
		t.Errorf("IsShared(below shared) = %v, %v", shared, err)
	}
}
