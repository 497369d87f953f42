package testutil

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/runc-shared/runc-shared/internal/hostmount"
)

func TestMain(m *testing.M) { Main(m) }

func TestFindRepoRoot(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Dir(filepath.Dir(wd)) // internal/testutil -> repo root
	tests := []struct {
		dir     string
		want    string
		wantErr bool
	}{
		{dir: wd, want: want},
		{dir: want, want: want},
		{dir: "/", wantErr: true},
	}
	for _, tt := range tests {
		got, err := findRepoRoot(tt.dir)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("findRepoRoot(%q) = %q, %v; want %q, error %v", tt.dir, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestCheckSpec(t *testing.T) {
	rootfs := t.TempDir()
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(rootfs, link); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		spec    string
		wantErr string
	}{
		{"ok", `{"root":{"path":"ROOT"},"process":{"capabilities":{"bounding":["CAP_SYS_ADMIN"]}},
			"linux":{"namespaces":[{"type":"mount"},{"type":"network","path":"/proc/1/ns/net"}]}}`, ""},
		{"sys_resource", `{"root":{"path":"ROOT"},"process":{"capabilities":{"ambient":["CAP_SYS_RESOURCE"]}}}`, "CAP_SYS_RESOURCE"},
		{"sys_resource lower case", `{"root":{"path":"ROOT"},"process":{"capabilities":{"bounding":["sys_resource"]}}}`, "CAP_SYS_RESOURCE"},
		{"mount ns path", `{"root":{"path":"ROOT"},"linux":{"namespaces":[{"type":"mount","path":"/proc/1/ns/mnt"}]}}`, "mount namespace"},
		{"root symlink", `{"root":{"path":"LINK"}}`, "not a symlink"},
		{"root missing", `{"root":{"path":"/nonexistent/rootfs"}}`, "existing directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := strings.NewReplacer("ROOT", rootfs, "LINK", link).Replace(tt.spec)
			var spec specs.Spec
			if err := json.Unmarshal([]byte(raw), &spec); err != nil {
				t.Fatal(err)
			}
			err := checkSpec(&spec)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("checkSpec = %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestNewBundleOptions(t *testing.T) {
	RequireRoot(t)
	b := NewBundle(t, t.TempDir(),
		WithArgs("echo", "hi"),
		WithEnv("PATH", "/bin"), WithEnv("A", "1"),
		WithAnnotation("name", "glusterfs-mounter"),
		WithBind("/src", "/dst", "rshared"),
		WithAddCaps("SYS_ADMIN"),
		WithHostNetwork(), WithFuse(), WithRootfsPropagation("rshared"),
		WithHook("createRuntime", "/bin/hook", "hook", "create"),
		func(s *specs.Spec) { s.Hostname = "edited" })
	s := b.ReadSpec(t)
	if s.Root.Path != b.Rootfs || s.Root.Readonly || s.Process.Terminal {
		t.Errorf("root %+v terminal %v", s.Root, s.Process.Terminal)
	}
	if got := strings.Join(s.Process.Args, " "); got != "echo hi" {
		t.Errorf("args %q", got)
	}
	env := strings.Join(s.Process.Env, " ")
	if !strings.Contains(env, "PATH=/bin") || strings.Count(env, "PATH=") != 1 || !strings.Contains(env, "A=1") {
		t.Errorf("env %q", env)
	}
	if s.Annotations["name"] != "glusterfs-mounter" || s.Hostname != "edited" {
		t.Errorf("annotations %v hostname %q", s.Annotations, s.Hostname)
	}
	last := s.Mounts[len(s.Mounts)-1]
	if last.Source != "/src" || last.Destination != "/dst" || strings.Join(last.Options, ",") != "rbind,rshared" {
		t.Errorf("bind mount %+v", last)
	}
	caps := strings.Join(s.Process.Capabilities.Bounding, ",")
	if !strings.Contains(caps, "CAP_SYS_ADMIN") || !strings.Contains(caps, "CAP_KILL") {
		t.Errorf("bounding caps %s", caps)
	}
	for _, ns := range s.Linux.Namespaces {
		if ns.Type == "network" {
			t.Error("network namespace still there")
		}
	}
	if len(s.Linux.Devices) != 1 || s.Linux.Devices[0].Path != "/dev/fuse" || s.Linux.Devices[0].Major != 10 || s.Linux.Devices[0].Minor != 229 {
		t.Errorf("devices %+v", s.Linux.Devices)
	}
	if s.Linux.RootfsPropagation != "rshared" || len(s.Hooks.CreateRuntime) != 1 || s.Hooks.CreateRuntime[0].Path != "/bin/hook" {
		t.Errorf("propagation %q hooks %+v", s.Linux.RootfsPropagation, s.Hooks)
	}
	// What no option sets keeps `runc spec`'s value.
	if rl := s.Process.Rlimits; len(rl) != 1 || rl[0].Hard != 1024 {
		t.Errorf("rlimits %+v", rl)
	}
}

func TestBusyboxRunsTrue(t *testing.T) {
	CheckLeaks(t)
	r := NewRunc(t, "runc")
	start := time.Now()
	rootfs := BusyboxRootfs(t)
	t.Logf("busybox rootfs built in %v", time.Since(start).Round(time.Millisecond))
	b := NewBundle(t, rootfs, WithArgs("sh", "-c", "true && echo ok"))
	start = time.Now()
	out, _, err := r.RunBundle(t, b, "bb-true")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("runc run true: %v", time.Since(start).Round(time.Millisecond))
	if strings.TrimSpace(out) != "ok" {
		t.Errorf("output %q, want ok", out)
	}
}

func TestContainerCleanup(t *testing.T) {
	CheckLeaks(t)
	r := NewRunc(t, "")
	var pid int
	var init proc
	t.Run("inner", func(t *testing.T) {
		b := NewBundle(t, BusyboxRootfs(t))
		pid = r.Up(t, b, "bb-sleep")
		var err error
		if init, err = findProc(pid); err != nil {
			t.Fatal(err)
		}
		out, _, err := r.Exec(t, "bb-sleep", "sh", "-c", "echo $$ from exec")
		if err != nil || !strings.Contains(out, "from exec") {
			t.Errorf("exec: %q, %v", out, err)
		}
		st, err := r.State(t, "bb-sleep")
		if err != nil || st.Status != "running" || st.Bundle != b.Dir {
			t.Errorf("state %+v, %v", st, err)
		}
	})
	if init.alive() {
		t.Errorf("init %d still alive after the subtest's cleanup", pid)
	}
	if _, err := r.State(t, "bb-sleep"); err == nil {
		t.Error("container still known to runc after cleanup")
	}
}

func TestCreateRefusesBadSpecOnDisk(t *testing.T) {
	RequireRoot(t)
	b := NewBundle(t, BusyboxRootfs(t))
	spec := b.Spec
	spec.Linux.Namespaces = []specs.LinuxNamespace{{Type: specs.MountNamespace, Path: "/proc/1/ns/mnt"}}
	raw, _ := json.Marshal(spec)
	if err := os.WriteFile(b.ConfigPath(), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := checkBundle(b); err == nil || !strings.Contains(err.Error(), "mount namespace") {
		t.Errorf("checkBundle = %v, want mount namespace refusal", err)
	}
}

func TestSharedDir(t *testing.T) {
	CheckLeaks(t)
	var dir string
	t.Run("inner", func(t *testing.T) {
		dir = SharedDir(t)
		m := MountAt(t, dir)
		if m == nil || hostmount.PeerGroup(m) == 0 {
			t.Fatalf("%s is not a shared mount: %+v", dir, m)
		}
		sub := filepath.Join(dir, "a", "b")
		if err := os.MkdirAll(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		mustRun(t, "mount", "-t", "tmpfs", "tmpfs", sub)
		mustRun(t, "mount", "-t", "tmpfs", "tmpfs", filepath.Join(dir, "a"))
		if n := len(MountsUnder(t, dir)); n != 3 {
			t.Errorf("%d mounts under %s, want 3", n, dir)
		}
	})
	if n := len(MountsUnder(t, dir)); n != 0 {
		t.Errorf("%d mounts left under %s", n, dir)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s not removed: %v", dir, err)
	}
}

func TestPrivateDir(t *testing.T) {
	CheckLeaks(t)
	RequireRoot(t)
	var dir string
	t.Run("inner", func(t *testing.T) {
		dir = PrivateDir(t)
		if m := MountAt(t, dir); m != nil {
			t.Fatalf("%s is a mount point: %+v", dir, m)
		}
		mustRun(t, "mount", "--bind", dir, dir) // what a wrapper does to it
	})
	if n := len(MountsUnder(t, dir)); n != 0 {
		t.Errorf("%d mounts left under %s", n, dir)
	}
}

func TestUnmountAllRefusesOutsideTemp(t *testing.T) {
	for _, d := range []string{"/", "/usr", "relative", os.TempDir()} {
		if err := UnmountAll(d); err == nil {
			t.Errorf("UnmountAll(%q) did not refuse", d)
		}
	}
}

// TestPropagation checks the platform-facts table through the helpers: a tmpfs
// mounted in the container below a bind of a host dir reaches the host only with
// rshared root propagation and a shared host dir.
func TestPropagation(t *testing.T) {
	CheckLeaks(t)
	tests := []struct {
		name        string
		propagation string
		shared      bool
		wantOnHost  bool
	}{
		{"rshared on shared dir", "rshared", true, true},
		{"default rslave on shared dir", "", true, false},
		{"rshared on private dir", "rshared", false, false},
	}
	r := NewRunc(t, "")
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := PrivateDir(t)
			if tt.shared {
				dir = SharedDir(t)
			}
			opts := []BundleOpt{WithAddCaps("SYS_ADMIN"), WithBind(dir, "/mnt/d", "rbind", "rshared")}
			if tt.propagation != "" {
				opts = append(opts, WithRootfsPropagation(tt.propagation))
			}
			id := "prop" + string(rune('0'+i))
			pid := r.Up(t, NewBundle(t, BusyboxRootfs(t), opts...), id)
			if _, errOut, err := r.Exec(t, id, "sh", "-c", "mkdir -p /mnt/d/sub && mount -t tmpfs tmpfs /mnt/d/sub"); err != nil {
				t.Fatalf("%v: %s", err, errOut)
			}
			if inside := MountsUnderPid(t, pid, "/mnt/d/sub"); len(inside) != 1 || inside[0].FSType != "tmpfs" {
				t.Errorf("inside the container: %+v", inside)
			}
			onHost := MountAt(t, filepath.Join(dir, "sub")) != nil
			if onHost != tt.wantOnHost {
				t.Errorf("tmpfs visible on host = %v, want %v", onHost, tt.wantOnHost)
			}
		})
	}
}

func TestHostUsrRootfs(t *testing.T) {
	CheckLeaks(t)
	r := NewRunc(t, "")
	b := NewBundle(t, HostUsrRootfs(t), WithArgs("/bin/sh", "-c", "mount --version && id -un && test -e /sbin/mount.glusterfs"))
	out, errOut, err := r.RunBundle(t, b, "hostusr")
	if err != nil {
		t.Fatalf("%v: %s", err, errOut)
	}
	if !strings.Contains(out, "util-linux") || !strings.Contains(out, "root") {
		t.Errorf("output %q", out)
	}
	if MountAt(t, filepath.Join(b.Rootfs, "usr")) != nil {
		t.Error("host /usr bind mount leaked onto the host")
	}
}

func TestGlusterdNativeMount(t *testing.T) {
	CheckLeaks(t)
	g := Glusterd(t)
	mnt := filepath.Join(TempDir(t), "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	NativeMount(t, g, mnt)
	t.Logf("native mount %v", time.Since(t0).Round(time.Millisecond))
	if m := MountAt(t, mnt); m == nil || m.FSType != "fuse.glusterfs" {
		t.Fatalf("no glusterfs mount at %s: %+v", mnt, m)
	}
	if err := os.WriteFile(filepath.Join(mnt, "hello"), []byte("hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(g.Brick, "hello")); err != nil || string(got) != "hi\n" {
		t.Errorf("brick has %q, %v", got, err)
	}
}

// TestGlusterMountFromContainer is the mounter scenario end to end with plain runc:
// a privileged container on HostUsrRootfs mounts the volume below a shared host dir
// and the host sees (and uses) the mount. After the container dies the host keeps a
// dead FUSE mount, which SharedDir's cleanup detaches.
func TestGlusterMountFromContainer(t *testing.T) {
	CheckLeaks(t)
	g := Glusterd(t)
	shared := SharedDir(t)
	r := NewRunc(t, "")
	b := NewBundle(t, HostUsrRootfs(t), WithHostNetwork(), WithFuse(), WithAddCaps("SYS_ADMIN"),
		WithBind(shared, shared, "rbind", "rshared"), WithRootfsPropagation("rshared"))
	r.Up(t, b, "mounter")
	target := filepath.Join(shared, "m")
	if err := os.Mkdir(target, 0o755); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, errOut, err := r.Exec(t, "mounter", "mount", "-t", "glusterfs", g.Server+":/"+g.Volume, target); err != nil {
		t.Fatalf("%v: %s", err, errOut)
	}
	t.Logf("mount from the container: %v", time.Since(start).Round(time.Millisecond))
	if m := MountAt(t, target); m == nil || m.FSType != "fuse.glusterfs" {
		t.Fatalf("host does not see the glusterfs mount at %s: %+v", target, m)
	}
	if err := os.WriteFile(filepath.Join(target, "from-host"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(g.Brick, "from-host")); err != nil {
		t.Errorf("file written on the host mount is not on the brick: %v", err)
	}
}

func mustRun(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
}

// fakeTB collects cleanups and errors so a test can run CheckLeaks' check itself.
type fakeTB struct {
	testing.TB
	cleanups []func()
	errs     []string
}

func (f *fakeTB) Helper()           {}
func (f *fakeTB) Cleanup(fn func()) { f.cleanups = append(f.cleanups, fn) }
func (f *fakeTB) Error(args ...any) { f.errs = append(f.errs, fmt.Sprint(args...)) }
func (f *fakeTB) Errorf(format string, args ...any) {
	f.errs = append(f.errs, fmt.Sprintf(format, args...))
}

func (f *fakeTB) runCleanups() {
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		f.cleanups[i]()
	}
}

func TestCheckLeaksReports(t *testing.T) {
	RequireRoot(t)
	dir := TempDir(t) // its own cleanup detaches what this test leaks on purpose
	fake := &fakeTB{TB: t}
	CheckLeaks(fake)
	mustRun(t, "mount", "-t", "tmpfs", "tmpfs", dir)
	sleep := exec.Command("sleep", "30")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sleep.Process.Kill(); _ = sleep.Wait() }()
	fake.runCleanups()
	got := strings.Join(fake.errs, "\n")
	for _, want := range []string{"leaked mount: " + dir, fmt.Sprintf("leaked process %d", sleep.Process.Pid)} {
		if !strings.Contains(got, want) {
			t.Errorf("CheckLeaks reported %q, want it to contain %q", got, want)
		}
	}
}

func TestDeadFuseMount(t *testing.T) {
	CheckLeaks(t)
	dir := PrivateDir(t)
	target := filepath.Join(dir, "dead")
	if err := os.Mkdir(target, 0o755); err != nil {
		t.Fatal(err)
	}
	DeadFuseMount(t, target)
	if m := MountAt(t, target); m == nil || !strings.HasPrefix(m.FSType, "fuse") {
		t.Errorf("no FUSE mount left at %s: %+v", target, m)
	}
}

func TestSocketOwner(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.3:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if got := socketOwner(tcpListenInode("127.0.0.3", port)); got != os.Getpid() {
		t.Errorf("owner of 127.0.0.3:%d = %d, want %d", port, got, os.Getpid())
	}
	ln.Close()
	if got := waitPortFree("127.0.0.3", port, time.Second); got != 0 {
		t.Errorf("waitPortFree after close = %d, want 0", got)
	}
}
