package spec_test

import (
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/runc-shared/runc-shared/internal/hookargs"
	"github.com/runc-shared/runc-shared/pkg/spec"
)

// TestPresentReadsArgsAsMountHook: the wrapper takes a hook at our path for
// ours exactly when mount-hook itself would run that command line as the
// stage, so a flag added to mount-hook cannot make the wrapper inject a
// second hook or skip the only one.
func TestPresentReadsArgsAsMountHook(t *testing.T) {
	const path = "/usr/local/bin/mount-hook"
	inj := spec.InjectHooks{Path: path}
	for _, line := range []string{
		"createRuntime", "poststop", "prestart", "create-runtime", "CREATE_RUNTIME", "PostStop",
		"--config /c.toml createRuntime", "--config=/c.toml poststop", "-config /c.toml createRuntime",
		"--runtime /usr/sbin/runc --root /run/r createRuntime", "--runtime runc poststop",
		"--state-dir /run/runc-shared poststop",
		"", "--version", "--version createRuntime", "-h", "createRuntime extra", "--bogus createRuntime",
		"--config", "--config createRuntime", "--root rel/dir createRuntime", "start", "-- createRuntime",
	} {
		args := []string{"mount-hook"}
		if line != "" {
			args = append(args, strings.Fields(line)...)
		}
		opts, err := hookargs.Parse(args[1:])
		for _, stage := range []hookargs.Stage{hookargs.CreateRuntime, hookargs.Poststop} {
			want := err == nil && (opts.Stage == stage || stage == hookargs.CreateRuntime && opts.Stage == hookargs.Prestart)
			got := inj.Present([]specs.Hook{{Path: path, Args: args}}, stage)
			if got != want {
				t.Errorf("hook args %q at %s: Present = %v, but mount-hook reads them as %+v, %v", args, stage, got, opts, err)
			}
		}
	}
}
