package configure

import (
	"bytes"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/runc-shared/runc-shared/pkg/spec"
)

// HookFiles maps the hooks.d file names to their stage; the same files
// are in the repository's hooks.d/ (a test keeps them in step).
var HookFiles = map[string]string{
	"runc-shared-mount-hook.json":          "createRuntime",
	"runc-shared-mount-hook-poststop.json": "poststop",
}

func hookTargets(o Options) []Target {
	var ts []Target
	for _, name := range []string{"runc-shared-mount-hook.json", "runc-shared-mount-hook-poststop.json"} {
		stage := HookFiles[name]
		ts = append(ts, Target{
			Path:   filepath.Join(o.HooksDir, name),
			What:   stage + " hook",
			Editor: wholeFile(HookFile(o.HookPath, stage, o.RuncSharedConfig)),
		})
	}
	return ts
}

// HookFile returns the OCI hook file (schema 1.0.0) that runs mount-hook at
// stage for containers with the mounter annotation; config, when set, is
// passed to it with --config.
func HookFile(hookPath, stage, config string) []byte {
	// The hook entry the wrapper injects, so both ways run the same command.
	h := spec.InjectHooks{Path: hookPath, Config: config}.Hook(stage)
	q := tomlString // a JSON string, without HTML escaping
	qlist := func(ss []string) string {
		out := make([]string, len(ss))
		for i, s := range ss {
			out[i] = q(s)
		}
		return "[" + strings.Join(out, ", ") + "]"
	}
	// The engines read annotation keys and values as unanchored Go regexps.
	key := "^" + regexp.QuoteMeta(spec.AnnotationMounter) + "$"
	return fmt.Appendf(nil, `{
  "version": "1.0.0",
  "hook": {
    "path": %s,
    "args": %s,
    "env": %s,
    "timeout": %d
  },
  "when": {
    "annotations": {
      %s: "^.+$"
    }
  },
  "stages": [%s]
}
`, q(h.Path), qlist(h.Args), qlist(h.Env), *h.Timeout, q(key), q(stage))
}

// wholeFile is a file runc-shared owns entirely.
type wholeFile []byte

func (w wholeFile) Apply(old []byte) ([]byte, error) {
	if old != nil && bytes.Equal(old, w) {
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
