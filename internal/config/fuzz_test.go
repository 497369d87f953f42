package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// FuzzLoad feeds arbitrary bytes through Load. It must never panic; an error
// must be a *Error that names the file; a loaded configuration must hold only
// what the rest of runc-shared relies on: unique rule names, a match
// condition and fstypes in every rule, clean absolute propagate paths other
// than /, and a valid mode.
func FuzzLoad(f *testing.F) {
	example, err := os.ReadFile("testdata/example.toml")
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		string(example),
		"",
		rule,
		rule + rule,
		`mount-container = ["glusterfs:name=glusterfs-mounter:mounter"]`,
		`mount-container = ["glusterfs:name=glusterfs-mounter", "cephfs:app=ceph:c"]` + rule,
		`mounter = [{ name = "g", fstypes = ["g"], propagate = ["/g"], match = { env = { A = "b" } } }]`,
		"runtime = \"/usr/bin/runc\"\nstate-dir = \"/run/x\"\nlog-level = \"debug\"\nhost-mntns = \"self\"\nhook-path = \"/h\"\n",
		strings.Replace(rule, `["/var/lib/kubelet"]`, `["/var/lib/kubelet/../.."]`, 1),
		"[mounter]\nname = 1\n",
		"a = \"\"\"\n[[mounter]]\n\"\"\"\n",
		"a = \"\"\"\n# not a comment\n\"\"\"\nb = [\n  # a comment\n  1,\n]\n",
	} {
		f.Add([]byte(seed))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "config.toml")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		checkBlankComments(t, data)
		c, err := Load(path)
		if err != nil {
			var cerr *Error
			if len(data) <= MaxSize && (!errors.As(err, &cerr) || !strings.Contains(err.Error(), path)) {
				t.Fatalf("error is not a *Error naming the file: %v", err)
			}
			return
		}
		checkInvariants(t, c)
	})
}

func checkInvariants(t *testing.T, c *Config) {
	t.Helper()
	names := map[string]bool{}
	for _, r := range c.Mounters {
		if r.Name == "" || names[r.Name] {
			t.Fatalf("rule name %q empty or not unique", r.Name)
		}
		names[r.Name] = true
		if r.Match.Empty() {
			t.Fatalf("rule %q has no match condition", r.Name)
		}
		if len(r.FSTypes) == 0 || len(r.Propagate) == 0 {
			t.Fatalf("rule %q has no fstypes or no propagate paths", r.Name)
		}
		if r.Mode != "propagate" && r.Mode != "preload" {
			t.Fatalf("rule %q has mode %q", r.Name, r.Mode)
		}
		for _, p := range r.Propagate {
			if !filepath.IsAbs(p) || filepath.Clean(p) != p || p == "/" || strings.Contains(p, "\x00") {
				t.Fatalf("rule %q propagates %q", r.Name, p)
			}
		}
	}
	for _, p := range []string{c.StateDir, c.HookPath} {
		if p != "" && (!filepath.IsAbs(p) || filepath.Clean(p) != p) {
			t.Fatalf("path %q not absolute and clean", p)
		}
	}
	if c.HostMntns != HostMntnsSelf && !filepath.IsAbs(c.HostMntns) {
		t.Fatalf("host-mntns %q", c.HostMntns)
	}
}

// checkBlankComments guards the comment-blanking shortcut of Parse: whatever
// the TOML library accepts must decode to the same tree with comments blanked.
func checkBlankComments(t *testing.T, data []byte) {
	t.Helper()
	var raw, blanked map[string]any
	if _, err := toml.Decode(string(data), &raw); err != nil {
		return
	}
	if _, err := toml.Decode(blankComments(data), &blanked); err != nil {
		t.Fatalf("blanking comments broke a valid document: %v", err)
	}
	// fmt as the fallback: NaN is not DeepEqual to itself.
	if !reflect.DeepEqual(raw, blanked) && fmt.Sprint(raw) != fmt.Sprint(blanked) {
		t.Fatalf("blanking comments changed the document:\n%v\n%v", raw, blanked)
	}
}
