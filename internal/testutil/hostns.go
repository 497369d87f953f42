package testutil

import (
	"bytes"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// Host is one host set-up a test runs under.
type Host struct {
	// Name is the subtest name: "private-root" or "shared-root".
	Name string
	// SharedRoot is true where / is rshared, as systemd leaves it (Fedora
	// CoreOS, Flatcar): bind mounts of plain directories on / are peers of
	// the host's / there, and runc makes the rootfs's parent mount private.
	SharedRoot bool
}

// ConfigLines returns the configuration lines a runc-shared config needs
// under h: in a throwaway namespace the host mount namespace is the test's
// own, so host-mntns is "self" there (PID 1's namespace is the real host).
func (h Host) ConfigLines() string {
	if os.Getenv(hostnsEnv) != "" {
		return "host-mntns = \"self\"\n"
	}
	return ""
}

// hostnsEnv names the host set-up a re-executed test binary runs its body
// under; it is set only in the throwaway namespace.
const hostnsEnv = "RUNC_SHARED_TEST_HOSTNS"

var hosts = []Host{{Name: "private-root"}, {Name: "shared-root", SharedRoot: true}}

// ForEachHost runs body once per host set-up, as subtests: "private-root" in
// this process (the machine's / is private), "shared-root" in a re-run of
// this test binary, limited to that subtest, inside a throwaway mount
// namespace whose / is made rshared (unshare --mount --propagation private,
// then mount --make-rshared /). The machine's real / is never touched: the
// namespace starts with private copies of every mount and is gone when the
// re-run exits. The re-run's output is logged; its failure fails the
// subtest.
func ForEachHost(t *testing.T, body func(t *testing.T, h Host)) {
	forEachHost(t, false, body)
}

// ForEachHostIsolated is ForEachHost with "private-root" in a throwaway
// mount namespace too (its / stays private): for tests whose failure mode
// multiplies mounts, which must never reach the machine.
func ForEachHostIsolated(t *testing.T, body func(t *testing.T, h Host)) {
	forEachHost(t, true, body)
}

func forEachHost(t *testing.T, isolated bool, body func(t *testing.T, h Host)) {
	t.Helper()
	for _, h := range hosts {
		t.Run(h.Name, func(t *testing.T) {
			inside := os.Getenv(hostnsEnv)
			switch {
			case inside == h.Name:
				body(t, h)
			case inside != "":
				t.Fatalf("%s=%s runs only that subtest", hostnsEnv, inside)
			case !h.SharedRoot && !isolated:
				body(t, h)
			default:
				rerunInNamespace(t, h)
			}
		})
	}
}

// rerunInNamespace runs this very subtest again in a throwaway mount
// namespace set up for h.
func rerunInNamespace(t *testing.T, h Host) {
	t.Helper()
	RequireRoot(t)
	var parts []string
	for _, p := range strings.Split(t.Name(), "/") {
		parts = append(parts, "^"+regexp.QuoteMeta(p)+"$")
	}
	setup := `exec "$0" "$@"`
	if h.SharedRoot {
		setup = `mount --make-rshared / && ` + setup
	}
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c", setup,
		os.Args[0], "-test.run="+strings.Join(parts, "/"), "-test.count=1", "-test.v=true")
	cmd.Env = append(os.Environ(), hostnsEnv+"="+h.Name)
	cmd.Stdin = nil
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Start()
	if err == nil {
		// unshare and sh exec: the test binary keeps this PID, and its
		// temp dirs carry it.
		defer checkRerunLeftNothing(t, cmd.Process.Pid)
		err = cmd.Wait()
	}
	out := buf.Bytes()
	t.Logf("re-run in a throwaway mount namespace (%s):\n%s", h.Name, out)
	if err != nil {
		t.Fatalf("%s in a throwaway mount namespace: %v", h.Name, err)
	}
	if !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("%s: the re-run did not run %s", h.Name, t.Name())
	}
}

// checkRerunLeftNothing fails t for a live process that the re-run with PID
// pid left behind: one with the re-run's temp dirs (TempDir, the rootfs
// cache) on its command line or as its root, as a container init has. Such
// a process keeps the throwaway namespace and its mounts alive. It is
// reported, not signalled.
func checkRerunLeftNothing(t *testing.T, pid int) {
	t.Helper()
	tmp, err := tempRoot()
	if err != nil {
		t.Error(err)
		return
	}
	for _, p := range findProcs(func([]string) bool { return true }) {
		if uses, what := usesDirs(p.pid, tempDirsOf(tmp, pid)); uses {
			t.Errorf("the re-run in a throwaway mount namespace left process %d running: %s", p.pid, what)
		}
	}
}

// UnsharedDir returns a fresh directory that is a private mount point of its
// own (mount --bind D D; mount --make-private D): not shared under either
// host set-up, where PrivateDir is shared already on a shared /. Cleanup
// detaches it and everything below it.
func UnsharedDir(t testing.TB) string {
	t.Helper()
	return privateMountPoint(t, "unshared")
}
