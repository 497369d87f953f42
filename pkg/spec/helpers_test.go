package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

var update = flag.Bool("update", false, "regenerate the golden files in testdata/")

// The captured engine configs live in tests/testdata/engines.
const (
	engDockerMounter = "docker-20.10-mounter-env.config.json"
	engDockerPlain   = "docker-20.10-plain.config.json"
	engContainerd    = "containerd-1.6-ctr-mounter-annotation.config.json"
	engPodman        = "podman-4.3-mounter-annotation.config.json"

	// hostSource is the bind source of /var/lib/kubelet in every mounter capture.
	hostSource = "/var/lib/example/host"
)

var engineConfigs = []string{engDockerMounter, engDockerPlain, engContainerd, engPodman}

func enginePath(name string) string {
	return filepath.Join("..", "..", "tests", "testdata", "engines", name)
}

func readEngine(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(enginePath(name))
	if err != nil {
		t.Fatalf("read engine capture: %v", err)
	}
	return b
}

func parseBytes(t testing.TB, b []byte) *Doc {
	t.Helper()
	d, err := Parse(b)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return d
}

func parseEngine(t testing.TB, name string) *Doc {
	t.Helper()
	return parseBytes(t, readEngine(t, name))
}

// mapResolver allowlists exactly the sources it maps, resolved to the value;
// errs refuses sources. It records every source it was asked about.
type mapResolver struct {
	allow map[string]string
	errs  map[string]error
	asked []string
}

func (r *mapResolver) ResolveSource(src string) (string, bool, error) {
	r.asked = append(r.asked, src)
	if err, ok := r.errs[src]; ok {
		return "", false, err
	}
	res, ok := r.allow[src]
	return res, ok, nil
}

// prefixResolver allowlists sources at or below a path (by components, never
// a string prefix), resolved to themselves.
type prefixResolver string

func (p prefixResolver) ResolveSource(src string) (string, bool, error) {
	root := string(p)
	if src == root || strings.HasPrefix(src, root+"/") {
		return src, true, nil
	}
	return "", false, nil
}

// decodeGeneric decodes JSON keeping numbers as written (json.Number).
func decodeGeneric(t testing.TB, b []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode JSON: %v\n%s", err, truncate(b))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		t.Fatalf("trailing data after the JSON document: %v", err)
	}
	return v
}

func truncate(b []byte) []byte {
	if len(b) > 400 {
		return append(b[:400:400], "..."...)
	}
	return b
}

// jsonDiff lists the paths (mounts[7].options[1], linux.rootfsPropagation)
// where a and b differ. Maps and equal-length lists are compared element by
// element; anything else is reported where it differs.
func jsonDiff(a, b any, path string) []string {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok {
			return []string{path}
		}
		var out []string
		for k, v := range x {
			out = append(out, jsonDiff(v, y[k], join(path, k))...)
		}
		for k := range y {
			if _, ok := x[k]; !ok {
				out = append(out, join(path, k))
			}
		}
		sort.Strings(out)
		return out
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return []string{path}
		}
		var out []string
		for i := range x {
			out = append(out, jsonDiff(x[i], y[i], fmt.Sprintf("%s[%d]", path, i))...)
		}
		return out
	default:
		if !reflect.DeepEqual(a, b) {
			return []string{path}
		}
		return nil
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// assertJSONEq fails unless want and got hold the same JSON value, numbers
// compared as written.
func assertJSONEq(t testing.TB, want, got []byte) {
	t.Helper()
	if d := jsonDiff(decodeGeneric(t, want), decodeGeneric(t, got), ""); len(d) > 0 {
		t.Errorf("JSON differs at %v", d)
	}
}

// assertOnlyChanged fails unless every difference between the generic
// documents lies at or below one of the allowed paths, and each allowed path
// has a difference.
func assertOnlyChanged(t testing.TB, orig, out []byte, allowed ...string) {
	t.Helper()
	diff := jsonDiff(decodeGeneric(t, orig), decodeGeneric(t, out), "")
	seen := map[string]bool{}
	for _, p := range diff {
		ok := false
		for _, a := range allowed {
			if p == a || strings.HasPrefix(p, a+".") || strings.HasPrefix(p, a+"[") {
				ok, seen[a] = true, true
			}
		}
		if !ok {
			t.Errorf("unexpected change at %s", p)
		}
	}
	for _, a := range allowed {
		if !seen[a] {
			t.Errorf("expected a change at %s; diff was %v", a, diff)
		}
	}
}

// mountIndex returns the index of the mount at dest.
func mountIndex(t testing.TB, s *specs.Spec, dest string) int {
	t.Helper()
	for i, m := range s.Mounts {
		if m.Destination == dest {
			return i
		}
	}
	t.Fatalf("no mount at %s", dest)
	return -1
}

// typedJSON is the typed view as runc decodes it, for comparisons.
func typedJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	return string(b)
}

func wantErr(t testing.TB, err error, pattern string) {
	t.Helper()
	if pattern == "" {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("no error; want one matching %s", pattern)
	}
	if !regexp.MustCompile(pattern).MatchString(err.Error()) {
		t.Fatalf("error %q does not match %s", err, pattern)
	}
}
