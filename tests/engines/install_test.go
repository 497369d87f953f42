package engines_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/runc-shared/runc-shared/internal/configure"
	"github.com/runc-shared/runc-shared/internal/registry"
	"github.com/runc-shared/runc-shared/internal/testutil"
	"github.com/runc-shared/runc-shared/pkg/spec"
)

// testDockerd is a dockerd of one test, everything below dir, that can be
// restarted and sent SIGHUP.
type testDockerd struct {
	*dockerEngine
	dir, daemonJSON, cgroup string
	d                       *daemon
	starts                  int
}

// newTestDockerd starts dockerd with daemonJSON as its --config-file and its
// data root, exec root (with the netns mount that TempDir's cleanup
// detaches), pid file and socket below dir.
func newTestDockerd(t *testing.T, dir, daemonJSON, cgroupName string) *testDockerd {
	t.Helper()
	// Fixed paths that dockerd and containerd-shim create whatever the root
	// options say.
	testutil.KeepHostDirsClean(t, "/run/docker", "/run/docker/plugins", "/run/containerd", "/run/containerd/s")
	sock := filepath.Join(dir, "docker.sock")
	d := &testDockerd{dockerEngine: &dockerEngine{sock: sock, env: []string{"DOCKER_CONFIG=" + filepath.Join(dir, "cli")}},
		dir: dir, daemonJSON: daemonJSON, cgroup: cgroupParent(t, cgroupName)}
	d.start(t)
	return d
}

func (d *testDockerd) start(t *testing.T) {
	t.Helper()
	d.starts++
	d.d = startDaemon(t, "dockerd", nil, filepath.Join(d.dir, fmt.Sprintf("dockerd-%d.log", d.starts)), func() error {
		if err := socketReady(d.sock)(); err != nil {
			return err
		}
		return d.cli(t, nil, "version").err
	}, "dockerd", "--config-file", d.daemonJSON, "--data-root", filepath.Join(d.dir, "data"),
		"--exec-root", filepath.Join(d.dir, "exec"), "--pidfile", filepath.Join(d.dir, "dockerd.pid"),
		"-H", "unix://"+d.sock, "--iptables=false", "--ip6tables=false", "--bridge=none",
		"--cgroup-parent", d.cgroup, "--log-level", "info")
}

func (d *testDockerd) restart(t *testing.T) {
	t.Helper()
	d.d.stop(t, 30*time.Second)
	d.start(t)
}

// reload sends SIGHUP and waits for dockerd to log that it reloaded
// daemon.json.
func (d *testDockerd) reload(t *testing.T) {
	t.Helper()
	count := func() int {
		b, _ := os.ReadFile(d.d.log)
		return strings.Count(string(b), "Reloaded configuration")
	}
	before := count()
	if err := d.d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "dockerd to reload on SIGHUP", func() (bool, string) {
		return count() > before, "no \"Reloaded configuration\" in its log\n" + d.d.tail()
	})
}

// runtimes lists the runtimes dockerd offers now.
func (d *testDockerd) runtimes(t *testing.T) map[string]any {
	t.Helper()
	r := d.cli(t, nil, "info", "--format", "{{json .Runtimes}}")
	if r.err != nil {
		t.Fatal(r)
	}
	var rts map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &rts); err != nil {
		t.Fatalf("docker info runtimes: %v: %q", err, r.stdout)
	}
	return rts
}

// writeJSON writes v as dir/name and returns the path.
func writeJSON(t *testing.T, dir, name string, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// configureCLI runs `mounter configure` (the code of the subcommand) and
// returns its stdout.
func configureCLI(t *testing.T, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	if code := configure.Run(args, &out, &errOut); code != 0 {
		t.Fatalf("mounter configure %v: exit %d\n%s%s", args, code, out.String(), errOut.String())
	}
	return out.String()
}

// TestDockerConfigureRemoveStep: the step that `mounter configure --engine
// docker --remove` prints is the one that takes runtime "shared" out of a
// running dockerd 20.10. When daemon.json keeps another runtime, a SIGHUP
// does it; when the "runtimes" key goes, a SIGHUP keeps "shared" and only a
// restart drops it, which is what the output must then say.
func TestDockerConfigureRemoveStep(t *testing.T) {
	testutil.CheckLeaks(t)
	testutil.RequireRoot(t)
	for _, tc := range []struct {
		name   string
		others map[string]any // runtimes in daemon.json before configure
		step   string         // the step remove must print
	}{
		{name: "LastRuntime", step: "restart dockerd"},
		{name: "OtherRuntimeLeft", others: map[string]any{"rstest-other": map[string]string{"path": "/usr/bin/runc"}}, step: "reload dockerd"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := testutil.TempDir(t)
			// deprecated-key-path keeps dockerd from writing /etc/docker/key.json.
			pre := map[string]any{"deprecated-key-path": filepath.Join(dir, "key.json")}
			if tc.others != nil {
				pre["runtimes"] = tc.others
			}
			daemonJSON := writeJSON(t, dir, "daemon.json", pre)
			args := []string{"--engine", "docker", "--config-file", daemonJSON, "--runtime-path", testutil.Bin(t, "runc-shared")}
			t.Log(configureCLI(t, args...))
			d := newTestDockerd(t, dir, daemonJSON, "docker-"+tc.name)
			if _, ok := d.runtimes(t)["shared"]; !ok {
				t.Fatalf("dockerd does not offer runtime shared after configure: %v", d.runtimes(t))
			}

			out := configureCLI(t, append(args, "--remove")...)
			t.Logf("remove printed:\n%s", out)
			if !strings.Contains(out, "next: "+tc.step) {
				t.Errorf("remove does not print the step %q:\n%s", tc.step, out)
			}

			d.reload(t)
			_, kept := d.runtimes(t)["shared"]
			switch {
			case tc.step == "reload dockerd" && kept:
				t.Errorf("after the printed reload dockerd still offers runtime shared: %v", d.runtimes(t))
			case tc.step == "restart dockerd" && !kept:
				// Then a reload would have done, and the restart asked for is needless.
				t.Errorf("a reload already dropped runtime shared; the printed restart is not needed")
			case tc.step == "restart dockerd":
				d.restart(t)
				if _, ok := d.runtimes(t)["shared"]; ok {
					t.Errorf("after the printed restart dockerd still offers runtime shared: %v", d.runtimes(t))
				}
			}
			for name := range tc.others {
				if _, ok := d.runtimes(t)[name]; !ok {
					t.Errorf("runtime %s of the operator is gone: %v", name, d.runtimes(t))
				}
			}
		})
	}
}

// TestDockerUninstallRefusesWhileMounterRuns: `make uninstall` while a Docker
// mounter runs (or is paused) refuses, names the mounter and says how to stop
// it, and removes nothing; once the mounter is removed with docker it removes
// everything `make install` put there, directories included. Uninstalling
// under a running mounter made `docker rm -f` fail with "cannot delete
// running task" and leaked a shim, runc state and the registry record.
func TestDockerUninstallRefusesWhileMounterRuns(t *testing.T) {
	testutil.CheckLeaks(t)
	testutil.RequireRoot(t)
	dir := testutil.TempDir(t)
	prefix := filepath.Join(dir, "prefix")
	repo := testutil.RepoRoot(t)
	testutil.Bin(t, "mounter")
	// -o build: install what `make` built before the tests ran, as in `make test`.
	if r := run(t, nil, nil, "make", "-s", "-C", repo, "-o", "build", "install", "PREFIX="+prefix); r.err != nil {
		t.Fatal(r)
	}
	installed := map[string]bool{}
	_ = filepath.WalkDir(prefix, func(p string, _ os.DirEntry, _ error) error { installed[p] = true; return nil })

	stateDir := filepath.Join(dir, "rs-state")
	host := testutil.PrivateDir(t)
	cfg := filepath.Join(dir, "rs.toml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`runtime = "runc"
state-dir = %q

[[mounter]]
name = %q
fstypes = ["glusterfs"]
propagate = [%q]

[mounter.match]
env = { %s = %q }
`, stateDir, ruleName, host, spec.EnvMounter, ruleName)), 0o644); err != nil {
		t.Fatal(err)
	}
	daemonJSON := writeJSON(t, dir, "daemon.json", map[string]string{"deprecated-key-path": filepath.Join(dir, "key.json")})
	configureCLI(t, "--engine", "docker", "--config-file", daemonJSON,
		"--runtime-path", filepath.Join(prefix, "bin", "runc-shared"), "--runc-shared-config", cfg)
	d := newTestDockerd(t, dir, daemonJSON, "docker-uninstall")
	if r := d.cli(t, bytes.NewReader(rootfsTar(t, testutil.BusyboxRootfs(t))), "import", "-", "rstest-busybox"); r.err != nil {
		t.Fatal(r)
	}
	t.Cleanup(func() { d.cli(t, nil, "rm", "-f", "rstest-mounter") })
	r := d.cli(t, nil, "run", "-d", "--name", "rstest-mounter", "--runtime", "shared", "--network", "host",
		"--cap-add", "SYS_ADMIN", "--device", "/dev/fuse", "-e", spec.EnvMounter+"="+ruleName,
		"-v", host+":"+host, "rstest-busybox", "sleep", "100000")
	if r.err != nil {
		t.Fatal(r)
	}
	id := strings.TrimSpace(r.stdout)
	if _, err := registry.New(stateDir).Read(id); err != nil {
		t.Fatalf("mounter %s is not registered: %v", id, err)
	}

	uninstall := func() result {
		t.Helper()
		return run(t, []string{"RUNC_SHARED_CONFIG=" + cfg}, nil, "make", "-s", "-C", repo, "uninstall", "PREFIX="+prefix)
	}
	refused := func(state string) {
		t.Helper()
		r := uninstall()
		if r.err == nil {
			t.Fatalf("make uninstall succeeded while mounter %s is %s: %v", id, state, r)
		}
		t.Logf("make uninstall, mounter %s:\n%s", state, r.stderr)
		for _, want := range []string{"refusing to uninstall", id, state, "docker stop"} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("make uninstall (mounter %s) does not say %q:\n%s", state, want, r.stderr)
			}
		}
		for p := range installed {
			if _, err := os.Stat(p); err != nil {
				t.Errorf("refused uninstall removed %s: %v", p, err)
			}
		}
	}
	refused("running")
	if r := d.cli(t, nil, "pause", id); r.err != nil {
		t.Fatal(r)
	}
	refused("paused")
	if r := d.cli(t, nil, "unpause", id); r.err != nil {
		t.Fatal(r)
	}

	// What the refusal asks for works, because the binaries are still there.
	if r := d.cli(t, nil, "stop", "-t", "1", id); r.err != nil {
		t.Fatal(r)
	}
	if r := d.cli(t, nil, "rm", id); r.err != nil {
		t.Fatal(r)
	}
	if _, err := registry.New(stateDir).Read(id); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("poststop left the record of %s: %v", id, err)
	}
	if r := uninstall(); r.err != nil {
		t.Fatalf("make uninstall with no mounter running: %v", r)
	}
	if _, err := os.Lstat(prefix); !errors.Is(err, os.ErrNotExist) {
		var left []string
		_ = filepath.WalkDir(prefix, func(p string, _ os.DirEntry, _ error) error { left = append(left, p); return nil })
		t.Errorf("make uninstall left %v", left)
	}
}
