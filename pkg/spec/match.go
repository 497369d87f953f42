package spec

import (
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Matches reports whether s meets every condition of the rule's match.
// Labels never reach the runtime (Docker and Podman keep them), so only
// annotations, process.env and the engine's container-name annotation count.
// Mismatch holds the conditions.
func (r *Rule) Matches(s *specs.Spec) bool { return r.Mismatch(s) == nil }

// sandboxAnnotations mark a Kubernetes pod's sandbox (pause) container, by
// engine. CRI engines copy the pod's annotations onto the sandbox too, so an
// annotation rule would otherwise match the pause container of the mounter
// pod, which holds no privilege and mounts nothing.
var sandboxAnnotations = map[string]string{
	"io.kubernetes.cri.container-type":  "sandbox",    // containerd
	"io.kubernetes.cri-o.ContainerType": "sandbox",    // CRI-O
	"io.kubernetes.docker.type":         "podsandbox", // dockershim, cri-dockerd
}

// IsSandbox reports whether s is a Kubernetes pod sandbox container.
func IsSandbox(s *specs.Spec) bool {
	for k, v := range sandboxAnnotations {
		if s.Annotations[k] == v {
			return true
		}
	}
	return false
}

// FindRule returns the first rule that matches s, or nil.
func FindRule(rules []Rule, s *specs.Spec) *Rule {
	for i := range rules {
		if rules[i].Matches(s) {
			return &rules[i]
		}
	}
	return nil
}

// EnvValue returns the value of key in process.env. Like execve's consumers
// (getenv), the first entry wins.
func EnvValue(s *specs.Spec, key string) (string, bool) {
	if s.Process == nil {
		return "", false
	}
	for _, kv := range s.Process.Env {
		k, v, ok := strings.Cut(kv, "=")
		if ok && k == key {
			return v, true
		}
	}
	return "", false
}

// ContainerName returns the container name recorded by a Kubernetes engine.
func ContainerName(s *specs.Spec) (string, bool) {
	return firstAnnotation(s, ContainerNameAnnotations)
}

// Namespace returns the Kubernetes namespace recorded by the engine.
func Namespace(s *specs.Spec) (string, bool) {
	return firstAnnotation(s, NamespaceAnnotations)
}

func firstAnnotation(s *specs.Spec, keys []string) (string, bool) {
	for _, k := range keys {
		if v, ok := s.Annotations[k]; ok && v != "" {
			return v, true
		}
	}
	return "", false
}
