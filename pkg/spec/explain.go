package spec

import (
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Mismatch is the first condition of a rule that a spec does not meet. The
// wrapper logs it at debug level to say why a create passed through, so an
// operator can tell a typo in a rule from an engine that drops annotations.
type Mismatch struct {
	Rule string
	// What names the condition: "annotation", "env", "annotation or env",
	// "container name", or "sandbox" (a Kubernetes pod sandbox is never a
	// mounter), or "no condition" (an empty match, refused by config load).
	What string
	// Key is the annotation or env name; Want the value the rule asks for.
	Key, Want string
	// Got is the spec's value, when Present.
	Got     string
	Present bool
}

func (m *Mismatch) String() string {
	what := m.What
	if m.Key != "" {
		what += " " + m.Key
	}
	switch {
	case m.What == "sandbox":
		return fmt.Sprintf("rule %q: a Kubernetes pod sandbox container never matches", m.Rule)
	case m.What == "no condition":
		return fmt.Sprintf("rule %q: no match condition", m.Rule)
	case !m.Present:
		return fmt.Sprintf("rule %q: %s not set (want %q)", m.Rule, what, m.Want)
	}
	return fmt.Sprintf("rule %q: %s is %q, not %q", m.Rule, what, m.Got, m.Want)
}

// Mismatch returns the first condition of the rule that s does not meet, or
// nil when the rule matches. Conditions are checked in a fixed order
// (annotations, env, annotation-or-env, each by key, then the container
// name), so the answer is the same on every run.
func (r *Rule) Mismatch(s *specs.Spec) *Mismatch {
	m := r.Match
	if m.Empty() {
		return &Mismatch{Rule: r.Name, What: "no condition"}
	}
	if IsSandbox(s) {
		return &Mismatch{Rule: r.Name, What: "sandbox"}
	}
	annotation := func(k string) (string, bool) {
		v, ok := s.Annotations[k]
		return v, ok
	}
	env := func(k string) (string, bool) { return EnvValue(s, k) }
	either := func(k string) (string, bool) {
		want := m.AnnotationOrEnv[k]
		a, aok := annotation(k)
		if aok && a == want {
			return a, true
		}
		if e, eok := env(k); eok && (e == want || !aok) {
			return e, true
		}
		return a, aok
	}
	for _, c := range []struct {
		what string
		want map[string]string
		get  func(string) (string, bool)
	}{
		{"annotation", m.Annotations, annotation},
		{"env", m.Env, env},
		{"annotation or env", m.AnnotationOrEnv, either},
	} {
		if x := firstMiss(c.want, c.get); x != nil {
			x.Rule, x.What = r.Name, c.what
			return x
		}
	}
	if m.ContainerName != "" {
		name, ok := ContainerName(s)
		// An "if recorded" name alone would match every container of an
		// engine that records none.
		if !ok && (!m.ContainerNameIfRecorded || len(m.Annotations)+len(m.Env)+len(m.AnnotationOrEnv) == 0) {
			return &Mismatch{Rule: r.Name, What: "container name", Want: m.ContainerName}
		}
		if ok && name != m.ContainerName {
			return &Mismatch{Rule: r.Name, What: "container name", Want: m.ContainerName, Got: name, Present: true}
		}
	}
	return nil
}

// firstMiss returns the smallest key of want whose value get does not give,
// or nil. Taking the smallest, not the first in map order, keeps the answer
// stable without sorting on every call.
func firstMiss(want map[string]string, get func(string) (string, bool)) *Mismatch {
	var miss *Mismatch
	for k, v := range want {
		if miss != nil && k > miss.Key {
			continue
		}
		if got, ok := get(k); !ok || got != v {
			miss = &Mismatch{Key: k, Want: v, Got: got, Present: ok}
		}
	}
	return miss
}
