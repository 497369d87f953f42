package mounter

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/runc-shared/runc-shared/internal/hostmount"
	"github.com/runc-shared/runc-shared/pkg/spec"
)

func TestCheckString(t *testing.T) {
	if got := pass("config", "%s is valid", "/c").String(); got != "ok config: /c is valid" {
		t.Errorf("pass: %q", got)
	}
	got := fail("mount-hook", "install it", "%s is missing", "/h").String()
	if got != "FAIL mount-hook: /h is missing (fix: install it)" {
		t.Errorf("fail: %q", got)
	}
}

func TestCheckPaths(t *testing.T) {
	dir := t.TempDir()
	shared, err := hostmount.IsShared(dir)
	if err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")
	tests := []struct {
		name   string
		rule   spec.Rule
		prefix string // of the one line
	}{
		{"missing path", spec.Rule{Name: "g", Propagate: []string{missing}, EnsureShared: true}, "FAIL paths[g]: " + missing},
		{"not shared, ensure-shared", spec.Rule{Name: "g", Propagate: []string{dir}, EnsureShared: true}, "ok paths[g]: " + dir},
	}
	if !shared {
		tests = append(tests, struct {
			name   string
			rule   spec.Rule
			prefix string
		}{"not shared, ensure-shared false", spec.Rule{Name: "g", Propagate: []string{dir}}, "FAIL paths[g]: " + dir + " is not on a shared mount"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checks := checkPaths(&tt.rule)
			if len(checks) != 1 {
				t.Fatalf("%d checks, want 1", len(checks))
			}
			if got := checks[0].String(); !strings.HasPrefix(got, tt.prefix) {
				t.Errorf("got %q, want prefix %q", got, tt.prefix)
			}
			if !checks[0].OK && checks[0].Fix == "" {
				t.Errorf("a FAIL without a fix: %q", checks[0])
			}
		})
	}
}
