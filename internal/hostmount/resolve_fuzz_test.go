package hostmount_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runc-shared/runc-shared/internal/hostmount"
)

// FuzzResolveSource resolves arbitrary bind sources below a fixture tree
// against an allowlist, the decision that keeps a mounter's rshared binds on
// allowlisted host paths. The tree holds what hostile specs use: symlinks
// that stay inside, leave the allowlist (relative and absolute), loop, climb
// with "..", a prefix sibling (allow-evil) and a symlinked alias of the
// allowlisted dir. Invariants:
//
//   - success means the path is written inside the allowlist (as the rule
//     names it, or under its resolved name: the wrapper saves sources
//     resolved, and mount-hook and mounter read them so), and the result
//     is its kernel resolution (EvalSymlinks), clean and inside the resolved
//     allowlist: a symlink or ".." never leads a share outside;
//   - ErrNotAllowlisted only for a path written outside the allowlist (never
//     for one that claims an allowlisted location and then leaves it: that
//     must be a refusal, so the container is refused);
//   - ResolveAndOpen agrees with ResolveSource on a tree that does not change;
//   - Within is the component-wise relation of filepath.Rel.
//
// Run it with:
//
//	go test ./internal/hostmount/ -run '^$' -fuzz '^FuzzResolveSource$' -fuzztime 30s
func FuzzResolveSource(f *testing.F) {
	base, err := filepath.EvalSymlinks(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	for _, d := range []string{"allow/sub/deeper", "allow-evil/x", "outside/y"} {
		if err := os.MkdirAll(filepath.Join(base, d), 0o755); err != nil {
			f.Fatal(err)
		}
	}
	for name, target := range map[string]string{
		"allow/in":         "sub",
		"allow/sub/up":     "..",
		"allow/out":        "../outside",
		"allow/abs-out":    filepath.Join(base, "outside"),
		"allow/evil":       "../allow-evil",
		"allow/loop":       "loop",
		"allow/sub/climb":  "../../outside/y",
		"allow/dangling":   "nonexistent",
		"alias":            "allow",
		"outside/into":     "../allow/sub",
		"allow/sub/to-abs": "/",
	} {
		if err := os.Symlink(target, filepath.Join(base, name)); err != nil {
			f.Fatal(err)
		}
	}
	allow := filepath.Join(base, "allow")
	for _, s := range []string{
		"allow", "allow/", "allow/sub", "allow/in", "allow/in/deeper", "allow/out", "allow/out/y", "allow/abs-out",
		"allow/evil/x", "allow/loop", "allow/sub/climb", "allow/sub/up/sub", "allow/dangling", "allow/../outside",
		"allow/sub/../../allow-evil", "allow/./sub//deeper/", "allow-evil", "allow-evil/x", "alias/sub",
		"outside/into", "allow/in/../out", "allow/sub/to-abs/etc", "allow/in/../../outside", "",
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, rel string, viaAlias bool) {
		if strings.ContainsRune(rel, 0) || len(rel) > 512 {
			return
		}
		prefixes := []string{allow}
		if viaAlias {
			// The allowlisted path itself is a symlink on some hosts
			// (/var/lib/kubelet -> /data/kubelet).
			prefixes = []string{filepath.Join(base, "alias")}
		}
		path := base + "/" + rel
		checkWithin(t, path, prefixes[0])

		got, err := hostmount.ResolveSource(path, prefixes)
		// allow is the resolved name of both prefixes.
		written := hostmount.Within(path, prefixes[0]) || hostmount.Within(path, allow)
		switch {
		case err == nil:
			if !written {
				t.Fatalf("ResolveSource(%q) = %q, but the path is not written inside %q", path, got, prefixes[0])
			}
			want, everr := filepath.EvalSymlinks(path)
			if everr != nil || got != want {
				t.Fatalf("ResolveSource(%q) = %q; the kernel resolves it to %q (%v)", path, got, want, everr)
			}
			if !filepath.IsAbs(got) || filepath.Clean(got) != got || !hostmount.Within(got, allow) {
				t.Fatalf("ResolveSource(%q) = %q: outside the resolved allowlist %s", path, got, allow)
			}
			fh, canonical, oerr := hostmount.ResolveAndOpen(path, prefixes)
			if oerr != nil {
				t.Fatalf("ResolveSource(%q) = %q but ResolveAndOpen fails: %v", path, got, oerr)
			}
			fh.Close()
			if canonical != got {
				t.Fatalf("ResolveAndOpen(%q) = %q, ResolveSource = %q", path, canonical, got)
			}
		case errors.Is(err, hostmount.ErrNotAllowlisted):
			if written {
				t.Fatalf("ResolveSource(%q): %v; a path written inside the allowlist must be resolved or refused", path, err)
			}
		case errors.Is(err, hostmount.ErrOutsideAllowlist):
			if written {
				// Written inside: it must really resolve outside.
				if r, everr := filepath.EvalSymlinks(path); everr == nil && hostmount.Within(r, allow) {
					t.Fatalf("ResolveSource(%q) refused, but it resolves to %q, inside %s", path, r, allow)
				}
			}
		default:
			// Dangling or looping symlinks, missing paths: refused with the
			// resolver's error. Never a success.
			if got != "" {
				t.Fatalf("ResolveSource(%q) = %q with error %v", path, got, err)
			}
		}
	})
}

// checkWithin compares Within with a reference built on filepath.Rel.
func checkWithin(t *testing.T, path, prefix string) {
	t.Helper()
	r, err := filepath.Rel(prefix, filepath.Clean(path))
	want := err == nil && r != ".." && !strings.HasPrefix(r, "../")
	if got := hostmount.Within(path, prefix); got != want {
		t.Fatalf("Within(%q, %q) = %v, want %v (rel %q)", path, prefix, got, want, r)
	}
	if hostmount.Within(strings.TrimSuffix(filepath.Clean(prefix), "/")+"-evil", prefix) {
		t.Fatalf("Within(%q-evil, %q) is true", prefix, prefix)
	}
}
