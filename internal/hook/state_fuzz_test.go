package hook_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/runc-shared/runc-shared/internal/hook"
	"github.com/runc-shared/runc-shared/internal/hookargs"
)

// FuzzParseState feeds arbitrary stdin to the OCI state parser of mount-hook.
// The state comes from the runtime or the engine, but a hook from hooks.d
// runs for any container whose annotations match, so its content (the
// annotations, at least) is the container owner's. Invariants: no panic; a
// refusal wraps ErrBadState; an accepted state has an id, a clean absolute
// bundle and a pid >= 0, and reads back the same when encoded again.
//
//	go test ./internal/hook/ -run '^$' -fuzz '^FuzzParseState$' -fuzztime 30s
func FuzzParseState(f *testing.F) {
	for _, name := range []string{"podman-4.3-hook-state-creating.json", "podman-4.3-hook-state-stopped.json"} {
		data, err := os.ReadFile(filepath.Join("..", "..", "tests", "testdata", "engines", name))
		if err != nil {
			f.Fatalf("read engine capture %s (tests/testdata/engines): %v", name, err)
		}
		f.Add(data)
	}
	for _, s := range []string{
		`{"ociVersion":"1.0.2-dev","id":"c1","status":"creating","pid":15099,"bundle":"/run/containerd/io.containerd.runtime.v2.task/k8s.io/c1"}`,
		`{"ociVersion":"1.0.0-rc1","id":"old","pid":9,"bundlePath":"/var/lib/old"}`,
		`{"id":"c","pid":1,"bundle":"/new/../x/./","bundlePath":"relative"}`,
		`{"id":"c","pid":-1,"bundle":"/b"}`,
		`{"id":"c","pid":1e3,"bundle":"/b"}`,
		`{"id":"","bundle":"/b"}`,
		`{"ID":"c","Bundle":"/b","PID":2}`,
		`{"id":"c","bundle":"/b","annotations":{"a":null}}`,
		`{"id":"c","bundle":"/b"} trailing`,
		" \n\t",
		`null`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := hook.ParseState(bytes.NewReader(data))
		if err != nil {
			if st != nil {
				t.Fatalf("ParseState returned a state with the error %v", err)
			}
			if !errors.Is(err, hook.ErrBadState) {
				t.Fatalf("error does not wrap ErrBadState: %v", err)
			}
			return
		}
		switch {
		case st.ID == "":
			t.Fatal("accepted a state without an id")
		case !filepath.IsAbs(st.Bundle) || filepath.Clean(st.Bundle) != st.Bundle:
			t.Fatalf("accepted bundle %q: not clean and absolute", st.Bundle)
		case st.PID < 0:
			t.Fatalf("accepted pid %d", st.PID)
		case len(data) > hook.MaxStateSize:
			t.Fatalf("accepted %d bytes, more than MaxStateSize", len(data))
		}
		// Round trip: what the hook understood, written as a runtime would,
		// reads back the same.
		again, err := json.Marshal(map[string]any{
			"id": st.ID, "status": st.Status, "pid": st.PID, "bundle": st.Bundle, "annotations": st.Annotations,
		})
		if err != nil {
			t.Fatal(err)
		}
		st2, err := hook.ParseState(bytes.NewReader(again))
		if err != nil {
			t.Fatalf("re-encoded state %s does not parse: %v", again, err)
		}
		if !reflect.DeepEqual(st, st2) && !(len(st.Annotations) == 0 && len(st2.Annotations) == 0 &&
			st.ID == st2.ID && st.PID == st2.PID && st.Bundle == st2.Bundle && st.Status == st2.Status) {
			t.Fatalf("state %+v reads back as %+v", st, st2)
		}
		// A stage argument never panics and only ever yields a known stage.
		if s, err := hookargs.ParseStage(strings.TrimSpace(st.Status)); err == nil &&
			s != hookargs.CreateRuntime && s != hookargs.Prestart && s != hookargs.Poststop {
			t.Fatalf("ParseStage(%q) = %q", st.Status, s)
		}
	})
}
