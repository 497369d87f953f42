package engines_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/runc-shared/runc-shared/internal/mountrec"
	"github.com/runc-shared/runc-shared/internal/registry"
	"github.com/runc-shared/runc-shared/internal/testutil"
)

// TestDockerRestartRecover: two GlusterFS mounts routed by `mounter mount`
// into a Docker mounter are recorded; `docker restart` of the mounter kills
// their FUSE daemons and its poststop detaches the dead mounts; `mounter
// recover` makes both again, at the same host paths, through the restarted
// container, and exits 0. `mounter umount` forgets them.
func TestDockerRestartRecover(t *testing.T) {
	testutil.CheckLeaks(t)
	s := newSetup(t, true)
	d, _ := startDockerd(t, s)
	if r := d.cli(t, bytes.NewReader(rootfsTar(t, testutil.HostUsrRootfs(t))), "import", "-", "rstest-hostusr"); r.err != nil {
		t.Fatal(r)
	}
	s.watch.lap("dockerd ready, image imported")

	id, r := d.start(t, box{name: "mounter", hostUsr: true, mounter: true, sysAdmin: true})
	if r.err != nil {
		t.Fatalf("start the mounter: %v", r)
	}
	reg := registry.New(s.StateDir)
	before, err := reg.Read(id)
	if err != nil {
		t.Fatalf("mounter %s not registered: %v", id, err)
	}
	src := s.Gluster.Server + ":/" + s.Gluster.Volume
	mounter := testutil.Bin(t, "mounter")
	var targets []string
	for _, name := range []string{"routed-a", "routed-b"} {
		target := filepath.Join(s.Host, name)
		if err := os.Mkdir(target, 0o755); err != nil {
			t.Fatal(err)
		}
		unmountLater(t, target)
		if r := run(t, nil, nil, mounter, "--config", s.Config, "mount", "-t", "glusterfs", "-o", "log-level=WARNING", src, target); r.err != nil {
			t.Fatal(r)
		}
		checkGluster(t, s, target, name)
		targets = append(targets, target)
	}
	store := mountrec.MountStore{Dir: mountrec.MountsDir(s.StateDir)}
	if recs, errs := store.List(); len(recs) != 2 || len(errs) != 0 {
		t.Fatalf("routed mount records: %+v, %v; want one per mount", recs, errs)
	}
	s.watch.lap("2 routed mounts")

	if r := d.cli(t, nil, "restart", "-t", "1", id); r.err != nil {
		t.Fatal(r)
	}
	after, err := reg.Read(id)
	if err != nil || after.PID == before.PID {
		t.Fatalf("registry after docker restart: %+v, %v; want the restarted mounter registered with a new pid", after, err)
	}
	for _, target := range targets {
		if m := testutil.MountAt(t, target); m != nil {
			t.Fatalf("%s after docker restart: %+v, want the dead mount detached by poststop", target, m)
		}
	}
	s.watch.lap("docker restart")

	start := time.Now()
	r = run(t, nil, nil, mounter, "--config", s.Config, "recover")
	if r.err != nil {
		t.Fatalf("mounter recover after docker restart: %v", r)
	}
	t.Logf("mounter recover: 2 routed mounts live again in %v", time.Since(start).Round(time.Millisecond))
	s.watch.lap("mounter recover")
	for i, target := range targets {
		var st unix.Statfs_t
		if err := unix.Statfs(target, &st); err != nil || st.Type != unix.FUSE_SUPER_MAGIC {
			t.Errorf("%s after mounter recover: statfs %v, type %#x; want a live FUSE mount", target, err, st.Type)
			continue
		}
		name := []string{"routed-a", "routed-b"}[i]
		if got, err := os.ReadFile(filepath.Join(target, "from-host-"+name)); err != nil || string(got) != name {
			t.Errorf("the file written before the restart through %s: %q, %v", target, got, err)
		}
		m, err := store.Read(target)
		if err != nil || m == nil || m.Mounter != id || m.Recovery != nil {
			t.Errorf("record of %s after recovery: %+v, %v; want made by %s", target, m, err, id)
		}
	}
	if !strings.Contains(r.stdout, "live") {
		t.Errorf("mounter recover's table:\n%s", r.stdout)
	}

	for _, target := range targets {
		if r := run(t, nil, nil, mounter, "--config", s.Config, "umount", target); r.err != nil {
			t.Error(r)
		}
	}
	if recs, errs := store.List(); len(recs)+len(errs) != 0 {
		t.Errorf("records left after mounter umount: %+v %v", recs, errs)
	}
}
