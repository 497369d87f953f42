package engines_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/runc-shared/runc-shared/internal/testutil"
	"github.com/runc-shared/runc-shared/pkg/spec"
)

// criContainerName is the container name the CRI test's rule requires.
// Kubernetes rules need one: pod_annotations pass the mounter annotation to
// the pod's sandbox (pause) container too, and only the container name
// (io.kubernetes.cri.container-name, absent on the sandbox) tells them
// apart.
const criContainerName = "mounter"

// TestContainerdCRI drives containerd's CRI plugin as kubelet does, through
// the CRI v1 gRPC API on its socket: pod sandboxes in the host network with
// runtime handler "shared" (added by `mounter configure --engine
// containerd` to the output of `containerd config default`), the mounter
// annotation on the pod, containers from locally imported images.
func TestContainerdCRI(t *testing.T) {
	testutil.CheckLeaks(t)
	s := newSetup(t, false, fmt.Sprintf("container-name = %q", criContainerName))
	acceptance(t, s, startCRI(t, s))
}

// startCRI starts containerd with the CRI plugin for s, imports the busybox
// and host-/usr images into its k8s.io namespace and connects to its CRI
// API. Cleanup stops containerd and removes what it left in its fixed
// host paths.
func startCRI(t *testing.T, s *setup) *criEngine {
	t.Helper()
	// Fixed paths: the shim's socket dir, and the runc root of runtime
	// options without Root (/run/containerd/runc/<namespace>).
	testutil.KeepHostDirsClean(t, "/run/containerd", "/run/containerd/s", "/run/containerd/runc", "/run/containerd/runc/k8s.io")
	dir := filepath.Join(s.Dir, "cri")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}

	def, err := exec.Command("containerd", "config", "default").Output()
	if err != nil {
		t.Fatalf("containerd config default: %v", err)
	}
	cfg := filepath.Join(dir, "config.toml")
	testutil.WriteFile(t, cfg, relocateDefaultConfig(t, string(def), dir))
	t.Log(s.configure(t, "--engine", "containerd", "--config-file", cfg))
	raw, _ := os.ReadFile(cfg)
	c := startContainerd(t, s, "cri", string(raw))
	s.watch.lap("containerd with cri ready")

	images := filepath.Join(s.Dir, "images")
	if err := os.Mkdir(images, 0o755); err != nil {
		t.Fatal(err)
	}
	for ref, rootfs := range map[string]string{busyboxRef: testutil.BusyboxRootfs(t), hostUsrRef: testutil.HostUsrRootfs(t)} {
		must(t, nil, nil, "ctr", "--address", c.socket, "-n", "k8s.io", "images", "import", ociArchive(t, images, rootfs, ref, []string{"sleep", "100000"}))
	}
	s.watch.lap("images imported")

	conn, err := grpc.NewClient("unix://"+c.socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	e := &criEngine{s: s, d: c.d, rt: runtimeapi.NewRuntimeServiceClient(conn), logs: filepath.Join(dir, "pods"), cgroup: cgroupParent(t, "cri")}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := e.rt.Version(ctx, &runtimeapi.VersionRequest{})
	if err != nil {
		t.Fatalf("CRI Version: %v", err)
	}
	t.Logf("CRI: %s %s (API %s)", v.RuntimeName, v.RuntimeVersion, v.RuntimeApiVersion)
	return e
}

// relocateDefaultConfig moves every host path of `containerd config
// default` below dir and makes the locally imported busybox the sandbox
// image (no registry is reachable).
func relocateDefaultConfig(t *testing.T, def, dir string) string {
	t.Helper()
	for _, r := range []struct{ key, old, value string }{
		{"root", "/var/lib/containerd", filepath.Join(dir, "root")},
		{"state", "/run/containerd", filepath.Join(dir, "state")},
		{"address", "/run/containerd/containerd.sock", filepath.Join(dir, "c.sock")},
		{"bin_dir", "/opt/cni/bin", filepath.Join(dir, "cni", "bin")},
		{"conf_dir", "/etc/cni/net.d", filepath.Join(dir, "cni", "net.d")},
		{"path", "/opt/containerd", filepath.Join(dir, "opt")},
		{"sandbox_image", `"[^"]*"`, busyboxRef},
		// The sandbox gets oom_score_adj -998, and lowering it needs
		// CAP_SYS_RESOURCE, which this host's bounding set lacks: runc's
		// init would die ("can't get final child's PID from pipe").
		{"restrict_oom_score_adj", "false", "true"},
	} {
		old, value := `"`+regexp.QuoteMeta(r.old)+`"`, tomlQuote(r.value)
		switch r.key {
		case "sandbox_image":
			old = r.old
		case "restrict_oom_score_adj":
			old, value = r.old, r.value
		}
		re := regexp.MustCompile(`(?m)^(\s*` + r.key + ` = )` + old + `$`)
		if n := len(re.FindAllString(def, -1)); n != 1 {
			t.Fatalf("containerd config default has %d lines %s = %s, want 1: its format changed", n, r.key, r.old)
		}
		def = re.ReplaceAllString(def, "${1}"+value)
	}
	return def
}

func tomlQuote(s string) string { return fmt.Sprintf("%q", s) }

// criEngine runs each box as a pod of its own, as kubelet would.
type criEngine struct {
	s      *setup
	d      *daemon
	rt     runtimeapi.RuntimeServiceClient
	logs   string
	cgroup string
}

func criCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), cmdTimeout)
}

// podConfig is the sandbox of pod name as kubelet asks for a host-network
// pod in kube-system, below the engine's cgroup parent.
func (e *criEngine) podConfig(name string) *runtimeapi.PodSandboxConfig {
	nsNode := &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE}
	return &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "kube-system", Uid: "uid-" + name},
		LogDirectory: filepath.Join(e.logs, name),
		Annotations:  map[string]string{},
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent:    e.cgroup,
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: nsNode},
		},
	}
}

func (e *criEngine) start(t *testing.T, b box) (string, result) {
	t.Helper()
	host := e.s.Host
	pod := e.podConfig(b.name)
	nsNode := pod.Linux.SecurityContext.NamespaceOptions
	name := b.name
	if b.mounter {
		pod.Annotations[spec.AnnotationMounter] = ruleName
		name = criContainerName
	}
	r := result{argv: []string{"CRI", "pod", b.name}}
	ctx, cancel := criCtx()
	defer cancel()
	start := time.Now()
	defer func() { r.took = time.Since(start) }()
	sb, err := e.rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: pod, RuntimeHandler: "shared"})
	if err != nil {
		r.err, r.stderr = err, err.Error()
		t.Logf("RunPodSandbox failed: %v\n%s", err, e.d.tail())
		return "", r
	}
	t.Cleanup(func() { e.removePod(t, sb.PodSandboxId) })

	image, mounts := busyboxRef, []*runtimeapi.Mount{{ContainerPath: host, HostPath: host}}
	if b.hostUsr {
		image = hostUsrRef
		mounts = append(mounts, &runtimeapi.Mount{ContainerPath: "/usr", HostPath: "/usr", Readonly: true})
	}
	sc := &runtimeapi.LinuxContainerSecurityContext{NamespaceOptions: nsNode}
	var devices []*runtimeapi.Device
	if b.sysAdmin {
		sc.Capabilities = &runtimeapi.Capability{AddCapabilities: []string{"SYS_ADMIN"}}
		devices = []*runtimeapi.Device{{ContainerPath: "/dev/fuse", HostPath: "/dev/fuse", Permissions: "rwm"}}
	}
	cc, err := e.rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{
		PodSandboxId: sb.PodSandboxId,
		Config: &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: name},
			Image:    &runtimeapi.ImageSpec{Image: image},
			Command:  []string{"sleep", "100000"},
			Mounts:   mounts,
			Devices:  devices,
			LogPath:  name + ".log",
			Linux:    &runtimeapi.LinuxContainerConfig{SecurityContext: sc},
		},
		SandboxConfig: pod,
	})
	if err != nil {
		r.err, r.stderr = err, err.Error()
		return "", r
	}
	if _, err := e.rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: cc.ContainerId}); err != nil {
		r.err, r.stderr = err, err.Error()
		return cc.ContainerId, r
	}
	return cc.ContainerId, r
}

func (e *criEngine) exec(t *testing.T, id string, args ...string) result {
	t.Helper()
	ctx, cancel := criCtx()
	defer cancel()
	start := time.Now()
	resp, err := e.rt.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: args, Timeout: 60})
	r := result{argv: append([]string{"CRI", "ExecSync", id}, args...), err: err, took: time.Since(start)}
	if err == nil {
		r.stdout, r.stderr = string(resp.Stdout), string(resp.Stderr)
		if resp.ExitCode != 0 {
			r.err = fmt.Errorf("exit code %d", resp.ExitCode)
		}
	}
	return r
}

// remove stops and removes the container, as kubelet does when a pod
// goes; its pod goes in the cleanup.
func (e *criEngine) remove(t *testing.T, id string) result {
	t.Helper()
	ctx, cancel := criCtx()
	defer cancel()
	r := result{argv: []string{"CRI", "StopContainer+RemoveContainer", id}}
	if _, err := e.rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: 0}); err != nil {
		r.err, r.stderr = err, err.Error()
		return r
	}
	if _, err := e.rt.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: id}); err != nil {
		r.err, r.stderr = err, err.Error()
	}
	return r
}

// removePod stops and removes a pod with all its containers.
func (e *criEngine) removePod(t *testing.T, id string) {
	ctx, cancel := criCtx()
	defer cancel()
	if _, err := e.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id}); err != nil && !strings.Contains(err.Error(), "not found") {
		t.Errorf("cleanup: stop pod %s: %v", id, err)
	}
	if _, err := e.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil && !strings.Contains(err.Error(), "not found") {
		t.Errorf("cleanup: remove pod %s: %v", id, err)
	}
}
