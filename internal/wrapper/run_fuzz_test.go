package wrapper_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/runc-shared/runc-shared/internal/config"
	"github.com/runc-shared/runc-shared/internal/hookargs"
	"github.com/runc-shared/runc-shared/internal/hostmount"
	"github.com/runc-shared/runc-shared/internal/runtime"
	"github.com/runc-shared/runc-shared/internal/wrapper"
	"github.com/runc-shared/runc-shared/pkg/spec"
)

// fzHost stands in for the host: allowlisting is lexical (the fixtures'
// paths do not exist here), a source that reaches the allowlist only through
// ".." is refused as hostmount refuses it, and every path counts as shared.
type fzHost struct{ ensured, staged []string }

func (h *fzHost) ResolveSource(source string, allow []string) (string, error) {
	if !filepath.IsAbs(source) {
		return "", hostmount.ErrRelativePath
	}
	clean := filepath.Clean(source)
	if _, ok := hostmount.WithinAny(clean, allow); !ok {
		return "", fmt.Errorf("%s: %w", source, hostmount.ErrNotAllowlisted)
	}
	if slices.Contains(strings.Split(source, "/"), "..") {
		return "", fmt.Errorf("%s: %w", source, hostmount.ErrOutsideAllowlist)
	}
	return clean, nil
}

func (h *fzHost) EnsureShared(path string) (bool, error) {
	h.ensured = append(h.ensured, path)
	return false, nil
}

func (h *fzHost) IsShared(string) (bool, error) { return true, nil }

func (h *fzHost) PrepareStaging(string) (bool, error) { return false, nil }

// Stage records the target; nothing is mounted.
func (h *fzHost) Stage(root, source, target string) error {
	if !hostmount.Within(source, root) {
		return fmt.Errorf("stage %s outside %s", source, root)
	}
	h.staged = append(h.staged, target)
	return nil
}

func (h *fzHost) Unstage(dir string) error { return os.RemoveAll(dir) }

// fzConfig has the contract's rule shapes; the seed rule propagates
// /var/lib/kubelet, the others the engine captures' /var/lib/example.
const fzConfig = `runtime = "/bin/true"
state-dir = %q
hook-path = %q
mount-container = ["glusterfs:name=glusterfs-mounter:mounter"]

[[mounter]]
name = "ann"
fstypes = ["glusterfs"]
propagate = ["/var/lib/example/host", "/var/lib/example/other"]
[mounter.match]
annotations = { "runc-shared.io/mounter" = "glusterfs" }

[[mounter]]
name = "env"
fstypes = ["sshfs"]
propagate = ["/var/lib/example"]
[mounter.match]
env = { RUNC_SHARED_MOUNTER = "glusterfs" }

[[mounter]]
name = "ns"
fstypes = ["cephfs"]
propagate = ["/var/lib/example"]
namespaces = ["kube-system"]
[mounter.match]
annotations = { app = "ceph" }
`

// FuzzWrapperRun drives the whole create pipeline (argv, config, load, match,
// policy, rewrite, save, exec) on arbitrary config.json bytes, with the
// exec and the host replaced. Invariants:
//
//   - a refused create leaves config.json byte-identical, execs nothing and
//     leaves no temporary file in the bundle;
//   - a container that matches no rule is executed with config.json
//     byte-identical and the argv unchanged (but for our option);
//   - a rewritten config.json is valid JSON that parses as a spec; the
//     container passed the policy; no capability, device or namespace was
//     added or removed; the mounts are the same list where only allowlisted
//     binds changed (source cleaned, rshared); only mount-hook entries were
//     added to the hooks; the root propagation is rshared.
//
// Run it with:
//
//	go test ./internal/wrapper/ -run '^$' -fuzz '^FuzzWrapperRun$' -fuzztime 30s
func FuzzWrapperRun(f *testing.F) {
	for _, name := range []string{
		"docker-20.10-mounter-env.config.json", "docker-20.10-plain.config.json",
		"containerd-1.6-ctr-mounter-annotation.config.json", "podman-4.3-mounter-annotation.config.json",
	} {
		data, err := os.ReadFile(filepath.Join("..", "..", "tests", "testdata", "engines", name))
		if err != nil {
			f.Fatalf("read engine capture %s (tests/testdata/engines): %v", name, err)
		}
		f.Add(data)
	}
	caps := `"capabilities":{"bounding":["CAP_SYS_ADMIN"]}`
	for _, s := range []string{
		`{"annotations":{"runc-shared.io/mounter":"glusterfs"},"process":{` + caps + `},"mounts":[{"destination":"/k","type":"bind","source":"/var/lib/example/host/x","options":["rbind","rprivate"]}]}`,
		`{"annotations":{"runc-shared.io/mounter":"glusterfs"},"process":{` + caps + `},"mounts":[{"destination":"/k","type":"bind","source":"/var/lib/example/host/../../../etc","options":["rbind"]}]}`,
		`{"annotations":{"runc-shared.io/mounter":"glusterfs"},"process":{` + caps + `},"mounts":[{"destination":"/k","type":"bind","source":"/var/lib/example/host-evil","options":["rbind"]}]}`,
		`{"annotations":{"RUNC_SHARED_MOUNTER":"glusterfs"},"process":{` + caps + `},"mounts":[{"destination":"/k","source":"/var/lib/example","options":["bind"]}]}`,
		`{"annotations":{"name":"glusterfs-mounter"},"process":{` + caps + `},"mounts":[{"destination":"/var/lib/kubelet","source":"/var/lib/kubelet","options":["rbind","rshared"]}],"linux":{"rootfsPropagation":"rslave","namespaces":[{"type":"mount","path":"/proc/1/ns/mnt"}]}}`,
		`{"annotations":{"app":"ceph","io.kubernetes.pod.namespace":"kube-system"},"process":{` + caps + `},"mounts":[{"destination":"/m","type":"bind","source":"/var/lib/example/a"}],"hooks":{"poststop":[{"path":"/usr/bin/mount-hook"}]}}`,
		`{"annotations":{"runc-shared.io/mounter":"glusterfs"},"linux":{"rootfsPropagation":"private","rootfspropagation":"slave"},"process":{` + caps + `},"mounts":[{"destination":"/k","type":"bind","source":"/var/lib/example/host"}]}`,
	} {
		f.Add([]byte(s))
	}

	dir := fzTempDir(f)
	bundle := filepath.Join(dir, "bundle")
	hookBin := filepath.Join(dir, "mount-hook")
	cfgPath := filepath.Join(dir, "config.toml")
	for _, d := range []string{bundle, filepath.Join(dir, "state")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			f.Fatal(err)
		}
	}
	if err := os.WriteFile(hookBin, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		f.Fatal(err)
	}
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf(fzConfig, filepath.Join(dir, "state"), hookBin)), 0o644); err != nil {
		f.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		f.Fatal(err)
	}
	argv := []string{"--runc-shared-config=" + cfgPath, "--root", filepath.Join(dir, "root"), "--log-format", "json",
		"create", "--bundle", bundle, "--pid-file", filepath.Join(bundle, "init.pid"), "fuzz-ctr"}
	parsed, err := runtime.Parse(argv)
	if err != nil {
		f.Fatal(err)
	}
	wantPassArgv := parsed.ExecArgv()
	cfgFile := filepath.Join(bundle, "config.json")

	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(cfgFile, data, 0o644); err != nil {
			t.Fatal(err)
		}
		host := &fzHost{}
		var execd []string
		w := &wrapper.Wrapper{
			Stdout: io.Discard, Stderr: io.Discard, Self: filepath.Join(dir, "runc-shared"), Host: host,
			Exec: func(path string, a []string, _ []string) error {
				execd = append([]string{path}, a...)
				return nil
			},
		}
		runErr := w.Run(slices.Clone(argv))
		after, err := os.ReadFile(cfgFile)
		if err != nil {
			t.Fatal(err)
		}
		fzOnlyConfigLeft(t, bundle)

		if runErr != nil {
			if execd != nil {
				t.Fatalf("refused (%v) yet executed %q", runErr, execd)
			}
			if !bytes.Equal(after, data) {
				t.Fatalf("refused (%v) yet config.json changed", runErr)
			}
			return
		}
		if len(execd) == 0 || execd[0] != "/bin/true" {
			t.Fatalf("Run succeeded without executing the delegate: %q", execd)
		}
		before, err := spec.Parse(data)
		if err != nil {
			// The wrapper decodes only annotations and env of the first
			// JSON value (what runc's json.Decoder reads) until a rule
			// matches: a document broken elsewhere, or that runc cannot
			// read either, that matches no rule goes to runc unchanged, and
			// runc reports it.
			if peek := fzPeekFirst(data); peek != nil && spec.FindRule(cfg.Mounters, peek) != nil {
				t.Fatalf("an unparsable config.json (%v) that matches a rule was executed", err)
			}
			if !bytes.Equal(after, data) || !slices.Equal(execd[1:], wantPassArgv) {
				t.Fatalf("an unparsable, non-matching config.json was changed or its argv was: %q", execd[1:])
			}
			return
		}
		rule := spec.FindRule(cfg.Mounters, before.Spec)
		if rule == nil {
			if !bytes.Equal(after, data) {
				t.Fatal("config.json of a container that matches no rule changed")
			}
			if !slices.Equal(execd[1:], wantPassArgv) {
				t.Fatalf("pass-through argv = %q, want %q", execd[1:], wantPassArgv)
			}
			return
		}
		if err := spec.CheckPolicy(rule, before.Spec); err != nil {
			t.Fatalf("rule %q executed a container its policy refuses: %v", rule.Name, err)
		}
		if !json.Valid(after) {
			t.Fatalf("rewritten config.json is not valid JSON: %.300q", after)
		}
		got, err := spec.Parse(after)
		if err != nil {
			t.Fatalf("rewritten config.json does not parse: %v", err)
		}
		fzCheckRewrite(t, rule, before.Spec, got.Spec)
		for _, p := range host.ensured {
			if _, ok := hostmount.WithinAny(p, rule.Propagate); !ok {
				t.Fatalf("host path %s made shared, outside rule %q's %v", p, rule.Name, rule.Propagate)
			}
		}
	})
}

// fzPeekFirst is data as runc reads it: the first JSON value, decoded by a
// json.Decoder into a spec; nil when runc cannot read it.
func fzPeekFirst(data []byte) *specs.Spec {
	var s specs.Spec
	if json.NewDecoder(bytes.NewReader(data)).Decode(&s) != nil {
		return nil
	}
	return &s
}

// fzTempDir is a temp dir on tmpfs where there is one: every rewrite
// creates, writes and renames a file, slower on a disk.
func fzTempDir(f *testing.F) string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "rs-fuzz-wrapper-"); err == nil {
			f.Cleanup(func() { os.RemoveAll(d) })
			return d
		}
	}
	return f.TempDir()
}

func fzOnlyConfigLeft(t *testing.T, bundle string) {
	t.Helper()
	ents, err := os.ReadDir(bundle)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() != "config.json" {
			t.Fatalf("the wrapper left %s in the bundle", e.Name())
		}
	}
}

func fzCheckRewrite(t *testing.T, rule *spec.Rule, before, after *specs.Spec) {
	t.Helper()
	for _, c := range []struct {
		what string
		b, a any
	}{
		{"capabilities", fzCaps(before), fzCaps(after)},
		{"devices", fzDevices(before), fzDevices(after)},
		{"namespaces", fzNamespaces(before), fzNamespaces(after)},
		{"process", fzProcessNoCaps(before), fzProcessNoCaps(after)},
		{"root", before.Root, after.Root},
		{"annotations", fzWithout(before.Annotations, spec.AnnotationStagedSources), fzWithout(after.Annotations, spec.AnnotationStagedSources)},
	} {
		if b, a := fzJSON(t, c.b), fzJSON(t, c.a); b != a {
			t.Fatalf("%s changed:\n %s\n %s", c.what, b, a)
		}
	}
	// The mounts not allowlisted come first, in order, unchanged but for
	// rslave where they had no propagation option; then the allowlisted
	// binds, rshared, each bound from its staging path, in order, but for
	// those an outer bind's destination covers.
	staged := spec.StagedSources(after)
	var others, binds []specs.Mount
	for _, b := range before.Mounts {
		_, allowlisted := hostmount.WithinAny(filepath.Clean(b.Source), rule.Propagate)
		if spec.IsBind(&b) && filepath.IsAbs(b.Source) && allowlisted {
			binds = append(binds, b)
		} else {
			others = append(others, b)
		}
	}
	if len(after.Mounts) < len(others) {
		t.Fatalf("%d mounts became %d", len(before.Mounts), len(after.Mounts))
	}
	for i, b := range others {
		if a := after.Mounts[i]; fzJSON(t, b) != fzJSON(t, a) && !fzPinned(b, a) {
			t.Fatalf("mount %d changed but is not an allowlisted bind:\n %s\n %s", i, fzJSON(t, b), fzJSON(t, a))
		}
	}
	kept := after.Mounts[len(others):]
	j := 0
	for _, b := range binds {
		if j < len(kept) && kept[j].Destination == b.Destination {
			a := kept[j]
			j++
			if staged[a.Source] != filepath.Clean(b.Source) || a.Type != b.Type || !slices.Contains(a.Options, "rshared") {
				t.Fatalf("allowlisted bind rewritten wrongly:\n %s\n %s (staged from %q)", fzJSON(t, b), fzJSON(t, a), staged[a.Source])
			}
			for _, o := range a.Options {
				if o != "rshared" && !slices.Contains(b.Options, o) {
					t.Fatalf("bind %s gained option %q", b.Destination, o)
				}
			}
			continue
		}
		if !slices.ContainsFunc(kept, func(k specs.Mount) bool {
			return hostmount.Within(path.Clean("/"+b.Destination), path.Clean("/"+k.Destination))
		}) {
			t.Fatalf("allowlisted bind %s dropped, and no kept bind covers its destination", fzJSON(t, b))
		}
	}
	if j != len(kept) {
		t.Fatalf("the mounts after those not allowlisted are not the allowlisted binds: %s", fzJSON(t, kept))
	}
	if after.Linux == nil || after.Linux.RootfsPropagation != "rshared" {
		t.Fatal("rootfsPropagation is not rshared")
	}
	fzCheckHooks(t, before.Hooks, after.Hooks)
}

// fzPinned reports whether a is b with "rslave" appended to a mount that had
// no propagation option: the one change a wrapper may make to a mount outside
// the allowlist, so that the rshared root does not make it two-way.
func fzPinned(b, a specs.Mount) bool {
	for _, o := range b.Options {
		switch o {
		case "shared", "rshared", "slave", "rslave", "private", "rprivate", "unbindable", "runbindable":
			return false
		}
	}
	b.Options = append(slices.Clone(b.Options), "rslave")
	return reflect.DeepEqual(b, a)
}

// fzCheckHooks allows only appended mount-hook entries.
func fzCheckHooks(t *testing.T, before, after *specs.Hooks) {
	t.Helper()
	if before == nil {
		before = &specs.Hooks{}
	}
	if after == nil {
		t.Fatal("the hooks were removed")
	}
	//lint:ignore SA1019 Prestart is deprecated but still run by runc 1.1.
	prestart := [2][]specs.Hook{before.Prestart, after.Prestart}
	pairs := [][2][]specs.Hook{
		prestart, {before.CreateRuntime, after.CreateRuntime},
		{before.CreateContainer, after.CreateContainer}, {before.StartContainer, after.StartContainer},
		{before.Poststart, after.Poststart}, {before.Poststop, after.Poststop},
	}
	for i, p := range pairs {
		b, a := p[0], p[1]
		if len(a) < len(b) || len(b) > 0 && fzJSON(t, b) != fzJSON(t, a[:len(b)]) {
			t.Fatalf("hook stage %d: existing hooks changed:\n %s\n %s", i, fzJSON(t, b), fzJSON(t, a))
		}
		for _, h := range a[len(b):] {
			if filepath.Base(h.Path) != hookargs.Name {
				t.Fatalf("hook stage %d: added %q, not mount-hook", i, h.Path)
			}
		}
	}
}

func fzWithout(m map[string]string, key string) map[string]string {
	out := maps.Clone(m)
	delete(out, key)
	if len(out) == 0 {
		return nil
	}
	return out
}

func fzJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func fzCaps(s *specs.Spec) any {
	if s.Process == nil {
		return nil
	}
	return s.Process.Capabilities
}

func fzProcessNoCaps(s *specs.Spec) any {
	if s.Process == nil {
		return nil
	}
	p := *s.Process
	p.Capabilities = nil
	return p
}

func fzDevices(s *specs.Spec) any {
	if s.Linux == nil {
		return []any{nil, nil}
	}
	var res []specs.LinuxDeviceCgroup
	if s.Linux.Resources != nil {
		res = s.Linux.Resources.Devices
	}
	return []any{s.Linux.Devices, res}
}

func fzNamespaces(s *specs.Spec) any {
	if s.Linux == nil {
		return nil
	}
	return s.Linux.Namespaces
}
