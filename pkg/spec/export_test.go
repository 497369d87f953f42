package spec

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/runc-shared/runc-shared/internal/hookargs"
)

// SharedBinds is SharedMounts as a Modifier, for tests that apply it in a
// list of modifiers. Sources records the resolved host paths of the kept
// binds, each once.
type SharedBinds struct {
	Resolver SourceResolver
	Sources  []string
}

// Modify is the Modifier.
func (sb *SharedBinds) Modify(s *specs.Spec) error {
	mounts, sources, err := SharedMounts(s, sb.Resolver)
	if err == nil {
		s.Mounts = mounts
		sb.Sources = sources
	}
	return err
}

// Modifiers composes modifiers into one, for tests that apply a list of
// them as one.
func Modifiers(ms ...Modifier) Modifier {
	return func(s *specs.Spec) error { return Apply(s, ms...) }
}

// Raw returns the bytes the document was parsed from.
func (d *Doc) Raw() []byte { return d.raw }

// Changed reports whether the typed view differs from what was loaded.
func (d *Doc) Changed() (bool, error) {
	cur, err := json.Marshal(d.Spec)
	if err != nil {
		return false, fmt.Errorf("encode runtime spec: %w", err)
	}
	return !bytes.Equal(cur, d.orig), nil
}

// Encode returns the document with the modifiers' changes applied.
func (d *Doc) Encode() ([]byte, error) {
	data, err := d.encode()
	if data == nil && err == nil {
		return d.raw, nil
	}
	return data, err
}

// ValidateRewrite applies Doc.ValidateChanges' checks to every value of s,
// as if runc-shared had written all of them: the tests' check of a spec
// they rewrote.
func ValidateRewrite(s *specs.Spec) error {
	return (&Doc{Spec: s, orig: []byte("{}")}).ValidateChanges()
}

// HasHook reports whether hooks holds a hook whose binary is named
// mount-hook, wherever it is.
func HasHook(hooks []specs.Hook) bool {
	return slices.ContainsFunc(hooks, func(h specs.Hook) bool {
		return filepath.Base(h.Path) == hookargs.Name
	})
}
