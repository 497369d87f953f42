package hook

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/sys/mountinfo"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/runc-shared/runc-shared/internal/hostmount"
	"github.com/runc-shared/runc-shared/pkg/spec"
)

// The container's /proc/<pid>/mountinfo at createRuntime with runc 1.1.5
// (captured with a hook that copied it, trimmed): the namespace still has
// the host's tree, the rootfs is bound onto itself at its host path and the
// bind of the shared host dir sits below it. Optional fields vary per case.
const prePivot = `45 27 254:0 / / rw,relatime - ext4 /dev/vda rw
65 45 254:0 /h/shared /h/shared rw,relatime shared:1 - ext4 /dev/vda rw
67 45 254:0 /h/root\040fs /h/root\040fs rw,relatime - ext4 /dev/vda rw
68 67 0:40 / /h/root\040fs/proc rw,relatime - proc proc rw
84 67 254:0 /h/shared /h/root\040fs/mnt/k rw,relatime OPTIONAL - ext4 /dev/vda rw
85 67 254:0 /h/shared /h/root\040fs/run/k rw,relatime shared:1 - ext4 /dev/vda rw
`

// The same container after pivot_root (what a later stage, or another
// runtime's createRuntime, would read).
const postPivot = `67 44 254:0 /h/root\040fs / rw,relatime - ext4 /dev/vda rw
68 67 0:40 / /proc rw,relatime - proc proc rw
84 67 254:0 /h/shared /mnt/k rw,relatime OPTIONAL - ext4 /dev/vda rw
`

const rootfs = "/h/root fs"

// fakeVFS resolves paths from a table of symlinks; everything else does not
// exist (securejoin treats that as a plain component).
type fakeVFS map[string]string

type linkInfo struct{ name string }

func (l linkInfo) Name() string       { return l.name }
func (l linkInfo) Size() int64        { return 0 }
func (l linkInfo) Mode() fs.FileMode  { return fs.ModeSymlink | 0o777 }
func (l linkInfo) ModTime() time.Time { return time.Time{} }
func (l linkInfo) IsDir() bool        { return false }
func (l linkInfo) Sys() any           { return nil }

func (v fakeVFS) Lstat(name string) (os.FileInfo, error) {
	if _, ok := v[filepath.Clean(name)]; ok {
		return linkInfo{filepath.Base(name)}, nil
	}
	return nil, &os.PathError{Op: "lstat", Path: name, Err: os.ErrNotExist}
}

func (v fakeVFS) Readlink(name string) (string, error) {
	if t, ok := v[filepath.Clean(name)]; ok {
		return t, nil
	}
	return "", &os.PathError{Op: "readlink", Path: name, Err: os.ErrNotExist}
}

func hostMount(optional string) *mountinfo.Info {
	return &mountinfo.Info{ID: 42, Mountpoint: "/h/shared", Root: "/h/shared", Optional: optional}
}

func TestContainerViewAndCheckPeer(t *testing.T) {
	links := fakeVFS{"/h/root fs/var/run": "../run", "/var/run": "/run"}
	for _, tc := range []struct {
		name       string
		mountinfo  string
		optional   string // the container bind's optional fields
		dest       string
		host       string // the host mount's optional fields
		wantMount  string
		wantErr    string // substring; "" means the check passes
		prePivoted bool
	}{
		{"rshared root propagation", prePivot, "shared:1", "/mnt/k", "shared:1", "/h/root fs/mnt/k", "", true},
		{"destination through a symlink in the image", prePivot, "shared:1", "/var/run/k", "shared:1", "/h/root fs/run/k", "", true},
		{"runc default rslave", prePivot, "shared:2 master:1", "/mnt/k", "shared:1", "/h/root fs/mnt/k",
			"a slave in a peer group of its own (shared:2 master:1), not in the host's peer group shared:1", true},
		{"rprivate", prePivot, "shared:2", "/mnt/k", "shared:1", "/h/root fs/mnt/k", "in another peer group (shared:2)", true},
		{"private bind", prePivot, "", "/mnt/k", "shared:1", "/h/root fs/mnt/k", "at /mnt/k is private", true},
		{"host path not shared", prePivot, "", "/mnt/k", "", "/h/root fs/mnt/k",
			"host path /h/shared is not a shared mount (its mount /h/shared is private); make it shared (mount --bind /h/shared /h/shared && mount --make-rshared /h/shared)", true},
		{"host path a slave", prePivot, "master:1", "/mnt/k", "master:1", "/h/root fs/mnt/k", "is a slave (master:1)", true},
		{"not bound where expected", prePivot, "shared:1", "/mnt/other", "shared:1", "/h/root fs", "at /mnt/other is private", true},
		{"after pivot_root", postPivot, "shared:1", "/mnt/k", "shared:1", "/mnt/k", "", false},
		{"after pivot_root, slave", postPivot, "master:1", "/mnt/k", "shared:1", "/mnt/k", "is a slave (master:1)", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mi := strings.ReplaceAll(tc.mountinfo, "OPTIONAL", tc.optional)
			table, err := hostmount.ParseTable(strings.NewReader(mi))
			if err != nil {
				t.Fatal(err)
			}
			tables := mountTables{ctr: table.MountOf, ctrRoot: links}
			prefix, err := tables.rootPrefix(rootfs)
			if err != nil {
				t.Fatal(err)
			}
			if got := prefix != ""; got != tc.prePivoted {
				t.Errorf("seen before pivot_root: %v, want %v", got, tc.prePivoted)
			}
			ctr, err := tables.mountAt(prefix, tc.dest)
			if err != nil {
				t.Fatal(err)
			}
			if ctr.Mountpoint != tc.wantMount {
				t.Errorf("mountAt(%s) = %s, want %s", tc.dest, ctr.Mountpoint, tc.wantMount)
			}
			err = checkPeer(spec.Bind{Source: "/h/shared", Destination: tc.dest}, hostMount(tc.host), ctr)
			if tc.wantErr == "" {
				if err != nil {
					t.Errorf("checkPeer: %v", err)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrNotPropagated) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("checkPeer = %v, want ErrNotPropagated containing %q", err, tc.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), "runc-shared") {
				t.Errorf("the error does not name the fix (runc-shared): %v", err)
			}
		})
	}
}

// TestPropagatedBinds: mount-hook verifies the binds that spec.AllowlistedBinds
// with the host resolver selects: those of allowlisted host paths, resolved
// the way the wrapper resolves them.
func TestPropagatedBinds(t *testing.T) {
	base, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	k := filepath.Join(base, "k")
	for _, d := range []string{"k/sub", "k-evil", "other"} {
		if err := os.MkdirAll(filepath.Join(base, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(k, filepath.Join(base, "link-to-k")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("sub", filepath.Join(k, "alias")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(base, "other"), filepath.Join(k, "escape")); err != nil {
		t.Fatal(err)
	}
	bind := func(src, dst string, opts ...string) specs.Mount {
		return specs.Mount{Source: src, Destination: dst, Type: "bind", Options: append([]string{"rbind"}, opts...)}
	}
	s := &specs.Spec{Mounts: []specs.Mount{
		{Source: "proc", Destination: "/proc", Type: "proc"},
		{Source: k, Destination: "/k-as-tmpfs", Type: "tmpfs"},
		bind(k, "/var/lib/kubelet", "rshared"),
		bind(filepath.Join(k, "sub"), "/sub"),
		{Source: filepath.Join(k, "alias"), Destination: "/alias", Options: []string{"bind"}},
		bind(filepath.Join(base, "k-evil"), "/evil"),
		bind(filepath.Join(base, "link-to-k"), "/link"), // not written under the allowlist: not ours
		bind("k", "/relative"),                          // relative to the bundle
	}}
	got, err := spec.AllowlistedBinds(s, hostmount.Allowlist{Paths: []string{k}, Bundle: base})
	if err != nil {
		t.Fatal(err)
	}
	want := []spec.Bind{
		{Source: k, Destination: "/var/lib/kubelet"},
		{Source: filepath.Join(k, "sub"), Destination: "/sub"},
		{Source: filepath.Join(k, "sub"), Destination: "/alias"},
		{Source: k, Destination: "/relative"},
	}
	if len(got) != len(want) {
		t.Fatalf("AllowlistedBinds = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("bind %d = %v, want %v", i, got[i], want[i])
		}
	}

	// The rule names a symlink to k, and the spec holds k itself, as the
	// wrapper saves sources resolved: still the rule's bind.
	got, err = spec.AllowlistedBinds(&specs.Spec{Mounts: []specs.Mount{bind(k, "/var/lib/kubelet")}},
		hostmount.Allowlist{Paths: []string{filepath.Join(base, "link-to-k")}, Bundle: base})
	if err != nil || len(got) != 1 || got[0].Source != k {
		t.Errorf("a rule naming a symlink, the source saved resolved: %v, %v; want the bind of %s", got, err, k)
	}

	s.Mounts = append(s.Mounts, bind(filepath.Join(k, "escape"), "/escape"))
	if _, err := spec.AllowlistedBinds(s, hostmount.Allowlist{Paths: []string{k}, Bundle: base}); !errors.Is(err, hostmount.ErrOutsideAllowlist) || !strings.Contains(err.Error(), "/escape") {
		t.Errorf("a bind escaping the allowlist through a symlink: %v, want ErrOutsideAllowlist naming it", err)
	}
}

func TestVerifyPropagationWithoutBind(t *testing.T) {
	rule := &spec.Rule{Name: "gluster", Propagate: []string{"/var/lib/kubelet"}}
	s := &specs.Spec{Mounts: []specs.Mount{{Source: "/data", Destination: "/data", Type: "bind", Options: []string{"rbind"}}}}
	err := verifyPropagation(procTables(os.Getpid()), "/nonexistent", s, rule)
	if !errors.Is(err, ErrNotPropagated) || !strings.Contains(err.Error(), "no bind mount of /var/lib/kubelet") {
		t.Errorf("verifyPropagation = %v", err)
	}
}
