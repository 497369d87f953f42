package preload_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/runc-shared/runc-shared/internal/registry"
	"github.com/runc-shared/runc-shared/internal/testutil"
)

// TestTmpfsLandsOnHost: a tmpfs mounted inside below the private bind of a
// plain (not shared) host dir is on the host and not inside: the shim made
// the call in the host namespace; nothing propagated.
func TestTmpfsLandsOnHost(t *testing.T) {
	testutil.CheckLeaks(t)
	testutil.ForEachHost(t, func(t *testing.T, _ testutil.Host) {
		host := testutil.PrivateDir(t)
		s := newSetup(t, "preload", host)
		b := s.start(t, "pl-tmpfs", bindOpt{host, "/host"})

		sp := b.Bundle.ReadSpec(t)
		if sp.Linux.RootfsPropagation != "rprivate" {
			t.Errorf("rootfsPropagation %q: preload mode must leave it", sp.Linux.RootfsPropagation)
		}
		if m := testutil.MountAt(t, host); m != nil {
			t.Errorf("preload mode turned the host dir into a mount: %+v", m)
		}
		if got := b.sh(t, "cat /etc/ld.so.preload"); !strings.HasPrefix(got, "/.runc-shared/libhostmount.so\n") {
			t.Errorf("/etc/ld.so.preload inside: %q", got)
		}

		b.sh(t, "mkdir -p /host/x && mount -t tmpfs -o size=1m,mode=0711 tmpfs /host/x")
		m := wantHostMount(t, filepath.Join(host, "x"), "tmpfs")
		if !strings.Contains(m.VFSOptions, "mode=711") {
			t.Errorf("host mount options %q: the data string did not reach the kernel", m.VFSOptions)
		}
		if in := b.inside(t, "/host"); len(in) != 1 { // the bind itself
			t.Errorf("inside the container: %q, want only the /host bind (the tmpfs must be on the host only)", in)
		}
		// The host uses it as a tmpfs of its own.
		if err := os.WriteFile(filepath.Join(host, "x", "f"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(host, "x", "f")); err != nil {
			t.Error(err)
		}
	})
}

// TestControlWithoutWrapper: the same container started by plain runc keeps
// the tmpfs inside, so what carries it in the other tests is the shim, not
// propagation.
func TestControlWithoutWrapper(t *testing.T) {
	testutil.CheckLeaks(t)
	testutil.ForEachHost(t, func(t *testing.T, _ testutil.Host) {
		host := testutil.PrivateDir(t)
		r := testutil.NewRunc(t, "")
		b := testutil.NewBundle(t, mounterRootfs(t), mounterOpts([]bindOpt{{host, "/host"}})...)
		c := &box{ID: "pl-control", Bundle: b, Runc: r}
		c.PID = r.Up(t, b, c.ID)
		c.sh(t, "mkdir -p /host/x && mount -t tmpfs tmpfs /host/x")
		if m := testutil.MountAt(t, filepath.Join(host, "x")); m != nil {
			t.Errorf("without the wrapper the tmpfs reached the host: %s", describe(m))
		}
		if in := c.inside(t, "/host/x"); len(in) != 1 {
			t.Errorf("inside the container: %q, want the tmpfs", in)
		}
	})
}

// TestBindfsLiveOnHost: a FUSE mount by bindfs, whose daemon stays in the
// container, serves the container's /srv/data on the host; an umount inside
// removes it from the host.
func TestBindfsLiveOnHost(t *testing.T) {
	testutil.CheckLeaks(t)
	testutil.ForEachHost(t, func(t *testing.T, _ testutil.Host) {
		host := testutil.PrivateDir(t)
		s := newSetup(t, "preload", host)
		b := s.start(t, "pl-bindfs", bindOpt{host, "/host"})

		b.sh(t, "mkdir -p /host/b && bindfs /srv/data /host/b")
		target := filepath.Join(host, "b")
		m := wantHostMount(t, target, "fuse")
		if m.Source != "/srv/data" {
			t.Errorf("host mount source %q, want /srv/data", m.Source)
		}
		got, err := os.ReadFile(filepath.Join(target, "hello"))
		if err != nil || string(got) != "served from the container\n" {
			t.Fatalf("reading through the host mount: %q, %v", got, err)
		}
		entries, err := os.ReadDir(target)
		if err != nil || len(entries) != 1 {
			t.Errorf("ls on the host: %v, %v", entries, err)
		}
		// A host write goes through the daemon into the container's tree.
		if err := os.WriteFile(filepath.Join(target, "from-host"), []byte("h"), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := b.sh(t, "cat /srv/data/from-host"); got != "h" {
			t.Errorf("the container's /srv/data/from-host holds %q", got)
		}
		if in := b.inside(t, "/host"); len(in) != 1 {
			t.Errorf("inside the container: %q, want only the /host bind", in)
		}

		b.sh(t, "umount /host/b")
		if m := testutil.MountAt(t, target); m != nil {
			t.Errorf("after umount inside, the host still has %s", describe(m))
		}
		waitNoProcess(t, b, "bindfs")
	})
}

// waitNoProcess waits for the processes named comm in the container to exit
// (a FUSE daemon leaves once its mount is gone). The daemon was reparented
// to the container's init, `sleep`, which reaps nobody: a zombie counts as
// gone.
func waitNoProcess(t *testing.T, b *box, comm string) {
	t.Helper()
	if !testutil.Poll(10*time.Second, func() bool {
		out := b.sh(t, `for p in /proc/[0-9]*; do read -r s < $p/stat 2>/dev/null && case "$s" in *") Z "*) ;; *) cat $p/comm 2>/dev/null;; esac; done`)
		return !slices.Contains(strings.Fields(out), comm)
	}) {
		t.Errorf("%s still runs in %s 10 s after its unmount", comm, b.ID)
	}
}

// TestGlusterLiveOnHost: mount.glusterfs is a helper that util-linux runs
// with LD_* stripped, so only /etc/ld.so.preload reaches the glusterfs
// client; its mount is live on the host, and a host write lands on the
// brick. An umount inside removes it.
func TestGlusterLiveOnHost(t *testing.T) {
	testutil.CheckLeaks(t)
	testutil.ForEachHost(t, func(t *testing.T, _ testutil.Host) {
		g := testutil.Glusterd(t)
		host := testutil.PrivateDir(t)
		s := newSetup(t, "preload", host)
		b := s.start(t, "pl-gluster", bindOpt{host, "/host"})

		start := time.Now()
		b.sh(t, fmt.Sprintf("mkdir -p /host/g && mount -t glusterfs %s:/%s /host/g", g.Server, g.Volume))
		t.Logf("glusterfs mount through the shim: %v", time.Since(start).Round(time.Millisecond))
		target := filepath.Join(host, "g")
		wantHostMount(t, target, "fuse.glusterfs")
		if err := os.WriteFile(filepath.Join(target, "from-host"), []byte("gluster\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if got, err := os.ReadFile(filepath.Join(g.Brick, "from-host")); err != nil || string(got) != "gluster\n" {
			t.Errorf("brick has %q, %v", got, err)
		}
		if in := b.inside(t, "/host"); len(in) != 1 {
			t.Errorf("inside the container: %q, want only the /host bind", in)
		}

		b.sh(t, "umount /host/g")
		if m := testutil.MountAt(t, target); m != nil {
			t.Errorf("after umount inside, the host still has %s", describe(m))
		}
		waitNoProcess(t, b, "glusterfs")
	})
}

// TestOutsideAllowlistStaysInside: a mount outside the allowlisted binds, at
// a sibling with a longer name, or of a type the rule does not list, is made
// inside the container as without the shim.
func TestOutsideAllowlistStaysInside(t *testing.T) {
	testutil.CheckLeaks(t)
	testutil.ForEachHost(t, func(t *testing.T, _ testutil.Host) {
		host := testutil.PrivateDir(t)
		evil := testutil.PrivateDir(t)
		s := newSetup(t, "preload", host)
		b := s.start(t, "pl-outside", bindOpt{host, "/host"}, bindOpt{evil, "/host-evil"})
		before := testutil.MountsUnder(t, "/")

		tests := []struct {
			name, script, inside string
		}{
			{"not below a bind", "mkdir -p /mnt/y && mount -t tmpfs tmpfs /mnt/y", "/mnt/y"},
			{"sibling with a longer name", "mkdir -p /host-evil/z && mount -t tmpfs tmpfs /host-evil/z", "/host-evil/z"},
			{"type not in the rule", "mkdir -p /host/r && mount -t ramfs ramfs /host/r", "/host/r"},
			{"bind of a container dir", "mkdir -p /mnt/src /mnt/dst && mount --bind /mnt/src /mnt/dst", "/mnt/dst"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				b.sh(t, tt.script)
				if in := b.inside(t, tt.inside); len(in) != 1 {
					t.Errorf("inside the container at %s: %q, want one mount", tt.inside, in)
				}
			})
		}
		// Other tests may run on the machine at the same time: only mounts at
		// the paths used inside, or below this test binary's temp dirs (host,
		// evil, the rootfs), count.
		var inside []string
		for _, tt := range tests {
			inside = append(inside, tt.inside)
		}
		if added := ownMounts(testutil.DiffMounts(testutil.MountsUnder(t, "/"), before), inside); len(added) > 0 {
			t.Errorf("mounts outside the allowlist reached the host: %s", describeAll(added))
		}
	})
}

// TestUmountInsideRemovesHostMount: umount(2) of an allowlisted target goes
// to the host; the container's own view has no mount there to remove.
func TestUmountInsideRemovesHostMount(t *testing.T) {
	testutil.CheckLeaks(t)
	testutil.ForEachHost(t, func(t *testing.T, _ testutil.Host) {
		host := testutil.PrivateDir(t)
		s := newSetup(t, "preload", host)
		b := s.start(t, "pl-umount", bindOpt{host, "/host"})

		target := filepath.Join(host, "u")
		b.sh(t, "mkdir -p /host/u && mount -t tmpfs tmpfs /host/u")
		wantHostMount(t, target, "tmpfs")
		b.sh(t, "umount /host/u")
		if m := testutil.MountAt(t, target); m != nil {
			t.Errorf("after umount inside, the host still has %s", describe(m))
		}
		// The errno of the host call comes back faithfully.
		out, errOut, err := b.Runc.Exec(t, b.ID, "umount", "/host/u")
		if err == nil {
			t.Errorf("a second umount succeeded: %s %s", out, errOut)
		} else if !strings.Contains(errOut, "not mounted") {
			t.Errorf("a second umount: %v; stderr %q, want umount's \"not mounted\"", err, errOut)
		}
	})
}

// TestBindElsewhereTranslated: host dir D bound at /data inside; a mount at
// /data/x lands at D/x on the host, not at /data/x.
func TestBindElsewhereTranslated(t *testing.T) {
	testutil.CheckLeaks(t)
	testutil.ForEachHost(t, func(t *testing.T, _ testutil.Host) {
		d := testutil.PrivateDir(t)
		s := newSetup(t, "preload", d)
		b := s.start(t, "pl-elsewhere", bindOpt{d, "/data"})
		if conf := b.conf(t); !strings.Contains(conf, "\nallow /data "+d+"\n") {
			t.Errorf("hostmount.conf:\n%s\nwant allow /data %s", conf, d)
		}
		b.sh(t, "mkdir -p /data/x/deeper && mount -t tmpfs tmpfs /data/x/deeper")
		wantHostMount(t, filepath.Join(d, "x", "deeper"), "tmpfs")
		if _, err := os.Stat("/data/x"); err == nil {
			t.Errorf("/data/x exists on the host")
		}
		if in := b.inside(t, "/data"); len(in) != 1 {
			t.Errorf("inside the container: %q, want only the /data bind", in)
		}
	})
}

// TestEnginePreservedFD: the engine passes --preserve-fds 1 with its own fd
// 3; the wrapper hands the namespace over as fd 4, tells the library so, and
// fd 3 stays the engine's.
func TestEnginePreservedFD(t *testing.T) {
	testutil.CheckLeaks(t)
	testutil.ForEachHost(t, func(t *testing.T, _ testutil.Host) {
		host := testutil.PrivateDir(t)
		s := newSetup(t, "preload", host)
		engineFile := filepath.Join(testutil.TempDir(t), "engine-fd")
		if err := os.WriteFile(engineFile, []byte("engine\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(engineFile)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()

		b := testutil.NewBundle(t, mounterRootfs(t), mounterOpts([]bindOpt{{host, "/host"}})...)
		const id = "pl-fds"
		s.Runc.ExtraFiles = []*os.File{f} // fd 3 of runc-shared, as an engine would pass it
		err = s.Runc.Create(t, b, id, "--preserve-fds", "1")
		s.Runc.ExtraFiles = nil
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Runc.Start(t, id); err != nil {
			t.Fatal(err)
		}
		st, err := s.Runc.State(t, id)
		if err != nil {
			t.Fatal(err)
		}
		box := &box{ID: id, PID: st.Pid, Bundle: b, Runc: s.Runc}

		if got, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/3", st.Pid)); err != nil || got != engineFile {
			t.Errorf("the init's fd 3 is %q, %v; want the engine's %s", got, err, engineFile)
		}
		ns, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/4", st.Pid))
		own, _ := os.Readlink("/proc/self/ns/mnt")
		if err != nil || ns != own {
			t.Errorf("the init's fd 4 is %q, %v; want the host mount namespace %s", ns, err, own)
		}
		if _, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/5", st.Pid)); err == nil {
			t.Errorf("the init has an fd 5: an fd leaked into the container")
		}
		if conf := box.conf(t); !strings.Contains(conf, "\nmntns /proc/1/fd/4\n") {
			t.Errorf("hostmount.conf:\n%s\nwant mntns /proc/1/fd/4", conf)
		}
		if got := box.sh(t, "cat /proc/1/fd/3"); got != "engine\n" {
			t.Errorf("inside, /proc/1/fd/3 reads %q", got)
		}
		box.sh(t, "mkdir -p /host/x && mount -t tmpfs tmpfs /host/x")
		wantHostMount(t, filepath.Join(host, "x"), "tmpfs")
	})
}

// TestRoutedThroughMounter: bin/mounter finds the preload mounter through
// the registry (mount-hook registered it) and its mount lands on the host.
func TestRoutedThroughMounter(t *testing.T) {
	testutil.CheckLeaks(t)
	testutil.ForEachHost(t, func(t *testing.T, _ testutil.Host) {
		g := testutil.Glusterd(t)
		host := testutil.PrivateDir(t)
		s := newSetup(t, "preload", host)
		mounter := testutil.Bin(t, "mounter")
		b := s.start(t, "pl-routed", bindOpt{host, host})

		if h := b.Bundle.ReadSpec(t).Hooks; h == nil || len(h.CreateRuntime) == 0 {
			t.Fatalf("runc-shared did not inject mount-hook in preload mode: hooks %+v", h)
		}
		rec, err := registry.New(s.StateDir).Read(b.ID)
		if err != nil {
			t.Fatalf("the preload mounter is not registered: %v\nlog.json: %s", err, b.Bundle.Log(t))
		}
		if rec.PID != b.PID || rec.Mode != "preload" {
			t.Errorf("registry record %+v", rec)
		}

		target := filepath.Join(host, "g")
		if err := os.Mkdir(target, 0o755); err != nil {
			t.Fatal(err)
		}
		out, errOut, err := run(t, mounter, "--config", s.Config, "mount", "-t", "glusterfs", g.Server+":/"+g.Volume, target)
		if err != nil {
			t.Fatalf("mounter mount: %v\nstdout: %s\nstderr: %s", err, out, errOut)
		}
		wantHostMount(t, target, "fuse.glusterfs")
		if err := os.WriteFile(filepath.Join(target, "routed"), []byte("r"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(g.Brick, "routed")); err != nil {
			t.Errorf("file written on the host mount is not on the brick: %v", err)
		}
		if in := b.inside(t, host); len(in) != 1 {
			t.Errorf("inside the container: %q, want only the bind", in)
		}
		out, errOut, err = run(t, mounter, "--config", s.Config, "umount", target)
		if err != nil {
			t.Fatalf("mounter umount: %v\nstdout: %s\nstderr: %s", err, out, errOut)
		}
		if m := testutil.MountAt(t, target); m != nil {
			t.Errorf("after mounter umount, the host still has %s", describe(m))
		}
	})
}
