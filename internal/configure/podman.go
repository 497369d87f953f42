package configure

import (
	"fmt"

	"github.com/runc-shared/runc-shared/internal/runtime"
	"github.com/runc-shared/runc-shared/pkg/spec"
)

func (p *Plan) podman() {
	o := p.Options
	p.Targets = append([]Target{{
		Path: o.ConfigFile,
		What: fmt.Sprintf("runtime %q", o.RuntimeName),
		Editor: &tomlEditor{
			ID:  "runtime=" + o.RuntimeName,
			Key: o.RuntimeName,
			Val: []string{o.RuntimePath},
			Locate: func(map[string]any) ([]string, string, error) {
				return []string{"engine", "runtimes"}, "", nil
			},
		},
	}}, hookTargets(o)...)
	if o.Remove {
		return
	}
	run := fmt.Sprintf("then: podman run --runtime %s --annotation %s=NAME --cap-add SYS_ADMIN --device /dev/fuse ...", o.RuntimeName, spec.AnnotationMounter)
	if o.customConfig() {
		run += " --runtime-flag " + runtime.ConfigFlag + "=" + o.RuncSharedConfig + " (containers.conf has no per-runtime arguments)"
	}
	p.Notes = append(p.Notes, "next: nothing to restart, Podman reads containers.conf and hooks.d on every command", run)
	if o.HooksDir != DefaultHooksDir && o.HooksDir != "/etc/containers/oci/hooks.d" {
		p.Notes = append(p.Notes, fmt.Sprintf("warning: Podman does not read %s by default: add it to hooks_dir in containers.conf or pass --hooks-dir", o.HooksDir))
	}
}
