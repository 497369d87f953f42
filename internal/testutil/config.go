package testutil

import (
	"bytes"
	"fmt"
	"os"
	"sync"
	"testing"
)

// WriteFile writes content to path (mode 0644) or fails the test.
func WriteFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// GlusterRuleConfig returns a runc-shared configuration with runtime runc,
// stateDir, the top-level lines extra, and one rule "glusterfs" for
// glusterfs mounts whose allowlist is propagate and which matches the
// containers annotated key=value. The annotation key is the caller's (the
// product's spec package defines it), so this package depends on nothing
// internal.
func GlusterRuleConfig(stateDir, propagate, key, value, extra string) string {
	return fmt.Sprintf(`runtime = "runc"
state-dir = %q
%s
[[mounter]]
name = "glusterfs"
fstypes = ["glusterfs"]
propagate = [%q]

[mounter.match]
annotations = { %q = %q }
`, stateDir, extra, propagate, key, value)
}

// SyncBuffer is an io.Writer for a child's stdout and stderr that the test
// reads while the child still writes (exec.Cmd copies into it from its own
// goroutine).
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
