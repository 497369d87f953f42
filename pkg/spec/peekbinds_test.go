package spec

import (
	"reflect"
	"testing"
)

// TestFilePeekBinds: PeekBinds finds the binds the whole decode finds,
// staged ones included, and decodes nothing else of the document.
func TestFilePeekBinds(t *testing.T) {
	staged := `{"annotations":{"` + AnnotationStagedSources + `":"{\"/run/stage/1\":\"/srv/shared\"}"},`
	for _, tc := range []struct {
		name, data string
		want       []Bind
		bad        bool
	}{
		{name: "binds among other fields",
			data: `{"ociVersion":"1.0.2","process":{"env":["A=1"]},"mounts":[{"destination":"/proc","type":"proc","source":"proc"},` +
				`{"destination":"/shared","type":"bind","source":"/srv/shared","options":["rbind","rshared"]}],"linux":{"maskedPaths":["/x"]}}`,
			want: []Bind{{Source: "/srv/shared", Destination: "/shared"}}},
		{name: "a staged bind",
			data: staged + `"mounts":[{"destination":"/shared","type":"bind","source":"/run/stage/1","options":["rbind"]}]}`,
			want: []Bind{{Source: "/srv/shared", Destination: "/shared", Staged: "/run/stage/1"}}},
		{name: "no mounts", data: `{"ociVersion":"1.0.2"}`},
		{name: "not JSON", data: `{"mounts":[`, bad: true},
		{name: "mounts of the wrong type", data: `{"mounts":{}}`, bad: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &File{Path: "config.json", Data: []byte(tc.data)}
			s, err := f.PeekBinds()
			if tc.bad {
				if err == nil {
					t.Fatalf("decoded %+v, want an error", s)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.Process != nil || s.Linux != nil || s.Version != "" {
				t.Errorf("decoded more than the binds: %+v", s)
			}
			r := allowAll{}
			got, err := AllowlistedBinds(s, r)
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("binds %+v, %v; want %+v", got, err, tc.want)
			}
			full, err := f.Doc()
			if err != nil {
				t.Fatal(err)
			}
			if all, _ := AllowlistedBinds(full.Spec, r); !reflect.DeepEqual(got, all) {
				t.Errorf("binds %+v, the whole decode gives %+v", got, all)
			}
		})
	}
}

// allowAll takes every bind source as it is.
type allowAll struct{}

func (allowAll) ResolveSource(source string) (string, bool, error) { return source, true, nil }
