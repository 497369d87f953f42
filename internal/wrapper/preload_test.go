package wrapper

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/runc-shared/runc-shared/internal/config"
	"github.com/runc-shared/runc-shared/internal/runtime"
	"github.com/runc-shared/runc-shared/pkg/spec"
)

const preloadTestAnnotation = "runc-shared.io/mounter"

// preloadTestDir is t.TempDir with symlinks resolved: allowlisted sources are
// compared resolved.
func preloadTestDir(t *testing.T) string {
	t.Helper()
	d, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// preloadTestSelf makes a directory holding a fake runc-shared, a fake
// libhostmount.so (unless noLib) and a fake mount-hook, and returns the
// runc-shared path.
func preloadTestSelf(t *testing.T, noLib bool) string {
	t.Helper()
	dir := preloadTestDir(t)
	files := map[string]string{"runc-shared": "#!/bin/sh\n", "mount-hook": "#!/bin/sh\n"}
	if !noLib {
		files[config.PreloadLibName] = "\x7fELF fake library"
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "runc-shared")
}

func preloadTestRule(propagate ...string) *spec.Rule {
	return &spec.Rule{
		Name: "gluster", FSTypes: []string{"glusterfs", "fuse"}, Mode: spec.ModePreload,
		Propagate: propagate, RequirePrivileged: true,
		Match: spec.Match{Annotations: map[string]string{preloadTestAnnotation: "preload"}},
	}
}

// preloadTestSpec is a mounter spec: own PID and mount namespaces,
// CAP_SYS_ADMIN and CAP_SYS_CHROOT, the given mounts.
func preloadTestSpec(rootfs string, mounts ...specs.Mount) *specs.Spec {
	caps := []string{"CAP_KILL", "CAP_SYS_ADMIN", "CAP_SYS_CHROOT"}
	return &specs.Spec{
		Version: "1.0.2",
		Root:    &specs.Root{Path: rootfs},
		Process: &specs.Process{
			Args: []string{"sleep", "1000"}, Cwd: "/",
			Capabilities: &specs.LinuxCapabilities{Bounding: caps, Effective: caps, Permitted: caps},
		},
		Mounts:      append([]specs.Mount{{Destination: "/proc", Type: "proc", Source: "proc"}}, mounts...),
		Annotations: map[string]string{preloadTestAnnotation: "preload"},
		Linux: &specs.Linux{
			Namespaces:        []specs.LinuxNamespace{{Type: specs.PIDNamespace}, {Type: specs.MountNamespace}},
			RootfsPropagation: "rprivate",
		},
	}
}

func bind(src, dst string, opts ...string) specs.Mount {
	return specs.Mount{Destination: dst, Type: "bind", Source: src, Options: append([]string{"rbind"}, opts...)}
}

// newTestPreloader returns a preloader for a create call with argv (words
// separated by blanks) on bundle.
func newTestPreloader(t *testing.T, rule *spec.Rule, argv, bundle, self string) *preloader {
	t.Helper()
	args, err := runtime.Parse(strings.Fields(argv))
	if err != nil {
		t.Fatalf("parse %q: %v", argv, err)
	}
	return &preloader{
		rule: rule, args: args, host: hostHost{}, bundle: bundle, self: self,
		mntns: config.HostMntnsSelf, fd: 3 + args.PreserveFDs, ns: -1,
	}
}

// preloadRewrite does to s what Run does with pl: check, prepare (the host
// mount namespace it opens is closed again) and the modifier.
func preloadRewrite(t *testing.T, pl *preloader, s *specs.Spec) error {
	t.Helper()
	if err := pl.check(s); err != nil {
		return err
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	rewrite, err := pl.prepare(log)
	if err != nil {
		return err
	}
	unix.Close(pl.ns)
	pl.ns = -1
	return rewrite(s)
}

func readBundleFile(t *testing.T, bundle, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(bundle, bundleSubdir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// allowed is the bind of host path host at container.
func allowed(container, host string) spec.Bind {
	return spec.Bind{Source: host, Destination: container}
}

func TestAllowLine(t *testing.T) {
	tests := []struct {
		entry spec.Bind
		want  string
	}{
		{allowed("/var/lib/kubelet", "/var/lib/kubelet"), `allow /var/lib/kubelet /var/lib/kubelet`},
		{allowed("/data", "/srv/host data"), `allow /data /srv/host\040data`},
		{allowed("/a\tb", "/c\\d"), `allow /a\011b /c\134d`},
		{allowed("/new\nline", "/cr\rx"), `allow /new\012line /cr\015x`},
		{allowed("/x #y", "/#z"), `allow /x\040\043y /\043z`},
		{allowed(`/already\040escaped`, "/h"), `allow /already\134040escaped /h`},
	}
	for _, tt := range tests {
		if got := allowLine(tt.entry); got != tt.want {
			t.Errorf("%+v: got %q, want %q", tt.entry, got, tt.want)
		}
		// One line, three fields: what the library's tokenizer needs.
		if f := strings.Fields(allowLine(tt.entry)); len(f) != 3 || strings.ContainsAny(allowLine(tt.entry), "\n\r") {
			t.Errorf("%+v renders as %q: not one line of three fields", tt.entry, allowLine(tt.entry))
		}
	}
}

func TestPreloadAllowlist(t *testing.T) {
	host := preloadTestDir(t)
	bundle := preloadTestDir(t)
	for _, d := range []string{"kubelet/pods", "other"} {
		if err := os.MkdirAll(filepath.Join(host, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(bundle, "vol"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc", filepath.Join(host, "kubelet", "evil")); err != nil {
		t.Fatal(err)
	}
	kubelet := filepath.Join(host, "kubelet")
	tests := []struct {
		name    string
		mounts  []specs.Mount
		want    []spec.Bind
		wantErr string
	}{
		{name: "same path", mounts: []specs.Mount{bind(kubelet, kubelet, "rprivate")},
			want: []spec.Bind{allowed(kubelet, kubelet)}},
		{name: "other path and subdir", mounts: []specs.Mount{bind(kubelet, "/data/"), bind(kubelet+"/pods", "/pods")},
			want: []spec.Bind{allowed("/data", kubelet), allowed("/pods", kubelet+"/pods")}},
		{name: "relative source and destination", mounts: []specs.Mount{bind("vol", "vol/../v")},
			want: []spec.Bind{allowed("/v", filepath.Join(bundle, "vol"))}},
		{name: "others skipped", mounts: []specs.Mount{
			bind(filepath.Join(host, "other"), "/other"),
			{Destination: "/t", Type: "tmpfs", Source: kubelet},
			bind(kubelet, "/k")},
			want: []spec.Bind{allowed("/k", kubelet)}},
		{name: "kubelet-evil is not kubelet", mounts: []specs.Mount{bind(kubelet+"-evil", "/x")},
			wantErr: "no bind mount of the rule's paths"},
		{name: "none", wantErr: "no bind mount of the rule's paths"},
		{name: "symlink out of the allowlist", mounts: []specs.Mount{bind(kubelet+"/evil", "/evil")},
			wantErr: "bind mount " + kubelet + "/evil -> /evil"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rule := preloadTestRule(kubelet, filepath.Join(bundle, "vol"))
			got, err := preloadAllowlist(preloadTestSpec("/r", tt.mounts...), rule, hostHost{}, bundle)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
	t.Run("unsafe source wraps ErrUnsafeSource", func(t *testing.T) {
		_, err := preloadAllowlist(preloadTestSpec("/r", bind(kubelet+"/evil", "/e")), preloadTestRule(kubelet), hostHost{}, bundle)
		if !errors.Is(err, spec.ErrUnsafeSource) {
			t.Errorf("err = %v, want spec.ErrUnsafeSource", err)
		}
	})
}

func TestHostmountConf(t *testing.T) {
	got := string(hostmountConf(preloadTestRule("/k"), 5, []spec.Bind{allowed("/data", "/srv/a b"), allowed("/k", "/k")}))
	want := `# generated by runc-shared for rule "gluster"
mntns /proc/1/fd/5
allow /data /srv/a\040b
allow /k /k
fstype glusterfs
fstype fuse
`
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestParsePreloadList(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"/lib/a.so\n", []string{"/lib/a.so"}},
		{"# comment\n/lib/a.so # trailing\n\n/lib/b.so /lib/c.so:/lib/d.so\t/lib/e.so\r\n",
			[]string{"/lib/a.so", "/lib/b.so", "/lib/c.so", "/lib/d.so", "/lib/e.so"}},
		{preloadLib + "\n/lib/a.so\n/lib/a.so\n" + preloadLib, []string{"/lib/a.so"}},
		{"libfoo.so", []string{"libfoo.so"}},
	}
	for _, tt := range tests {
		if got := parsePreloadList(tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("parsePreloadList(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestImagePreload(t *testing.T) {
	// A host file the image must never make the wrapper read.
	hostSecret := filepath.Join(preloadTestDir(t), "secret")
	if err := os.WriteFile(hostSecret, []byte("/host/secret.so\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	type setup func(t *testing.T, rootfs string)
	file := func(p, body string) setup {
		return func(t *testing.T, rootfs string) {
			full := filepath.Join(rootfs, p)
			if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	link := func(target string) setup {
		return func(t *testing.T, rootfs string) {
			if err := os.MkdirAll(filepath.Join(rootfs, "etc"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(target, filepath.Join(rootfs, "etc", "ld.so.preload")); err != nil {
				t.Fatal(err)
			}
		}
	}
	tests := []struct {
		name    string
		setup   []setup
		want    []string
		wantErr string
	}{
		{name: "no etc"},
		{name: "no file", setup: []setup{file("etc/hostname", "x")}},
		{name: "entries kept", setup: []setup{file("etc/ld.so.preload", "/usr/lib/libjemalloc.so.2\n# c\n"+preloadLib+"\n")},
			want: []string{"/usr/lib/libjemalloc.so.2"}},
		{name: "absolute symlink to /etc/shadow stays in the rootfs",
			setup: []setup{file("etc/shadow", "/lib/inside.so\n"), link("/etc/shadow")}, want: []string{"/lib/inside.so"}},
		{name: "relative symlink climbing out stays in the rootfs",
			setup: []setup{file("etc/shadow", "/lib/inside.so\n"), link("../../../../../../../../etc/shadow")}, want: []string{"/lib/inside.so"}},
		{name: "symlink to a host file absent from the rootfs", setup: []setup{link(hostSecret)}},
		{name: "symlink to /etc/shadow absent from the rootfs", setup: []setup{link("/etc/shadow")}},
		{name: "directory", setup: []setup{file("etc/ld.so.preload/x", "")}, wantErr: "not a regular file"},
		{name: "fifo", setup: []setup{func(t *testing.T, rootfs string) {
			file("etc/x", "")(t, rootfs)
			if err := unix.Mkfifo(filepath.Join(rootfs, "etc", "ld.so.preload"), 0o644); err != nil {
				t.Fatal(err)
			}
		}}, wantErr: "not a regular file"},
		{name: "too large", setup: []setup{file("etc/ld.so.preload", strings.Repeat("/lib/a.so\n", maxImagePreload/8))},
			wantErr: "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rootfs := preloadTestDir(t)
			for _, s := range tt.setup {
				s(t, rootfs)
			}
			type result struct {
				got []string
				err error
			}
			done := make(chan result, 1)
			go func() {
				got, err := imagePreload(rootfs)
				done <- result{got, err}
			}()
			var r result
			select {
			case r = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("imagePreload blocked")
			}
			if tt.wantErr != "" {
				if r.err == nil || !strings.Contains(r.err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", r.err, tt.wantErr)
				}
				return
			}
			if r.err != nil {
				t.Fatal(r.err)
			}
			if !slices.Equal(r.got, tt.want) {
				t.Errorf("got %q, want %q", r.got, tt.want)
			}
			if slices.Contains(r.got, "/host/secret.so") {
				t.Error("read a host file through the image's symlink")
			}
		})
	}
}

// TestPreloadModify runs the spec rewrite of the preload mode for several
// command lines: --preserve-fds added or raised, the fd number in the
// library's configuration, the generated files and the binds.
func TestPreloadModify(t *testing.T) {
	self := preloadTestSelf(t, false)
	tests := []struct {
		name     string
		argv     string // BUNDLE stands for the bundle directory
		wantArgv string
		wantFD   int
	}{
		{"no fds from the engine", "--root /r create --bundle BUNDLE id",
			"--root /r create --preserve-fds=1 --bundle BUNDLE id", 3},
		{"engine passes 1", "--root /r create --preserve-fds 1 --bundle BUNDLE id",
			"--root /r create --preserve-fds 2 --bundle BUNDLE id", 4},
		{"engine passes 2 with =", "create --bundle=BUNDLE --preserve-fds=2 id",
			"create --bundle=BUNDLE --preserve-fds=3 id", 5},
		{"hex count", "run -b BUNDLE --preserve-fds 0x2 id",
			"run -b BUNDLE --preserve-fds 3 id", 5},
		{"config flag removed", "--runc-shared-config=/c.toml create -b BUNDLE id",
			"create --preserve-fds=1 -b BUNDLE id", 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bundle, host, rootfs := preloadTestDir(t), preloadTestDir(t), preloadTestDir(t)
			if err := os.MkdirAll(filepath.Join(rootfs, "etc"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(rootfs, "etc", "ld.so.preload"), []byte("/lib/libimage.so\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			pl := newTestPreloader(t, preloadTestRule(host), strings.ReplaceAll(tt.argv, "BUNDLE", bundle), bundle, self)
			s := preloadTestSpec(rootfs, bind(host, "/host", "rprivate"))
			if err := preloadRewrite(t, pl, s); err != nil {
				t.Fatal(err)
			}
			if got, want := strings.Join(pl.execArgv, " "), strings.ReplaceAll(tt.wantArgv, "BUNDLE", bundle); got != want {
				t.Errorf("argv %q, want %q", got, want)
			}
			if pl.fd != tt.wantFD {
				t.Errorf("fd %d, want %d", pl.fd, tt.wantFD)
			}
			conf := readBundleFile(t, bundle, preloadConf)
			if want := fmt.Sprintf("\nmntns /proc/1/fd/%d\nallow /host %s\n", tt.wantFD, host); !strings.Contains(conf, want) {
				t.Errorf("hostmount.conf:\n%s\nwant it to contain %q", conf, want)
			}
			if got, want := readBundleFile(t, bundle, preloadList), preloadLib+"\n/lib/libimage.so\n"; got != want {
				t.Errorf("ld.so.preload %q, want %q", got, want)
			}
			if got := readBundleFile(t, bundle, config.PreloadLibName); got != "\x7fELF fake library" {
				t.Errorf("library copy holds %q", got)
			}
			dir := filepath.Join(bundle, bundleSubdir)
			n := len(s.Mounts)
			wantMounts := []specs.Mount{
				{Destination: "/.runc-shared", Type: "bind", Source: dir, Options: []string{"bind", "ro", "nosuid", "nodev"}},
				{Destination: "/etc/ld.so.preload", Type: "bind", Source: dir + "/ld.so.preload", Options: []string{"bind", "ro", "nosuid", "nodev"}},
			}
			if n < 2 || !equalJSON(t, s.Mounts[n-2:], wantMounts) {
				t.Errorf("last mounts %+v, want %+v", s.Mounts[max(0, n-2):], wantMounts)
			}
			// Propagation is left alone in this mode.
			if s.Linux.RootfsPropagation != "rprivate" || strings.Join(s.Mounts[1].Options, ",") != "rbind,rprivate" {
				t.Errorf("propagation changed: rootfs %q, bind %v", s.Linux.RootfsPropagation, s.Mounts[1].Options)
			}
			// A second rewrite of the same config.json adds nothing.
			if err := preloadRewrite(t, pl, s); err != nil {
				t.Fatal(err)
			}
			if len(s.Mounts) != n {
				t.Errorf("a second rewrite left %d mounts, want %d: %+v", len(s.Mounts), n, s.Mounts)
			}
		})
	}
}

func equalJSON(t *testing.T, a, b any) bool {
	t.Helper()
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	if err := errors.Join(err1, err2); err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(ja, jb)
}

// TestPreloadModifySymlinkedImagePreload: an image whose /etc/ld.so.preload
// points at /etc/shadow gets the rootfs's file read, never the host's.
func TestPreloadModifySymlinkedImagePreload(t *testing.T) {
	bundle, host, rootfs := preloadTestDir(t), preloadTestDir(t), preloadTestDir(t)
	if err := os.MkdirAll(filepath.Join(rootfs, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/shadow", filepath.Join(rootfs, "etc", "ld.so.preload")); err != nil {
		t.Fatal(err)
	}
	pl := newTestPreloader(t, preloadTestRule(host), "create --bundle "+bundle+" id", bundle, preloadTestSelf(t, false))
	if err := preloadRewrite(t, pl, preloadTestSpec(rootfs, bind(host, host))); err != nil {
		t.Fatal(err)
	}
	if got := readBundleFile(t, bundle, preloadList); got != preloadLib+"\n" {
		t.Errorf("ld.so.preload %q, want only our library (the rootfs has no /etc/shadow)", got)
	}
	// Nothing was written into the image.
	if fi, err := os.Lstat(filepath.Join(rootfs, "etc", "ld.so.preload")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the image's /etc/ld.so.preload changed: %v, %v", fi, err)
	}
	if _, err := os.Lstat(filepath.Join(rootfs, "etc", "shadow")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the wrapper created a file in the image: %v", err)
	}
}

func TestPreloadModifyRefusals(t *testing.T) {
	self := preloadTestSelf(t, false)
	noLib := preloadTestSelf(t, true)
	tests := []struct {
		name    string
		argv    string
		self    string
		edit    func(s *specs.Spec)
		policy  bool
		wantErr string
	}{
		{name: "missing library", self: noLib, wantErr: "libhostmount.so not found beside " + noLib},
		{name: "restore takes no --preserve-fds", argv: "restore --bundle BUNDLE id",
			wantErr: `hands the host mount namespace over with --preserve-fds, which "restore" does not take`},
		{name: "host PID namespace", policy: true, wantErr: "shares the host's",
			edit: func(s *specs.Spec) { s.Linux.Namespaces = s.Linux.Namespaces[1:] }},
		{name: "joined PID namespace", policy: true, wantErr: "it joins /proc/42/ns/pid",
			edit: func(s *specs.Spec) { s.Linux.Namespaces[0].Path = "/proc/42/ns/pid" }},
		{name: "no linux section", policy: true, wantErr: "shares the host's",
			edit: func(s *specs.Spec) { s.Linux = nil }},
		{name: "no CAP_SYS_CHROOT", policy: true, wantErr: "lacks CAP_SYS_CHROOT in its bounding set; start it with --cap-add SYS_CHROOT",
			edit: func(s *specs.Spec) { s.Process.Capabilities.Bounding = []string{"CAP_SYS_ADMIN"} }},
		{name: "no CAP_SYS_ADMIN", policy: true, wantErr: "lacks CAP_SYS_ADMIN",
			edit: func(s *specs.Spec) { s.Process.Capabilities.Bounding = []string{"CAP_SYS_CHROOT"} }},
		{name: "no capabilities", policy: true, wantErr: "lacks CAP_SYS_ADMIN",
			edit: func(s *specs.Spec) { s.Process.Capabilities = nil }},
		{name: "no root", wantErr: "no root.path", edit: func(s *specs.Spec) { s.Root = nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bundle, host := preloadTestDir(t), preloadTestDir(t)
			argv := tt.argv
			if argv == "" {
				argv = "create --bundle BUNDLE id"
			}
			if tt.self == "" {
				tt.self = self
			}
			pl := newTestPreloader(t, preloadTestRule(host), strings.ReplaceAll(argv, "BUNDLE", bundle), bundle, tt.self)
			s := preloadTestSpec(preloadTestDir(t), bind(host, "/host"))
			if tt.edit != nil {
				tt.edit(s)
			}
			err := preloadRewrite(t, pl, s)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
			if errors.Is(err, spec.ErrPolicy) != tt.policy {
				t.Errorf("errors.Is(err, ErrPolicy) = %v, want %v", !tt.policy, tt.policy)
			}
			if _, err := os.Stat(filepath.Join(bundle, bundleSubdir)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a refused container got %s written: %v", bundleSubdir, err)
			}
		})
	}
}

func TestOpenMountNamespace(t *testing.T) {
	tests := []struct {
		src     string
		wantErr *regexp.Regexp
	}{
		{src: "/proc/self/ns/mnt"},
		{src: "/proc/self/ns/net", wantErr: regexp.MustCompile(`^host mount namespace /proc/self/ns/net is not a mount namespace file \(namespace type 0x40000000\)$`)},
		{src: "/proc/self/status", wantErr: regexp.MustCompile(`^host mount namespace /proc/self/status is not a mount namespace file \(.*inappropriate ioctl.*\)$`)},
		{src: "/nonexistent/ns", wantErr: regexp.MustCompile(`^open host mount namespace /nonexistent/ns: no such file or directory$`)},
	}
	for _, tt := range tests {
		fd, err := openMountNamespace(tt.src)
		if tt.wantErr == nil {
			if err != nil {
				t.Errorf("%s: %v", tt.src, err)
				continue
			}
			if !sameFile(t, fmt.Sprintf("/proc/self/fd/%d", fd), "/proc/self/ns/mnt") {
				t.Errorf("%s: fd %d is not our mount namespace", tt.src, fd)
			}
			if flags, _ := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); flags&unix.FD_CLOEXEC == 0 {
				t.Errorf("%s: fd %d is not close-on-exec before the handover", tt.src, fd)
			}
			unix.Close(fd)
			continue
		}
		if err == nil {
			unix.Close(fd)
			t.Errorf("%s: no error", tt.src)
		} else if !tt.wantErr.MatchString(strings.ToLower(err.Error())) {
			t.Errorf("%s: %q does not match %s", tt.src, err, tt.wantErr)
		}
	}
}

func sameFile(t *testing.T, a, b string) bool {
	t.Helper()
	var sa, sb unix.Stat_t
	if err := errors.Join(unix.Stat(a, &sa), unix.Stat(b, &sb)); err != nil {
		t.Fatal(err)
	}
	return sa.Dev == sb.Dev && sa.Ino == sb.Ino
}

// freeFDs returns n consecutive unused fd numbers (at least 3) of this
// process, so that the handover cannot hit an fd the test binary uses.
func freeFDs(t *testing.T, n int) int {
	t.Helper()
	for start := 40; start < 1000; start++ {
		free := true
		for i := start; i < start+n && free; i++ {
			_, err := unix.FcntlInt(uintptr(i), unix.F_GETFD, 0)
			free = errors.Is(err, unix.EBADF)
		}
		if free {
			return start
		}
	}
	t.Fatal("no free fd numbers")
	return 0
}

func TestHandOverFD(t *testing.T) {
	for _, same := range []bool{false, true} {
		t.Run(fmt.Sprintf("already at target %v", same), func(t *testing.T) {
			target := freeFDs(t, 2)
			fd, err := openMountNamespace("/proc/self/ns/mnt")
			if err != nil {
				t.Fatal(err)
			}
			if same {
				if err := unix.Dup3(fd, target, unix.O_CLOEXEC); err != nil {
					t.Fatal(err)
				}
				unix.Close(fd)
				fd = target
			}
			t.Cleanup(func() { unix.Close(fd); unix.Close(target) })
			if err := handOverFD(fd, target); err != nil {
				t.Fatal(err)
			}
			flags, err := unix.FcntlInt(uintptr(target), unix.F_GETFD, 0)
			if err != nil || flags&unix.FD_CLOEXEC != 0 {
				t.Errorf("fd %d: flags %#x, %v; want open without close-on-exec", target, flags, err)
			}
			if !sameFile(t, fmt.Sprintf("/proc/self/fd/%d", target), "/proc/self/ns/mnt") {
				t.Errorf("fd %d is not the namespace", target)
			}
		})
	}
	if err := handOverFD(-1, 3); err == nil {
		t.Error("handOverFD(-1) succeeded")
	}
}

// preloadTestConfig writes a runc-shared configuration with one preload
// rule.
func preloadTestConfig(t *testing.T, hostMntns string, propagate string) string {
	t.Helper()
	p := filepath.Join(preloadTestDir(t), "config.toml")
	body := fmt.Sprintf(`runtime = "/bin/true"
state-dir = %q
host-mntns = %q
[[mounter]]
name = "gluster"
mode = "preload"
fstypes = ["glusterfs"]
propagate = [%q]
[mounter.match]
annotations = { %q = "preload" }
`, preloadTestDir(t), hostMntns, propagate, preloadTestAnnotation)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func writeTestBundle(t *testing.T, s *specs.Spec) string {
	t.Helper()
	bundle := preloadTestDir(t)
	raw, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	return bundle
}

// TestPreloadRun goes through Wrapper.Run with the exec replaced: the
// delegate gets --preserve-fds N+1 and, at exec time, fd 3+N is the host
// mount namespace without close-on-exec, while fds 3..3+N-1 are untouched;
// config.json has the binds and mount-hook.
func TestPreloadRun(t *testing.T) {
	host := preloadTestDir(t)
	cfg := preloadTestConfig(t, "self", host)
	bundle := writeTestBundle(t, preloadTestSpec(preloadTestDir(t), bind(host, "/data", "rprivate")))

	// The engine's fds occupy [first, first+n); ours must land at first+n.
	// runc numbers them from 3; the test uses high numbers instead, so it
	// cannot close an fd of the test binary: what runc sees as 3+N is the
	// same offset.
	const engineFDs = 2
	first := freeFDs(t, engineFDs+1)
	preserve := first + engineFDs - 3
	enginePath := filepath.Join(preloadTestDir(t), "engine-fd")
	if err := os.WriteFile(enginePath, []byte("engine"), 0o644); err != nil {
		t.Fatal(err)
	}
	engineFile, err := os.Open(enginePath)
	if err != nil {
		t.Fatal(err)
	}
	defer engineFile.Close()
	for i := range engineFDs {
		if err := unix.Dup3(int(engineFile.Fd()), first+i, 0); err != nil {
			t.Fatal(err)
		}
	}
	ours := first + engineFDs
	t.Cleanup(func() {
		for i := first; i <= ours; i++ {
			unix.Close(i)
		}
	})

	var gotArgv []string
	var stderr bytes.Buffer
	w := &Wrapper{
		Stdout: &bytes.Buffer{}, Stderr: &stderr, Self: preloadTestSelf(t, false),
		Exec: func(path string, argv, env []string) error {
			gotArgv = argv
			flags, err := unix.FcntlInt(uintptr(ours), unix.F_GETFD, 0)
			if err != nil || flags&unix.FD_CLOEXEC != 0 {
				t.Errorf("at exec, fd %d: flags %#x, %v; want open without close-on-exec", ours, flags, err)
			} else if !sameFile(t, fmt.Sprintf("/proc/self/fd/%d", ours), "/proc/self/ns/mnt") {
				t.Errorf("at exec, fd %d is not the host mount namespace", ours)
			}
			for i := first; i < ours; i++ {
				if !sameFile(t, fmt.Sprintf("/proc/self/fd/%d", i), enginePath) {
					t.Errorf("at exec, the engine's fd %d changed", i)
				}
			}
			return nil
		},
	}
	argv := []string{"--runc-shared-config", cfg, "--root", "/run/test-root", "create", "--bundle", bundle,
		"--preserve-fds", strconv.Itoa(preserve), "mounter"}
	if err := w.Run(argv); err != nil {
		t.Fatalf("Run: %v\nstderr: %s", err, stderr.String())
	}
	want := []string{"--root", "/run/test-root", "create", "--bundle", bundle, "--preserve-fds", strconv.Itoa(preserve + 1), "mounter"}
	if !slices.Equal(gotArgv, want) {
		t.Errorf("delegate argv %q, want %q", gotArgv, want)
	}
	if conf := readBundleFile(t, bundle, preloadConf); !strings.Contains(conf, fmt.Sprintf("mntns /proc/1/fd/%d\nallow /data %s\nfstype glusterfs\n", ours, host)) {
		t.Errorf("hostmount.conf:\n%s", conf)
	}
	doc, err := spec.Load(filepath.Join(bundle, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	s := doc.Spec
	var dests []string
	for _, m := range s.Mounts {
		dests = append(dests, m.Destination)
	}
	if !slices.Equal(dests, []string{"/proc", "/data", preloadDir, ldSoPreload}) {
		t.Errorf("mount destinations %q", dests)
	}
	if s.Linux.RootfsPropagation != "rprivate" {
		t.Errorf("rootfsPropagation %q, want it left rprivate", s.Linux.RootfsPropagation)
	}
	for _, m := range s.Mounts {
		if slices.Contains(m.Options, "rshared") {
			t.Errorf("mount %s got rshared in preload mode", m.Destination)
		}
	}
	if s.Hooks == nil || !hasMountHook(s.Hooks.CreateRuntime) || !hasMountHook(s.Hooks.Poststop) {
		t.Errorf("mount-hook not injected: %+v", s.Hooks)
	}
}

// TestEngineStagedSourcesNotBelieved: only the propagate mode's staging
// writes the staged-sources annotation. One the engine passes would make a
// bind of any source stand for an allowlisted path: the wrapper drops it
// before any check, so preload's allowlist holds only the rule's own binds,
// and the saved spec, which mount-hook and mounter read, no longer has it.
func TestEngineStagedSourcesNotBelieved(t *testing.T) {
	host, other := preloadTestDir(t), preloadTestDir(t)
	cfg := preloadTestConfig(t, "self", host)
	s := preloadTestSpec(preloadTestDir(t), bind(host, "/data", "rprivate"), bind(other, "/x", "rprivate"))
	s.Annotations[spec.AnnotationStagedSources] = fmt.Sprintf(`{%q:%q}`, other, host)
	bundle := writeTestBundle(t, s)
	var stderr bytes.Buffer
	w := &Wrapper{
		Stdout: &bytes.Buffer{}, Stderr: &stderr, Self: preloadTestSelf(t, false),
		Exec: func(string, []string, []string) error { return nil },
	}
	if err := w.Run([]string{"--runc-shared-config", cfg, "create", "--bundle", bundle, "mounter"}); err != nil {
		t.Fatalf("Run: %v\nstderr: %s", err, stderr.String())
	}
	conf := readBundleFile(t, bundle, preloadConf)
	if !strings.Contains(conf, "allow /data "+host+"\n") || strings.Contains(conf, "allow /x") {
		t.Errorf("hostmount.conf:\n%s\nwant /data allowed and /x not", conf)
	}
	doc, err := spec.Load(filepath.Join(bundle, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := doc.Spec.Annotations[spec.AnnotationStagedSources]; ok {
		t.Errorf("the engine's %s = %s survived the rewrite", spec.AnnotationStagedSources, v)
	}
}

// TestPreloadRunErrors: a refused preload container never reaches the
// delegate, and the engine gets the reason.
func TestPreloadRunErrors(t *testing.T) {
	host := preloadTestDir(t)
	tests := []struct {
		name    string
		mntns   string
		noLib   bool
		wantErr string
	}{
		{name: "namespace missing", mntns: "/nonexistent/ns/mnt",
			wantErr: `preload rule "gluster": open host mount namespace /nonexistent/ns/mnt: no such file or directory; set host-mntns`},
		{name: "not a mount namespace", mntns: "/proc/self/ns/uts", wantErr: "is not a mount namespace file"},
		{name: "library missing", mntns: "self", noLib: true, wantErr: "libhostmount.so not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := preloadTestConfig(t, tt.mntns, host)
			bundle := writeTestBundle(t, preloadTestSpec(preloadTestDir(t), bind(host, host)))
			before, _ := os.ReadFile(filepath.Join(bundle, "config.json"))
			var stderr bytes.Buffer
			w := &Wrapper{
				Stdout: &bytes.Buffer{}, Stderr: &stderr, Self: preloadTestSelf(t, tt.noLib),
				Exec: func(string, []string, []string) error {
					t.Error("the delegate ran")
					return nil
				},
			}
			err := w.Run([]string{"--runc-shared-config", cfg, "create", "--bundle", bundle, "id"})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
			if !strings.Contains(stderr.String(), tt.wantErr) {
				t.Errorf("stderr %q does not tell the reason", stderr.String())
			}
			if after, _ := os.ReadFile(filepath.Join(bundle, "config.json")); !bytes.Equal(before, after) {
				t.Error("config.json of a refused container changed")
			}
		})
	}
}

// preloadEngineSpecs are the parts of the mounter config.json files that
// Docker 20.10, containerd 1.6 (ctr) and Podman 4.3 wrote on this machine kind
// (tests/testdata/engines) that the preload mode reads: capabilities,
// namespaces, mounts. HOST stands for the host dir bound at /var/lib/kubelet.
var preloadEngineSpecs = map[string]string{
	"docker": `{"ociVersion":"1.0.2-dev","process":{"capabilities":{"bounding":["CAP_CHOWN","CAP_DAC_OVERRIDE","CAP_FSETID","CAP_FOWNER","CAP_MKNOD","CAP_NET_RAW","CAP_SETGID","CAP_SETUID","CAP_SETFCAP","CAP_SETPCAP","CAP_NET_BIND_SERVICE","CAP_SYS_CHROOT","CAP_KILL","CAP_AUDIT_WRITE","CAP_SYS_ADMIN"]}},
		"mounts":[{"destination":"/proc","type":"proc","source":"proc","options":["nosuid","noexec","nodev"]},{"destination":"/etc/resolv.conf","type":"bind","source":"/E/resolv.conf","options":["rbind","rprivate"]},{"destination":"/etc/hostname","type":"bind","source":"/E/hostname","options":["rbind","rprivate"]},{"destination":"/etc/hosts","type":"bind","source":"/E/hosts","options":["rbind","rprivate"]},{"destination":"/var/lib/kubelet","type":"bind","source":"HOST","options":["rbind","rprivate"]}],
		"linux":{"namespaces":[{"type":"mount"},{"type":"network","path":"/var/run/docker/netns/default"},{"type":"uts"},{"type":"pid"},{"type":"ipc"}]}}`,
	"containerd": `{"ociVersion":"1.0.2-dev","process":{"capabilities":{"bounding":["CAP_CHOWN","CAP_DAC_OVERRIDE","CAP_FSETID","CAP_FOWNER","CAP_MKNOD","CAP_NET_RAW","CAP_SETGID","CAP_SETUID","CAP_SETFCAP","CAP_SETPCAP","CAP_NET_BIND_SERVICE","CAP_SYS_CHROOT","CAP_KILL","CAP_AUDIT_WRITE","CAP_SYS_ADMIN"]}},
		"mounts":[{"destination":"/proc","type":"proc","source":"proc","options":["nosuid","noexec","nodev"]},{"destination":"/var/lib/kubelet","type":"bind","source":"HOST","options":["rbind"]}],
		"linux":{"namespaces":[{"type":"pid"},{"type":"ipc"},{"type":"uts"},{"type":"mount"},{"type":"network"}]}}`,
	"podman": `{"ociVersion":"1.0.2-dev","process":{"capabilities":{"bounding":["CAP_CHOWN","CAP_DAC_OVERRIDE","CAP_FOWNER","CAP_FSETID","CAP_KILL","CAP_NET_BIND_SERVICE","CAP_SETFCAP","CAP_SETGID","CAP_SETPCAP","CAP_SETUID","CAP_SYS_ADMIN","CAP_SYS_CHROOT"]}},
		"mounts":[{"destination":"/proc","type":"proc","source":"proc","options":["nosuid","noexec","nodev"]},{"destination":"/etc/resolv.conf","type":"bind","source":"/E/userdata/resolv.conf","options":["bind","rprivate"]},{"destination":"/dev/shm","type":"bind","source":"/E/userdata/shm","options":["bind","rprivate","nosuid","noexec","nodev"]},{"destination":"/var/lib/kubelet","type":"bind","source":"HOST","options":["rw","rprivate","rbind"]}],
		"linux":{"namespaces":[{"type":"pid"},{"type":"ipc"},{"type":"uts"},{"type":"mount"}]}}`,
}

// TestPreloadEngineSpecs: the mounters of the three engines, with their
// default capabilities plus SYS_ADMIN, pass the preload checks and get
// their /var/lib/kubelet bind allowlisted with the host path.
func TestPreloadEngineSpecs(t *testing.T) {
	for engine, doc := range preloadEngineSpecs {
		t.Run(engine, func(t *testing.T) {
			host := preloadTestDir(t)
			d, err := spec.Parse([]byte(strings.ReplaceAll(doc, "HOST", host)))
			if err != nil {
				t.Fatal(err)
			}
			d.Spec.Root = &specs.Root{Path: preloadTestDir(t)}
			bundle := preloadTestDir(t)
			argv := "--root /r --log " + bundle + "/log.json --log-format json create --bundle " + bundle + " --pid-file " + bundle + "/init.pid id"
			pl := newTestPreloader(t, preloadTestRule(host), argv, bundle, preloadTestSelf(t, false))
			if err := preloadRewrite(t, pl, d.Spec); err != nil {
				t.Fatal(err)
			}
			if conf := readBundleFile(t, bundle, preloadConf); !strings.Contains(conf, "\nmntns /proc/1/fd/3\nallow /var/lib/kubelet "+host+"\n") {
				t.Errorf("hostmount.conf:\n%s", conf)
			}
			if err := d.ValidateChanges(); err != nil {
				t.Error(err)
			}
		})
	}
}

// hasMountHook reports whether hooks holds a hook whose binary is named
// mount-hook.
func hasMountHook(hooks []specs.Hook) bool {
	return slices.ContainsFunc(hooks, func(h specs.Hook) bool { return filepath.Base(h.Path) == "mount-hook" })
}
