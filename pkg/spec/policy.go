package spec

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ErrPolicy is wrapped by every refusal of a matching container.
var ErrPolicy = errors.New("refused by policy")

// PolicyError tells which rule refused a container and why.
type PolicyError struct {
	Rule   string
	Reason string
}

func (e *PolicyError) Error() string {
	return fmt.Sprintf("container matches mounter rule %q but is refused: %s", e.Rule, e.Reason)
}

func (e *PolicyError) Unwrap() error { return ErrPolicy }

// Refuse returns the PolicyError of a container the rule refuses, the reason
// formatted as by fmt.Sprintf.
func (r *Rule) Refuse(format string, a ...any) error {
	return &PolicyError{Rule: r.Name, Reason: fmt.Sprintf(format, a...)}
}

// NamespaceOf tells how s gets its namespace of type typ: path is the
// namespace it joins ("" for a new one) and ok is false when s names none,
// so the container shares the runtime's.
func NamespaceOf(s *specs.Spec, typ specs.LinuxNamespaceType) (path string, ok bool) {
	if s.Linux == nil {
		return "", false
	}
	for _, ns := range s.Linux.Namespaces {
		if ns.Type == typ {
			if ns.Path != "" {
				return ns.Path, true
			}
			ok = true
		}
	}
	return "", ok
}

// RootPath returns root.path, made absolute against the bundle directory as
// runc takes a relative one, and false when the spec names none.
func RootPath(s *specs.Spec, bundle string) (string, bool) {
	if s.Root == nil || s.Root.Path == "" {
		return "", false
	}
	if filepath.IsAbs(s.Root.Path) {
		return filepath.Clean(s.Root.Path), true
	}
	return filepath.Join(bundle, s.Root.Path), true
}

// InBoundingSet reports whether capability c is in the bounding set of s.
func InBoundingSet(s *specs.Spec, c string) bool {
	return s.Process != nil && s.Process.Capabilities != nil && slices.Contains(s.Process.Capabilities.Bounding, c)
}

// CapSysAdmin is the capability a mounter needs for mount(2).
const CapSysAdmin = "CAP_SYS_ADMIN"

// CheckPolicy decides whether a container that matches r may become a
// mounter. Matching is cheap to fake (anyone may set an annotation or an env
// variable), so the rule only ever applies to containers that could mount
// anyway: the wrapper never adds a privilege, it only lets the mounts of an
// already privileged container reach the host.
func CheckPolicy(r *Rule, s *specs.Spec) error {
	// runc joins a namespace given by path and still runs its whole rootfs
	// setup, pivot_root included, in it: on the host's namespace that moves
	// the host onto the container's rootfs. Without a mount namespace runc
	// sets the container up in the runtime's own one: the rewrite's rshared
	// root propagation would apply to the host's /, and runc's mounts (/proc,
	// /dev, ...) would stay on the host.
	switch path, ok := NamespaceOf(s, specs.MountNamespace); {
	case path != "":
		return r.Refuse("it joins the mount namespace %s by path; a mounter must get a new mount namespace", path)
	case !ok:
		return r.Refuse(`it has no mount namespace of its own; a mounter must get a new mount namespace (add {"type": "mount"} to linux.namespaces)`)
	}
	if r.RequirePrivileged && !InBoundingSet(s, CapSysAdmin) {
		return r.Refuse("it lacks %s in its bounding set; start it with --cap-add SYS_ADMIN (or set require-privileged = false in the rule)", CapSysAdmin)
	}
	if len(r.Namespaces) > 0 {
		// Each engine sets one of the namespace annotations; CRI-O copies
		// user annotations into the spec too, so a second, disagreeing one
		// was not set by the engine.
		var seen []string
		for _, k := range NamespaceAnnotations {
			if v := s.Annotations[k]; v != "" && !slices.Contains(seen, v) {
				seen = append(seen, v)
			}
		}
		if len(seen) > 1 {
			return r.Refuse("its Kubernetes namespace annotations disagree (%q); one was not set by the engine", seen)
		}
		ns, ok := Namespace(s)
		if !ok {
			return r.Refuse("the rule allows only Kubernetes namespaces %v and the container carries no namespace annotation", r.Namespaces)
		}
		if !slices.Contains(r.Namespaces, ns) {
			return r.Refuse("Kubernetes namespace %q is not in the rule's namespaces %v", ns, r.Namespaces)
		}
	}
	return nil
}
