package testutil

import (
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// The rootfs trees are built once per test binary run, below one cache dir named
// after the PID. Main removes it at exit; a run that died leaves its dir behind, and
// the next run removes the dirs of PIDs that no longer exist.
const cachePrefix = "rstest-rootfs-"

var cacheDir = sync.OnceValues(func() (string, error) {
	root, err := tempRoot()
	if err != nil {
		return "", err
	}
	sweepStaleCaches(root)
	dir, err := os.MkdirTemp(root, fmt.Sprintf("%s%d-", cachePrefix, os.Getpid()))
	if err != nil {
		return "", fmt.Errorf("make rootfs cache dir: %w", err)
	}
	return dir, nil
})

// sweepStaleCaches removes cache dirs left by test binaries that are gone.
func sweepStaleCaches(root string) {
	ents, _ := os.ReadDir(root)
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), cachePrefix)
		if !ok || !e.IsDir() {
			continue
		}
		pid, err := strconv.Atoi(strings.SplitN(rest, "-", 2)[0])
		if err != nil || pid == os.Getpid() || syscall.Kill(pid, 0) != syscall.ESRCH {
			continue
		}
		_ = removeUnmounted(filepath.Join(root, e.Name()))
	}
}

// Main runs the tests and then removes the rootfs cache. Use it from TestMain:
//
//	func TestMain(m *testing.M) { testutil.Main(m) }
//
// Without it the cache stays until the next test binary run sweeps it.
func Main(m *testing.M) {
	code := m.Run()
	if dir, err := cacheDir(); err == nil {
		if err := removeUnmounted(dir); err != nil {
			fmt.Fprintln(os.Stderr, "testutil:", err)
		}
	}
	os.Exit(code)
}

// cachedRootfs returns the accessor of a rootfs that build makes below the
// cache dir, at name, once per test binary; the accessor fails the test when
// that build failed.
func cachedRootfs(name string, build func(dir string) (string, error)) func(t testing.TB) string {
	once := sync.OnceValues(func() (string, error) {
		cache, err := cacheDir()
		if err != nil {
			return "", err
		}
		return build(filepath.Join(cache, name))
	})
	return func(t testing.TB) string {
		t.Helper()
		RequireRoot(t)
		dir, err := once()
		if err != nil {
			t.Fatal(err)
		}
		return dir
	}
}

// makeDirs makes each of dirs below root, and gives those named in sticky
// mode 1777, as /tmp has.
func makeDirs(root string, dirs, sticky []string) error {
	for _, d := range dirs {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return err
		}
	}
	for _, d := range sticky {
		if err := os.Chmod(filepath.Join(root, d), os.ModeSticky|0o777); err != nil {
			return err
		}
	}
	return nil
}

// BusyboxRootfs returns a rootfs holding busybox-static with all its applets linked
// in /bin, plus proc, sys, dev, tmp and a minimal /etc. It is built once per test
// binary and shared: do not change it (containers get root.readonly false, so write
// into a bind mount or /tmp instead).
var BusyboxRootfs = cachedRootfs("busybox", buildBusybox)

func buildBusybox(dir string) (string, error) {
	bb, err := exec.LookPath("busybox")
	if err != nil {
		return "", fmt.Errorf("busybox not found: run scripts/deps.sh base (package busybox-static): %w", err)
	}
	if bb, err = filepath.EvalSymlinks(bb); err != nil {
		return "", err
	}
	if err := requireStatic(bb); err != nil {
		return "", err
	}
	if err := makeDirs(dir, []string{"bin", "proc", "sys", "dev", "tmp", "etc", "root", "run", "mnt", "var/tmp"}, []string{"tmp"}); err != nil {
		return "", err
	}
	if err := copyFile(bb, filepath.Join(dir, "bin/busybox"), 0o755); err != nil {
		return "", err
	}
	// Inside the chroot the links point at /bin/busybox; made from outside they
	// would hold the host path and break in the container.
	if out, err := exec.Command("chroot", dir, "/bin/busybox", "--install", "-s", "/bin").CombinedOutput(); err != nil {
		return "", fmt.Errorf("chroot %s busybox --install: %w: %s", dir, err, out)
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
		"etc/group":  "root:x:0:\nnogroup:x:65534:\n",
		"etc/hosts":  "127.0.0.1\tlocalhost\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// requireStatic fails for a dynamic busybox (Debian's "busybox" package): it would
// not start in a rootfs without libc.
func requireStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	if slices.ContainsFunc(f.Progs, func(p *elf.Prog) bool { return p.Type == elf.PT_INTERP }) {
		return fmt.Errorf("%s is dynamically linked: install busybox-static (scripts/deps.sh base)", path)
	}
	return nil
}

// hostUsrMarker sits in the empty usr dir of HostUsrRootfs; NewBundle adds the /usr
// bind mount when it finds it. Inside the container the bind mount hides it.
const hostUsrMarker = "usr/.testutil-host-usr"

// HostUsrRootfs returns a rootfs that borrows the host's /usr: an empty usr dir,
// merged-usr links (bin, sbin, lib, lib64 -> usr/...), a minimal /etc copied from the
// host and the dirs glusterfs wants. Bundles made on it bind-mount the host /usr
// read-only in their spec (see NewBundle), so nothing is mounted on the host.
// Built once per test binary; do not change it.
var HostUsrRootfs = cachedRootfs("hostusr", buildHostUsr)

func buildHostUsr(dir string) (string, error) {
	if l, err := os.Readlink("/bin"); err != nil || strings.TrimPrefix(l, "/") != "usr/bin" {
		return "", errors.New("HostUsrRootfs needs a merged-usr host (/bin -> usr/bin), as Debian 12 is")
	}
	if err := makeDirs(dir, []string{"etc", "var/log/glusterfs", "var/lib/glusterd", "run/gluster", "tmp", "var/tmp",
		"proc", "sys", "dev", "usr", "root", "mnt"}, []string{"tmp", "var/tmp"}); err != nil {
		return "", err
	}
	links := map[string]string{
		"bin": "usr/bin", "sbin": "usr/sbin", "lib": "usr/lib", "lib64": "usr/lib64",
		"var/run": "../run", "etc/mtab": "../proc/self/mounts",
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			return "", err
		}
	}
	// ld.so.cache lets dynamic binaries start without scanning library dirs.
	for _, name := range []string{"passwd", "group", "nsswitch.conf", "hosts", "resolv.conf", "ld.so.cache"} {
		err := copyFile(filepath.Join("/etc", name), filepath.Join(dir, "etc", name), 0o644)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
	}
	if err := os.WriteFile(filepath.Join(dir, hostUsrMarker), nil, 0o644); err != nil {
		return "", err
	}
	return dir, nil
}

// copyFile copies a small file (a busybox binary at most) into a fresh tree.
func copyFile(src, dst string, mode os.FileMode) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, mode)
}
