package configure

import (
	"fmt"
	"os"
	"slices"

	"github.com/runc-shared/runc-shared/internal/config"
	"github.com/runc-shared/runc-shared/pkg/spec"
)

// CRI plugin table of each containerd config version: version 1 (also a
// file without "version" for containerd 1.x) names plugins by short ID, 2
// (containerd 1.3 to 1.7) by full ID; 3 (containerd 2.x) split the CRI
// plugin and keeps runtimes in the runtime half.
var containerdCRI = map[int64][]string{
	1: {"plugins", "cri"},
	2: {"plugins", "io.containerd.grpc.v1.cri"},
	3: {"plugins", "io.containerd.cri.v1.runtime"},
}

func (p *plan) containerd(o options) {
	p.targets = []target{{
		Path:   o.ConfigFile,
		What:   fmt.Sprintf("CRI runtime handler %q", o.RuntimeName),
		editor: containerdEditor(o),
	}}
	if o.Remove {
		p.notes = append(p.notes, "next: restart containerd (systemctl restart containerd); running pods keep their runtime")
		return
	}
	p.notes = append(p.notes,
		"next: restart containerd (systemctl restart containerd); running containers survive, their shims are separate processes",
		fmt.Sprintf("then: a RuntimeClass with handler %q (deploy/kubernetes/runtimeclass.yaml) and pods with runtimeClassName and the annotation %s: NAME; ctr run takes --runc-binary %s --annotation %s=NAME",
			o.RuntimeName, spec.AnnotationMounter, o.RuntimePath, spec.AnnotationMounter))
	if o.customConfig() {
		p.notes = append(p.notes, fmt.Sprintf("warning: containerd passes no arguments to a runtime, so runc-shared reads $%s or %s: "+
			"install %s there, or set %s=%s in containerd's environment (a systemd drop-in with Environment=; the shims inherit it)",
			config.EnvVar, config.DefaultPath, o.RuncSharedConfig, config.EnvVar, o.RuncSharedConfig))
	}
	// A file that is missing or no TOML disables nothing (compute reports
	// the latter).
	raw, _ := os.ReadFile(o.ConfigFile)
	doc, _ := decodeTOML(raw)
	dis, _ := doc["disabled_plugins"].([]any)
	if slices.Contains(dis, any("cri")) || slices.Contains(dis, any("io.containerd.grpc.v1.cri")) {
		p.notes = append(p.notes, fmt.Sprintf("warning: %s disables the cri plugin (disabled_plugins): Kubernetes cannot use this containerd until you take it out (Docker's containerd.io package ships it disabled)", o.ConfigFile))
	}
}

// containerdEditor adds the CRI runtime handler: the runc v2 shim with
// BinaryName pointing at runc-shared, and pod_annotations letting the
// mounter annotation through (the CRI plugin passes no pod annotation to
// the OCI spec unless a handler lists it).
func containerdEditor(o options) *tomlEditor {
	return &tomlEditor{
		Key: o.RuntimeName,
		Val: tomlTable{
			{"runtime_type", "io.containerd.runc.v2"},
			{"pod_annotations", []string{spec.AnnotationMounter}},
			{"options", tomlTable{{"BinaryName", o.RuntimePath}}},
		},
		Locate: func(doc map[string]any) ([]string, string, error) {
			prelude := ""
			v, ok := doc["version"].(int64)
			if len(doc) == 0 {
				v, prelude = 2, "version = 2"
			} else if !ok {
				v = 1
			}
			cri, ok := containerdCRI[v]
			if !ok {
				return nil, "", fmt.Errorf("containerd config version %v: want 1, 2 or 3", doc["version"])
			}
			return append(append([]string{}, cri...), "containerd", "runtimes"), prelude, nil
		},
	}
}
