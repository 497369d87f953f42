package testutil

import (
	"bytes"
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
	Dir    string         // bundle directory
	Rootfs string         // absolute root.path, symlinks resolved
	Spec   map[string]any // the spec as NewBundle wrote it (numbers are json.Number)
}

// BundleOpt edits the spec, decoded as generic JSON so that no field is lost.
type BundleOpt func(spec map[string]any)

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
// from HostUsrRootfs also gets WithHostUsr. The spec is checked before it is
// written: no CAP_SYS_RESOURCE, no mount-namespace path.
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
	spec, err := decodeSpec(raw)
	if err != nil {
		t.Fatal(err)
	}
	root := obj(spec, "root")
	root["path"] = abs
	root["readonly"] = false
	proc := obj(spec, "process")
	proc["terminal"] = false
	proc["args"] = strs([]string{"sleep", "1000"})
	if _, err := os.Stat(filepath.Join(abs, hostUsrMarker)); err == nil {
		WithHostUsr()(spec)
	}
	for _, o := range opts {
		o(spec)
	}
	b := &Bundle{Dir: TempDir(t), Rootfs: abs}
	b.write(t, spec)
	return b
}

func decodeSpec(raw []byte) (map[string]any, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var spec map[string]any
	if err := d.Decode(&spec); err != nil {
		return nil, fmt.Errorf("decode spec: %w", err)
	}
	return spec, nil
}

func (b *Bundle) write(t testing.TB, spec map[string]any) {
	t.Helper()
	if err := checkSpec(spec); err != nil {
		t.Fatal(err)
	}
	out, err := json.MarshalIndent(spec, "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(b.ConfigPath(), out, 0o644); err != nil {
		t.Fatal(err)
	}
	b.Spec = spec
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
func checkSpec(spec map[string]any) error {
	if caps, ok := get(spec, "process", "capabilities").(map[string]any); ok {
		for set, list := range caps {
			for _, c := range anyStrings(list) {
				if normCap(c) == "CAP_SYS_RESOURCE" {
					return fmt.Errorf("spec has CAP_SYS_RESOURCE in process.capabilities.%s: this host's bounding set lacks it and runc would fail; leave it out", set)
				}
			}
		}
	}
	nss, _ := get(spec, "linux", "namespaces").([]any)
	for _, ns := range nss {
		m, _ := ns.(map[string]any)
		if m["type"] == "mount" && m["path"] != nil && m["path"] != "" {
			return fmt.Errorf("spec joins the mount namespace %v: runc would pivot_root inside it and could move the host's root; never pass a mount namespace path", m["path"])
		}
	}
	root, _ := get(spec, "root", "path").(string)
	if fi, err := os.Lstat(root); err != nil || fi.Mode()&os.ModeSymlink != 0 || !fi.IsDir() {
		return fmt.Errorf("root.path %q must be an existing directory, not a symlink", root)
	}
	return nil
}

// WithArgs sets process.args.
func WithArgs(args ...string) BundleOpt {
	return func(s map[string]any) { obj(s, "process")["args"] = strs(args) }
}

// WithEnv sets KEY=value in process.env, replacing an existing KEY.
func WithEnv(key, value string) BundleOpt {
	return func(s map[string]any) {
		p := obj(s, "process")
		env := slices.DeleteFunc(anyStrings(p["env"]), func(e string) bool { return strings.HasPrefix(e, key+"=") })
		p["env"] = strs(append(env, key+"="+value))
	}
}

// WithAnnotation sets an annotation.
func WithAnnotation(key, value string) BundleOpt {
	return func(s map[string]any) { obj(s, "annotations")[key] = value }
}

// WithBind adds a bind mount of host src at dst. Without options it is ["rbind"];
// options without "bind" or "rbind" get "rbind" in front. Propagation options
// ("rshared", ...) go here too.
func WithBind(src, dst string, options ...string) BundleOpt {
	return func(s map[string]any) {
		if !slices.Contains(options, "bind") && !slices.Contains(options, "rbind") {
			options = append([]string{"rbind"}, options...)
		}
		addMount(s, map[string]any{"destination": dst, "type": "bind", "source": src, "options": strs(options)})
	}
}

// WithHostUsr bind-mounts the host's /usr read-only onto /usr, in the spec, so the
// mount exists only in the container. NewBundle adds it for HostUsrRootfs.
func WithHostUsr() BundleOpt {
	return func(s map[string]any) {
		ms, _ := s["mounts"].([]any)
		if slices.ContainsFunc(ms, func(m any) bool {
			mm, _ := m.(map[string]any)
			return mm["destination"] == "/usr"
		}) {
			return
		}
		addMount(s, map[string]any{"destination": "/usr", "type": "bind", "source": "/usr", "options": strs([]string{"rbind", "ro"})})
	}
}

func addMount(s map[string]any, m map[string]any) {
	ms, _ := s["mounts"].([]any)
	s["mounts"] = append(ms, m)
}

// WithAddCaps adds caps to the bounding, effective and permitted sets.
func WithAddCaps(caps ...string) BundleOpt {
	return func(s map[string]any) {
		c := obj(obj(s, "process"), "capabilities")
		for _, set := range []string{"bounding", "effective", "permitted"} {
			have := anyStrings(c[set])
			for _, x := range caps {
				if !slices.Contains(have, normCap(x)) {
					have = append(have, normCap(x))
				}
			}
			c[set] = strs(have)
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
	return func(s map[string]any) {
		l := obj(s, "linux")
		nss, _ := l["namespaces"].([]any)
		l["namespaces"] = slices.DeleteFunc(nss, func(ns any) bool {
			m, _ := ns.(map[string]any)
			return m["type"] == "network"
		})
	}
}

// WithFuse adds /dev/fuse (c 10:229) to linux.devices and allows it in the device
// cgroup, as FUSE filesystems (glusterfs, bindfs) need.
func WithFuse() BundleOpt {
	return func(s map[string]any) {
		l := obj(s, "linux")
		devs, _ := l["devices"].([]any)
		l["devices"] = append(devs, map[string]any{
			"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o666, "uid": 0, "gid": 0,
		})
		r := obj(l, "resources")
		rules, _ := r["devices"].([]any)
		r["devices"] = append(rules, map[string]any{"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rwm"})
	}
}

// WithRootfsPropagation sets linux.rootfsPropagation ("rshared", "slave", ...).
func WithRootfsPropagation(p string) BundleOpt {
	return func(s map[string]any) { obj(s, "linux")["rootfsPropagation"] = p }
}

// WithHook appends a hook to hooks.<stage> (e.g. "createRuntime", "poststop").
// args is the full argv; empty means [path].
func WithHook(stage, path string, args ...string) BundleOpt {
	return func(s map[string]any) {
		h := obj(s, "hooks")
		list, _ := h[stage].([]any)
		hook := map[string]any{"path": path}
		if len(args) > 0 {
			hook["args"] = strs(args)
		}
		h[stage] = append(list, hook)
	}
}

// WithEdit runs f on the spec as decoded JSON (objects are map[string]any, arrays
// []any, numbers json.Number).
func WithEdit(f func(spec map[string]any)) BundleOpt { return BundleOpt(f) }

// obj returns m[key] as an object, creating it when missing.
func obj(m map[string]any, key string) map[string]any {
	if o, ok := m[key].(map[string]any); ok {
		return o
	}
	o := map[string]any{}
	m[key] = o
	return o
}

// get follows keys through nested objects; nil when a step is missing.
func get(m map[string]any, keys ...string) any {
	var v any = m
	for _, k := range keys {
		o, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = o[k]
	}
	return v
}

func strs(ss []string) []any {
	out := make([]any, 0, len(ss))
	for _, s := range ss {
		out = append(out, s)
	}
	return out
}

func anyStrings(v any) []string {
	l, _ := v.([]any)
	var out []string
	for _, x := range l {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}
