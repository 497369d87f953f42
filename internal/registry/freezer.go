package registry

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// freezerState tells a paused container from a running one by asking the
// kernel instead of the runtime: `runtime pause` freezes the container's
// cgroup, and the freezer's state file says so. It reads
// <procDir>/<pid>/cgroup and then one file under cgroupDir:
//
//   - cgroup v1 (or hybrid, where runc uses the v1 freezer):
//     freezer/<path>/freezer.state is THAWED, FREEZING or FROZEN;
//   - cgroup v2: <path>/cgroup.events has a line "frozen 0|1"
//     (Documentation/admin-guide/cgroup-v2.rst, "Core Interface Files").
//
// It answers "paused" or "running". A freezer it cannot find (no freezer
// controller, a v2 hierarchy mounted elsewhere) is not an error: the
// container cannot have been paused through it, and a routed mount's
// `runtime exec` still refuses a paused container with its own message.
//
// Unlike `runc state`, this costs two small reads, whatever the number of
// mounts on the host: runc reads the whole of /proc/self/mountinfo to find
// its cgroup mounts.
func freezerState(procDir, cgroupDir string, pid int) (string, error) {
	path := filepath.Join(procDir, strconv.Itoa(pid), "cgroup")
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	var file string
	v1 := false
	for _, line := range strings.Split(string(b), "\n") {
		// hierarchy-ID:controller-list:cgroup-path (cgroups(7)).
		f := strings.SplitN(line, ":", 3)
		switch {
		case len(f) != 3:
		case slices.Contains(strings.Split(f[1], ","), "freezer"):
			file, v1 = filepath.Join(cgroupDir, "freezer", filepath.Clean("/"+f[2]), "freezer.state"), true
		case f[0] == "0" && f[1] == "" && !v1:
			file = filepath.Join(cgroupDir, filepath.Clean("/"+f[2]), "cgroup.events")
		}
	}
	if file == "" {
		return "running", nil
	}
	data, err := os.ReadFile(file)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "running", nil
	case err != nil:
		return "", fmt.Errorf("read %s: %w", file, err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		// freezer.state holds one word, cgroup.events "key value" lines.
		if l = strings.TrimSpace(l); l == "FROZEN" || l == "FREEZING" || l == "frozen 1" {
			return "paused", nil
		}
	}
	return "running", nil
}
