package testutil

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Bundle is an OCI bundle directory: config.json, plus the runtime's log.json, the
// pid files and the init's stdout/stderr written by Runc.
type Bundle struct {
	Dir    string      // bundle directory
	Rootfs string      // absolute root.path, symlinks resolved
	Spec   *specs.Spec // the spec as NewBundle wrote it
}

// BundleOpt edits the spec.
type BundleOpt func(spec *specs.Spec)

// baseSpec is `runc spec` output, generated once per test binary.
var baseSpec = sync.OnceValues(func() ([]byte, error) {
	dir, err := os.MkdirTemp("", "rstest-spec-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if out, err := exec.Command("runc", "spec", "--bundle", dir).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("runc spec (install runc: scripts/deps.sh base): %w: %s", err, out)
	}
	return os.ReadFile(filepath.Join(dir, "config.json"))
})

// NewBundle writes a bundle whose config.json is `runc spec` edited for tests:
// root.path is rootfs (absolute, not a symlink), root.readonly false,
// process.terminal false, process.args ["sleep", "1000"] (a long-running init for
// create+start; use WithArgs for anything else), then opts in order. A rootfs
// from HostUsrRootfs also gets the host's /usr bound read-only onto /usr in
// the spec, so the mount exists only in the container. The spec is checked
// before it is written: no CAP_SYS_RESOURCE, no mount-namespace path.
func NewBundle(t testing.TB, rootfs string, opts ...BundleOpt) *Bundle {
	t.Helper()
	abs, err := filepath.Abs(rootfs)
	if err != nil {
		t.Fatal(err)
	}
	if abs, err = filepath.EvalSymlinks(abs); err != nil {
		t.Fatalf("rootfs %s: %v", rootfs, err)
	}
	raw, err := baseSpec()
	if err != nil {
		t.Fatal(err)
	}
	spec := &specs.Spec{}
	if err := json.Unmarshal(raw, spec); err != nil {
		t.Fatalf("decode `runc spec` output: %v", err)
	}
	spec.Root = &specs.Root{Path: abs}
	spec.Process.Terminal = false
	spec.Process.Args = []string{"sleep", "1000"}
	if _, err := os.Stat(filepath.Join(abs, hostUsrMarker)); err == nil {
		spec.Mounts = append(spec.Mounts, specs.Mount{Destination: "/usr", Type: "bind", Source: "/usr", Options: []string{"rbind", "ro"}})
	}
	for _, o := range opts {
		o(spec)
	}
	if err := checkSpec(spec); err != nil {
		t.Fatal(err)
	}
	b := &Bundle{Dir: TempDir(t), Rootfs: abs, Spec: spec}
	out, err := json.MarshalIndent(spec, "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	WriteFile(t, b.ConfigPath(), string(out))
	return b
}

// ConfigPath is BUNDLE/config.json.
func (b *Bundle) ConfigPath() string { return filepath.Join(b.Dir, "config.json") }

// LogPath is the runtime --log file that Runc.Create passes, like containerd-shim.
func (b *Bundle) LogPath() string { return filepath.Join(b.Dir, "log.json") }

// ConfigBytes returns config.json as it is now on disk.
func (b *Bundle) ConfigBytes(t testing.TB) []byte {
	t.Helper()
	raw, err := os.ReadFile(b.ConfigPath())
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// ReadSpec decodes config.json as it is now on disk (e.g. after a wrapper rewrote it).
func (b *Bundle) ReadSpec(t testing.TB) *specs.Spec {
	t.Helper()
	var s specs.Spec
	if err := json.Unmarshal(b.ConfigBytes(t), &s); err != nil {
		t.Fatalf("decode %s: %v", b.ConfigPath(), err)
	}
	return &s
}

// Log returns the runtime's --log file (BUNDLE/log.json), or "" if there is none.
func (b *Bundle) Log(t testing.TB) string {
	t.Helper()
	raw, err := os.ReadFile(b.LogPath())
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return string(raw)
}

// InitOutput returns what the container inits created from this bundle wrote to
// stdout and stderr (the same files also hold runc create's own output).
func (b *Bundle) InitOutput(t testing.TB) (stdout, stderr string) {
	t.Helper()
	o, _ := os.ReadFile(filepath.Join(b.Dir, "init.stdout"))
	e, _ := os.ReadFile(filepath.Join(b.Dir, "init.stderr"))
	return string(o), string(e)
}

// checkSpec refuses what must never reach runc on this machine.
func checkSpec(spec *specs.Spec) error {
	if spec.Process != nil && spec.Process.Capabilities != nil {
		c := spec.Process.Capabilities
		sets := map[string][]string{"bounding": c.Bounding, "effective": c.Effective, "inheritable": c.Inheritable, "permitted": c.Permitted, "ambient": c.Ambient}
		for set, list := range sets {
			if slices.ContainsFunc(list, func(c string) bool { return normCap(c) == "CAP_SYS_RESOURCE" }) {
				return fmt.Errorf("spec has CAP_SYS_RESOURCE in process.capabilities.%s: this host's bounding set lacks it and runc would fail; leave it out", set)
			}
		}
	}
	if spec.Linux != nil {
		for _, ns := range spec.Linux.Namespaces {
			if ns.Type == specs.MountNamespace && ns.Path != "" {
				return fmt.Errorf("spec joins the mount namespace %s: runc would pivot_root inside it and could move the host's root; never pass a mount namespace path", ns.Path)
			}
		}
	}
	var root string
	if spec.Root != nil {
		root = spec.Root.Path
	}
	if fi, err := os.Lstat(root); err != nil || fi.Mode()&os.ModeSymlink != 0 || !fi.IsDir() {
		return fmt.Errorf("root.path %q must be an existing directory, not a symlink", root)
	}
	return nil
}

// WithArgs sets process.args.
func WithArgs(args ...string) BundleOpt {
	return func(s *specs.Spec) { s.Process.Args = args }
}

// WithEnv sets KEY=value in process.env, replacing an existing KEY.
func WithEnv(key, value string) BundleOpt {
	return func(s *specs.Spec) {
		env := slices.DeleteFunc(s.Process.Env, func(e string) bool { return strings.HasPrefix(e, key+"=") })
		s.Process.Env = append(env, key+"="+value)
	}
}

// WithAnnotation sets an annotation.
func WithAnnotation(key, value string) BundleOpt {
	return func(s *specs.Spec) {
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		s.Annotations[key] = value
	}
}

// WithBind adds a bind mount of host src at dst. Without options it is ["rbind"];
// options without "bind" or "rbind" get "rbind" in front. Propagation options
// ("rshared", ...) go here too.
func WithBind(src, dst string, options ...string) BundleOpt {
	return func(s *specs.Spec) {
		if !slices.Contains(options, "bind") && !slices.Contains(options, "rbind") {
			options = append([]string{"rbind"}, options...)
		}
		s.Mounts = append(s.Mounts, specs.Mount{Destination: dst, Type: "bind", Source: src, Options: options})
	}
}

// WithAddCaps adds caps to the bounding, effective and permitted sets.
func WithAddCaps(caps ...string) BundleOpt {
	return func(s *specs.Spec) {
		if s.Process.Capabilities == nil {
			s.Process.Capabilities = &specs.LinuxCapabilities{}
		}
		c := s.Process.Capabilities
		for _, set := range []*[]string{&c.Bounding, &c.Effective, &c.Permitted} {
			for _, x := range caps {
				if !slices.Contains(*set, normCap(x)) {
					*set = append(*set, normCap(x))
				}
			}
		}
	}
}

func normCap(c string) string {
	c = strings.ToUpper(c)
	if !strings.HasPrefix(c, "CAP_") {
		c = "CAP_" + c
	}
	return c
}

// WithHostNetwork removes the network namespace: the container shares the host's,
// as a mounter reaching glusterd on 127.0.0.2 must.
func WithHostNetwork() BundleOpt {
	return func(s *specs.Spec) {
		s.Linux.Namespaces = slices.DeleteFunc(s.Linux.Namespaces, func(ns specs.LinuxNamespace) bool { return ns.Type == specs.NetworkNamespace })
	}
}

// WithFuse adds /dev/fuse (c 10:229) to linux.devices and allows it in the device
// cgroup, as FUSE filesystems (glusterfs, bindfs) need.
func WithFuse() BundleOpt {
	return func(s *specs.Spec) {
		major, minor, mode, root := int64(10), int64(229), os.FileMode(0o666), uint32(0)
		s.Linux.Devices = append(s.Linux.Devices, specs.LinuxDevice{
			Path: "/dev/fuse", Type: "c", Major: major, Minor: minor, FileMode: &mode, UID: &root, GID: &root,
		})
		if s.Linux.Resources == nil {
			s.Linux.Resources = &specs.LinuxResources{}
		}
		r := s.Linux.Resources
		r.Devices = append(r.Devices, specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: &major, Minor: &minor, Access: "rwm"})
	}
}

// WithRootfsPropagation sets linux.rootfsPropagation ("rshared", "slave", ...).
func WithRootfsPropagation(p string) BundleOpt {
	return func(s *specs.Spec) { s.Linux.RootfsPropagation = p }
}

// WithHook appends a hook to hooks.<stage> ("createRuntime", "createContainer",
// "startContainer", "poststart" or "poststop"). args is the full argv; empty
// means [path].
func WithHook(stage, path string, args ...string) BundleOpt {
	return func(s *specs.Spec) {
		if s.Hooks == nil {
			s.Hooks = &specs.Hooks{}
		}
		h := s.Hooks
		list, ok := map[string]*[]specs.Hook{"createRuntime": &h.CreateRuntime, "createContainer": &h.CreateContainer,
			"startContainer": &h.StartContainer, "poststart": &h.Poststart, "poststop": &h.Poststop}[stage]
		if !ok {
			panic("WithHook: no hook stage " + stage)
		}
		*list = append(*list, specs.Hook{Path: path, Args: args})
	}
}
