// Package kubernetes_test validates the manifests in this directory: each
// document decodes strictly into its k8s.io/api type (no unknown or
// duplicate fields), the pieces fit together (RuntimeClass handler, the
// rule in the configuration against the mounter DaemonSet, host paths of the
// installer), and the installer script installs and uninstalls for real
// against a temporary node root.
package kubernetes_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	"sigs.k8s.io/yaml"

	"github.com/runc-shared/runc-shared/internal/config"
	"github.com/runc-shared/runc-shared/internal/configure"
	"github.com/runc-shared/runc-shared/internal/mounter"
	"github.com/runc-shared/runc-shared/internal/registry"
	"github.com/runc-shared/runc-shared/internal/testutil"
	"github.com/runc-shared/runc-shared/pkg/spec"
)

// asMounterEnv makes the test binary stand in for `mounter` when bin/mounter
// lacks the subcommands install.sh uses (see mounterForScript).
const asMounterEnv = "RSTEST_AS_MOUNTER"

func TestMain(m *testing.M) {
	if os.Getenv(asMounterEnv) == "1" {
		if len(os.Args) > 1 && os.Args[1] == "configure" {
			os.Exit(configure.Run(os.Args[2:], os.Stdout, os.Stderr))
		}
		os.Exit(mounter.Main(append([]string{"mounter"}, os.Args[1:]...)))
	}
	os.Exit(m.Run())
}

// manifests holds every object of the directory by kind and name.
type manifests struct {
	namespaces     map[string]*corev1.Namespace
	configMaps     map[string]*corev1.ConfigMap
	daemonSets     map[string]*appsv1.DaemonSet
	runtimeClasses map[string]*nodev1.RuntimeClass
}

// typeOf maps apiVersion/kind to the API type a document must decode into.
var typeOf = map[string]func() any{
	"v1/Namespace":                func() any { return &corev1.Namespace{} },
	"v1/ConfigMap":                func() any { return &corev1.ConfigMap{} },
	"apps/v1/DaemonSet":           func() any { return &appsv1.DaemonSet{} },
	"node.k8s.io/v1/RuntimeClass": func() any { return &nodev1.RuntimeClass{} },
}

func load(t *testing.T) *manifests {
	t.Helper()
	files, err := filepath.Glob("*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	m := &manifests{namespaces: map[string]*corev1.Namespace{}, configMaps: map[string]*corev1.ConfigMap{},
		daemonSets: map[string]*appsv1.DaemonSet{}, runtimeClasses: map[string]*nodev1.RuntimeClass{}}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range splitDocs(raw) {
			obj, err := decodeStrict(doc)
			if err != nil {
				t.Fatalf("%s, document %d: %v", f, i+1, err)
			}
			switch o := obj.(type) {
			case *corev1.Namespace:
				m.namespaces[o.Name] = o
			case *corev1.ConfigMap:
				m.configMaps[o.Name] = o
			case *appsv1.DaemonSet:
				m.daemonSets[o.Name] = o
			case *nodev1.RuntimeClass:
				m.runtimeClasses[o.Name] = o
			}
		}
	}
	return m
}

// splitDocs splits a YAML stream at its "---" lines, dropping empty ones.
func splitDocs(raw []byte) [][]byte {
	var docs [][]byte
	for _, d := range bytes.Split(append([]byte("\n"), raw...), []byte("\n---\n")) {
		if len(bytes.TrimSpace(stripComments(d))) > 0 {
			docs = append(docs, d)
		}
	}
	return docs
}

func stripComments(d []byte) []byte {
	var out [][]byte
	for _, l := range bytes.Split(d, []byte("\n")) {
		if !bytes.HasPrefix(bytes.TrimSpace(l), []byte("#")) {
			out = append(out, l)
		}
	}
	return bytes.Join(out, []byte("\n"))
}

// decodeStrict decodes one document into the API type its apiVersion and
// kind name, refusing duplicate keys and fields the type does not have.
func decodeStrict(doc []byte) (any, error) {
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return nil, err
	}
	var meta struct{ APIVersion, Kind string }
	if err := json.Unmarshal(j, &meta); err != nil {
		return nil, err
	}
	mk, ok := typeOf[meta.APIVersion+"/"+meta.Kind]
	if !ok {
		return nil, fmt.Errorf("apiVersion %q kind %q: not a type this test knows; add it to typeOf", meta.APIVersion, meta.Kind)
	}
	obj := mk()
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	if err := dec.Decode(obj); err != nil {
		return nil, fmt.Errorf("%s: %w", meta.Kind, err)
	}
	return obj, nil
}

func (m *manifests) configMap(t *testing.T, name, key string) string {
	t.Helper()
	cm, ok := m.configMaps[name]
	if !ok {
		t.Fatalf("no ConfigMap %s", name)
	}
	v, ok := cm.Data[key]
	if !ok {
		t.Fatalf("ConfigMap %s has no key %s", name, key)
	}
	return v
}

func (m *manifests) daemonSet(t *testing.T, name string) *appsv1.DaemonSet {
	t.Helper()
	ds, ok := m.daemonSets[name]
	if !ok {
		t.Fatalf("no DaemonSet %s", name)
	}
	return ds
}

// rules loads the configuration of the runc-shared-config ConfigMap the way
// the binaries do.
func (m *manifests) rules(t *testing.T) *config.Config {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(p, []byte(m.configMap(t, "runc-shared-config", "config.toml")), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(p)
	if err != nil {
		t.Fatalf("config.toml of runc-shared-config: %v", err)
	}
	return cfg
}

func TestDecodeStrictly(t *testing.T) {
	m := load(t)
	if len(m.namespaces) != 1 || len(m.runtimeClasses) != 1 || len(m.daemonSets) != 2 || len(m.configMaps) != 2 {
		t.Errorf("objects: %d namespaces, %d runtime classes, %d daemon sets, %d config maps; want 1, 1, 2, 2",
			len(m.namespaces), len(m.runtimeClasses), len(m.daemonSets), len(m.configMaps))
	}
	// The strict decoder itself: an unknown field must fail.
	if _, err := decodeStrict([]byte("apiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata: {name: x}\nhandler: shared\nhandlr: typo\n")); err == nil {
		t.Error("a misspelt field decoded")
	}
	if _, err := decodeStrict([]byte("apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\nmetadata: {name: y}\n")); err == nil {
		t.Error("a duplicate key decoded")
	}
}

func TestPiecesFit(t *testing.T) {
	m := load(t)
	cfg := m.rules(t)
	if len(cfg.Mounters) != 1 {
		t.Fatalf("want one rule, have %d", len(cfg.Mounters))
	}
	rule := cfg.Mounters[0]

	var ns string
	for name, n := range m.namespaces {
		ns = name
		if n.Labels["pod-security.kubernetes.io/enforce"] != "privileged" {
			t.Errorf("namespace %s does not allow privileged pods (Pod Security Admission)", name)
		}
	}
	for _, cm := range m.configMaps {
		if cm.Namespace != ns {
			t.Errorf("ConfigMap %s in namespace %q, want %q", cm.Name, cm.Namespace, ns)
		}
	}

	rc, ok := m.runtimeClasses["shared"]
	if !ok || rc.Handler != configure.DefaultRuntimeName {
		t.Fatalf("RuntimeClass shared with handler %q (what configure --engine containerd adds): %+v", configure.DefaultRuntimeName, rc)
	}

	for _, ds := range m.daemonSets {
		if ds.Namespace != ns {
			t.Errorf("DaemonSet %s in namespace %q, want %q", ds.Name, ds.Namespace, ns)
		}
		for k, v := range ds.Spec.Selector.MatchLabels {
			if ds.Spec.Template.Labels[k] != v {
				t.Errorf("DaemonSet %s: selector %s=%s does not select its own pods", ds.Name, k, v)
			}
		}
	}

	t.Run("Mounter", func(t *testing.T) {
		ds := m.daemonSet(t, "glusterfs-mounter")
		pod := ds.Spec.Template.Spec
		if pod.RuntimeClassName == nil || *pod.RuntimeClassName != rc.Name {
			t.Errorf("runtimeClassName %v, want %s", pod.RuntimeClassName, rc.Name)
		}
		if !pod.HostNetwork {
			t.Error("not in the host network: the FUSE daemons serve the node's mounts")
		}
		if ds.Spec.UpdateStrategy.Type != appsv1.OnDeleteDaemonSetStrategyType {
			t.Error("a rolling update would kill every node's GlusterFS mounts at once: want OnDelete")
		}
		if len(pod.Containers) != 1 {
			t.Fatalf("want one container, have %d", len(pod.Containers))
		}
		c := pod.Containers[0]
		if c.SecurityContext == nil || c.SecurityContext.Privileged == nil || !*c.SecurityContext.Privileged {
			t.Error("not privileged: the rule requires CAP_SYS_ADMIN, and FUSE needs /dev/fuse")
		}
		if !slices.Contains(rule.FSTypes, "glusterfs") {
			t.Errorf("rule %s does not serve glusterfs: %v", rule.Name, rule.FSTypes)
		}
		// Every rule path is bound at the same path, with no
		// mountPropagation: runc-shared makes it rshared.
		for _, p := range rule.Propagate {
			vol := volumeFor(pod.Volumes, p)
			if vol == "" {
				t.Errorf("no hostPath volume for the rule's path %s", p)
				continue
			}
			vm := mountOf(c.VolumeMounts, vol)
			if vm == nil || vm.MountPath != p {
				t.Errorf("volume %s (%s) mounted at %+v, want %s", vol, p, vm, p)
			} else if vm.MountPropagation != nil && *vm.MountPropagation != corev1.MountPropagationNone {
				t.Errorf("volume %s has mountPropagation %s: leave it to runc-shared (see the comment in the manifest)", vol, *vm.MountPropagation)
			}
		}

		// The rule against the specs containerd's CRI plugin builds for
		// this pod (see tests/engines TestContainerdCRI): the pod
		// annotation reaches both the sandbox and the container, which
		// also carry the CRI's own annotations.
		podAnn := ds.Spec.Template.Annotations
		if podAnn[spec.AnnotationMounter] == "" {
			t.Fatalf("pod template lacks the annotation %s", spec.AnnotationMounter)
		}
		container := criSpec(podAnn, map[string]string{
			"io.kubernetes.cri.container-type":    "container",
			"io.kubernetes.cri.container-name":    c.Name,
			"io.kubernetes.cri.sandbox-namespace": ds.Namespace,
		})
		if got := spec.FindRule(cfg.Mounters, container); got == nil || got.Name != rule.Name {
			t.Errorf("rule %s does not match the mounter container (annotations %v): %+v", rule.Name, container.Annotations, got)
		}
		if err := spec.CheckPolicy(&rule, withCaps(container, "CAP_SYS_ADMIN")); err != nil {
			t.Errorf("policy refuses the mounter: %v", err)
		}
		sandbox := criSpec(podAnn, map[string]string{
			"io.kubernetes.cri.container-type":    "sandbox",
			"io.kubernetes.cri.sandbox-namespace": ds.Namespace,
		})
		if got := spec.FindRule(cfg.Mounters, sandbox); got != nil {
			t.Errorf("rule %s matches the pod's sandbox container, which would be refused (no CAP_SYS_ADMIN, no bind): set container-name in the rule", got.Name)
		}
		elsewhere := criSpec(podAnn, map[string]string{
			"io.kubernetes.cri.container-name":    c.Name,
			"io.kubernetes.cri.sandbox-namespace": "default",
		})
		if err := spec.CheckPolicy(&rule, withCaps(elsewhere, "CAP_SYS_ADMIN")); err == nil && len(rule.Namespaces) > 0 {
			t.Errorf("policy allows the same pod in namespace default; rule namespaces %v", rule.Namespaces)
		}
	})

	t.Run("Installer", func(t *testing.T) {
		ds := m.daemonSet(t, "runc-shared-node-installer")
		pod := ds.Spec.Template.Spec
		if len(pod.InitContainers) != 1 {
			t.Fatalf("want one init container, have %d", len(pod.InitContainers))
		}
		c := pod.InitContainers[0]
		env := map[string]string{}
		for _, e := range c.Env {
			env[e.Name] = e.Value
		}
		if env["RUNTIME_NAME"] != rc.Handler {
			t.Errorf("installer RUNTIME_NAME %q, RuntimeClass handler %q", env["RUNTIME_NAME"], rc.Handler)
		}
		host := env["HOST_ROOT"]
		// Each node path the script writes is a hostPath volume mounted
		// below HOST_ROOT at the same path.
		for _, p := range []string{env["INSTALL_DIR"], filepath.Dir(env["CONTAINERD_CONFIG"]), filepath.Dir(config.DefaultPath)} {
			vol := volumeFor(pod.Volumes, p)
			vm := mountOf(c.VolumeMounts, vol)
			if vol == "" || vm == nil || vm.MountPath != host+p || vm.ReadOnly {
				t.Errorf("node path %s: volume %q mounted at %+v, want a writable hostPath at %s", p, vol, vm, host+p)
			}
		}
		// The script and the configuration come from the ConfigMaps.
		want := map[string]string{"/scripts": "runc-shared-installer", "/config": "runc-shared-config"}
		for _, vm := range c.VolumeMounts {
			if name, ok := want[vm.MountPath]; ok {
				if v := volume(pod.Volumes, vm.Name); v == nil || v.ConfigMap == nil || v.ConfigMap.Name != name {
					t.Errorf("%s is not ConfigMap %s: %+v", vm.MountPath, name, v)
				}
				delete(want, vm.MountPath)
			}
		}
		if len(want) > 0 {
			t.Errorf("not mounted: %v", want)
		}
		if !reflect.DeepEqual(c.Command, []string{"/bin/sh", "/scripts/install.sh", "install"}) {
			t.Errorf("command %v", c.Command)
		}
		// uninstall asks `mounter list`, which reads the registry below the
		// configuration's state-dir and the node's /proc.
		if !pod.HostPID {
			t.Errorf("installer without hostPID: uninstall cannot see whether mounters run")
		}
		if vm := mountOf(c.VolumeMounts, volumeFor(pod.Volumes, cfg.StateDir)); vm == nil || vm.MountPath != cfg.StateDir {
			t.Errorf("state dir %s: mounted at %+v, want the node path", cfg.StateDir, vm)
		}
		// The runtime the handler names is where the script puts it, and
		// mount-hook lands beside it, where runc-shared looks for it.
		if cfg.HookPath != "" {
			t.Errorf("hook-path %q set: mount-hook is installed beside runc-shared", cfg.HookPath)
		}
	})
}

// criSpec is a spec with the pod's annotations plus the CRI's own.
func criSpec(pod, cri map[string]string) *specs.Spec {
	s := &specs.Spec{Annotations: map[string]string{}, Process: &specs.Process{},
		Linux: &specs.Linux{Namespaces: []specs.LinuxNamespace{{Type: specs.MountNamespace}}}}
	for k, v := range pod {
		s.Annotations[k] = v
	}
	for k, v := range cri {
		s.Annotations[k] = v
	}
	return s
}

func withCaps(s *specs.Spec, caps ...string) *specs.Spec {
	s.Process.Capabilities = &specs.LinuxCapabilities{Bounding: caps, Effective: caps, Permitted: caps}
	return s
}

// volumeFor returns the name of the hostPath volume of path.
func volumeFor(vols []corev1.Volume, path string) string {
	for _, v := range vols {
		if v.HostPath != nil && v.HostPath.Path == path {
			return v.Name
		}
	}
	return ""
}

func volume(vols []corev1.Volume, name string) *corev1.Volume {
	for i := range vols {
		if vols[i].Name == name {
			return &vols[i]
		}
	}
	return nil
}

func mountOf(vms []corev1.VolumeMount, vol string) *corev1.VolumeMount {
	for i := range vms {
		if vms[i].Name == vol {
			return &vms[i]
		}
	}
	return nil
}

// TestInstallScript runs install.sh from the ConfigMap against a temporary
// node root that holds a real `containerd config default`: install, again
// (nothing changes), uninstall while a registered mounter runs (refused,
// nothing removed), uninstall once it is gone (the original config back,
// byte for byte). The configuration's state-dir points at a temp dir.
func TestInstallScript(t *testing.T) {
	m := load(t)
	root := testutil.RepoRoot(t)
	node := t.TempDir()
	script := filepath.Join(t.TempDir(), "install.sh")
	if err := os.WriteFile(script, []byte(m.configMap(t, "runc-shared-installer", "install.sh")), 0o755); err != nil {
		t.Fatal(err)
	}
	stateDir := filepath.Join(t.TempDir(), "state")
	cfgText := m.configMap(t, "runc-shared-config", "config.toml")
	const stateLine = `state-dir = "/run/runc-shared"`
	if !strings.Contains(cfgText, stateLine) {
		t.Fatalf("config.toml lacks %s, which the installer mounts", stateLine)
	}
	cfgSrc := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(cfgSrc, []byte(strings.Replace(cfgText, stateLine, fmt.Sprintf("state-dir = %q", stateDir), 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	def, err := exec.Command("containerd", "config", "default").Output()
	if err != nil {
		t.Fatalf("containerd config default (install containerd: scripts/deps.sh engines): %v", err)
	}
	containerdConfig := filepath.Join(node, "etc/containerd/config.toml")
	if err := os.MkdirAll(filepath.Dir(containerdConfig), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(containerdConfig, def, 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(root, "bin")
	for _, b := range []string{"runc-shared", "mount-hook", "mounter", "libhostmount.so"} {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			t.Fatalf("%v: run make first", err)
		}
	}
	env := append(os.Environ(), "HOST_ROOT="+node, "SRC_DIR="+bin, "CONFIG_SRC="+cfgSrc, "MOUNTER="+mounterForScript(t, bin))
	try := func(action string) (string, error) {
		t.Helper()
		cmd := exec.Command("/bin/sh", script, action)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	sh := func(action string) string {
		t.Helper()
		out, err := try(action)
		if err != nil {
			t.Fatalf("install.sh %s: %v\n%s", action, err, out)
		}
		return out
	}

	out := sh("install")
	if !strings.Contains(out, "restart containerd on this node") {
		t.Errorf("first install does not ask for a containerd restart:\n%s", out)
	}
	for _, f := range []string{"runc-shared", "mount-hook", "mounter", "libhostmount.so"} {
		if _, err := os.Stat(filepath.Join(node, "opt/runc-shared/bin", f)); err != nil {
			t.Errorf("not installed: %v", err)
		}
	}
	if _, err := config.Load(filepath.Join(node, "etc/runc-shared/config.toml")); err != nil {
		t.Errorf("installed config does not load: %v", err)
	}
	got, _ := os.ReadFile(containerdConfig)
	for _, want := range []string{`[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.shared]`, `BinaryName = "/opt/runc-shared/bin/runc-shared"`,
		`pod_annotations = ["runc-shared.io/mounter"]`} {
		if !strings.Contains(string(got), want) {
			t.Errorf("containerd config lacks %s", want)
		}
	}

	if out := sh("install"); strings.Contains(out, "restart containerd") || !strings.Contains(out, "unchanged") {
		t.Errorf("second install changed the containerd config:\n%s", out)
	}

	// A registered mounter whose process runs: a child of this test.
	sleep := exec.Command("sleep", "1000")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sleep.Process.Kill(); _ = sleep.Wait() })
	start, err := registry.ProcStart(sleep.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	rec := &registry.Record{ID: "rstest-mounter", Name: "glusterfs", PID: sleep.Process.Pid, PIDStart: start,
		Runtime: "runc", FSTypes: []string{"glusterfs"}, Propagate: []string{"/var/lib/kubelet"}, Created: time.Now()}
	if err := registry.New(stateDir).Write(rec); err != nil {
		t.Fatal(err)
	}
	installedConfig, _ := os.ReadFile(containerdConfig)
	out, err = try("uninstall")
	if err == nil || !strings.Contains(out, "refusing to uninstall") || !strings.Contains(out, rec.ID) || !strings.Contains(out, "kubectl delete") {
		t.Errorf("uninstall with mounter %s running: err %v, want a refusal that names it and says how to stop it:\n%s", rec.ID, err, out)
	}
	if now, _ := os.ReadFile(containerdConfig); !bytes.Equal(now, installedConfig) {
		t.Errorf("the refused uninstall changed the containerd config")
	}
	for _, f := range []string{"runc-shared", "mount-hook", "mounter", "libhostmount.so"} {
		if _, err := os.Stat(filepath.Join(node, "opt/runc-shared/bin", f)); err != nil {
			t.Errorf("the refused uninstall removed %s: %v", f, err)
		}
	}
	_ = sleep.Process.Kill()
	_ = sleep.Wait()

	sh("uninstall")
	if after, _ := os.ReadFile(containerdConfig); !bytes.Equal(after, def) {
		t.Errorf("uninstall did not restore the containerd config")
	}
	if ents, _ := os.ReadDir(filepath.Join(node, "opt/runc-shared/bin")); len(ents) != 0 {
		t.Errorf("left after uninstall: %v", ents)
	}
}

// mounterForScript returns what install.sh runs as `mounter`: bin/mounter
// when it is built with the subcommands the script uses, else this test
// binary, which runs internal/configure and internal/mounter (the same code)
// when asMounterEnv is set (`go test ./deploy/...` without `make`).
func mounterForScript(t *testing.T, bin string) string {
	t.Helper()
	built := filepath.Join(bin, "mounter")
	if exec.Command(built, "configure", "--help").Run() == nil {
		if help, err := exec.Command(built, "help").Output(); err == nil && bytes.Contains(help, []byte(" list [-q]")) {
			return built
		}
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	shim := filepath.Join(t.TempDir(), "mounter")
	body := fmt.Sprintf("#!/bin/sh\n%s=1 exec %q \"$@\"\n", asMounterEnv, self)
	if err := os.WriteFile(shim, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("no bin/mounter with configure and list: install.sh runs internal/configure and internal/mounter through the test binary")
	return shim
}
