//lint:file-ignore SA1019 runc 1.1 still runs prestart hooks: the tests cover them.

package spec

import (
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestValidateRewrite(t *testing.T) {
	hooks := func(h specs.Hooks) func(*specs.Spec) { return func(s *specs.Spec) { s.Hooks = &h } }
	tests := []struct {
		name    string
		mutate  func(*specs.Spec)
		pattern string // "" means valid
	}{
		{"rewritten engine config", nil, ""},
		{"every valid rootfsPropagation", func(s *specs.Spec) { s.Linux.RootfsPropagation = "runbindable" }, ""},
		{"empty rootfsPropagation", func(s *specs.Spec) { s.Linux.RootfsPropagation = "" }, ""},
		{"nil linux", func(s *specs.Spec) { s.Linux = nil }, ""},
		{"invalid rootfsPropagation", func(s *specs.Spec) { s.Linux.RootfsPropagation = "rshard" },
			`^invalid linux\.rootfsPropagation "rshard"$`},
		{"rootfsPropagation is not an option list", func(s *specs.Spec) { s.Linux.RootfsPropagation = "rshared,rbind" },
			`^invalid linux\.rootfsPropagation "rshared,rbind"$`},
		{"conflicting propagation with rshared", func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, bind("/data", "/srv/data", "rbind", "rprivate", "rshared"))
		}, `^mount /data has conflicting propagation options \[rbind rprivate rshared\]$`},
		{"rshared then slave", func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/data", Source: "/srv/data", Options: []string{"rshared", "rbind", "slave"}})
		}, `^mount /data has conflicting propagation options \[rshared rbind slave\]$`},
		{"single rshared", func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, bind("/data", "/srv/data", "rbind", "rshared"))
		}, ""},
		{"relative bind source is runc's business", func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, bind("/data", "data", "rbind", "rprivate", "rshared"))
		}, ""},
		{"relative mount destination", func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, bind("data", "/srv/data", "rbind"))
		}, `^mount destination "data" is not absolute$`},
		{"relative createRuntime hook", hooks(specs.Hooks{CreateRuntime: []specs.Hook{{Path: "/usr/bin/mount-hook"}, {Path: "mount-hook"}}}),
			`^hook path "mount-hook" is not absolute$`},
		{"relative prestart hook", hooks(specs.Hooks{Prestart: []specs.Hook{{Path: "./hook"}}}), //nolint:staticcheck // runc 1.1 still runs prestart
			`^hook path "\./hook" is not absolute$`},
		{"relative poststop hook", hooks(specs.Hooks{Poststop: []specs.Hook{{Path: "bin/hook"}}}),
			`^hook path "bin/hook" is not absolute$`},
		{"empty hook path", hooks(specs.Hooks{StartContainer: []specs.Hook{{Path: ""}}}),
			`^hook path "" is not absolute$`},
		{"absolute hooks", hooks(specs.Hooks{
			CreateRuntime:   []specs.Hook{{Path: "/usr/bin/mount-hook", Args: []string{"mount-hook", "create-runtime"}}},
			CreateContainer: []specs.Hook{{Path: "/a"}}, StartContainer: []specs.Hook{{Path: "/b"}},
			Poststart: []specs.Hook{{Path: "/c"}}, Poststop: []specs.Hook{{Path: "/d"}},
		}), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := parseEngine(t, engPodman)
			rewrite(t, d, prefixResolver(hostSource))
			if tt.mutate != nil {
				tt.mutate(d.Spec)
			}
			wantErr(t, ValidateRewrite(d.Spec), tt.pattern)
		})
	}
}

// TestValidateRewriteEngineConfigs: every captured config, rewritten, passes.
func TestValidateRewriteEngineConfigs(t *testing.T) {
	for _, name := range engineConfigs {
		d := parseEngine(t, name)
		rewrite(t, d, prefixResolver("/var/lib/example"))
		if err := ValidateRewrite(d.Spec); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}
