package reliability_test

import (
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/runc-shared/runc-shared/internal/testutil"
	"github.com/runc-shared/runc-shared/pkg/spec"
)

// TestRsharedRootOnlyForMounter measures what the rewrite's rshared root
// propagation gives up: runc's default root propagation (rslave, applied to
// the whole container namespace before any bind) makes every bind that
// carries no propagation option of its own a one-way copy, so nothing the
// container mounts below it reaches the host. With rshared, such a bind of a
// shared host path (any path on a systemd host) is two-way. Docker and
// Podman add "rprivate" to their binds, but `ctr run --mount options=rbind`
// and hand-written specs do not.
//
// Each container binds a shared, not allowlisted host dir at /extra and
// mounts a tmpfs below it. With options ["rbind"] the mounter's mount
// reaches the host while a plain container's stays inside; with
// ["rbind", "rprivate"] (what engines write) the mounter's stays inside too.
// Should the wrapper come to pin such binds (the fix proposed for this),
// the rewritten spec carries their propagation and the test expects no
// mount on the host. The rootfs itself (on a shared mount too) stays private
// either way: runc makes the rootfs's parent mount private before it binds
// the rootfs, so the root is a peer group of its own; a tmpfs at /mnt/x
// never reaches the host.
func TestRsharedRootOnlyForMounter(t *testing.T) {
	testutil.CheckLeaks(t)
	runc := testutil.LookPath(t, "runc")
	extra := testutil.SharedDir(t) // shared, as / is on a systemd host
	host := testutil.PrivateDir(t) // the allowlisted path
	s := newSetup(t, runc, rule{name: "root", propagate: []string{host}, annotation: "root"})
	r := testutil.Wrapper(t, s.Config)
	roots := testutil.SharedDir(t) // the rootfs dirs lie on a shared mount too

	for _, tc := range []struct {
		id      string
		matches bool
		options []string
	}{
		{"mounter", true, []string{"rbind"}},
		{"mounter-rprivate", true, []string{"rbind", "rprivate"}},
		{"plain", false, []string{"rbind"}},
	} {
		value := "root"
		if !tc.matches {
			value = "not-a-mounter"
		}
		rootfs := filepath.Join(roots, tc.id)
		if out, err := exec.Command("cp", "-a", testutil.BusyboxRootfs(t), rootfs).CombinedOutput(); err != nil {
			t.Fatalf("copy the rootfs: %v: %s", err, out)
		}
		b := testutil.NewBundle(t, rootfs,
			testutil.WithAnnotation(spec.AnnotationMounter, value),
			testutil.WithAddCaps("CAP_SYS_ADMIN"),
			testutil.WithBind(host, "/host", "rbind", "rprivate"),
			testutil.WithBind(extra, "/extra", tc.options...))
		pid := r.Up(t, b, tc.id)
		script := "mkdir -p /extra/" + tc.id + " /mnt/x && mount -t tmpfs rstest-root /extra/" + tc.id +
			" && mount -t tmpfs rstest-rootfs /mnt/x"
		if out, errOut, err := r.Exec(t, tc.id, "sh", "-c", script); err != nil {
			t.Fatalf("mount inside %s: %v: %s %s", tc.id, err, out, errOut)
		}
		inside := len(testutil.MountsUnderPid(t, pid, "/extra/"+tc.id)) == 1
		onHost := testutil.MountAt(t, filepath.Join(extra, tc.id)) != nil
		rewritten := b.ReadSpec(t)
		var opts []string
		for _, m := range rewritten.Mounts {
			if m.Destination == "/extra" {
				opts = m.Options
			}
		}
		want := tc.matches && !hasPropagation(opts)
		t.Logf("%s (rootfsPropagation %q, /extra options %v): tmpfs at /extra/%s inside: %v, on the host: %v",
			tc.id, rewritten.Linux.RootfsPropagation, opts, tc.id, inside, onHost)
		if !inside {
			t.Errorf("%s: the tmpfs is not inside the container", tc.id)
		}
		if onHost != want {
			t.Errorf("%s: a mount below a bind that is not allowlisted reached the host: %v, want %v", tc.id, onHost, want)
		}
		// runc makes the rootfs's parent mount private before it binds the
		// rootfs: the root is a peer group of its own, rshared or not.
		if m := testutil.MountAt(t, filepath.Join(rootfs, "mnt", "x")); m != nil {
			t.Errorf("%s: a mount in the rootfs (/mnt/x) reached the host: %s %s", tc.id, m.FSType, m.Source)
		}
	}
}

func hasPropagation(opts []string) bool {
	for _, o := range opts {
		switch o {
		case "shared", "rshared", "slave", "rslave", "private", "rprivate", "unbindable", "runbindable":
			return true
		}
	}
	return false
}
