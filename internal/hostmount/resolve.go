package hostmount

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/runc-shared/runc-shared/pkg/spec"
)

var (
	// ErrNotAllowlisted means the given path is not at or below any
	// allowlisted prefix: it is not a propagated mount and the caller leaves
	// it alone.
	ErrNotAllowlisted = errors.New("path is not under an allowlisted prefix")
	// ErrOutsideAllowlist means the given path claims an allowlisted
	// location (it is written under an allowlisted prefix) but resolves, through
	// symlinks or "..", to a place outside every allowlisted prefix. The caller
	// refuses the container.
	ErrOutsideAllowlist = errors.New("path resolves outside the allowlisted prefixes")
	// ErrRelativePath means a host path was not absolute. OCI bind sources may
	// be relative to the bundle: join them with the bundle directory first.
	ErrRelativePath = errors.New("host path is not absolute")
	// ErrPathChanged means the path opened is not the path that was resolved:
	// a component was swapped (for a symlink, or renamed) between check and
	// use.
	ErrPathChanged = errors.New("path changed between resolution and open")
)

// ResolveSource resolves a bind-mount source on the host against the
// allowlist and returns the canonical path to use.
//
// The decision, in order:
//  1. A relative path fails with ErrRelativePath.
//  2. The given path is checked lexically against the prefixes as written
//     and as resolved: on a host where /var/lib/kubelet is a symlink to
//     /data/kubelet, /data/kubelet/pods is the allowlisted directory under
//     its real name (and the wrapper saves sources resolved, so mount-hook
//     and mounter read them that way). If the path enters a prefix and then
//     leaves it through ".." ("/var/lib/kubelet/../../etc"), it fails with
//     ErrOutsideAllowlist. If its cleaned form is not within any prefix (and
//     it never entered one), it fails with ErrNotAllowlisted: a symlink
//     elsewhere that happens to point into the allowlist is not ours either.
//  3. The raw path (not the cleaned one) is resolved with the kernel's
//     semantics: symlinks are followed and a ".." after a symlink goes to the
//     parent of the symlink's target, as runc's mount(2) of that source would.
//     The allowlisted prefixes are resolved too (on some hosts
//     /var/lib/kubelet is a symlink to /data/kubelet), and the resolved path
//     must be within a resolved prefix, else ErrOutsideAllowlist.
//
// The answer is only as good as the moment it was computed: to mount, open
// it with OpenResolved or Stage it, and mount through the handle (resolve
// once, use the handle).
func ResolveSource(path string, allow []string) (string, error) {
	if !filepath.IsAbs(path) {
		return "", fmt.Errorf("resolve %q: %w (join it with the bundle directory first)", path, ErrRelativePath)
	}
	// Each prefix is resolved once, for both checks.
	resolvedAllow := resolvePrefixes(allow)
	written := append(append(make([]string, 0, 2*len(allow)), allow...), resolvedAllow...)
	if lexicalEscape(path, written) {
		return "", fmt.Errorf("resolve %s: %w: its \"..\" segments leave the allowlisted prefix", path, ErrOutsideAllowlist)
	}
	if _, ok := WithinAny(path, written); !ok {
		return "", fmt.Errorf("resolve %s: %w %v", path, ErrNotAllowlisted, allow)
	}
	resolved, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", path, err)
	}
	if _, ok := WithinAny(resolved, resolvedAllow); !ok {
		return "", fmt.Errorf("resolve %s: it resolves to %s: %w %v", path, resolved, ErrOutsideAllowlist, allow)
	}
	return resolved, nil
}

// Allowlist resolves the bind sources of one bundle against allowlisted
// host paths; it is a spec.SourceResolver. A relative source is relative to
// the bundle directory, as runc reads it. A source below an allowlisted path
// that resolves outside every one is refused, wrapping spec.ErrUnsafeSource.
type Allowlist struct {
	Paths  []string
	Bundle string
	// Resolve is ResolveSource when nil (tests put a fake host here).
	Resolve func(path string, allow []string) (string, error)
}

// ResolveSource implements spec.SourceResolver.
func (a Allowlist) ResolveSource(source string) (string, bool, error) {
	if !filepath.IsAbs(source) {
		source = filepath.Join(a.Bundle, source)
	}
	resolve := a.Resolve
	if resolve == nil {
		resolve = ResolveSource
	}
	resolved, err := resolve(source, a.Paths)
	switch {
	case err == nil:
		return resolved, true, nil
	case errors.Is(err, ErrNotAllowlisted):
		return "", false, nil
	default:
		return "", false, fmt.Errorf("%w: %w", spec.ErrUnsafeSource, err)
	}
}

// resolvePrefixes returns the allowlisted prefixes with their symlinks
// resolved. A prefix that cannot be resolved (it does not exist yet) is kept
// cleaned: no existing path can resolve below it.
func resolvePrefixes(allow []string) []string {
	out := make([]string, 0, len(allow))
	for _, p := range allow {
		if !filepath.IsAbs(p) {
			continue
		}
		if r, err := filepath.EvalSymlinks(p); err == nil {
			out = append(out, r)
			continue
		}
		out = append(out, filepath.Clean(p))
	}
	return out
}

// OpenResolved opens an already resolved absolute path as an O_PATH handle
// (directory or file) without following any symlink, and returns it with the
// canonical path read back from /proc/self/fd/N. If a component of path was
// swapped for a symlink since it was resolved, the open fails (ELOOP) or the
// read-back path differs (ErrPathChanged). Mount through FdPath(f) to use the
// handle rather than the name. The caller closes f.
func OpenResolved(path string) (*os.File, string, error) {
	if !filepath.IsAbs(path) {
		return nil, "", fmt.Errorf("open %q: %w", path, ErrRelativePath)
	}
	clean := filepath.Clean(path)
	fd, err := openNoSymlinks(clean)
	if err != nil {
		return nil, "", fmt.Errorf("open %s without following symlinks: %w", clean, err)
	}
	f := os.NewFile(uintptr(fd), clean)
	canonical, err := os.Readlink(FdPath(f))
	if err != nil {
		_ = f.Close()
		return nil, "", fmt.Errorf("read back the path of %s: %w", clean, err)
	}
	if canonical != clean {
		_ = f.Close()
		return nil, "", fmt.Errorf("open %s: it is now %s: %w", clean, canonical, ErrPathChanged)
	}
	return f, canonical, nil
}

// openNoSymlinks opens path O_PATH with no symlink followed in any component.
// openat2 RESOLVE_NO_SYMLINKS (Linux 5.6+) refuses them all; older kernels
// only get O_NOFOLLOW on the last component, and OpenResolved's read-back
// comparison catches a symlink in an earlier one.
func openNoSymlinks(path string) (int, error) {
	fd, err := unix.Openat2(unix.AT_FDCWD, path, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err == nil || !errors.Is(err, unix.ENOSYS) {
		return fd, err
	}
	return unix.Open(path, unix.O_PATH|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
}

// FdPath returns the /proc/self/fd/N magic link of f, which mount(2) follows
// to the very file f holds, whatever the name points to now.
func FdPath(f *os.File) string {
	return "/proc/self/fd/" + strconv.Itoa(int(f.Fd()))
}
