package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runc-shared/runc-shared/internal/config"
	"github.com/runc-shared/runc-shared/pkg/spec"
)

// readmeConfig returns the first TOML block of the README's "Configure"
// section: the configuration a user copies.
func readmeConfig(t *testing.T) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(raw), "\n## Configure\n")
	if !ok {
		t.Fatal(`README.md has no "## Configure" section`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	_, block, ok := strings.Cut(section, "\n```toml\n")
	if !ok {
		t.Fatal("the Configure section of README.md has no ```toml block")
	}
	block, _, ok = strings.Cut(block, "\n```\n")
	if !ok {
		t.Fatal("the README's ```toml block is not closed")
	}
	return []byte(block)
}

// TestREADMEConfigMatchesEveryEngine: the configuration the README gives
// loads, and it makes the mounter of every engine the README names a
// mounter, as each engine really passes it to the runtime (captured specs:
// Docker 20.10 passes env only, containerd and Podman annotations), while a
// plain container passes through.
func TestREADMEConfigMatchesEveryEngine(t *testing.T) {
	cfg, err := config.Parse("README.md", readmeConfig(t))
	if err != nil {
		t.Fatalf("the README's configuration does not load: %v", err)
	}
	tests := []struct {
		capture string
		rule    string // "" for none
	}{
		{"docker-20.10-mounter-env.config.json", "glusterfs"},
		{"containerd-1.6-ctr-mounter-annotation.config.json", "glusterfs-annotated"},
		{"podman-4.3-mounter-annotation.config.json", "glusterfs-annotated"},
		{"docker-20.10-plain.config.json", ""},
	}
	for _, tt := range tests {
		t.Run(tt.capture, func(t *testing.T) {
			doc, err := spec.Load(filepath.Join("..", "..", "tests", "testdata", "engines", tt.capture))
			if err != nil {
				t.Fatal(err)
			}
			rule := spec.FindRule(cfg.Mounters, doc.Spec)
			switch {
			case tt.rule == "" && rule != nil:
				t.Fatalf("a plain container matches rule %q", rule.Name)
			case tt.rule == "":
				return
			case rule == nil:
				t.Fatalf("no rule of the README matches this engine's mounter")
			case rule.Name != tt.rule:
				t.Fatalf("rule %q matches, want %q", rule.Name, tt.rule)
			}
			if err := spec.CheckPolicy(rule, doc.Spec); err != nil {
				t.Errorf("the matched mounter is refused: %v", err)
			}
			if !rule.Routes("glusterfs") {
				t.Errorf("rule %q does not serve glusterfs", rule.Name)
			}
		})
	}
}
