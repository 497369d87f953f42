package spec

import (
	"bytes"
	"encoding/json"
	"fmt"
)

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
