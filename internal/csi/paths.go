package csi

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/runc-shared/runc-shared/internal/hostmount"
)

// ResolvePath resolves an absolute staging, target or mount point path
// against the rule's allowlist with the resolver the wrapper and the hook
// use: symlinks
// and ".." are followed as the kernel would, and "/var/lib/kubelet-evil" is
// not below "/var/lib/kubelet". A path outside is errInvalid; a path that
// does not exist wraps fs.ErrNotExist.
//
// A dead FUSE mount point (its daemon gone: "Transport endpoint is not
// connected") cannot be looked at, so it is resolved through its parent:
// unstaging, unpublishing and recovery must still reach it.
func ResolvePath(what, path string, allow []string) (string, error) {
	if !filepath.IsAbs(path) {
		return "", invalid("%s %q is not an absolute path", what, path)
	}
	resolved, err := hostmount.ResolveSource(path, allow)
	switch {
	case err == nil:
		return resolved, nil
	case errors.Is(err, hostmount.ErrNotAllowlisted), errors.Is(err, hostmount.ErrOutsideAllowlist):
		return "", invalid("%s %s: %v: a [[mounter]] rule's propagate paths %v must hold it", what, path, err, allow)
	case deadMount(err):
		parent, perr := ResolvePath(what, filepath.Dir(filepath.Clean(path)), allow)
		if perr != nil {
			return "", perr
		}
		return filepath.Join(parent, filepath.Base(filepath.Clean(path))), nil
	default:
		return "", fmt.Errorf("%s %s: %w", what, path, err)
	}
}

// deadMount reports an error from a FUSE mount whose daemon is gone.
func deadMount(err error) bool {
	return errors.Is(err, unix.ENOTCONN) || errors.Is(err, unix.ECONNABORTED)
}

// makeDir resolves path, creating its last component as a directory when
// it is missing (CSI leaves the publish target to the plugin). The parent
// must exist and be within the allowlist.
func makeDir(what, path string, allow []string) (string, error) {
	resolved, err := ResolvePath(what, path, allow)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return resolved, err
	}
	clean := filepath.Clean(path)
	base := filepath.Base(clean)
	parent, err := ResolvePath(what+"'s parent", filepath.Dir(clean), allow)
	if err != nil {
		return "", err
	}
	if err := os.Mkdir(filepath.Join(parent, base), 0o750); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("create %s %s: %w", what, path, err)
	}
	// Resolve again: what now stands there must still be within the
	// allowlist (someone may have put a symlink in its place).
	return ResolvePath(what, path, allow)
}

// isDir reports whether the resolved path is a directory (or a mount point
// whose daemon is gone, which was one).
func isDir(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		if deadMount(err) {
			return nil
		}
		return err
	}
	if !fi.IsDir() {
		return invalid("%s is not a directory", path)
	}
	return nil
}
