package mounter

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestTranslate(t *testing.T) {
	binds := []Bind{
		{Source: "/var/lib/kubelet", Destination: "/var/lib/kubelet"},
		{Source: "/srv/data", Destination: "/data"},
		{Source: "/srv/data/deep", Destination: "/deep"},
		{Source: "/mnt", Destination: "/host/mnt"},
	}
	tests := []struct {
		target, inner string
		ok            bool
	}{
		{"/var/lib/kubelet/pods/p/volumes/v", "/var/lib/kubelet/pods/p/volumes/v", true},
		{"/var/lib/kubelet", "/var/lib/kubelet", true},
		{"/srv/data/x", "/data/x", true},
		{"/srv/data", "/data", true},
		{"/srv/data/deep/y", "/deep/y", true}, // the longest source wins
		{"/srv/data/deeper", "/data/deeper", true},
		{"/mnt/a/b", "/host/mnt/a/b", true},
		{"/var/lib/kubelet-evil/x", "", false}, // components, not string prefixes
		{"/srv/database", "", false},
		{"/var/lib", "", false},
		{"/", "", false},
	}
	for _, tt := range tests {
		inner, _, ok := Translate(tt.target, binds)
		if inner != tt.inner || ok != tt.ok {
			t.Errorf("Translate(%q) = %q, %v; want %q, %v", tt.target, inner, ok, tt.inner, tt.ok)
		}
	}
}

func TestSharedBinds(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "real")
	if err := os.MkdirAll(filepath.Join(real, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(dir, "bundle")
	s := &specs.Spec{Mounts: []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc"},
		{Destination: "/usr", Type: "bind", Source: "/usr", Options: []string{"rbind", "ro"}},
		{Destination: "/k", Type: "bind", Source: real, Options: []string{"rbind", "rshared"}},
		{Destination: "data/", Source: filepath.Join(link, "sub"), Options: []string{"bind"}}, // no type, relative dest
		{Destination: "/rel", Type: "bind", Source: "../real", Options: []string{"rbind"}},    // relative to the bundle
		{Destination: "/other", Type: "bind", Source: filepath.Join(dir, "realm"), Options: []string{"rbind"}},
	}}
	got := SharedBinds(s, bundle, []string{link}) // the rule names the symlink
	want := []Bind{
		{Source: real, Destination: "/k"},
		{Source: filepath.Join(real, "sub"), Destination: "/data"},
		{Source: real, Destination: "/rel"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("SharedBinds =\n%+v\nwant\n%+v", got, want)
	}
}

func TestNoBindError(t *testing.T) {
	err := noBindError("/x/y", "m1", "glusterfs", []Bind{{Source: "/a", Destination: "/a"}, {Source: "/b", Destination: "/data"}})
	if ExitCode(err) != ExitFailure {
		t.Fatalf("exit code %d, want %d", ExitCode(err), ExitFailure)
	}
	want := `target /x/y is not below a path that mounter m1 (rule "glusterfs") shares with the host; it shares /a, /b (at /data inside): mount below one of them, or add the path to the rule's propagate list and bind it into the mounter`
	if err.Error() != want {
		t.Errorf("got  %s\nwant %s", err, want)
	}
	if err := noBindError("/x", "m1", "g", nil); ExitCode(err) != ExitFailure {
		t.Errorf("no binds: exit %d", ExitCode(err))
	}
}
