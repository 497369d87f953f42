//lint:file-ignore SA1019 runc 1.1 still runs prestart hooks: the tests cover them.

package spec

import (
	"encoding/json"
	"reflect"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/runc-shared/runc-shared/internal/hookargs"
)

func hook(path string, args ...string) specs.Hook {
	return specs.Hook{Path: path, Args: args}
}

func TestInjectHooks(t *testing.T) {
	inj := InjectHooks{
		Path:    "/usr/local/bin/mount-hook",
		Config:  "/etc/runc-shared/config.toml",
		Runtime: "/usr/sbin/runc",
		Root:    "/run/containerd/runc/k8s.io",
	}
	ten := 10
	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	want := func(stage string) specs.Hook {
		return specs.Hook{
			Path: "/usr/local/bin/mount-hook",
			Args: []string{"mount-hook", "--config", "/etc/runc-shared/config.toml", "--runtime", "/usr/sbin/runc",
				"--root", "/run/containerd/runc/k8s.io", stage},
			Env:     env,
			Timeout: &ten,
		}
	}
	other := hook("/usr/libexec/oci/hooks.d/nvidia", "nvidia", "prestart")
	podmans := hook("/usr/local/bin/mount-hook", "mount-hook", "createRuntime")
	for _, tc := range []struct {
		name string
		in   *specs.Hooks
		want *specs.Hooks
	}{
		{"no hooks", nil, &specs.Hooks{
			CreateRuntime: []specs.Hook{want("createRuntime")},
			Poststop:      []specs.Hook{want("poststop")},
		}},
		{"empty hooks", &specs.Hooks{}, &specs.Hooks{
			CreateRuntime: []specs.Hook{want("createRuntime")},
			Poststop:      []specs.Hook{want("poststop")},
		}},
		{"other hooks stay first", &specs.Hooks{CreateRuntime: []specs.Hook{other}, Poststop: []specs.Hook{other}, Poststart: []specs.Hook{other}}, &specs.Hooks{
			CreateRuntime: []specs.Hook{other, want("createRuntime")},
			Poststop:      []specs.Hook{other, want("poststop")},
			Poststart:     []specs.Hook{other},
		}},
		// Podman runs hooks.d poststop hooks itself, outside the spec.
		{"podman added createRuntime from hooks.d", &specs.Hooks{CreateRuntime: []specs.Hook{podmans}}, &specs.Hooks{
			CreateRuntime: []specs.Hook{podmans},
		}},
		{"both stages present", &specs.Hooks{CreateRuntime: []specs.Hook{podmans}, Poststop: []specs.Hook{hook("/opt/x/mount-hook")}}, &specs.Hooks{
			CreateRuntime: []specs.Hook{podmans},
			Poststop:      []specs.Hook{hook("/opt/x/mount-hook")},
		}},
		{"legacy prestart counts for createRuntime", &specs.Hooks{Prestart: []specs.Hook{podmans}}, &specs.Hooks{
			Prestart: []specs.Hook{podmans},
		}},
		// Only our binary with a command line mount-hook runs as the stage
		// is our hook: anything else named mount-hook verifies nothing.
		{"a mount-hook at another path is not ours", &specs.Hooks{
			CreateRuntime: []specs.Hook{hook("/tmp/x/mount-hook", "mount-hook", "createRuntime")},
			Poststop:      []specs.Hook{hook("/opt/x/mount-hook", "mount-hook", "poststop")},
		}, &specs.Hooks{
			CreateRuntime: []specs.Hook{hook("/tmp/x/mount-hook", "mount-hook", "createRuntime"), want("createRuntime")},
			Poststop:      []specs.Hook{hook("/opt/x/mount-hook", "mount-hook", "poststop"), want("poststop")},
		}},
		{"our path with a command line that does not run the stage", &specs.Hooks{CreateRuntime: []specs.Hook{
			hook("/usr/local/bin/mount-hook"),
			hook("/usr/local/bin/mount-hook", "mount-hook", "--version", "createRuntime"),
			hook("/usr/local/bin/mount-hook", "mount-hook", "createRuntime", "extra"),
			hook("/usr/local/bin/mount-hook", "mount-hook", "--bogus", "createRuntime"),
			hook("/usr/local/bin/mount-hook", "mount-hook", "poststop"),
			hook("/usr/local/bin/mount-hook", "mount-hook", "--config", "/etc/other.toml", "createRuntime"),
		}}, &specs.Hooks{
			CreateRuntime: []specs.Hook{
				hook("/usr/local/bin/mount-hook"),
				hook("/usr/local/bin/mount-hook", "mount-hook", "--version", "createRuntime"),
				hook("/usr/local/bin/mount-hook", "mount-hook", "createRuntime", "extra"),
				hook("/usr/local/bin/mount-hook", "mount-hook", "--bogus", "createRuntime"),
				hook("/usr/local/bin/mount-hook", "mount-hook", "poststop"),
				hook("/usr/local/bin/mount-hook", "mount-hook", "--config", "/etc/other.toml", "createRuntime"),
				want("createRuntime"),
			},
			Poststop: []specs.Hook{want("poststop")},
		}},
		{"our hook in another spelling", &specs.Hooks{CreateRuntime: []specs.Hook{
			hook("/usr/local//bin/mount-hook", "hook", "--config=/etc/runc-shared/config.toml", "-runtime", "/usr/sbin/runc", "create-runtime"),
		}}, &specs.Hooks{CreateRuntime: []specs.Hook{
			hook("/usr/local//bin/mount-hook", "hook", "--config=/etc/runc-shared/config.toml", "-runtime", "/usr/sbin/runc", "create-runtime"),
		}}},
		{"only the base name counts", &specs.Hooks{
			CreateRuntime:  []specs.Hook{hook("/opt/mount-hook-old/runner"), hook("/opt/bin/mount-hook.sh")},
			StartContainer: []specs.Hook{hook("/usr/bin/mount-hook")},
		}, &specs.Hooks{
			CreateRuntime:  []specs.Hook{hook("/opt/mount-hook-old/runner"), hook("/opt/bin/mount-hook.sh"), want("createRuntime")},
			StartContainer: []specs.Hook{hook("/usr/bin/mount-hook")},
			Poststop:       []specs.Hook{want("poststop")},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &specs.Spec{Hooks: tc.in}
			if err := inj.Modify(s); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(s.Hooks, tc.want) {
				got, _ := json.MarshalIndent(s.Hooks, "", " ")
				exp, _ := json.MarshalIndent(tc.want, "", " ")
				t.Errorf("hooks:\n%s\nwant:\n%s", got, exp)
			}
			// Idempotent: the wrapper may see its own rewrite again (a
			// retried create).
			before, _ := json.Marshal(s.Hooks)
			if err := inj.Modify(s); err != nil {
				t.Fatal(err)
			}
			after, _ := json.Marshal(s.Hooks)
			if string(before) != string(after) {
				t.Errorf("a second Modify changed the hooks:\n%s\n%s", before, after)
			}
		})
	}
}

func TestInjectHooksArgs(t *testing.T) {
	for _, tc := range []struct {
		name string
		inj  InjectHooks
		args []string
		tout int
	}{
		{"no optional flags", InjectHooks{Path: "/b/mount-hook"}, []string{"mount-hook", "poststop"}, 10},
		{"config only", InjectHooks{Path: "/b/mount-hook", Config: "/c.toml"}, []string{"mount-hook", "--config", "/c.toml", "poststop"}, 10},
		{"default root omitted", InjectHooks{Path: "/b/mount-hook", Runtime: "/usr/sbin/runc"},
			[]string{"mount-hook", "--runtime", "/usr/sbin/runc", "poststop"}, 10},
		{"all flags", InjectHooks{Path: "/b/mount-hook", Config: "/c.toml", Runtime: "runc", Root: "/run/r", StateDir: "/run/rs"},
			[]string{"mount-hook", "--config", "/c.toml", "--runtime", "runc", "--root", "/run/r", "--state-dir", "/run/rs", "poststop"}, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.inj.Hook(hookargs.Poststop)
			if !reflect.DeepEqual(h.Args, tc.args) {
				t.Errorf("args = %q, want %q", h.Args, tc.args)
			}
			if h.Timeout == nil || *h.Timeout != tc.tout {
				t.Errorf("timeout = %v, want %d", h.Timeout, tc.tout)
			}
			if h.Path != "/b/mount-hook" {
				t.Errorf("path = %q", h.Path)
			}
			if !reflect.DeepEqual(h.Env, HookEnv) {
				t.Errorf("env = %q, want only %q", h.Env, HookEnv)
			}
		})
	}
	// The env slice is the hook's own: changing it must not change HookEnv.
	h := InjectHooks{Path: "/b/mount-hook"}.Hook(hookargs.Poststop)
	h.Env[0] = "PATH=/tmp"
	if HookEnv[0] == "PATH=/tmp" {
		t.Error("Hook shares HookEnv's backing array")
	}
}

// TestInjectHooksNeverCopiesContainerEnv: the container's env (an image may
// set PATH or LD_PRELOAD) must never reach a hook that runs on the host.
func TestInjectHooksNeverCopiesContainerEnv(t *testing.T) {
	s := &specs.Spec{Process: &specs.Process{Env: []string{"PATH=/evil", "LD_PRELOAD=/evil.so"}}}
	if err := (InjectHooks{Path: "/b/mount-hook"}).Modify(s); err != nil {
		t.Fatal(err)
	}
	for _, h := range append(s.Hooks.CreateRuntime, s.Hooks.Poststop...) {
		if !reflect.DeepEqual(h.Env, HookEnv) {
			t.Errorf("hook env = %q, want %q", h.Env, HookEnv)
		}
	}
}

// TestInjectHooksEncodesLosslessly: on real engine captures the rewrite
// touches hooks and nothing else, unknown fields included.
func TestInjectHooksEncodesLosslessly(t *testing.T) {
	for _, name := range engineConfigs {
		t.Run(name, func(t *testing.T) {
			orig := readEngine(t, name)
			d := parseBytes(t, orig)
			if err := (InjectHooks{Path: "/usr/local/bin/mount-hook", Runtime: "/usr/sbin/runc"}).Modify(d.Spec); err != nil {
				t.Fatal(err)
			}
			out, err := d.Encode()
			if err != nil {
				t.Fatal(err)
			}
			assertOnlyChanged(t, orig, out, "hooks")
			if err := ValidateRewrite(d.Spec); err != nil {
				t.Errorf("ValidateRewrite: %v", err)
			}
			var back specs.Spec
			if err := json.Unmarshal(out, &back); err != nil {
				t.Fatal(err)
			}
			if !HasHook(back.Hooks.CreateRuntime) || !HasHook(back.Hooks.Poststop) {
				t.Errorf("hooks after encoding: %+v", back.Hooks)
			}
		})
	}
}
