package hook

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/runc-shared/runc-shared/internal/hookargs"
	"github.com/runc-shared/runc-shared/pkg/spec"
)

// hookFile is the OCI hook file schema 1.0.0 (containers/common pkg/hooks),
// decoded strictly: a misspelt key fails the test instead of being ignored
// by the engine.
type hookFile struct {
	Version string `json:"version"`
	Hook    struct {
		Path    string   `json:"path"`
		Args    []string `json:"args"`
		Env     []string `json:"env"`
		Timeout *int     `json:"timeout"`
	} `json:"hook"`
	When struct {
		Always        *bool             `json:"always"`
		Annotations   map[string]string `json:"annotations"`
		Commands      []string          `json:"commands"`
		HasBindMounts *bool             `json:"hasBindMounts"`
	} `json:"when"`
	Stages []string `json:"stages"`
}

// anchored is a regexp that matches exactly the whole string.
var anchored = regexp.MustCompile(`^\^.*\$$`)

func TestHooksDFiles(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "hooks.d", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 {
		t.Fatalf("hooks.d holds %d hook files, want 2 (createRuntime, poststop): %v", len(files), files)
	}
	var stages []string
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.DisallowUnknownFields()
			var h hookFile
			if err := dec.Decode(&h); err != nil {
				t.Fatalf("decode: %v", err)
			}
			if _, err := dec.Token(); !errors.Is(err, io.EOF) {
				t.Fatalf("trailing data after the hook document")
			}
			if h.Version != "1.0.0" {
				t.Errorf("version = %q, want 1.0.0", h.Version)
			}
			if !filepath.IsAbs(h.Hook.Path) || filepath.Base(h.Hook.Path) != hookargs.Name {
				t.Errorf("hook.path = %q, want an absolute path to %s", h.Hook.Path, hookargs.Name)
			}
			if h.Hook.Path != "/usr/local/bin/mount-hook" {
				t.Errorf("hook.path = %q: make install rewrites /usr/local/bin/mount-hook to PREFIX, keep that text", h.Hook.Path)
			}
			if len(h.Hook.Args) < 2 || h.Hook.Args[0] != hookargs.Name {
				t.Fatalf("hook.args = %q, want [mount-hook ... STAGE]", h.Hook.Args)
			}
			opts, err := hookargs.Parse(h.Hook.Args[1:])
			if err != nil {
				t.Fatalf("mount-hook would refuse hook.args %q: %v", h.Hook.Args, err)
			}
			if len(h.Stages) != 1 || hookargs.Stage(h.Stages[0]) != opts.Stage {
				t.Errorf("stages = %q, but args run stage %q", h.Stages, opts.Stage)
			}
			stages = append(stages, h.Stages...)
			if !slices.Equal(h.Hook.Env, spec.HookEnv) {
				t.Errorf("hook.env = %q, want exactly %q (the same minimal env the wrapper injects)", h.Hook.Env, spec.HookEnv)
			}
			if h.Hook.Timeout == nil || *h.Hook.Timeout <= 0 || *h.Hook.Timeout > 30 {
				t.Errorf("hook.timeout = %v, want a few seconds", h.Hook.Timeout)
			}
			if h.When.Always != nil || len(h.When.Commands) > 0 || h.When.HasBindMounts != nil {
				t.Errorf("when must only match the annotation: %+v", h.When)
			}
			if len(h.When.Annotations) != 1 {
				t.Fatalf("when.annotations = %v, want the one mounter annotation", h.When.Annotations)
			}
			for k, v := range h.When.Annotations {
				checkAnnotationRegexps(t, k, v)
			}
		})
	}
	slices.Sort(stages)
	if !slices.Equal(stages, []string{"createRuntime", "poststop"}) {
		t.Errorf("stages over all files = %q, want createRuntime and poststop", stages)
	}
}

// checkAnnotationRegexps: the engines match when.annotations as unanchored Go
// regexps over every annotation, so both sides must be anchored.
func checkAnnotationRegexps(t *testing.T, key, value string) {
	t.Helper()
	for _, re := range []string{key, value} {
		if !anchored.MatchString(re) {
			t.Errorf("regexp %q is not anchored as ^...$", re)
		}
	}
	k, err := regexp.Compile(key)
	if err != nil {
		t.Fatalf("annotation key regexp %q: %v", key, err)
	}
	v, err := regexp.Compile(value)
	if err != nil {
		t.Fatalf("annotation value regexp %q: %v", value, err)
	}
	for s, want := range map[string]bool{
		spec.AnnotationMounter:                               true,
		spec.AnnotationMounter + "-x":                        false,
		"x" + spec.AnnotationMounter:                         false,
		strings.Replace(spec.AnnotationMounter, ".", "X", 1): false, // the dot is escaped
	} {
		if k.MatchString(s) != want {
			t.Errorf("key regexp %q matches %q: %v, want %v", key, s, !want, want)
		}
	}
	for s, want := range map[string]bool{"glusterfs": true, "a": true, "": false} {
		if v.MatchString(s) != want {
			t.Errorf("value regexp %q matches %q: %v, want %v", value, s, !want, want)
		}
	}
}
