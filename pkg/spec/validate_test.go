//lint:file-ignore SA1019 runc 1.1 still runs prestart hooks: the tests cover them.

package spec

import (
	"strings"
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
		{"conflicting propagation on a relative bind source", func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, bind("/data", "data", "rbind", "rprivate", "rshared"))
		}, `^mount /data has conflicting propagation options \[rbind rprivate rshared\]$`},
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

// TestValidateChanges: what the engine wrote and the rewrite left alone is
// runc's to judge (runc takes a relative mount destination relative to the
// root, for one); what the modifiers wrote is checked.
func TestValidateChanges(t *testing.T) {
	const base = `{"ociVersion":"1.0.2","mounts":[` +
		`{"destination":"/proc","type":"proc","source":"proc"},` +
		`{"destination":"/k","type":"bind","source":"/var/lib/example/host","options":["rbind","rprivate"]}` +
		`ENGINE_MOUNTS],"hooks":{"poststop":[ENGINE_HOOKS]},"linux":{"namespaces":[{"type":"mount"}]ENGINE_LINUX}}`
	doc := func(mounts, hooks, linux string) string {
		return strings.NewReplacer("ENGINE_MOUNTS", mounts, "ENGINE_HOOKS", hooks, "ENGINE_LINUX", linux).Replace(base)
	}
	full := Modifiers((&SharedBinds{Resolver: prefixResolver("/var/lib/example")}).Modify, RootfsPropagation("rshared").Modify,
		InjectHooks{Path: "/usr/local/bin/mount-hook"}.Modify)
	appendMount := func(m specs.Mount) Modifier {
		return func(s *specs.Spec) error { s.Mounts = append(s.Mounts, m); return nil }
	}
	tests := []struct {
		name    string
		doc     string
		modify  Modifier
		pattern string // "" means valid
	}{
		{"engine's relative destination, untouched",
			doc(`,{"destination":"data","type":"tmpfs","source":"tmpfs"}`, "", ""), full, ""},
		{"engine's relative destination of an allowlisted bind, rewritten",
			doc(`,{"destination":"kubelet","type":"bind","source":"/var/lib/example/x","options":["rbind"]}`, "", ""), full, ""},
		{"engine's relative hook path, untouched",
			doc("", `{"path":"bin/hook"}`, ""), full, ""},
		{"engine's conflicting propagation on a bind it owns",
			doc(`,{"destination":"/x","type":"bind","source":"/srv/x","options":["rbind","rprivate","rshared"]}`, "", ""), full, ""},
		{"engine's invalid rootfsPropagation, rewritten",
			doc("", "", `,"rootfsPropagation":"bogus"`), full, ""},
		{"engine's invalid rootfsPropagation, untouched",
			doc("", "", `,"rootfsPropagation":"bogus"`), InjectHooks{Path: "/usr/local/bin/mount-hook"}.Modify, ""},
		{"two equal engine mounts",
			doc(`,{"destination":"d","type":"tmpfs"},{"destination":"d","type":"tmpfs"}`, "", ""), full, ""},
		{"added mount with a relative destination",
			doc("", "", ""), Modifiers(full, appendMount(specs.Mount{Destination: "etc/ld.so.preload", Type: "bind", Source: "/b", Options: []string{"rbind"}})),
			`^mount destination "etc/ld\.so\.preload" is not absolute$`},
		{"added mount at a destination the engine also mounts",
			doc(`,{"destination":"data","type":"tmpfs"}`, "", ""), Modifiers(full, appendMount(specs.Mount{Destination: "data", Type: "tmpfs", Options: []string{"ro"}})),
			`^mount destination "data" is not absolute$`},
		{"rewritten mount with conflicting propagation",
			doc("", "", ""), Modifiers(full, func(s *specs.Spec) error {
				for i := range s.Mounts {
					if s.Mounts[i].Destination == "/k" {
						s.Mounts[i].Options = append(s.Mounts[i].Options, "rslave")
					}
				}
				return nil
			}), `^mount /k has conflicting propagation options \[rbind rshared rslave\]$`},
		{"added hook with a relative path",
			doc("", "", ""), InjectHooks{Path: "mount-hook"}.Modify, `^hook path "mount-hook" is not absolute$`},
		{"invalid rootfsPropagation written",
			doc("", "", ""), RootfsPropagation("rshared,rbind").Modify, `^invalid linux\.rootfsPropagation "rshared,rbind"$`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := parseBytes(t, []byte(strings.Replace(tt.doc, `"poststop":[]`, `"poststop":null`, 1)))
			if err := tt.modify(d.Spec); err != nil {
				t.Fatal(err)
			}
			wantErr(t, d.ValidateChanges(), tt.pattern)
		})
	}
}
