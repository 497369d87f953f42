package spec

import (
	"fmt"
	"path/filepath"
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// rootfsPropagations are the values runc accepts for linux.rootfsPropagation
// (libcontainer/specconv: mountPropagationMapping).
var rootfsPropagations = []string{"", "shared", "rshared", "slave", "rslave", "private", "rprivate", "unbindable", "runbindable"}

// ValidateRewrite checks what the rewrite touches, the way runc's specconv
// and validator would, so a broken rewrite fails here with a clear message
// rather than inside runc. libcontainer's specconv and validate (runc
// 1.1.15) were measured for this instead: they need cgo, their package init
// alone costs about 0.8 ms of CPU on every invocation (state included), and
// converting plus validating a Docker config.json took 2.7 ms against 0.8 ms
// for an empty Go program (hyperfine, 300 runs). The wrapper's budget is
// about 1 ms, so it checks only the fields it writes.
func ValidateRewrite(s *specs.Spec) error {
	if s.Linux != nil && !slices.Contains(rootfsPropagations, s.Linux.RootfsPropagation) {
		return fmt.Errorf("invalid linux.rootfsPropagation %q", s.Linux.RootfsPropagation)
	}
	for _, m := range s.Mounts {
		if !filepath.IsAbs(m.Destination) {
			return fmt.Errorf("mount destination %q is not absolute", m.Destination)
		}
		if !IsBind(&m) {
			continue
		}
		if !filepath.IsAbs(m.Source) {
			// runc resolves a relative bind source against the bundle; the
			// rewrite only ever writes absolute sources.
			continue
		}
		n := 0
		for _, o := range m.Options {
			if slices.Contains(propagationOptions, o) {
				n++
			}
		}
		if n > 1 && slices.Contains(m.Options, "rshared") {
			return fmt.Errorf("mount %s has conflicting propagation options %v", m.Destination, m.Options)
		}
	}
	for _, h := range allHooks(s) {
		if !filepath.IsAbs(h.Path) {
			return fmt.Errorf("hook path %q is not absolute", h.Path)
		}
	}
	return nil
}

func allHooks(s *specs.Spec) []specs.Hook {
	if s.Hooks == nil {
		return nil
	}
	h := s.Hooks
	//lint:ignore SA1019 Prestart is deprecated but still run by runc 1.1.
	return slices.Concat(h.Prestart, h.CreateRuntime, h.CreateContainer, h.StartContainer, h.Poststart, h.Poststop)
}
