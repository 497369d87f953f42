package spec_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/runc-shared/runc-shared/pkg/spec"
)

// fuzzRules are the rule shapes of the contract: annotation, env, the seed's
// annotation-or-env with a container name "if recorded", a Kubernetes
// namespace allowlist, and a container name alone.
func fuzzRules() []spec.Rule {
	return []spec.Rule{
		{Name: "ann", RequirePrivileged: true, Propagate: []string{"/var/lib/example"},
			Match: spec.Match{Annotations: map[string]string{spec.AnnotationMounter: "glusterfs"}}},
		{Name: "env", RequirePrivileged: true, Propagate: []string{"/var/lib/example"},
			Match: spec.Match{Env: map[string]string{spec.EnvMounter: "glusterfs"}}},
		{Name: "seed", RequirePrivileged: true, Propagate: []string{"/var/lib/kubelet"},
			Match: spec.Match{AnnotationOrEnv: map[string]string{"name": "glusterfs-mounter"}, ContainerName: "mounter", ContainerNameIfRecorded: true}},
		{Name: "ns", RequirePrivileged: true, Namespaces: []string{"kube-system", "storage"}, Propagate: []string{"/var/lib/example"},
			Match: spec.Match{Annotations: map[string]string{"app": "ceph"}}},
		{Name: "name", Propagate: []string{"/var/lib/example"},
			Match: spec.Match{ContainerName: "mounter"}},
	}
}

// FuzzMatchPolicy checks the matcher and the policy on anything that decodes
// as a spec. Invariants: matching and the policy never change the spec; a
// match means every condition holds as written (an annotation never stands
// in for an env-only rule, nor env for an annotation-only rule; a recorded
// container name must be equal); FindRule is the first match; a policy
// refusal is a *PolicyError wrapping ErrPolicy; an accepted container has
// CAP_SYS_ADMIN in its bounding set where the rule requires privilege, joins
// no mount namespace by path, and carries exactly one allowed Kubernetes
// namespace where the rule has a list.
//
//	go test ./pkg/spec/ -run '^$' -fuzz '^FuzzMatchPolicy$' -fuzztime 30s
func FuzzMatchPolicy(f *testing.F) {
	for _, name := range []string{
		"docker-20.10-mounter-env.config.json", "docker-20.10-plain.config.json",
		"containerd-1.6-ctr-mounter-annotation.config.json", "podman-4.3-mounter-annotation.config.json",
	} {
		data, err := os.ReadFile(filepath.Join("..", "..", "tests", "testdata", "engines", name))
		if err != nil {
			f.Fatalf("read engine capture %s (tests/testdata/engines): %v", name, err)
		}
		f.Add(data)
	}
	for _, s := range []string{
		`{"annotations":{"RUNC_SHARED_MOUNTER":"glusterfs"},"process":{"capabilities":{"bounding":["CAP_SYS_ADMIN"]}}}`,
		`{"annotations":{"runc-shared.io/mounter":"glusterfs"},"process":{"env":["RUNC_SHARED_MOUNTER=glusterfs"],"capabilities":{"bounding":["CAP_SYS_ADMIN"]}},"linux":{"namespaces":[{"type":"mount","path":"/proc/1/ns/mnt"}]}}`,
		`{"process":{"env":["RUNC_SHARED_MOUNTER=other","RUNC_SHARED_MOUNTER=glusterfs"]}}`,
		`{"annotations":{"name":"glusterfs-mounter","io.kubernetes.cri.container-name":"evil"},"process":{"capabilities":{"bounding":["CAP_SYS_ADMIN"]}}}`,
		`{"annotations":{"name":"glusterfs-mounter","io.kubernetes.container.name":"mounter"},"process":{"capabilities":{"bounding":["CAP_SYS_ADMIN"]}}}`,
		`{"annotations":{"app":"ceph","io.kubernetes.pod.namespace":"default"},"process":{"capabilities":{"bounding":["CAP_SYS_ADMIN"]}}}`,
		`{"annotations":{"app":"ceph","io.kubernetes.pod.namespace":"kube-system","io.kubernetes.cri.sandbox-namespace":"default"},"process":{"capabilities":{"bounding":["CAP_SYS_ADMIN"]}}}`,
		`{"annotations":{"app":"ceph","io.kubernetes.cri.sandbox-namespace":"storage"},"process":{"capabilities":{"bounding":["CAP_SYS_ADMIN"]}}}`,
		`{"annotations":{"io.kubernetes.cri.container-name":"mounter"}}`,
		`{"process":null,"linux":null,"annotations":null}`,
	} {
		f.Add([]byte(s))
	}
	rules := fuzzRules()
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := spec.Parse(data)
		if err != nil {
			return
		}
		s := d.Spec
		before := mustJSON(t, s)
		first := -1
		for i := range rules {
			r := &rules[i]
			matched := r.Matches(s)
			if matched && first < 0 {
				first = i
			}
			if matched {
				checkConditions(t, r, s)
			}
			checkIndependence(t, r, s, matched)
			if matched {
				checkPolicy(t, r, s)
			}
		}
		got := spec.FindRule(rules, s)
		if (first < 0) != (got == nil) || got != nil && got.Name != rules[first].Name {
			t.Fatalf("FindRule = %v, want rule #%d", got, first)
		}
		if after := mustJSON(t, s); after != before {
			t.Fatalf("matching or the policy changed the spec:\n%s\n%s", before, after)
		}
	})
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func checkConditions(t *testing.T, r *spec.Rule, s *specs.Spec) {
	t.Helper()
	for k, v := range r.Match.Annotations {
		if s.Annotations[k] != v {
			t.Fatalf("rule %q matched without annotation %s=%s", r.Name, k, v)
		}
	}
	for k, v := range r.Match.Env {
		if got, ok := spec.EnvValue(s, k); !ok || got != v {
			t.Fatalf("rule %q matched without env %s=%s (first value %q)", r.Name, k, v, got)
		}
	}
	for k, v := range r.Match.AnnotationOrEnv {
		env, _ := spec.EnvValue(s, k)
		if s.Annotations[k] != v && env != v {
			t.Fatalf("rule %q matched without %s=%s as annotation or env", r.Name, k, v)
		}
	}
	if name, ok := spec.ContainerName(s); ok && r.Match.ContainerName != "" && name != r.Match.ContainerName {
		t.Fatalf("rule %q matched container name %q, want %q", r.Name, name, r.Match.ContainerName)
	}
	if _, ok := spec.ContainerName(s); !ok && r.Match.ContainerName != "" && !r.Match.ContainerNameIfRecorded {
		t.Fatalf("rule %q matched a container without a recorded name", r.Name)
	}
}

// checkIndependence moves the matched values from one source to the other:
// an env-only rule must not care about annotations, nor an annotation-only
// rule about env.
func checkIndependence(t *testing.T, r *spec.Rule, s *specs.Spec, matched bool) {
	t.Helper()
	m := r.Match
	envOnly := len(m.Env) > 0 && len(m.Annotations) == 0 && len(m.AnnotationOrEnv) == 0 && m.ContainerName == ""
	annOnly := len(m.Annotations) > 0 && len(m.Env) == 0 && len(m.AnnotationOrEnv) == 0
	cp := clone(t, s)
	switch {
	case envOnly:
		// The rule's values given as annotations, and no env at all.
		cp.Annotations = map[string]string{}
		for k, v := range m.Env {
			cp.Annotations[k] = v
		}
		if cp.Process != nil {
			cp.Process.Env = nil
		}
		if r.Matches(cp) {
			t.Fatalf("env-only rule %q matched annotations %v", r.Name, cp.Annotations)
		}
		cp = clone(t, s)
		cp.Annotations = nil
		if r.Matches(cp) != matched {
			t.Fatalf("env-only rule %q: dropping the annotations changed the match", r.Name)
		}
	case annOnly:
		if cp.Process == nil {
			cp.Process = &specs.Process{}
		}
		cp.Process.Env = nil
		for k, v := range m.Annotations {
			cp.Process.Env = append(cp.Process.Env, k+"="+v)
			delete(cp.Annotations, k)
		}
		if r.Matches(cp) {
			t.Fatalf("annotation-only rule %q matched env %v", r.Name, cp.Process.Env)
		}
		cp = clone(t, s)
		if cp.Process != nil {
			cp.Process.Env = nil
		}
		if r.Matches(cp) != matched {
			t.Fatalf("annotation-only rule %q: dropping the env changed the match", r.Name)
		}
	}
}

func checkPolicy(t *testing.T, r *spec.Rule, s *specs.Spec) {
	t.Helper()
	err := spec.CheckPolicy(r, s)
	if err != nil {
		var pe *spec.PolicyError
		if !errors.Is(err, spec.ErrPolicy) || !errors.As(err, &pe) || pe.Rule != r.Name || pe.Reason == "" {
			t.Fatalf("refusal of rule %q is not a PolicyError with a reason: %v", r.Name, err)
		}
		return
	}
	ownMountNS := false
	if s.Linux != nil {
		for _, ns := range s.Linux.Namespaces {
			if ns.Type == specs.MountNamespace && ns.Path != "" {
				t.Fatalf("rule %q accepted a container joining mount namespace %q", r.Name, ns.Path)
			}
			ownMountNS = ownMountNS || ns.Type == specs.MountNamespace
		}
	}
	if !ownMountNS {
		t.Fatalf("rule %q accepted a container without a mount namespace of its own", r.Name)
	}
	if r.RequirePrivileged && (s.Process == nil || s.Process.Capabilities == nil ||
		!slices.Contains(s.Process.Capabilities.Bounding, spec.CapSysAdmin)) {
		t.Fatalf("rule %q accepted a container without %s in its bounding set", r.Name, spec.CapSysAdmin)
	}
	if len(r.Namespaces) > 0 {
		var seen []string
		for _, k := range spec.NamespaceAnnotations {
			if v := s.Annotations[k]; v != "" && !slices.Contains(seen, v) {
				seen = append(seen, v)
			}
		}
		if len(seen) != 1 || !slices.Contains(r.Namespaces, seen[0]) {
			t.Fatalf("rule %q (namespaces %v) accepted namespace annotations %v", r.Name, r.Namespaces, seen)
		}
	}
}

func clone(t *testing.T, s *specs.Spec) *specs.Spec {
	t.Helper()
	var c specs.Spec
	if err := json.Unmarshal([]byte(mustJSON(t, s)), &c); err != nil {
		t.Fatal(err)
	}
	return &c
}
