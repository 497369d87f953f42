package configure

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/runc-shared/runc-shared/internal/config"
	"github.com/runc-shared/runc-shared/internal/hookargs"
	"github.com/runc-shared/runc-shared/internal/runtime"
	"github.com/runc-shared/runc-shared/pkg/spec"
)

// Podman and CRI-O run mount-hook from hooks.d files; their configuration
// only names the runtime, in a TOML table of its own.

func (p *plan) podman(o options) {
	p.hooksDEngine(o, fmt.Sprintf("runtime %q", o.RuntimeName), []string{"engine", "runtimes"}, []string{o.RuntimePath})
	if o.Remove {
		return
	}
	run := fmt.Sprintf("then: podman run --runtime %s --annotation %s=NAME --cap-add SYS_ADMIN --device /dev/fuse ...", o.RuntimeName, spec.AnnotationMounter)
	if o.customConfig() {
		run += " --runtime-flag " + runtime.ConfigFlag + "=" + o.RuncSharedConfig + " (containers.conf has no per-runtime arguments)"
	}
	p.notes = append(p.notes, "next: nothing to restart, Podman reads containers.conf and hooks.d on every command", run)
	if o.HooksDir != defaultHooksDir && o.HooksDir != "/etc/containers/oci/hooks.d" {
		p.notes = append(p.notes, fmt.Sprintf("warning: Podman does not read %s by default: add it to hooks_dir in containers.conf or pass --hooks-dir", o.HooksDir))
	}
}

// crio is written from CRI-O's documentation (crio.conf(5), "CRIO.RUNTIME.RUNTIMES
// TABLE") and is untested: CRI-O is not packaged on the machines the tests
// run on.
func (p *plan) crio(o options) {
	// No allowed_annotations: that list is for CRI-O's own
	// io.kubernetes.cri-o.* annotations. Whether a pod annotation reaches
	// the container's spec is untested: deploy/README.md suggests matching
	// CRI-O mounters on env.
	p.hooksDEngine(o, fmt.Sprintf("runtime handler %q (untested)", o.RuntimeName), []string{"crio", "runtime", "runtimes"},
		tomlTable{{"runtime_path", o.RuntimePath}, {"runtime_type", "oci"}})
	if o.Remove {
		p.notes = append(p.notes, "next: restart CRI-O (systemctl restart crio)")
		return
	}
	p.notes = append(p.notes,
		"note: the CRI-O configuration is written from its documentation and untested",
		fmt.Sprintf("next: restart CRI-O (systemctl restart crio); then a RuntimeClass with handler %q", o.RuntimeName))
	if o.HooksDir != defaultHooksDir {
		p.notes = append(p.notes, fmt.Sprintf("warning: CRI-O reads only %s by default: add %s to hooks_dir in crio.conf", defaultHooksDir, o.HooksDir))
	}
	if o.customConfig() {
		p.notes = append(p.notes, fmt.Sprintf("warning: CRI-O passes no arguments to a runtime, so runc-shared reads $%s or %s: install %s there", config.EnvVar, config.DefaultPath, o.RuncSharedConfig))
	}
}

// HookFiles maps the hooks.d file names to their stage; the same files
// are in the repository's hooks.d/ (a test keeps them in step).
var HookFiles = map[string]string{
	"runc-shared-mount-hook.json":          "createRuntime",
	"runc-shared-mount-hook-poststop.json": "poststop",
}

// hooksDEngine makes the targets of an engine that reads hooks.d: the
// runtime entry val at table in its configuration, then the two hook files.
func (p *plan) hooksDEngine(o options, what string, table []string, val any) {
	p.targets = []target{{
		Path: o.ConfigFile,
		What: what,
		editor: &tomlEditor{Key: o.RuntimeName, Val: val,
			Locate: func(map[string]any) ([]string, string, error) { return table, "", nil }},
	}}
	// A state dir other than the default goes on the hook's command line, as
	// the wrapper does for the hook it injects: poststop then finds the
	// mounter's record even when the configuration is gone or broken.
	stateDir, ok := config.StateDirOf(o.configArg())
	if !ok || stateDir == config.DefaultStateDir {
		stateDir = ""
	}
	for _, name := range []string{"runc-shared-mount-hook.json", "runc-shared-mount-hook-poststop.json"} {
		stage := HookFiles[name]
		p.targets = append(p.targets, target{
			Path:   filepath.Join(o.HooksDir, name),
			What:   stage + " hook",
			editor: wholeFile(hookFile(o.HookPath, stage, o.RuncSharedConfig, stateDir)),
		})
	}
}

// hookFile returns the OCI hook file (schema 1.0.0) that runs mount-hook at
// stage for containers with the mounter annotation; config and stateDir, when
// set, are passed to it with --config and --state-dir.
func hookFile(hookPath, stage, config, stateDir string) []byte {
	type when struct {
		Annotations map[string]string `json:"annotations"`
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	_ = enc.Encode(struct { // strings, a slice and a map always encode
		Version string     `json:"version"`
		Hook    specs.Hook `json:"hook"`
		When    when       `json:"when"`
		Stages  []string   `json:"stages"`
	}{
		Version: "1.0.0",
		// The hook entry the wrapper injects, so both ways run the same command.
		Hook: spec.InjectHooks{Path: hookPath, Config: config, StateDir: stateDir}.Hook(hookargs.Stage(stage)),
		// The engines read annotation keys and values as unanchored Go regexps.
		When:   when{Annotations: map[string]string{"^" + regexp.QuoteMeta(spec.AnnotationMounter) + "$": "^.+$"}},
		Stages: []string{stage},
	})
	return b.Bytes()
}

// wholeFile is a file runc-shared owns entirely.
type wholeFile []byte

// Apply leaves a file with the same JSON content as it is, whatever its
// layout (the repository's hooks.d files, which `make install` copies, are
// laid out by hand).
func (w wholeFile) Apply(old []byte) ([]byte, error) {
	if jsonEqual(old, w) {
		return old, nil
	}
	return append([]byte{}, w...), nil
}

// Revert deletes the file when it is still ours; one that someone changed
// stays.
func (w wholeFile) Revert(cur []byte) ([]byte, error) {
	if jsonEqual(cur, w) {
		return nil, nil
	}
	return cur, nil
}
