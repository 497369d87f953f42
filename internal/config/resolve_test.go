package config

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// TestPropagateResolved: a propagate path is checked as it resolves on the
// host too, since the wrapper and the hook follow its symlinks: a symlink to
// / makes the whole host the allowlist.
func TestPropagateResolved(t *testing.T) {
	dir := t.TempDir()
	link := func(name, target string) string {
		p := filepath.Join(dir, name)
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	real := filepath.Join(dir, "real")
	if err := os.Mkdir(real, 0o755); err != nil {
		t.Fatal(err)
	}
	toRoot := link("to-root", "/")
	chain := link("chain", toRoot)
	link("loop-a", filepath.Join(dir, "loop-b"))
	loop := link("loop-b", filepath.Join(dir, "loop-a"))
	toReal := link("to-real", real)
	for _, tc := range []struct {
		name, path string
		want       string // error regexp; "" means accepted
	}{
		{"a directory", real, ""},
		{"a symlink to a directory", toReal, ""},
		{"not there yet", filepath.Join(real, "later", "deeper"), ""},
		{"below a symlink to /, not there", filepath.Join(toRoot, "nonexistent-rs-dir"), ""},
		{"a symlink to /", toRoot, `resolves through symlinks to "/", refused: "/" is the root directory`},
		{"a symlink to /, with a slash", toRoot + "/", `resolves through symlinks to "/", refused`},
		{"a chain of symlinks to /", chain, `resolves through symlinks to "/", refused`},
		{"a symlink loop", loop, `cannot be resolved: .*too many (levels of )?(symbolic )?links`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			content := "[[mounter]]\nname = \"g\"\nfstypes = [\"glusterfs\"]\npropagate = [\"/var/lib/kubelet\", " +
				`"` + tc.path + `"` + "]\n[mounter.match]\nenv = { A = \"b\" }\n"
			c, err := Parse("config.toml", []byte(content))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if got := c.Mounters[0].Propagate[1]; got != filepath.Clean(tc.path) {
					t.Errorf("propagate = %q, want the path as written, cleaned", got)
				}
				return
			}
			if err == nil || !regexp.MustCompile(`^config config.toml:4: key mounter.propagate: "`+regexp.QuoteMeta(filepath.Clean(tc.path))+`" `+tc.want).MatchString(err.Error()) {
				t.Fatalf("Parse error = %v; want one matching %s", err, tc.want)
			}
		})
	}
}
