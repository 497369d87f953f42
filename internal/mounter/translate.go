package mounter

import (
	"path"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/runc-shared/runc-shared/internal/hostmount"
	"github.com/runc-shared/runc-shared/pkg/spec"
)

// Bind is a bind mount of a mounter's spec: host Source seen at Destination
// inside the container.
type Bind = spec.Bind

// SharedBinds returns the bind mounts of s whose host source lies within one
// of the propagated paths: only mounts below them reach the host. Sources
// are resolved the way the wrapper and mount-hook resolve them. A bind whose
// source now resolves outside the paths (its symlinks changed since the
// mounter started) is left out: no target is translated through it.
func SharedBinds(s *specs.Spec, bundle string, propagate []string) []Bind {
	binds, _ := spec.AllowlistedBinds(s, skipUnsafe{hostmount.Allowlist{Paths: propagate, Bundle: bundle}})
	return binds
}

// skipUnsafe takes a source its resolver refuses as none of ours.
type skipUnsafe struct{ spec.SourceResolver }

func (r skipUnsafe) ResolveSource(source string) (string, bool, error) {
	resolved, ok, err := r.SourceResolver.ResolveSource(source)
	if err != nil {
		return "", false, nil
	}
	return resolved, ok, nil
}

// Translate returns where host path target (absolute, resolved) is inside
// the container: through the bind whose source contains target, compared by
// components, with the longest source; ok is false when no bind covers it.
func Translate(target string, binds []Bind) (inner string, bind Bind, ok bool) {
	for _, b := range binds {
		if hostmount.Within(target, b.Source) && (!ok || len(b.Source) > len(bind.Source)) {
			bind, ok = b, true
		}
	}
	if !ok {
		return "", Bind{}, false
	}
	rel, _ := filepath.Rel(bind.Source, target)
	return path.Join(bind.Destination, rel), bind, true
}

// noBindError explains that a mounter cannot reach target.
func noBindError(target, id, rule string, binds []Bind) error {
	if len(binds) == 0 {
		return failure("mounter %s (rule %q) shares no host path: its spec binds none of the rule's propagate paths into it; bind one (e.g. -v /var/lib/kubelet:/var/lib/kubelet) and restart the mounter", id, rule)
	}
	return failure("target %s is not below a path that mounter %s (rule %q) shares with the host; it shares %s: mount below one of them, or add the path to the rule's propagate list and bind it into the mounter",
		target, id, rule, joinEach(binds, ", ", Bind.String))
}

// absTarget makes a target absolute (against the working directory, as
// mount(8) does) and resolves its symlinks: mountinfo shows resolved paths.
// A target that cannot be resolved (it does not exist, or is a dead FUSE
// mount that fails lstat) is only cleaned, which Abs does.
func absTarget(target string) (string, error) {
	if target == "" {
		return "", usage("missing TARGET")
	}
	abs, err := filepath.Abs(target)
	if err != nil {
		return "", system("target %s: %w", target, err)
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		return r, nil
	}
	return abs, nil
}
