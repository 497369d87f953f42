package spec

import (
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func specWith(ann map[string]string, env ...string) *specs.Spec {
	s := &specs.Spec{Annotations: ann}
	if env != nil {
		s.Process = &specs.Process{Env: env}
	}
	return s
}

func TestMatches(t *testing.T) {
	const ann = AnnotationMounter
	nameCRI, nameCRIO := ContainerNameAnnotations[0], ContainerNameAnnotations[1]
	tests := []struct {
		name  string
		match Match
		spec  *specs.Spec
		want  bool
	}{
		// Annotations: exact key and value.
		{"annotation exact", Match{Annotations: map[string]string{ann: "glusterfs"}},
			specWith(map[string]string{ann: "glusterfs", "other": "x"}), true},
		{"annotation other value", Match{Annotations: map[string]string{ann: "glusterfs"}},
			specWith(map[string]string{ann: "glusterfs2"}), false},
		{"annotation value case", Match{Annotations: map[string]string{ann: "glusterfs"}},
			specWith(map[string]string{ann: "GlusterFS"}), false},
		{"annotation key case", Match{Annotations: map[string]string{ann: "glusterfs"}},
			specWith(map[string]string{"Runc-Shared.io/mounter": "glusterfs"}), false},
		{"annotation missing", Match{Annotations: map[string]string{ann: "glusterfs"}},
			specWith(nil), false},
		{"annotation empty value wanted", Match{Annotations: map[string]string{ann: ""}},
			specWith(map[string]string{ann: ""}), true},
		{"annotation empty value wanted, key absent", Match{Annotations: map[string]string{ann: ""}},
			specWith(map[string]string{}), false},
		{"all annotations must hold", Match{Annotations: map[string]string{ann: "glusterfs", "tier": "storage"}},
			specWith(map[string]string{ann: "glusterfs"}), false},
		{"containerd sandbox never matches", Match{Annotations: map[string]string{ann: "glusterfs"}},
			specWith(map[string]string{ann: "glusterfs", "io.kubernetes.cri.container-type": "sandbox"}), false},
		{"containerd container matches", Match{Annotations: map[string]string{ann: "glusterfs"}},
			specWith(map[string]string{ann: "glusterfs", "io.kubernetes.cri.container-type": "container"}), true},
		{"cri-o sandbox never matches", Match{Annotations: map[string]string{ann: "glusterfs"}},
			specWith(map[string]string{ann: "glusterfs", "io.kubernetes.cri-o.ContainerType": "sandbox"}), false},
		{"dockershim sandbox never matches", Match{AnnotationOrEnv: map[string]string{ann: "glusterfs"}},
			specWith(map[string]string{ann: "glusterfs", "io.kubernetes.docker.type": "podsandbox"}), false},
		{"all annotations hold", Match{Annotations: map[string]string{ann: "glusterfs", "tier": "storage"}},
			specWith(map[string]string{ann: "glusterfs", "tier": "storage"}), true},

		// Env: exact, first entry wins, K= is an empty value, K alone is no value.
		{"env exact", Match{Env: map[string]string{EnvMounter: "glusterfs"}},
			specWith(nil, "PATH=/bin", EnvMounter+"=glusterfs"), true},
		{"env other value", Match{Env: map[string]string{EnvMounter: "glusterfs"}},
			specWith(nil, EnvMounter+"=glusterfsX"), false},
		{"env value with =", Match{Env: map[string]string{"K": "a=b"}},
			specWith(nil, "K=a=b"), true},
		{"env first entry wins (no)", Match{Env: map[string]string{EnvMounter: "glusterfs"}},
			specWith(nil, EnvMounter+"=nfs", EnvMounter+"=glusterfs"), false},
		{"env first entry wins (yes)", Match{Env: map[string]string{EnvMounter: "glusterfs"}},
			specWith(nil, EnvMounter+"=glusterfs", EnvMounter+"=nfs"), true},
		{"env K= is empty value", Match{Env: map[string]string{"K": ""}},
			specWith(nil, "K="), true},
		{"env entry without = has no value", Match{Env: map[string]string{"K": ""}},
			specWith(nil, "K"), false},
		{"env entry without = is skipped, later entry counts", Match{Env: map[string]string{"K": "v"}},
			specWith(nil, "K", "K=v"), true},
		{"env prefix of key", Match{Env: map[string]string{"K": "v"}},
			specWith(nil, "KK=v"), false},
		{"env nil process", Match{Env: map[string]string{"K": "v"}},
			&specs.Spec{}, false},
		{"all env must hold", Match{Env: map[string]string{"A": "1", "B": "2"}},
			specWith(nil, "A=1"), false},

		// Annotation vs env: each condition reads only its own source.
		{"annotation given to env rule", Match{Env: map[string]string{EnvMounter: "glusterfs"}},
			specWith(map[string]string{EnvMounter: "glusterfs"}), false},
		{"env given to annotation rule", Match{Annotations: map[string]string{"name": "glusterfs-mounter"}},
			specWith(nil, "name=glusterfs-mounter"), false},

		// AnnotationOrEnv (seed syntax): either source.
		{"seed via annotation", Match{AnnotationOrEnv: map[string]string{"name": "glusterfs-mounter"}},
			specWith(map[string]string{"name": "glusterfs-mounter"}), true},
		{"seed via env", Match{AnnotationOrEnv: map[string]string{"name": "glusterfs-mounter"}},
			specWith(nil, "name=glusterfs-mounter"), true},
		{"seed wrong annotation, right env", Match{AnnotationOrEnv: map[string]string{"name": "glusterfs-mounter"}},
			specWith(map[string]string{"name": "x"}, "name=glusterfs-mounter"), true},
		{"seed neither", Match{AnnotationOrEnv: map[string]string{"name": "glusterfs-mounter"}},
			specWith(map[string]string{"name": "x"}, "name=y"), false},

		// Mixed conditions: all must hold, partial matches fail.
		{"annotation and env, both", Match{Annotations: map[string]string{ann: "glusterfs"}, Env: map[string]string{"A": "1"}},
			specWith(map[string]string{ann: "glusterfs"}, "A=1"), true},
		{"annotation and env, annotation only", Match{Annotations: map[string]string{ann: "glusterfs"}, Env: map[string]string{"A": "1"}},
			specWith(map[string]string{ann: "glusterfs"}), false},
		{"annotation and env, env only", Match{Annotations: map[string]string{ann: "glusterfs"}, Env: map[string]string{"A": "1"}},
			specWith(nil, "A=1"), false},
		{"annotation and name, wrong name", Match{Annotations: map[string]string{ann: "glusterfs"}, ContainerName: "mounter"},
			specWith(map[string]string{ann: "glusterfs", nameCRI: "other"}), false},

		// ContainerName: strict unless IfRecorded (Docker records none).
		{"name strict, recorded (CRI)", Match{ContainerName: "mounter"},
			specWith(map[string]string{nameCRI: "mounter"}), true},
		{"name strict, recorded (CRI-O)", Match{ContainerName: "mounter"},
			specWith(map[string]string{nameCRIO: "mounter"}), true},
		{"name strict, CRI key consulted first", Match{ContainerName: "mounter"},
			specWith(map[string]string{nameCRI: "other", nameCRIO: "mounter"}), false},
		{"name strict, not recorded", Match{ContainerName: "mounter"},
			specWith(nil), false},
		{"name strict, recorded empty", Match{ContainerName: "mounter"},
			specWith(map[string]string{nameCRI: ""}), false},
		{"name strict, other name", Match{ContainerName: "mounter"},
			specWith(map[string]string{nameCRI: "other"}), false},
		{"name if recorded, not recorded", Match{AnnotationOrEnv: map[string]string{"name": "g"}, ContainerName: "mounter", ContainerNameIfRecorded: true},
			specWith(nil, "name=g"), true},
		{"name if recorded, recorded right", Match{AnnotationOrEnv: map[string]string{"name": "g"}, ContainerName: "mounter", ContainerNameIfRecorded: true},
			specWith(map[string]string{"name": "g", nameCRI: "mounter"}), true},
		{"name if recorded, recorded wrong", Match{AnnotationOrEnv: map[string]string{"name": "g"}, ContainerName: "mounter", ContainerNameIfRecorded: true},
			specWith(map[string]string{"name": "g", nameCRI: "other"}), false},

		// Empty match never matches, whatever the spec.
		{"empty match", Match{}, specWith(map[string]string{ann: "glusterfs"}, EnvMounter+"=glusterfs"), false},
		{"empty maps", Match{Annotations: map[string]string{}, Env: map[string]string{}}, specWith(map[string]string{}), false},
		{"only IfRecorded flag", Match{ContainerNameIfRecorded: true}, specWith(nil), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Rule{Name: "r", Match: tt.match}
			if got := r.Matches(tt.spec); got != tt.want {
				t.Errorf("Matches = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestMatchesNameIfRecordedAlone: a rule whose only condition is a container
// name checked "if recorded" has no condition at all on Docker, which records
// no name. It must not match every Docker container.
//
// BUG (fails today): Matches returns true for any spec without a name
// annotation, so every privileged Docker container would become a mounter.
func TestMatchesNameIfRecordedAlone(t *testing.T) {
	r := &Rule{Name: "r", Match: Match{ContainerName: "mounter", ContainerNameIfRecorded: true}}
	for _, name := range []string{engDockerPlain, engDockerMounter} {
		if r.Matches(parseEngine(t, name).Spec) {
			t.Errorf("%s: a rule with only an unrecorded container name matches", name)
		}
	}
}

func TestEnvValue(t *testing.T) {
	tests := []struct {
		env    []string
		key    string
		want   string
		wantOK bool
	}{
		{[]string{"A=1"}, "A", "1", true},
		{[]string{"A=1", "A=2"}, "A", "1", true},
		{[]string{"A="}, "A", "", true},
		{[]string{"A"}, "A", "", false},
		{[]string{"A", "A=3"}, "A", "3", true},
		{[]string{"=x"}, "", "x", true},
		{[]string{"AB=1"}, "A", "", false},
		{nil, "A", "", false},
	}
	for _, tt := range tests {
		got, ok := EnvValue(specWith(nil, tt.env...), tt.key)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("EnvValue(%q, %q) = %q, %v; want %q, %v", tt.env, tt.key, got, ok, tt.want, tt.wantOK)
		}
	}
	if _, ok := EnvValue(&specs.Spec{}, "A"); ok {
		t.Error("EnvValue with nil process found a value")
	}
}

func TestFindRule(t *testing.T) {
	envRule := Rule{Name: "env", Match: Match{Env: map[string]string{EnvMounter: "glusterfs"}}}
	annRule := Rule{Name: "ann", Match: Match{Annotations: map[string]string{AnnotationMounter: "glusterfs"}}}
	broad := Rule{Name: "broad", Match: Match{AnnotationOrEnv: map[string]string{AnnotationMounter: "glusterfs"}}}
	empty := Rule{Name: "empty"}
	s := specWith(map[string]string{AnnotationMounter: "glusterfs"}, EnvMounter+"=glusterfs")
	tests := []struct {
		name  string
		rules []Rule
		spec  *specs.Spec
		want  string
	}{
		{"first of two matching", []Rule{annRule, envRule}, s, "ann"},
		{"order decides", []Rule{envRule, annRule}, s, "env"},
		{"skips non-matching", []Rule{empty, envRule, annRule}, specWith(nil, EnvMounter+"=glusterfs"), "env"},
		{"broad later", []Rule{annRule, broad}, specWith(nil, AnnotationMounter+"=glusterfs"), "broad"},
		{"none", []Rule{annRule, envRule}, specWith(nil), ""},
		{"no rules", nil, s, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := FindRule(tt.rules, tt.spec)
			switch {
			case tt.want == "" && got != nil:
				t.Errorf("FindRule = %q, want nil", got.Name)
			case tt.want != "" && got == nil:
				t.Errorf("FindRule = nil, want %q", tt.want)
			case got != nil && got.Name != tt.want:
				t.Errorf("FindRule = %q, want %q", got.Name, tt.want)
			}
			// The result points into the slice, not at a copy.
			if got != nil && got != &tt.rules[indexOf(tt.rules, got.Name)] {
				t.Error("FindRule returned a copy, not the caller's rule")
			}
		})
	}
}

func indexOf(rules []Rule, name string) int {
	for i := range rules {
		if rules[i].Name == name {
			return i
		}
	}
	return -1
}

// TestMatchesEngineConfigs matches the configs captured from the real engines:
// Docker passes only env, containerd and Podman pass annotations, nobody passes
// labels, and a plain container matches nothing.
func TestMatchesEngineConfigs(t *testing.T) {
	rules := []Rule{
		{Name: "by-annotation", Match: Match{Annotations: map[string]string{AnnotationMounter: "glusterfs"}}},
		{Name: "by-env", Match: Match{Env: map[string]string{EnvMounter: "glusterfs"}}},
	}
	seed := []Rule{
		{Name: "seed-ann", Match: Match{AnnotationOrEnv: map[string]string{AnnotationMounter: "glusterfs"}, ContainerName: "mounter", ContainerNameIfRecorded: true}},
		{Name: "seed-env", Match: Match{AnnotationOrEnv: map[string]string{EnvMounter: "glusterfs"}, ContainerName: "mounter", ContainerNameIfRecorded: true}},
	}
	strictName := Rule{Name: "strict", Match: Match{AnnotationOrEnv: map[string]string{EnvMounter: "glusterfs"}, ContainerName: "mounter"}}
	tests := []struct {
		engine      string
		want, seed  string
		strictMatch bool
	}{
		{engDockerMounter, "by-env", "seed-env", false},
		{engContainerd, "by-annotation", "seed-ann", false},
		{engPodman, "by-annotation", "seed-ann", false},
		{engDockerPlain, "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.engine, func(t *testing.T) {
			s := parseEngine(t, tt.engine).Spec
			for _, c := range []struct {
				rules []Rule
				want  string
			}{{rules, tt.want}, {seed, tt.seed}} {
				got := FindRule(c.rules, s)
				gotName := ""
				if got != nil {
					gotName = got.Name
				}
				if gotName != c.want {
					t.Errorf("FindRule = %q, want %q", gotName, c.want)
				}
			}
			// No engine records a container name outside Kubernetes.
			if strictName.Matches(s) != tt.strictMatch {
				t.Errorf("strict container-name rule: Matches = %v", !tt.strictMatch)
			}
		})
	}
}

func TestMatchEmpty(t *testing.T) {
	tests := []struct {
		m    Match
		want bool
	}{
		{Match{}, true},
		{Match{ContainerNameIfRecorded: true}, true},
		{Match{Annotations: map[string]string{}}, true},
		{Match{Annotations: map[string]string{"a": ""}}, false},
		{Match{Env: map[string]string{"a": "b"}}, false},
		{Match{ContainerName: "x"}, false},
		{Match{AnnotationOrEnv: map[string]string{"a": "b"}}, false},
	}
	for _, tt := range tests {
		if got := tt.m.Empty(); got != tt.want {
			t.Errorf("%+v.Empty() = %v, want %v", tt.m, got, tt.want)
		}
	}
}

func TestRoutes(t *testing.T) {
	r := &Rule{FSTypes: []string{"glusterfs", "fuse.sshfs"}}
	for fs, want := range map[string]bool{"glusterfs": true, "fuse.sshfs": true, "nfs": false, "": false, "GlusterFS": false} {
		if got := r.Routes(fs); got != want {
			t.Errorf("Routes(%q) = %v, want %v", fs, got, want)
		}
	}
}
