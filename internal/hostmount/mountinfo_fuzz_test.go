package hostmount_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/sys/mountinfo"

	"github.com/runc-shared/runc-shared/internal/hostmount"
)

// Mount tables with the shapes the helpers must get right: a systemd host
// (shared /), a kubelet dir with FUSE volumes and a prefix sibling, mounts
// stacked on one mount point, an ancestor mounted over a deeper mount, and a
// container's view whose root has no listed parent.
var fuzzMountTables = []string{
	`1 0 253:0 / / rw,relatime shared:1 - ext4 /dev/mapper/root rw
40 1 253:1 / /var/lib/kubelet rw,relatime shared:20 - xfs /dev/vdb rw
41 40 0:70 / /var/lib/kubelet/pods/u1/volumes/kubernetes.io~glusterfs/v rw,nosuid,nodev shared:31 - fuse.glusterfs 127.0.0.2:/v0 rw,user_id=0,group_id=0,allow_other
42 1 0:71 / /var/lib/kubelet-evil rw shared:32 - tmpfs tmpfs rw
43 40 0:72 / /var/lib/kubelet/pods/u2/dead rw master:20 - fuse.sshfs me@h:/ rw
`,
	`22 1 0:21 / /tmp/x rw - tmpfs tmpfs rw
1 0 8:1 / / rw - ext4 /dev/vda rw
23 22 8:1 /tmp/x/shared /tmp/x/shared rw shared:5 - ext4 /dev/vda rw
24 23 0:30 / /tmp/x/shared rw shared:6 - tmpfs t rw
25 24 0:31 / /tmp/x/shared/a\040b rw - fuse.bindfs /usr rw
26 1 0:32 / /tmp rw - tmpfs t2 rw
`,
	`900 800 0:90 / / rw - overlay overlay rw,lowerdir=/l,upperdir=/u
901 900 0:91 / /proc rw,nosuid - proc proc rw
902 900 8:1 /srv/k /var/lib/kubelet rw shared:3 master:1 - ext4 /dev/vda rw
903 902 0:92 / /var/lib/kubelet/x rw shared:4 - fuseblk /dev/sdb rw
`,
	"",
	"garbage\n1 0 0:1 / / rw - x y\n",
}

// FuzzMountOfReader checks the mountinfo helpers on arbitrary mount tables
// and paths. Invariants: no panic and no endless walk; a relative path is
// refused with ErrRelativePath; the mount returned for a path is one of the
// table's entries and an ancestor of the path (never a prefix sibling such
// as /var/lib/kubelet-evil for /var/lib/kubelet/x); uncleaned spellings of
// the path give the same mount; FUSE listings hold only FUSE mounts within
// the prefixes.
//
//	go test ./internal/hostmount/ -run '^$' -fuzz '^FuzzMountOfReader$' -fuzztime 30s
func FuzzMountOfReader(f *testing.F) {
	if live, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		f.Add(string(live), "/proc/self")
	}
	paths := []string{"/", "/var/lib/kubelet/pods/u1/volumes/kubernetes.io~glusterfs/v/f", "/var/lib/kubelet-evil/x",
		"/tmp/x/shared/a b/c", "/var/lib/kubelet/x/y", "/var/lib/kubelet/../kubelet-evil", "rel/path", "//tmp//x/./shared/"}
	for i, tbl := range fuzzMountTables {
		for j, p := range paths {
			if (i+j)%2 == 0 {
				f.Add(tbl, p)
			}
		}
	}
	f.Fuzz(func(t *testing.T, table, path string) {
		if len(table) > 64<<10 {
			return // a real table of that size is covered by the benchmark
		}
		m, err := hostmount.MountOfReader(strings.NewReader(table), path)
		if !filepath.IsAbs(path) {
			if err == nil || !errors.Is(err, hostmount.ErrRelativePath) {
				t.Fatalf("relative path %q: mount %+v, err %v; want ErrRelativePath", path, m, err)
			}
			return
		}
		if err != nil {
			return // unparsable table, or no ancestor of path in it
		}
		all, err := mountinfo.GetMountsFromReader(strings.NewReader(table), nil)
		if err != nil {
			t.Fatalf("MountOfReader found %+v in a table that does not parse: %v", m, err)
		}
		if !isEntry(all, m) {
			t.Fatalf("MountOfReader(%q) = %+v, not an entry of the table", path, m)
		}
		if !hostmount.Within(path, m.Mountpoint) {
			t.Fatalf("MountOfReader(%q) = mount point %q, not an ancestor of the path", path, m.Mountpoint)
		}
		if hostmount.PeerGroup(m) < 0 || hostmount.Master(m) < 0 {
			t.Fatalf("negative peer group or master in %q", m.Optional)
		}
		for _, alt := range []string{path + "/", "/" + path, strings.Replace(path, "/", "/./", 1)} {
			m2, err := hostmount.MountOfReader(strings.NewReader(table), alt)
			if err != nil || m2.ID != m.ID || m2.Mountpoint != m.Mountpoint {
				t.Fatalf("MountOfReader(%q) = %+v, %v; but for %q it is %+v", alt, m2, err, path, m)
			}
		}

		under := []string{filepath.Dir(filepath.Clean(path)), path, "relative"}
		fuse, err := hostmount.FUSEMountsFromReader(strings.NewReader(table), under)
		if err != nil {
			t.Fatalf("FUSE listing of a table that parsed: %v", err)
		}
		for _, fm := range fuse {
			if !hostmount.IsFUSE(fm.FSType) {
				t.Fatalf("FUSE listing holds a %q mount", fm.FSType)
			}
			if _, ok := hostmount.WithinAny(fm.Mountpoint, under[:2]); !ok {
				t.Fatalf("FUSE listing holds %q, outside %q", fm.Mountpoint, under[:2])
			}
		}
	})
}

func isEntry(all []*mountinfo.Info, m *mountinfo.Info) bool {
	for _, x := range all {
		if x.ID == m.ID && x.Parent == m.Parent && x.Mountpoint == m.Mountpoint && x.Optional == m.Optional {
			return true
		}
	}
	return false
}
