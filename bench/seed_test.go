//go:build bench

package bench

import (
	"testing"

	"github.com/runc-shared/runc-shared/internal/testutil"
)

// seedRoute starts the seed's route, a mounter run by Docker (the host's
// /usr as its rootfs, the host network, SYS_ADMIN and /dev/fuse, the rule's
// path bound rshared), and returns the trial of `docker exec <mounter>
// mount` of the volume at e.shared/name. Cleanup removes the container and
// stops dockerd.
func seedRoute(t *testing.T, e *glusterEnv, name string) Trial {
	t.Helper()
	d := StartDocker(t)
	d.Import(t, testutil.HostUsrRootfs(t), "rsbench-mounter")
	d.Run(t, "rsbench-mounter", "--network", "host", "--cap-add", "SYS_ADMIN", "--device", "/dev/fuse",
		"-v", "/usr:/usr:ro", "-v", e.shared+":"+e.shared+":rshared", "rsbench-mounter", "sleep", "100000")
	target := mkdir(t, e.shared, name)
	return mountTrial(t, Cmd{Argv: d.ExecArgv("rsbench-mounter", "mount", "-t", "glusterfs",
		"-o", logOpt(e.shared, name), e.src, target)}, target)
}
