package hook

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
)

// MaxStateSize bounds the OCI state read from stdin. Annotations make up
// most of it; Kubernetes caps them at 256 KiB in all.
const MaxStateSize = 1 << 20

// ErrBadState is wrapped by every problem with the state on stdin.
var ErrBadState = errors.New("bad OCI state on stdin")

// State is the OCI state document a runtime or engine writes to a hook's
// stdin, with the fields the hook reads (ID, PID, Bundle) and two it checks
// in its tests against the engines' captures (Status, Annotations); others
// are ignored.
type State struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	// PID is the container's init process as the host sees it. Podman's
	// poststop state has none (0).
	PID int `json:"pid"`
	// Bundle is the bundle directory (absolute), from "bundle" or the
	// legacy "bundlePath" of pre-1.0 runtimes.
	Bundle      string            `json:"bundle"`
	Annotations map[string]string `json:"annotations"`
}

// ParseState reads and checks the OCI state from r.
func ParseState(r io.Reader) (*State, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxStateSize+1))
	if err != nil {
		return nil, fmt.Errorf("%w: read: %w", ErrBadState, err)
	}
	if len(data) > MaxStateSize {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrBadState, MaxStateSize)
	}
	if len(strings.TrimSpace(string(data))) == 0 {
		return nil, fmt.Errorf("%w: stdin is empty; mount-hook is an OCI hook: the runtime writes the container state to its stdin", ErrBadState)
	}
	var w struct {
		State
		BundlePath string `json:"bundlePath"`
	}
	if err := json.Unmarshal(data, &w); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadState, err)
	}
	st := &w.State
	st.Bundle = cmp.Or(st.Bundle, w.BundlePath)
	switch {
	case st.ID == "":
		return nil, fmt.Errorf("%w: no container id", ErrBadState)
	case st.Bundle == "":
		return nil, fmt.Errorf("%w: no bundle directory for container %s", ErrBadState, st.ID)
	case !filepath.IsAbs(st.Bundle):
		return nil, fmt.Errorf("%w: bundle %q of container %s is not an absolute path", ErrBadState, st.Bundle, st.ID)
	case st.PID < 0:
		return nil, fmt.Errorf("%w: negative pid %d for container %s", ErrBadState, st.PID, st.ID)
	}
	st.Bundle = filepath.Clean(st.Bundle)
	return st, nil
}
