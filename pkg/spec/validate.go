package spec

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// rootfsPropagations are the values runc accepts for linux.rootfsPropagation
// (libcontainer/specconv: mountPropagationMapping).
var rootfsPropagations = []string{"", "shared", "rshared", "slave", "rslave", "private", "rprivate", "unbindable", "runbindable"}

// ValidateChanges checks the values the modifiers changed since the
// document was loaded the way runc's specconv and validator would, so that a
// broken rewrite fails with a clear message rather than inside runc:
// linux.rootfsPropagation when it changed; a mount the modifiers added (no
// loaded mount at its destination) in full (an absolute destination, no
// second propagation option beside rshared); a loaded mount they changed
// (moved ones included) for its propagation options; a hook they added, for
// its path. A value the engine wrote and the rewrite left alone is runc's
// to judge (runc accepts a relative mount destination, for one), so an
// error here is a fault of the rewrite.
//
// The checks are written here rather than taken from libcontainer's
// specconv and validate: those need cgo and their package init runs on every
// invocation of the wrapper, pass-through included.
func (d *Doc) ValidateChanges() error {
	var before struct {
		Mounts []specs.Mount `json:"mounts"`
		Hooks  *specs.Hooks  `json:"hooks"`
		Linux  *struct {
			RootfsPropagation string `json:"rootfsPropagation"`
		} `json:"linux"`
	}
	if err := json.Unmarshal(d.orig, &before); err != nil {
		return fmt.Errorf("decode runtime spec: %w", err)
	}
	s := d.Spec
	if s.Linux != nil && (before.Linux == nil || before.Linux.RootfsPropagation != s.Linux.RootfsPropagation) &&
		!slices.Contains(rootfsPropagations, s.Linux.RootfsPropagation) {
		return fmt.Errorf("invalid linux.rootfsPropagation %q", s.Linux.RootfsPropagation)
	}
	used := make([]bool, len(before.Mounts))
	unused := func(same func(specs.Mount) bool) bool {
		for k := range before.Mounts {
			if !used[k] && same(before.Mounts[k]) {
				used[k] = true
				return true
			}
		}
		return false
	}
	var changed []*specs.Mount
	for i := range s.Mounts {
		m := &s.Mounts[i]
		if !unused(func(b specs.Mount) bool { return reflect.DeepEqual(b, *m) }) {
			changed = append(changed, m)
		}
	}
	for _, m := range changed {
		if !unused(func(b specs.Mount) bool { return b.Destination == m.Destination }) && !filepath.IsAbs(m.Destination) {
			return fmt.Errorf("mount destination %q is not absolute", m.Destination)
		}
		// runc applies a bind's propagation options in turn, so the last
		// one wins: rshared must be the only one.
		props := slices.DeleteFunc(slices.Clone(m.Options), func(o string) bool { return !isPropagation(o) })
		if IsBind(m) && slices.Contains(props, "rshared") && len(props) > 1 {
			return fmt.Errorf("mount %s has conflicting propagation options %v", m.Destination, m.Options)
		}
	}
	loaded := allHooks(before.Hooks)
	for _, h := range allHooks(s.Hooks) {
		if j := slices.IndexFunc(loaded, func(b specs.Hook) bool { return reflect.DeepEqual(b, h) }); j >= 0 {
			loaded = slices.Delete(loaded, j, j+1)
			continue
		}
		if !filepath.IsAbs(h.Path) {
			return fmt.Errorf("hook path %q is not absolute", h.Path)
		}
	}
	return nil
}

func allHooks(h *specs.Hooks) []specs.Hook {
	if h == nil {
		return nil
	}
	//lint:ignore SA1019 Prestart is deprecated but still run by runc 1.1.
	return slices.Concat(h.Prestart, h.CreateRuntime, h.CreateContainer, h.StartContainer, h.Poststart, h.Poststop)
}
