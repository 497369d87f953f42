package hostmount

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/runc-shared/runc-shared/internal/testutil"
	"github.com/runc-shared/runc-shared/pkg/spec"
)

// resolveTree builds a host-like tree with hostile symlinks under a temp dir.
func resolveTree(t *testing.T) string {
	t.Helper()
	b := testutil.TempDir(t)
	mkdirs(t,
		b+"/kubelet/pods/x",
		b+"/kubelet-evil/y",
		b+"/outside/sub",
		b+"/outside/x",
		b+"/data-kubelet/pods",
	)
	symlink(t, b+"/outside", b+"/kubelet/link-out")
	symlink(t, b+"/kubelet/pods", b+"/kubelet/link-in")
	symlink(t, b+"/kubelet-evil", b+"/kubelet/link-evil")
	symlink(t, "../kubelet/pods", b+"/kubelet/link-rel")
	symlink(t, "../../outside", b+"/kubelet/pods/link-rel-out")
	symlink(t, b+"/outside/sub", b+"/kubelet/link-dotdot")
	symlink(t, b+"/kubelet/pods", b+"/outside/link-in")
	symlink(t, b+"/data-kubelet", b+"/symkubelet")
	return b
}

func TestResolveSource(t *testing.T) {
	b := resolveTree(t)
	allow := []string{b + "/kubelet"}
	tests := []struct {
		name    string
		path    string
		allow   []string
		want    string
		wantErr error
	}{
		{"plain", b + "/kubelet/pods/x", allow, b + "/kubelet/pods/x", nil},
		{"trailing slash", b + "/kubelet/pods/x/", allow, b + "/kubelet/pods/x", nil},
		{"prefix itself", b + "/kubelet", allow, b + "/kubelet", nil},
		{"prefix with trailing slash", b + "/kubelet/pods", []string{b + "/kubelet/"}, b + "/kubelet/pods", nil},
		{"dots and double slashes", b + "/kubelet//pods/./x", allow, b + "/kubelet/pods/x", nil},
		{"dotdot staying inside", b + "/kubelet/pods/../pods/x", allow, b + "/kubelet/pods/x", nil},
		{"symlink staying inside", b + "/kubelet/link-in", allow, b + "/kubelet/pods", nil},
		{"relative symlink staying inside", b + "/kubelet/link-rel/x", allow, b + "/kubelet/pods/x", nil},
		{"symlink into a second prefix", b + "/kubelet/link-out/sub", []string{b + "/kubelet", b + "/outside"}, b + "/outside/sub", nil},
		{"symlinked prefix", b + "/symkubelet/pods", []string{b + "/symkubelet"}, b + "/data-kubelet/pods", nil},
		{"symlinked prefix given resolved", b + "/data-kubelet/pods", []string{b + "/symkubelet", b + "/data-kubelet"}, b + "/data-kubelet/pods", nil},
		// The wrapper saves sources resolved: mount-hook and mounter read
		// <b>/data-kubelet/pods for a rule that names <b>/symkubelet.
		{"symlinked prefix, source under its real name", b + "/data-kubelet/pods", []string{b + "/symkubelet"}, b + "/data-kubelet/pods", nil},
		{"symlinked prefix, real name, dotdot out", b + "/data-kubelet/../outside/x", []string{b + "/symkubelet"}, "", ErrOutsideAllowlist},

		{"relative path", "kubelet/pods", allow, "", ErrRelativePath},
		{"prefix sibling", b + "/kubelet-evil/y", allow, "", ErrNotAllowlisted},
		{"unrelated path", b + "/outside/sub", allow, "", ErrNotAllowlisted},
		{"symlink from outside into the allowlist", b + "/outside/link-in", allow, "", ErrNotAllowlisted},
		{"dotdot to a sibling", b + "/kubelet/../kubelet-evil/y", allow, "", ErrOutsideAllowlist},
		{"dotdot out of the tree", b + "/kubelet/../../../../etc", allow, "", ErrOutsideAllowlist},
		{"dotdot to the parent", b + "/kubelet/..", allow, "", ErrOutsideAllowlist},
		{"symlink out", b + "/kubelet/link-out", allow, "", ErrOutsideAllowlist},
		{"symlink to a prefix sibling", b + "/kubelet/link-evil/y", allow, "", ErrOutsideAllowlist},
		{"relative symlink out", b + "/kubelet/pods/link-rel-out/sub", allow, "", ErrOutsideAllowlist},
		// Cleaned, this is <b>/kubelet/x (inside); the kernel follows the
		// link first and lands in <b>/outside/x, as runc's mount would.
		{"dotdot after a symlink", b + "/kubelet/link-dotdot/../x", allow, "", ErrOutsideAllowlist},
		{"symlinked prefix, sibling target", b + "/symkubelet/../kubelet/pods", []string{b + "/symkubelet"}, "", ErrOutsideAllowlist},
		{"empty allowlist", b + "/kubelet/pods", nil, "", ErrNotAllowlisted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ResolveSource(tt.path, tt.allow)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("ResolveSource(%q) = %q, %v; want error %v", tt.path, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ResolveSource(%q) = %q, %v; want %q", tt.path, got, err, tt.want)
			}
		})
	}
}

// TestAllowlist: the spec.SourceResolver of one bundle joins relative
// sources with the bundle, leaves non-allowlisted ones alone and refuses
// escaping ones as unsafe.
func TestAllowlist(t *testing.T) {
	b := resolveTree(t)
	a := Allowlist{Paths: []string{b + "/kubelet"}, Bundle: b + "/outside"}
	for _, tc := range []struct {
		source, want string
		ok           bool
		err          error
	}{
		{b + "/kubelet/pods", b + "/kubelet/pods", true, nil},
		{"../kubelet/link-in", b + "/kubelet/pods", true, nil}, // relative to the bundle
		{"sub", "", false, nil},
		{b + "/outside/link-in", "", false, nil},
		{b + "/kubelet/link-out", "", false, ErrOutsideAllowlist},
	} {
		got, ok, err := a.ResolveSource(tc.source)
		if got != tc.want || ok != tc.ok || !errors.Is(err, tc.err) || (err != nil && !errors.Is(err, spec.ErrUnsafeSource)) {
			t.Errorf("ResolveSource(%q) = %q, %v, %v; want %q, %v, %v (unsafe)", tc.source, got, ok, err, tc.want, tc.ok, tc.err)
		}
	}
	fake := Allowlist{Paths: []string{"/k"}, Resolve: func(p string, allow []string) (string, error) { return "/resolved" + p, nil }}
	if got, ok, err := fake.ResolveSource("/k/x"); got != "/resolved/k/x" || !ok || err != nil {
		t.Errorf("with a Resolve func: %q, %v, %v", got, ok, err)
	}
}

func TestResolveSourceMissing(t *testing.T) {
	b := resolveTree(t)
	_, err := ResolveSource(b+"/kubelet/missing", []string{b + "/kubelet"})
	if !errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrNotAllowlisted) || errors.Is(err, ErrOutsideAllowlist) {
		t.Fatalf("missing source: got %v, want a not-exist error and neither sentinel", err)
	}
}

func TestOpenResolved(t *testing.T) {
	b := resolveTree(t)
	if err := os.WriteFile(b+"/kubelet/pods/file", []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{b + "/kubelet/pods/x", b + "/kubelet/pods/x/", b + "/kubelet/pods/file", "/"} {
		f, canonical, err := OpenResolved(p)
		if err != nil {
			t.Fatalf("OpenResolved(%q): %v", p, err)
		}
		if canonical != filepath.Clean(p) {
			t.Errorf("OpenResolved(%q) canonical = %q", p, canonical)
		}
		if got, _ := os.Readlink(FdPath(f)); got != canonical {
			t.Errorf("FdPath readlink = %q, want %q", got, canonical)
		}
		_ = f.Close()
	}
	for _, p := range []string{b + "/kubelet/link-in", b + "/kubelet/link-out/sub", b + "/symkubelet/pods"} {
		if f, _, err := OpenResolved(p); err == nil {
			_ = f.Close()
			t.Errorf("OpenResolved(%q) followed a symlink", p)
		}
	}
	if _, _, err := OpenResolved("kubelet/pods"); !errors.Is(err, ErrRelativePath) {
		t.Errorf("OpenResolved(relative) = %v, want ErrRelativePath", err)
	}
}

// A component swapped for a symlink between resolution and open is refused.
func TestResolveThenSwap(t *testing.T) {
	b := resolveTree(t)
	allow := []string{b + "/kubelet"}
	resolved, err := ResolveSource(b+"/kubelet/pods/x", allow)
	if err != nil {
		t.Fatal(err)
	}
	swap(t, b+"/kubelet/pods", b+"/outside")
	if f, got, err := OpenResolved(resolved); err == nil {
		_ = f.Close()
		t.Fatalf("OpenResolved after swap opened %s", got)
	} else if !errors.Is(err, unix.ELOOP) && !errors.Is(err, ErrPathChanged) {
		t.Fatalf("OpenResolved after swap: %v, want ELOOP or ErrPathChanged", err)
	}
	if f, got, err := ResolveAndOpen(b+"/kubelet/pods/x", allow); err == nil {
		_ = f.Close()
		t.Fatalf("ResolveAndOpen after swap opened %s", got)
	} else if !errors.Is(err, ErrOutsideAllowlist) {
		t.Fatalf("ResolveAndOpen after swap: %v, want ErrOutsideAllowlist", err)
	}
}

// swap replaces dir by a symlink to target, keeping the old dir aside.
func swap(t *testing.T, dir, target string) {
	t.Helper()
	if err := os.Rename(dir, dir+".old"); err != nil {
		t.Fatal(err)
	}
	symlink(t, target, dir)
}

func TestResolveAndOpen(t *testing.T) {
	b := resolveTree(t)
	f, canonical, err := ResolveAndOpen(b+"/kubelet/link-in/x", []string{b + "/kubelet"})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if canonical != b+"/kubelet/pods/x" {
		t.Fatalf("canonical = %q", canonical)
	}
	if _, _, err := ResolveAndOpen(b+"/kubelet-evil/y", []string{b + "/kubelet"}); !errors.Is(err, ErrNotAllowlisted) {
		t.Fatalf("sibling: %v, want ErrNotAllowlisted", err)
	}
}

// Resolve once, use the handle: after the name is swapped for a symlink to
// somewhere else, a bind through FdPath still mounts the directory that was
// checked.
func TestMountThroughHandleAfterSwap(t *testing.T) {
	base := privateBase(t)
	mkdirs(t, base+"/kubelet/pods", base+"/outside", base+"/target")
	if err := os.WriteFile(base+"/kubelet/pods/checked", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	f, _, err := ResolveAndOpen(base+"/kubelet/pods", []string{base + "/kubelet"})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	swap(t, base+"/kubelet/pods", base+"/outside")
	if err := unix.Mount(FdPath(f), base+"/target", "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { detachQuiet(t, base+"/target") })
	if _, err := os.Stat(base + "/target/checked"); err != nil {
		t.Fatalf("the bind did not mount the checked directory: %v", err)
	}
}
