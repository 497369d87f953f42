package engines_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/runc-shared/runc-shared/internal/configure"
	"github.com/runc-shared/runc-shared/internal/registry"
	"github.com/runc-shared/runc-shared/internal/testutil"
	"github.com/runc-shared/runc-shared/pkg/spec"
)

// TestPodman: Podman 4.3 with its storage, run and tmp dirs below a temp
// dir, file locks and file events (no shared memory lock, no journal), and
// a containers.conf (CONTAINERS_CONF: only that file is read) to which
// `mounter configure --engine podman` added runtime "shared" and whose
// hooks.d files it installed. runc keeps its state in its default root
// (/run/runc): Podman passes --runtime-flag only to the commands it is
// given on, not to the cleanup process that conmon starts.
func TestPodman(t *testing.T) {
	testutil.CheckLeaks(t)
	s := newSetup(t, false)
	// runc keeps its state in its default root; the blob info cache of
	// containers/image has a fixed path (/var/lib/containers/cache), the
	// one file written outside the temp dir.
	testutil.KeepHostDirsClean(t, "/run/runc")
	dir := filepath.Join(s.Dir, "podman")
	hooks := filepath.Join(dir, "hooks.d")
	for _, d := range []string{dir, hooks, filepath.Join(dir, "tmp")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	conf := filepath.Join(dir, "containers.conf")
	// The network settings keep Podman from probing for a backend, which
	// creates lock files in /etc/cni/net.d and /etc/containers/networks;
	// image_copy_tmp_dir (and TMPDIR) keep image imports out of /var/tmp.
	testutil.WriteFile(t, conf, fmt.Sprintf(`[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
lock_type = "file"
tmp_dir = %[1]q
image_copy_tmp_dir = %[1]q

[network]
network_backend = "netavark"
network_config_dir = %[2]q
`, filepath.Join(dir, "tmp"), filepath.Join(dir, "networks")))
	storage := filepath.Join(dir, "storage.conf")
	testutil.WriteFile(t, storage, fmt.Sprintf("[storage]\ndriver = \"overlay\"\ngraphroot = %q\nrunroot = %q\n", filepath.Join(dir, "root"), filepath.Join(dir, "run")))
	t.Log(s.configure(t, "--engine", "podman", "--config-file", conf, "--hooks-dir", hooks))
	for name := range configure.HookFiles {
		raw, err := os.ReadFile(filepath.Join(hooks, name))
		if err != nil || !bytes.Contains(raw, []byte(testutil.Bin(t, "mount-hook"))) {
			t.Fatalf("hook file %s: %v\n%s", name, err, raw)
		}
	}

	p := &podmanEngine{s: s,
		env: []string{"CONTAINERS_CONF=" + conf, "CONTAINERS_STORAGE_CONF=" + storage, "TMPDIR=" + filepath.Join(dir, "tmp")},
		global: []string{"--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "run"),
			"--tmpdir", filepath.Join(dir, "tmp"), "--cgroup-manager", "cgroupfs", "--events-backend", "file",
			"--hooks-dir", hooks, "--runtime", "shared", "--runtime-flag", "runc-shared-config=" + s.Config},
		cgroup: cgroupParent(t, "podman"),
	}
	for name, rootfs := range map[string]string{"localhost/rstest-busybox": testutil.BusyboxRootfs(t), "localhost/rstest-hostusr": testutil.HostUsrRootfs(t)} {
		if r := p.cli(t, bytes.NewReader(rootfsTar(t, rootfs)), "import", "-", name); r.err != nil {
			t.Fatal(r)
		}
	}
	s.watch.lap("images imported")
	acceptance(t, s, p)
}

// podmanEngine drives podman; every call carries the same global options.
type podmanEngine struct {
	s      *setup
	env    []string
	global []string
	cgroup string
}

func (p *podmanEngine) cli(t *testing.T, stdin io.Reader, args ...string) result {
	t.Helper()
	argv := append(append([]string{"podman"}, p.global...), args...)
	return run(t, p.env, stdin, argv...)
}

func (p *podmanEngine) start(t *testing.T, b box) (string, result) {
	t.Helper()
	host := p.s.Host
	// The default rlimits need CAP_SYS_RESOURCE, which this host lacks.
	args := []string{"run", "-d", "--name", b.name, "--network", "host", "--cgroup-parent", p.cgroup,
		"--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768", "-v", host + ":" + host}
	if b.sysAdmin {
		args = append(args, "--cap-add", "SYS_ADMIN", "--device", "/dev/fuse")
	}
	if b.mounter {
		args = append(args, "--annotation", spec.AnnotationMounter+"="+ruleName)
	}
	image := "localhost/rstest-busybox"
	if b.hostUsr {
		args = append(args, "-v", "/usr:/usr:ro")
		image = "localhost/rstest-hostusr"
	}
	t.Cleanup(func() {
		if r := p.remove(t, b.name); r.err != nil && !strings.Contains(r.stderr, "no such container") {
			t.Errorf("cleanup: %v", r)
		}
	})
	r := p.cli(t, nil, append(args, image, "sleep", "100000")...)
	return strings.TrimSpace(r.stdout), r
}

func (p *podmanEngine) exec(t *testing.T, id string, args ...string) result {
	t.Helper()
	return p.cli(t, nil, append([]string{"exec", id}, args...)...)
}

func (p *podmanEngine) remove(t *testing.T, id string) result {
	t.Helper()
	return p.cli(t, nil, "rm", "--force", "--time", "0", id)
}

// checkMounter: the createRuntime hook in the mounter's spec is the one from
// the hooks.d file that configure installed (Podman put it there; the
// wrapper adds none when mount-hook is already in the stage).
func (p *podmanEngine) checkMounter(t *testing.T, rec *registry.Record) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(rec.Bundle, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s specs.Spec
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatal(err)
	}
	if s.Hooks == nil || len(s.Hooks.CreateRuntime) != 1 {
		t.Fatalf("createRuntime hooks %+v, want the one from hooks.d", s.Hooks)
	}
	// The test's configuration names its own state dir, so the hooks.d file
	// passes it too: poststop finds the record even with the config gone.
	want := []string{"mount-hook", "--config", p.s.Config, "--state-dir", p.s.StateDir, "createRuntime"}
	if got := s.Hooks.CreateRuntime[0].Args; !slices.Equal(got, want) {
		t.Errorf("createRuntime hook args %q, want %q (the hooks.d file)", got, want)
	}
	// Podman runs hooks.d poststop hooks itself and keeps them out of the
	// spec, so the wrapper adds one there too: mount-hook poststop runs
	// twice, once from runc delete and once from Podman.
	t.Logf("poststop hooks in the spec: %d (Podman also runs the hooks.d one)", len(s.Hooks.Poststop))
}
