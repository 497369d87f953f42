package hook

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// enginePath names a capture in the repository root's sibling shared/.
func enginePath(name string) string {
	return filepath.Join("..", "..", "tests", "testdata", "engines", name)
}

func TestParseState(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     *State
		err      string // substring of the error; "" means success
	}{
		{"runc createRuntime",
			`{"ociVersion":"1.0.2-dev","id":"c1","status":"creating","pid":15099,"bundle":"/tmp/b"}`,
			&State{ID: "c1", Status: "creating", PID: 15099, Bundle: "/tmp/b"}, ""},
		{"annotations and unknown fields",
			`{"ociVersion":"1.2.0","id":"c1","status":"created","pid":7,"bundle":"/b/","annotations":{"a":"1"},"rootfs":"/x","extra":{"n":[1,2]}}`,
			&State{ID: "c1", Status: "created", PID: 7, Bundle: "/b", Annotations: map[string]string{"a": "1"}}, ""},
		{"legacy bundlePath",
			`{"ociVersion":"1.0.0-rc1","id":"old","pid":9,"bundlePath":"/var/lib/old"}`,
			&State{ID: "old", PID: 9, Bundle: "/var/lib/old"}, ""},
		{"bundle wins over bundlePath",
			`{"id":"c","pid":1,"bundle":"/new","bundlePath":"/old"}`,
			&State{ID: "c", PID: 1, Bundle: "/new"}, ""},
		{"stopped without pid",
			`{"id":"c","status":"stopped","bundle":"/b"}`,
			&State{ID: "c", Status: "stopped", Bundle: "/b"}, ""},
		{"trailing newline", "{\"id\":\"c\",\"bundle\":\"/b\"}\n", &State{ID: "c", Bundle: "/b"}, ""},
		{"truncated", `{"ociVersion":"1.0.2-dev","id":"c1","status":"creat`, nil, "unexpected end of JSON input"},
		{"empty", "", nil, "stdin is empty"},
		{"blank", " \n", nil, "stdin is empty"},
		{"not an object", `["c1"]`, nil, "cannot unmarshal"},
		{"wrong type", `{"id":"c","pid":"12","bundle":"/b"}`, nil, "cannot unmarshal"},
		{"no id", `{"pid":1,"bundle":"/b"}`, nil, "no container id"},
		{"no bundle", `{"id":"c","pid":1}`, nil, "no bundle directory"},
		{"relative bundle", `{"id":"c","pid":1,"bundle":"b"}`, nil, "not an absolute path"},
		{"negative pid", `{"id":"c","pid":-1,"bundle":"/b"}`, nil, "negative pid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseState(strings.NewReader(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrBadState) {
					t.Fatalf("ParseState = %+v, %v; want an ErrBadState containing %q", got, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ParseState = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestParseStateTooLarge(t *testing.T) {
	big := `{"id":"c","bundle":"/b","annotations":{"a":"` + strings.Repeat("x", MaxStateSize) + `"}}`
	if _, err := ParseState(strings.NewReader(big)); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Fatalf("ParseState of %d bytes: %v", len(big), err)
	}
}

// TestParseStatePodman reads the documents Podman 4.3 really wrote to a hook.
func TestParseStatePodman(t *testing.T) {
	for name, want := range map[string]struct {
		status string
		pid    int
	}{
		"podman-4.3-hook-state-creating.json": {"creating", 13349},
		"podman-4.3-hook-state-stopped.json":  {"stopped", 0},
	} {
		f, err := os.Open(enginePath(name))
		if err != nil {
			t.Fatal(err)
		}
		st, err := ParseState(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if st.Status != want.status || st.PID != want.pid || len(st.ID) != 64 ||
			!strings.HasSuffix(st.Bundle, "/userdata") || st.Annotations["runc-shared.io/mounter"] != "glusterfs" {
			t.Errorf("%s: %+v", name, st)
		}
	}
}
