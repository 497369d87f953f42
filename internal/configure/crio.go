package configure

import (
	"fmt"

	"github.com/runc-shared/runc-shared/internal/config"
)

// crio is written from CRI-O's documentation (crio.conf(5), "CRIO.RUNTIME.RUNTIMES
// TABLE") and is untested: CRI-O is not packaged on the machines the tests
// run on.
func (p *Plan) crio() {
	o := p.Options
	p.Targets = append([]Target{{
		Path: o.ConfigFile,
		What: fmt.Sprintf("runtime handler %q (untested)", o.RuntimeName),
		Editor: &tomlEditor{
			ID:  "runtime=" + o.RuntimeName,
			Key: o.RuntimeName,
			// No allowed_annotations: that list is for CRI-O's own
			// io.kubernetes.cri-o.* annotations. Whether a pod
			// annotation reaches the container's spec is untested:
			// deploy/README.md suggests matching CRI-O mounters on env.
			Val: tomlTable{
				{"runtime_path", o.RuntimePath},
				{"runtime_type", "oci"},
			},
			Locate: func(map[string]any) ([]string, string, error) {
				return []string{"crio", "runtime", "runtimes"}, "", nil
			},
		},
	}}, hookTargets(o)...)
	if o.Remove {
		p.Notes = append(p.Notes, "next: restart CRI-O (systemctl restart crio)")
		return
	}
	p.Notes = append(p.Notes,
		"note: the CRI-O configuration is written from its documentation and untested",
		fmt.Sprintf("next: restart CRI-O (systemctl restart crio); then a RuntimeClass with handler %q", o.RuntimeName))
	if o.HooksDir != DefaultHooksDir {
		p.Notes = append(p.Notes, fmt.Sprintf("warning: CRI-O reads only %s by default: add %s to hooks_dir in crio.conf", DefaultHooksDir, o.HooksDir))
	}
	if o.customConfig() {
		p.Notes = append(p.Notes, fmt.Sprintf("warning: CRI-O passes no arguments to a runtime, so runc-shared reads $%s or %s: install %s there", config.EnvVar, config.DefaultPath, o.RuncSharedConfig))
	}
}
