package wrapper

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/runc-shared/runc-shared/internal/atomicfile"
	"github.com/runc-shared/runc-shared/internal/config"
	"github.com/runc-shared/runc-shared/internal/runtime"
	"github.com/runc-shared/runc-shared/pkg/spec"
)

// Paths the preload mode uses inside the container. The library reads its
// configuration from a compiled-in path (preload/hostmount.c,
// HOSTMOUNT_CONF), never from the environment, which the image controls.
const (
	preloadDir   = "/.runc-shared"
	preloadLib   = preloadDir + "/" + config.PreloadLibName
	ldSoPreload  = "/etc/ld.so.preload"
	bundleSubdir = "runc-shared"
	preloadConf  = "hostmount.conf"
	preloadList  = "ld.so.preload"
)

// capSysChroot is needed, with CAP_SYS_ADMIN, by setns(CLONE_NEWNS): the
// library's child enters the host mount namespace with it.
const capSysChroot = "CAP_SYS_CHROOT"

// maxImagePreload bounds the image's /etc/ld.so.preload: a real one names a
// library or two, and the wrapper sits on the container's start path.
const maxImagePreload = 64 << 10

// preloader is the preload mode of one container: libhostmount.so and its
// configuration go into BUNDLE/runc-shared and are bind-mounted read-only
// into the container, so that the mounter's mount(2) calls on allowlisted
// targets happen in the host mount namespace. Propagation is left as the
// engine set it.
//
// The host namespace is handed over as an open fd through runc's
// --preserve-fds: a /proc/<pid>/ns path in config.json would make runc join
// that namespace (and pivot_root the host). runc numbers preserved fds from 3
// in the container's init, after the engine's own N, so the library reaches
// ours as /proc/1/fd/<3+N>.
type preloader struct {
	rule   *spec.Rule
	args   *runtime.Args
	host   Host
	bundle string
	self   string
	mntns  string // host-mntns as configured

	fd         int      // the fd number in the container's init: 3+N
	execArgv   []string // the delegate's argv, with --preserve-fds N+1
	lib        string   // the library beside runc-shared
	conf, list []byte   // hostmount.conf and ld.so.preload
	ns         int      // the open namespace fd in this process, -1 before prepare
}

// check refuses a container in which the library cannot work and renders
// the library's configuration and the container's ld.so.preload.
func (pl *preloader) check(s *specs.Spec) error {
	argv, err := pl.args.WithPreserveFDs(pl.args.PreserveFDs + 1)
	if err != nil {
		return fmt.Errorf("preload rule %q hands the host mount namespace over with --preserve-fds, which %q does not take (%w): use mode = \"propagate\" for this container, or create it anew instead",
			pl.rule.Name, pl.args.Command, err)
	}
	if err := checkPreloadSpec(pl.rule, s); err != nil {
		return err
	}
	allow, err := preloadAllowlist(s, pl.rule, pl.host, pl.bundle)
	if err != nil {
		return err
	}
	lib, err := config.PreloadLibrary(pl.self)
	if err != nil {
		return err
	}
	rootfs, ok := spec.RootPath(s, pl.bundle)
	if !ok {
		return errors.New("spec has no root.path")
	}
	image, err := imagePreload(rootfs)
	if err != nil {
		return err
	}
	pl.execArgv, pl.lib = argv, lib
	pl.conf, pl.list = hostmountConf(pl.rule, pl.fd, allow), ldPreloadList(image)
	return nil
}

// prepare writes the library, hostmount.conf and ld.so.preload into the
// bundle and opens the host mount namespace while the wrapper can still
// refuse the container; the modifier binds the files.
func (pl *preloader) prepare(log *logrus.Logger) (spec.Modifier, error) {
	dir := filepath.Join(pl.bundle, bundleSubdir)
	if err := writePreloadFiles(dir, pl.lib, pl.conf, pl.list); err != nil {
		return nil, rewriteError(filepath.Join(pl.bundle, "config.json"), pl.rule, err)
	}
	src := pl.mntns
	if src == config.HostMntnsSelf {
		src = "/proc/self/ns/mnt"
	}
	fd, err := openMountNamespace(src)
	if err != nil {
		return nil, fmt.Errorf("preload rule %q: %w; set host-mntns to the /proc/PID/ns/mnt of a process in the host mount namespace, or to \"self\" when the engine runs runc-shared there", pl.rule.Name, err)
	}
	pl.ns = fd
	log.Debugf("preload: host mount namespace %s handed over as fd %d", src, pl.fd)
	return func(s *specs.Spec) error {
		s.Mounts = append(withoutPreloadMounts(s.Mounts, dir), preloadMounts(dir)...)
		return nil
	}, nil
}

// undo has nothing to remove: the bundle's files go with the bundle.
func (pl *preloader) undo() {}

// checkPreloadSpec refuses containers in which the library cannot work.
func checkPreloadSpec(rule *spec.Rule, s *specs.Spec) error {
	// The library opens /proc/1/fd/<n>: PID 1 must be this container's init,
	// which holds the fd. In the host's PID namespace it is the host's init;
	// in a shared one (a pod's pause container) another container's.
	switch path, ok := spec.NamespaceOf(s, specs.PIDNamespace); {
	case path != "":
		return rule.Refuse("mode preload needs a PID namespace of its own, and it joins %s: the library reaches the host mount namespace through PID 1's fds; do not share the PID namespace (shareProcessNamespace, --pid container:...)", path)
	case !ok:
		return rule.Refuse("mode preload needs a PID namespace of its own, and it shares the host's: the library reaches the host mount namespace through PID 1's fds; drop --pid=host / hostPID")
	}
	for _, c := range []string{spec.CapSysAdmin, capSysChroot} {
		if !spec.InBoundingSet(s, c) {
			return rule.Refuse("mode preload needs %s and %s (setns into the host mount namespace) and the container lacks %s in its bounding set; start it with --cap-add %s",
				spec.CapSysAdmin, capSysChroot, c, strings.TrimPrefix(c, "CAP_"))
		}
	}
	return nil
}

// confEscaper applies the octal escapes the library decodes: its fields are
// separated by blanks, and a "#" that starts a field starts a comment.
var confEscaper = strings.NewReplacer(`\`, `\134`, " ", `\040`, "\t", `\011`, "\n", `\012`, "\r", `\015`, "#", `\043`)

// allowLine renders an allowlisted bind as a hostmount.conf line: its
// destination inside the container and the host path it stands for. The
// host path is always written: without it the library would take the
// container path resolved in the container (an image symlink would move it).
func allowLine(b spec.Bind) string {
	return "allow " + confEscaper.Replace(b.Destination) + " " + confEscaper.Replace(b.Source)
}

// preloadAllowlist returns what the library may redirect: the binds of the
// rule's paths. The library repeats the call in the host namespace,
// translating a target below a destination to the same place below the
// host path.
func preloadAllowlist(s *specs.Spec, rule *spec.Rule, host Host, bundle string) ([]spec.Bind, error) {
	binds, err := spec.AllowlistedBinds(s, allowlist(host, rule, bundle))
	if err == nil && len(binds) == 0 {
		err = noBindError(rule)
	}
	return binds, err
}

// hostmountConf renders the library's configuration (preload/README.md).
func hostmountConf(rule *spec.Rule, fd int, allow []spec.Bind) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# generated by runc-shared for rule %q\nmntns /proc/1/fd/%d\n", rule.Name, fd)
	for _, a := range allow {
		fmt.Fprintln(&b, allowLine(a))
	}
	for _, t := range rule.FSTypes {
		fmt.Fprintf(&b, "fstype %s\n", confEscaper.Replace(t))
	}
	return []byte(b.String())
}

// ldPreloadList puts our library first, then the image's own entries.
func ldPreloadList(image []string) []byte {
	return []byte(strings.Join(append([]string{preloadLib}, image...), "\n") + "\n")
}

// writePreloadFiles fills BUNDLE/runc-shared: never the image's rootfs, which
// other containers may share.
func writePreloadFiles(dir, lib string, conf, list []byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	data, err := os.ReadFile(lib)
	if err != nil {
		return fmt.Errorf("read %s: %w", lib, err)
	}
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{config.PreloadLibName, data, 0o555},
		{preloadConf, conf, 0o444},
		{preloadList, list, 0o444},
	} {
		if err := atomicfile.WriteFile(filepath.Join(dir, f.name), f.data, f.mode); err != nil {
			return err
		}
	}
	return nil
}

// preloadMounts are the read-only binds of the bundle's files. No noexec:
// the dynamic linker maps the library executable.
func preloadMounts(dir string) []specs.Mount {
	opts := []string{"bind", "ro", "nosuid", "nodev"}
	return []specs.Mount{
		{Destination: preloadDir, Type: "bind", Source: dir, Options: slices.Clone(opts)},
		{Destination: ldSoPreload, Type: "bind", Source: filepath.Join(dir, preloadList), Options: slices.Clone(opts)},
	}
}

// withoutPreloadMounts drops the binds of an earlier rewrite of the same
// bundle, so that a config.json rewritten twice gets them once.
func withoutPreloadMounts(ms []specs.Mount, dir string) []specs.Mount {
	return slices.DeleteFunc(ms, func(m specs.Mount) bool {
		return (m.Destination == preloadDir || m.Destination == ldSoPreload) &&
			(m.Source == dir || filepath.Dir(m.Source) == dir)
	})
}

// imagePreload returns the entries of the image's own /etc/ld.so.preload,
// without comments and without our library. The path is resolved inside the
// rootfs, so that a symlink in the image cannot point the wrapper at a host
// file; only a regular file is read (a FIFO would block the start).
func imagePreload(rootfs string) ([]string, error) {
	p, err := securejoin.SecureJoin(rootfs, ldSoPreload)
	if err != nil {
		return nil, fmt.Errorf("resolve %s in %s: %w", ldSoPreload, rootfs, err)
	}
	// O_NOFOLLOW: SecureJoin resolved every link, so one now is a swap.
	f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the image's %s (%s): %w", ldSoPreload, p, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read the image's %s (%s): %w", ldSoPreload, p, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("the image's %s (%s) is a %s, not a regular file: fix the image", ldSoPreload, p, fi.Mode().Type())
	}
	data, err := io.ReadAll(io.LimitReader(f, maxImagePreload+1))
	if err != nil {
		return nil, fmt.Errorf("read the image's %s (%s): %w", ldSoPreload, p, err)
	}
	if len(data) > maxImagePreload {
		return nil, fmt.Errorf("the image's %s (%s) is larger than %d bytes: fix the image", ldSoPreload, p, maxImagePreload)
	}
	return parsePreloadList(string(data)), nil
}

// parsePreloadList splits an ld.so.preload the way glibc's dynamic linker
// does: "#" starts a comment, names are separated by blanks, newlines or ":".
func parsePreloadList(data string) []string {
	var out []string
	for _, line := range strings.Split(data, "\n") {
		line, _, _ = strings.Cut(line, "#")
		for _, name := range strings.FieldsFunc(line, func(r rune) bool {
			return r == ' ' || r == '\t' || r == ':' || r == '\r'
		}) {
			if name != preloadLib && !slices.Contains(out, name) {
				out = append(out, name)
			}
		}
	}
	return out
}

// openMountNamespace opens src (close-on-exec) and checks that it is a mount
// namespace: anything else would fail only later, at the mounter's first
// mount, with EINVAL from setns.
func openMountNamespace(src string) (int, error) {
	fd, err := unix.Open(src, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open host mount namespace %s: %w", src, err)
	}
	typ, err := unix.IoctlRetInt(fd, unix.NS_GET_NSTYPE)
	if err == nil && typ != unix.CLONE_NEWNS {
		err = fmt.Errorf("namespace type %#x", typ)
	}
	if err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("host mount namespace %s is not a mount namespace file (%w)", src, err)
	}
	return fd, nil
}

// argv puts the namespace at exactly fd 3+N without close-on-exec, the
// last step before exec, after all logging: whatever used that number
// before (the --log file, say) is closed by it. The fd is a raw one, not an
// *os.File, whose finalizer could close it before the exec.
func (pl *preloader) argv() ([]string, error) {
	if err := handOverFD(pl.ns, pl.fd); err != nil {
		return nil, fmt.Errorf("hand over the host mount namespace as fd %d: %w", pl.fd, err)
	}
	return pl.execArgv, nil
}

// handOverFD makes fd target a non-close-on-exec copy of fd.
func handOverFD(fd, target int) error {
	if fd < 0 {
		return errors.New("the namespace was never opened")
	}
	if fd == target {
		// dup3 refuses equal numbers: the open itself took the lowest free
		// fd, 3+N; only close-on-exec has to go.
		_, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, 0)
		return err
	}
	return unix.Dup3(fd, target, 0)
}
