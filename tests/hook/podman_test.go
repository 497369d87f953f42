package hook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/runc-shared/runc-shared/internal/registry"
	"github.com/runc-shared/runc-shared/internal/testutil"
	"github.com/runc-shared/runc-shared/pkg/spec"
)

// podman runs Podman 4.3 on a store of its own under a temp dir, so nothing
// touches the machine's real Podman state: --root, --runroot, and a
// containers.conf (CONTAINERS_CONF) with its own tmp dir, file locks and file
// events. Per platform-facts: cgroupfs, host network, and rlimits that do not
// need CAP_SYS_RESOURCE.
type podman struct {
	dir, conf, hooksDir string
}

func newPodman(t *testing.T, hooksDir string) *podman {
	t.Helper()
	if _, err := exec.LookPath("podman"); err != nil {
		t.Fatalf("podman: %v (scripts/deps.sh engines installs it)", err)
	}
	dir := shortTempDir(t)
	p := &podman{dir: dir, conf: filepath.Join(dir, "containers.conf"), hooksDir: hooksDir}
	conf := fmt.Sprintf(`[engine]
tmp_dir = %q
lock_type = "file"
events_logger = "file"
events_logfile_path = %q
cgroup_manager = "cgroupfs"
volume_path = %q
`, filepath.Join(dir, "tmp"), filepath.Join(dir, "events.log"), filepath.Join(dir, "volumes"))
	if err := os.WriteFile(p.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// shortTempDir is testutil.TempDir with a short name: Podman refuses a
// --runroot longer than 50 characters.
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "rsp-")
	if err != nil {
		t.Fatal(err)
	}
	if dir, err = filepath.EvalSymlinks(dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Nothing may stay mounted below before RemoveAll walks it.
		if err := testutil.UnmountAll(dir); err != nil {
			t.Errorf("leaving %s in place: %v", dir, err)
			return
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Error(err)
		}
	})
	return dir
}

// run runs podman with the isolating global flags; output is combined.
func (p *podman) run(t *testing.T, stdin []byte, args ...string) (string, error) {
	t.Helper()
	global := []string{
		"--root", filepath.Join(p.dir, "root"), "--runroot", filepath.Join(p.dir, "runroot"),
		"--cgroup-manager", "cgroupfs", "--hooks-dir", p.hooksDir, "--runtime", runcPath(t),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "podman", append(global, args...)...)
	cmd.Env = append(os.Environ(), "CONTAINERS_CONF="+p.conf)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("podman %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// importBusybox imports the busybox rootfs as an image and returns its name.
func (p *podman) importBusybox(t *testing.T) string {
	t.Helper()
	tar, err := exec.Command("tar", "-C", testutil.BusyboxRootfs(t), "-c", ".").Output()
	if err != nil {
		t.Fatalf("tar busybox rootfs: %v", err)
	}
	const image = "localhost/runc-shared-hook-test:latest"
	if _, err := p.run(t, tar, "import", "-", image); err != nil {
		t.Fatal(err)
	}
	return image
}

// installHooksD copies the repository's hooks.d files into dir the way
// `make install` does, with the hook path pointing at bin/mount-hook, and adds
// --config before the stage so the hook reads the test's configuration.
func installHooksD(t *testing.T, dir, config string) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(testutil.RepoRoot(t), "hooks.d", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no hooks.d/*.json in the repository: %v", err)
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		h, _ := doc["hook"].(map[string]any)
		args, _ := h["args"].([]any)
		if h == nil || len(args) < 2 {
			t.Fatalf("%s: no hook.args", f)
		}
		h["path"] = testutil.Bin(t, "mount-hook")
		last := len(args) - 1
		h["args"] = append(append(args[:last:last], "--config", config), args[last])
		out, err := json.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestPodmanHooksD(t *testing.T) {
	testutil.CheckLeaks(t)
	testutil.ForEachHost(t, func(t *testing.T, _ testutil.Host) {
		host := testutil.SharedDir(t)
		e := newEnv(t, host, "")
		hooksDir := testutil.TempDir(t)
		installHooksD(t, hooksDir, e.config)
		p := newPodman(t, hooksDir)
		image := p.importBusybox(t)

		const name = "rs-hook-mounter"
		t.Cleanup(func() {
			if out, err := p.run(t, nil, "rm", "--force", "--time", "0", name); err != nil && !strings.Contains(out, "no such container") {
				t.Errorf("remove podman container: %v", err)
			}
		})
		// Podman turns :rshared into an rshared bind and rootfsPropagation
		// "shared", which is what the hook's check wants without the wrapper.
		out, err := p.run(t, nil, "run", "-d", "--name", name, "--network", "host",
			"--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768",
			"--annotation", spec.AnnotationMounter+"=fuse", "--cap-add", "SYS_ADMIN",
			"-v", host+":/host:rshared", image, "sleep", "1000")
		if err != nil {
			t.Fatalf("%v\nhook log:\n%s", err, e.hookLog(t))
		}
		id := strings.TrimSpace(out[strings.LastIndexByte(strings.TrimSpace(out), '\n')+1:])
		pidOut, err := p.run(t, nil, "inspect", "--format", "{{.State.Pid}}", name)
		if err != nil {
			t.Fatal(err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(pidOut))
		if err != nil {
			t.Fatalf("podman inspect pid: %q", pidOut)
		}

		rec, err := e.registry().Read(id)
		if err != nil {
			t.Fatalf("no record for the running Podman mounter %s: %v\nhook log:\n%s", id, err, e.hookLog(t))
		}
		if rec.PID != pid || rec.Name != "fuse" || rec.Runtime != runcPath(t) || rec.RuntimeRoot != "" {
			t.Errorf("record = %+v, want pid %d, runtime %s, default root", rec, pid, runcPath(t))
		}
		// The routing client's view: Podman runs runc with its default --root,
		// so the record's runtime and root reach the container.
		if v := (&registry.Checker{Runtime: "runc"}).Check(rec); v.Liveness != registry.Running {
			t.Errorf("Check(running Podman mounter) = %s: %s", v.Liveness, v.Reason)
		}

		if _, err := p.run(t, nil, "stop", "--time", "0", name); err != nil {
			t.Fatal(err)
		}
		// Podman runs poststop hooks itself while cleaning up the stopped
		// container, with a state that has no pid.
		testutil.Eventually(t, 10*time.Second, "the record to go after podman stop", func() (bool, string) {
			_, err := e.registry().Read(id)
			return errors.Is(err, registry.ErrNotFound), fmt.Sprintf("read: %v\nhook log:\n%s", err, e.hookLog(t))
		})
		log := e.hookLog(t)
		for _, want := range []string{"stage=createRuntime", "registered mounter", "stage=poststop", "unregistered mounter"} {
			if !strings.Contains(log, want) {
				t.Errorf("hook log lacks %q:\n%s", want, log)
			}
		}
	})
}
