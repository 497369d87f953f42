package spec

import (
	"errors"
	"fmt"
	"path"
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Modifier changes a spec in place. Each rewrite rule is one small Modifier.
type Modifier interface {
	Modify(*specs.Spec) error
}

// ModifierFunc adapts a function to Modifier.
type ModifierFunc func(*specs.Spec) error

// Modify calls f.
func (f ModifierFunc) Modify(s *specs.Spec) error { return f(s) }

// Modifiers applies each modifier in order; it is itself a Modifier.
type Modifiers []Modifier

// Modify applies every modifier, stopping at the first error.
func (ms Modifiers) Modify(s *specs.Spec) error {
	for _, m := range ms {
		if m == nil {
			continue
		}
		if err := m.Modify(s); err != nil {
			return err
		}
	}
	return nil
}

// propagationOptions are the mount options that set a mount's propagation
// type; a mount carries at most one after a rewrite.
var propagationOptions = []string{
	"shared", "rshared", "slave", "rslave", "private", "rprivate", "unbindable", "runbindable",
}

// IsBind reports whether m is a bind mount (runc treats type "bind" and the
// "bind"/"rbind" options alike).
func IsBind(m *specs.Mount) bool {
	return m.Type == "bind" || slices.Contains(m.Options, "bind") || slices.Contains(m.Options, "rbind")
}

// SourceResolver decides which bind sources are allowlisted. ResolveSource
// returns the resolved host path and true for a source at or below an
// allowlisted path; false (and no error) for a source that is none of our
// business; an error for a source that must be refused (it is below an
// allowlisted path but resolves outside the allowlist, for one).
type SourceResolver interface {
	ResolveSource(source string) (resolved string, allowlisted bool, err error)
}

// Bind is a bind mount whose host source a SourceResolver allowlisted.
type Bind struct {
	Source      string // the resolved host path
	Destination string // the path inside the container: absolute, cleaned
}

func (b Bind) String() string {
	if b.Source == b.Destination {
		return b.Source
	}
	return b.Source + " (at " + b.Destination + " inside)"
}

// AllowlistedBinds returns the bind mounts of s whose source r allowlists,
// in spec order, with the source r resolved it to. The wrapper (preload's
// allowlist), mount-hook (what to verify) and mounter (how to translate a
// target) all ask this one question; r's error for an unsafe source stops
// it. A bind without a destination is skipped: runc refuses it anyway.
func AllowlistedBinds(s *specs.Spec, r SourceResolver) ([]Bind, error) {
	var out []Bind
	for i := range s.Mounts {
		m := &s.Mounts[i]
		if !IsBind(m) || m.Destination == "" {
			continue
		}
		resolved, ok, err := r.ResolveSource(m.Source)
		if err != nil {
			return nil, fmt.Errorf("bind mount %s -> %s: %w", m.Source, m.Destination, err)
		}
		if ok {
			// runc takes a relative destination as relative to the root.
			out = append(out, Bind{Source: resolved, Destination: path.Clean("/" + m.Destination)})
		}
	}
	return out, nil
}

// ErrUnsafeSource is wrapped when a bind source cannot be shared safely.
var ErrUnsafeSource = errors.New("unsafe bind source")

// SharedBinds gives every allowlisted bind mount rshared propagation, so a
// mount made below it inside the container reaches the host's peer group.
// The source is replaced by its resolved path: the path checked is the path
// runc mounts. Sources records the resolved host paths it changed, for the
// host-side preparation (making them shared).
type SharedBinds struct {
	Resolver SourceResolver
	Sources  []string
}

// Modify implements Modifier.
func (sb *SharedBinds) Modify(s *specs.Spec) error {
	for i := range s.Mounts {
		m := &s.Mounts[i]
		if !IsBind(m) {
			continue
		}
		resolved, ok, err := sb.Resolver.ResolveSource(m.Source)
		if err != nil {
			return fmt.Errorf("bind mount %s -> %s: %w", m.Source, m.Destination, err)
		}
		if !ok {
			continue
		}
		opts := slices.DeleteFunc(slices.Clone(m.Options), func(o string) bool {
			return slices.Contains(propagationOptions, o)
		})
		m.Options = append(opts, "rshared")
		m.Source = resolved
		if !slices.Contains(sb.Sources, resolved) {
			sb.Sources = append(sb.Sources, resolved)
		}
	}
	return nil
}

// RootfsPropagation sets linux.rootfsPropagation. With runc's default
// (rslave on /) a mount below a shared bind stays in the container: the
// bind's peer group is only reachable when / itself is shared (measured on
// runc 1.1; see platform-facts "Propagation").
type RootfsPropagation string

// Modify implements Modifier.
func (p RootfsPropagation) Modify(s *specs.Spec) error {
	if s.Linux == nil {
		s.Linux = &specs.Linux{}
	}
	s.Linux.RootfsPropagation = string(p)
	return nil
}
