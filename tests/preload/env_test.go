// Package preload_test drives the preload mode end to end: bin/runc-shared in
// front of Debian's runc starts a mounter whose binds and root are private
// (rprivate), so propagation cannot carry a mount to the host; the real
// bin/libhostmount.so, injected through /etc/ld.so.preload, makes the mounts
// of allowlisted targets in the host mount namespace, handed over as an fd
// with --preserve-fds. host-mntns is "self": the wrapper runs in the host
// namespace here (/proc/1/ns/mnt is not readable on this machine).
package preload_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/sys/mountinfo"

	"github.com/runc-shared/runc-shared/internal/testutil"
	"github.com/runc-shared/runc-shared/pkg/spec"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// The rule matches this annotation value only.
const annotationValue = "preload"

// fstypes of the test rule: bindfs mounts as plain "fuse" (libfuse3 adds
// no subtype unless asked), glusterfs as "fuse.glusterfs".
var fstypes = []string{"tmpfs", "fuse", "glusterfs"}

// setup is a configuration with one rule and the runtime that starts
// mounters through runc-shared.
type setup struct {
	Config   string
	StateDir string
	Runc     *testutil.Runc
}

// newSetup writes a configuration with one rule of mode ("preload" or
// "propagate") whose allowlist is propagate.
func newSetup(t testing.TB, mode string, propagate ...string) *setup {
	t.Helper()
	dir := testutil.TempDir(t)
	s := &setup{Config: filepath.Join(dir, "config.toml"), StateDir: filepath.Join(dir, "state")}
	quoted := make([]string, len(propagate))
	for i, p := range propagate {
		quoted[i] = fmt.Sprintf("%q", p)
	}
	types := make([]string, len(fstypes))
	for i, f := range fstypes {
		types[i] = fmt.Sprintf("%q", f)
	}
	body := fmt.Sprintf(`runtime = "runc"
state-dir = %q
host-mntns = "self"

[[mounter]]
name = "hostmount"
mode = %q
fstypes = [%s]
propagate = [%s]

[mounter.match]
annotations = { %q = %q }
`, s.StateDir, mode, strings.Join(types, ", "), strings.Join(quoted, ", "), spec.AnnotationMounter, annotationValue)
	if err := os.WriteFile(s.Config, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	s.Runc = testutil.Wrapper(t, s.Config)
	testutil.Bin(t, "libhostmount.so") // fails early with "run make" when missing
	testutil.Bin(t, "mount-hook")
	return s
}

// mounterRootfs returns a private copy of HostUsrRootfs (a few files and
// links; /usr is bind-mounted from the host by the bundle). runc creates
// the mount points of the preload binds (/.runc-shared, /etc/ld.so.preload)
// in the rootfs, and the shared cached tree must stay as it is. The copy
// also holds /srv/data/hello for bindfs to serve.
func mounterRootfs(t testing.TB) string {
	t.Helper()
	dst := filepath.Join(testutil.TempDir(t), "rootfs")
	if out, err := exec.Command("cp", "-a", testutil.HostUsrRootfs(t), dst).CombinedOutput(); err != nil {
		t.Fatalf("copy the rootfs: %v: %s", err, out)
	}
	data := filepath.Join(dst, "srv", "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "hello"), []byte("served from the container\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

// bindOpt is a private bind of a host dir into the container.
type bindOpt struct{ Host, Inside string }

// box is a running mounter container.
type box struct {
	ID     string
	PID    int
	Bundle *testutil.Bundle
	Runc   *testutil.Runc
}

// mounterOpts is the mounter's shape: the rule's annotation, CAP_SYS_ADMIN
// and CAP_SYS_CHROOT (setns into a mount namespace needs both), /dev/fuse,
// the host network (glusterd listens on 127.0.0.2), rprivate root
// propagation and private binds.
func mounterOpts(binds []bindOpt, extra ...testutil.BundleOpt) []testutil.BundleOpt {
	opts := []testutil.BundleOpt{
		testutil.WithAnnotation(spec.AnnotationMounter, annotationValue),
		testutil.WithAddCaps("SYS_ADMIN", "SYS_CHROOT"),
		testutil.WithFuse(),
		testutil.WithHostNetwork(),
		testutil.WithRootfsPropagation("rprivate"),
		testutil.WithArgs("sleep", "100000"),
	}
	for _, b := range binds {
		opts = append(opts, testutil.WithBind(b.Host, b.Inside, "rbind", "rprivate"))
	}
	return append(opts, extra...)
}

// start creates and starts a mounter through s.Runc.
func (s *setup) start(t *testing.T, id string, binds ...bindOpt) *box {
	t.Helper()
	b := testutil.NewBundle(t, mounterRootfs(t), mounterOpts(binds)...)
	pid := s.Runc.Up(t, b, id)
	return &box{ID: id, PID: pid, Bundle: b, Runc: s.Runc}
}

// sh runs a shell script inside the container and fails the test on error.
func (b *box) sh(t *testing.T, script string) string {
	t.Helper()
	out, errOut, err := b.Runc.Exec(t, b.ID, "sh", "-c", script)
	if err != nil {
		t.Fatalf("in %s: sh -c %q: %v\nstdout: %s\nstderr: %s", b.ID, script, err, out, errOut)
	}
	return out
}

// conf returns the hostmount.conf the wrapper wrote for the container.
func (b *box) conf(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(b.Bundle.Dir, "runc-shared", "hostmount.conf"))
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// inside returns the mounts at or below dir in the container, "path type".
func (b *box) inside(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	for _, m := range testutil.MountsUnderPid(t, b.PID, dir) {
		out = append(out, m.Mountpoint+" "+m.FSType)
	}
	return out
}

// wantHostMount fails the test unless path is a mount of fstype on the host.
func wantHostMount(t *testing.T, path, fstype string) *mountinfo.Info {
	t.Helper()
	m := testutil.MountAt(t, path)
	if m == nil || m.FSType != fstype {
		t.Fatalf("host: %s is %s, want a %s mount; host mounts below its parent: %s",
			path, describe(m), fstype, describeAll(testutil.MountsUnder(t, filepath.Dir(path))))
	}
	return m
}

func describe(m *mountinfo.Info) string {
	if m == nil {
		return "not a mount point"
	}
	return fmt.Sprintf("a %s mount of %s", m.FSType, m.Source)
}

func describeAll(ms []*mountinfo.Info) string {
	var s []string
	for _, m := range ms {
		s = append(s, m.Mountpoint+" ("+m.FSType+")")
	}
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// run runs a binary with its output in files, not pipes: a FUSE daemon it
// starts may inherit them and keep a pipe open.
func run(t *testing.T, bin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	dir := t.TempDir()
	o, err1 := os.Create(filepath.Join(dir, "stdout"))
	e, err2 := os.Create(filepath.Join(dir, "stderr"))
	if err := errors.Join(err1, err2); err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	defer e.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = o, e
	err = cmd.Run()
	ob, _ := os.ReadFile(o.Name())
	eb, _ := os.ReadFile(e.Name())
	return string(ob), string(eb), err
}

// ownMounts keeps the mounts at one of paths or below a temp dir of this
// test binary (testutil.TempDir names them rstest-<pid>-...).
func ownMounts(ms []*mountinfo.Info, paths []string) []*mountinfo.Info {
	tmp, _ := filepath.EvalSymlinks(os.TempDir())
	prefix := filepath.Join(tmp, fmt.Sprintf("rstest-%d-", os.Getpid()))
	var out []*mountinfo.Info
	for _, m := range ms {
		if strings.HasPrefix(m.Mountpoint, prefix) || slices.Contains(paths, m.Mountpoint) {
			out = append(out, m)
		}
	}
	return out
}
