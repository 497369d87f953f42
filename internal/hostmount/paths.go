package hostmount

import (
	"path/filepath"
	"strings"
)

// Within reports whether path is prefix or lies below it, comparing whole path
// components after filepath.Clean: "/var/lib/kubelet-evil" is not within
// "/var/lib/kubelet", and trailing slashes do not matter. A relative or empty
// path or prefix is never within anything: relative paths have no meaning on
// the host. Within does no syscalls and does not resolve symlinks.
func Within(path, prefix string) bool {
	if !filepath.IsAbs(path) || !filepath.IsAbs(prefix) {
		return false
	}
	path, prefix = filepath.Clean(path), filepath.Clean(prefix)
	if prefix == "/" || path == prefix {
		return true
	}
	return strings.HasPrefix(path, prefix+"/")
}

// WithinAny returns the longest prefix (as given in prefixes) that path is
// Within, and whether there is one.
func WithinAny(path string, prefixes []string) (string, bool) {
	best, found := "", false
	for _, p := range prefixes {
		if !Within(path, p) {
			continue
		}
		if !found || len(filepath.Clean(p)) > len(filepath.Clean(best)) {
			best, found = p, true
		}
	}
	return best, found
}

// lexicalEscape reports whether the raw path passes through an allowlisted
// prefix on its way (component by component, ".." popping lexically) but ends
// outside every prefix, as "/var/lib/kubelet/../../etc" does. Such a path
// claims an allowlisted location and then leaves it. The way so far, up to
// each "/" of raw, is what filepath.Clean (inside Within) makes of it.
func lexicalEscape(raw string, prefixes []string) bool {
	if _, final := WithinAny(raw, prefixes); final || !filepath.IsAbs(raw) {
		return false
	}
	for i := 1; i < len(raw); i++ {
		if raw[i] != '/' {
			continue
		}
		if _, ok := WithinAny(raw[:i], prefixes); ok {
			return true
		}
	}
	return false
}
