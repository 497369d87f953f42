package spec

import (
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestMismatch pins the reason the wrapper logs for a container that passes
// through: the rule and the first condition that failed, with both values.
func TestMismatch(t *testing.T) {
	const ann = AnnotationMounter
	name := ContainerNameAnnotations[0]
	for _, tc := range []struct {
		name  string
		match Match
		spec  *specs.Spec
		want  string // "" means the rule matches
	}{
		{"matches", Match{Annotations: map[string]string{ann: "glusterfs"}},
			specWith(map[string]string{ann: "glusterfs"}), ""},
		{"annotation missing", Match{Annotations: map[string]string{ann: "glusterfs"}},
			specWith(nil), `rule "r": annotation runc-shared.io/mounter not set (want "glusterfs")`},
		{"annotation differs", Match{Annotations: map[string]string{ann: "glusterfs"}},
			specWith(map[string]string{ann: "ceph"}), `rule "r": annotation runc-shared.io/mounter is "ceph", not "glusterfs"`},
		{"smallest failing key first", Match{Annotations: map[string]string{"b": "1", "a": "1", "c": "1"}},
			specWith(map[string]string{"a": "0", "b": "0", "c": "0"}), `rule "r": annotation a is "0", not "1"`},
		{"annotations before env", Match{Annotations: map[string]string{"z": "1"}, Env: map[string]string{"A": "1"}},
			specWith(nil), `rule "r": annotation z not set (want "1")`},
		{"env", Match{Env: map[string]string{EnvMounter: "glusterfs"}},
			specWith(nil, "PATH=/bin"), `rule "r": env RUNC_SHARED_MOUNTER not set (want "glusterfs")`},
		{"annotation or env: env value shown", Match{AnnotationOrEnv: map[string]string{"name": "m"}},
			specWith(nil, "name=x"), `rule "r": annotation or env name is "x", not "m"`},
		{"annotation or env: neither", Match{AnnotationOrEnv: map[string]string{"name": "m"}},
			specWith(nil), `rule "r": annotation or env name not set (want "m")`},
		{"annotation or env: env holds", Match{AnnotationOrEnv: map[string]string{"name": "m"}},
			specWith(map[string]string{"name": "x"}, "name=m"), ""},
		{"container name differs", Match{Annotations: map[string]string{ann: "g"}, ContainerName: "mounter"},
			specWith(map[string]string{ann: "g", name: "web"}), `rule "r": container name is "web", not "mounter"`},
		{"container name not recorded", Match{ContainerName: "mounter"},
			specWith(nil), `rule "r": container name not set (want "mounter")`},
		{"sandbox", Match{Annotations: map[string]string{ann: "g"}},
			specWith(map[string]string{ann: "g", "io.kubernetes.cri.container-type": "sandbox"}),
			`rule "r": a Kubernetes pod sandbox container never matches`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &Rule{Name: "r", Match: tc.match}
			// Map order is random: the same answer every time.
			for range 20 {
				got := ""
				if m := r.Mismatch(tc.spec); m != nil {
					got = m.String()
				}
				if got != tc.want {
					t.Fatalf("Mismatch = %q, want %q", got, tc.want)
				}
				if r.Matches(tc.spec) != (tc.want == "") {
					t.Fatalf("Matches = %v, but Mismatch = %q", r.Matches(tc.spec), got)
				}
			}
		})
	}
}
