// Package spec holds the pure logic of runc-shared over an OCI runtime spec:
// loading config.json, matching it against [[mounter]] rules, the policy a
// matching container must satisfy, the rewrite modifiers and the lossless,
// atomic save. Nothing here makes a mount syscall: whatever needs the host
// (resolving a bind source, making a path shared) is passed in as a function,
// so every rule is table-testable.
package spec

import "slices"

// Mode says how a rule gets the mounter's mounts onto the host.
type Mode string

const (
	// ModePropagate shares the allowlisted bind mounts with rshared
	// propagation (the default).
	ModePropagate Mode = "propagate"
	// ModePreload injects libhostmount.so, which performs mount(2) in the
	// host mount namespace.
	ModePreload Mode = "preload"
)

// Well-known annotation keys that engines set and that rules read.
const (
	// AnnotationMounter is the annotation the shipped examples, hooks.d
	// files and Kubernetes manifests use to mark a mounter.
	AnnotationMounter = "runc-shared.io/mounter"
	// EnvMounter is the environment variable used where an engine passes
	// no annotations to the runtime (Docker before 24).
	EnvMounter = "RUNC_SHARED_MOUNTER"
)

// ContainerNameAnnotations are the annotations engines use for the container
// name, in the order they are consulted (containerd CRI, then CRI-O/dockershim).
var ContainerNameAnnotations = []string{
	"io.kubernetes.cri.container-name",
	"io.kubernetes.container.name",
}

// NamespaceAnnotations are the annotations engines use for the Kubernetes
// namespace of the pod (containerd CRI, then CRI-O/dockershim).
var NamespaceAnnotations = []string{
	"io.kubernetes.cri.sandbox-namespace",
	"io.kubernetes.pod.namespace",
}

// Match holds the conditions of a rule. All the given conditions must hold;
// a rule with none is a configuration error (internal/config refuses it).
type Match struct {
	// Annotations must all be present in the spec with exactly these values.
	Annotations map[string]string
	// Env must all be present in process.env with exactly these values.
	Env map[string]string
	// ContainerName must equal the engine's container-name annotation.
	ContainerName string
	// ContainerNameIfRecorded relaxes ContainerName for engines that record
	// no container name (Docker): the seed's "fstype:k=v:container" syntax
	// checks the name only where the engine records one.
	ContainerNameIfRecorded bool
	// AnnotationOrEnv entries hold when the key is an annotation or an env
	// variable with exactly this value. It comes from the seed's
	// mount-container syntax ("glusterfs:name=glusterfs-mounter:mounter").
	AnnotationOrEnv map[string]string
}

// Empty reports whether the match has no condition at all.
func (m Match) Empty() bool {
	return len(m.Annotations) == 0 && len(m.Env) == 0 && m.ContainerName == "" && len(m.AnnotationOrEnv) == 0
}

// Rule is one [[mounter]] entry of the configuration.
type Rule struct {
	Name    string
	FSTypes []string
	Mode    Mode
	// Propagate lists absolute host paths. In propagate mode, bind mounts at
	// or below them get rshared; in preload mode they are the allowlist of
	// mount targets.
	Propagate []string
	// EnsureShared makes a propagated host path a shared mount when it is
	// not one yet; when false the container is refused instead.
	EnsureShared bool
	// RequirePrivileged demands CAP_SYS_ADMIN in the bounding set.
	RequirePrivileged bool
	// Namespaces, when not empty, is the allowlist of Kubernetes namespaces.
	Namespaces []string
	Match      Match
}

// Routes reports whether the rule's mounter serves filesystem type fstype.
func (r *Rule) Routes(fstype string) bool { return slices.Contains(r.FSTypes, fstype) }
