package engines_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/runc-shared/runc-shared/internal/registry"
	"github.com/runc-shared/runc-shared/internal/testutil"
	"github.com/runc-shared/runc-shared/pkg/spec"
)

// TestDockerOperatorMistakes: what an operator does to a Docker 20.10
// mounter loses nothing and leaves nothing behind, and `mounter status` and
// `mounter doctor` say what is going on:
//   - a paused mounter (docker pause) shows as paused, and running again
//     after docker unpause;
//   - a rule that matches by annotation only is flagged by doctor, since
//     this dockerd runs runc-shared and passes no annotations;
//   - the configuration breaks while the mounter serves a GlusterFS mount,
//     then docker stop: the poststop hook removes the record and detaches
//     the dead mount from what the record holds; after the configuration is
//     fixed and the mounter started again, status shows no dead mount and a
//     new mount at the same target works.
func TestDockerOperatorMistakes(t *testing.T) {
	testutil.CheckLeaks(t)
	s := newSetup(t, true)
	daemonJSON := writeJSON(t, s.Dir, "daemon.json", map[string]string{"deprecated-key-path": filepath.Join(s.Dir, "key.json")})
	s.configure(t, "--engine", "docker", "--config-file", daemonJSON)
	d := newTestDockerd(t, s.Dir, daemonJSON, "docker-operator")
	d.s = s
	if r := d.cli(t, bytes.NewReader(rootfsTar(t, testutil.HostUsrRootfs(t))), "import", "-", "rstest-hostusr"); r.err != nil {
		t.Fatal(r)
	}
	s.watch.lap("dockerd and image")
	id, r := d.dockerEngine.start(t, box{name: "mounter", hostUsr: true, mounter: true, sysAdmin: true})
	if r.err != nil {
		t.Fatalf("start the mounter: %v", r)
	}
	mounter := func(t *testing.T, config string, args ...string) result {
		t.Helper()
		return run(t, nil, nil, append([]string{testutil.Bin(t, "mounter"), "--config", config}, args...)...)
	}
	code := func(r result) int {
		var ee interface{ ExitCode() int }
		if errors.As(r.err, &ee) {
			return ee.ExitCode()
		}
		if r.err != nil {
			return -1
		}
		return 0
	}
	row := func(state string) *regexp.Regexp {
		return regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(id) + ` +` + ruleName + ` +` + state + ` `)
	}

	t.Run("PausedShownPaused", func(t *testing.T) {
		if r := d.cli(t, nil, "pause", id); r.err != nil {
			t.Fatal(r)
		}
		paused := true
		t.Cleanup(func() {
			if paused {
				d.cli(t, nil, "unpause", id)
			}
		})
		r := mounter(t, s.Config, "status")
		t.Logf("mounter status:\n%s", r.stdout)
		if code(r) != 0 || !row("paused").MatchString(r.stdout) || !strings.Contains(r.stdout, "its mounter "+id+" is paused") {
			t.Fatalf("status of a paused Docker mounter: %v; want it listed as paused", r)
		}
		if r := d.cli(t, nil, "unpause", id); r.err != nil {
			t.Fatal(r)
		}
		paused = false
		if r := mounter(t, s.Config, "status"); code(r) != 0 || !row("running").MatchString(r.stdout) {
			t.Fatalf("status after docker unpause: %v; want it running", r)
		}
	})

	t.Run("DoctorFlagsAnnotationOnlyRule", func(t *testing.T) {
		byAnnotation := filepath.Join(testutil.TempDir(t), "annotation.toml")
		cfg, err := os.ReadFile(s.Config)
		if err != nil {
			t.Fatal(err)
		}
		text := strings.Replace(string(cfg), fmt.Sprintf("env = { %s = %q }", spec.EnvMounter, ruleName),
			fmt.Sprintf("annotations = { %q = %q }", spec.AnnotationMounter, ruleName), 1)
		if err := os.WriteFile(byAnnotation, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		r := mounter(t, byAnnotation, "doctor")
		t.Logf("mounter doctor:\n%s", r.stdout)
		want := `WARN match[` + ruleName + `]: rule "` + ruleName + `" matches only containers with annotations, and dockerd runs runc-shared (runtime "shared" in ` + daemonJSON + `)`
		if !strings.Contains(r.stdout, want) || !strings.Contains(r.stdout, "env = { "+spec.EnvMounter) {
			t.Errorf("doctor with an annotation-only rule under Docker lacks %q and the env fix", want)
		}
		if r := mounter(t, s.Config, "doctor"); strings.Contains(r.stdout, "WARN match[") {
			t.Errorf("doctor warns about a rule that matches on env:\n%s", r.stdout)
		}
	})

	t.Run("ConfigBrokenWhileRunning", func(t *testing.T) {
		src := s.Gluster.Server + ":/" + s.Gluster.Volume
		target := filepath.Join(s.Host, "routed")
		unmountLater(t, target)
		if err := os.MkdirAll(target, 0o755); err != nil {
			t.Fatal(err)
		}
		if r := mounter(t, s.Config, "mount", "-t", "glusterfs", src, target); r.err != nil {
			t.Fatal(r)
		}
		checkGluster(t, s, target, "before")

		good, err := os.ReadFile(s.Config)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.WriteFile(s.Config, good, 0o644) })
		// A second log-level key: not TOML any more.
		if err := os.WriteFile(s.Config, []byte("log-level = \"info\"\n"+string(good)), 0o644); err != nil {
			t.Fatal(err)
		}
		if r := d.cli(t, nil, "stop", "-t", "1", id); r.err != nil {
			t.Fatal(r)
		}
		log, _ := os.ReadFile(filepath.Join(s.StateDir, "mount-hook.log"))
		t.Logf("mount-hook.log:\n%s", log)
		if _, err := registry.New(s.StateDir).Read(id); !errors.Is(err, registry.ErrNotFound) {
			t.Errorf("record of the stopped mounter: %v, want removed by poststop", err)
		}
		if m := testutil.MountAt(t, target); m != nil {
			t.Errorf("mount left at %s after the mounter stopped: %+v", target, m)
		}
		for _, want := range []string{"the configuration cannot be loaded, so this poststop works from the registry record", "detached dead FUSE mount " + target} {
			if !strings.Contains(string(log), want) {
				t.Errorf("mount-hook.log lacks %q", want)
			}
		}

		if err := os.WriteFile(s.Config, good, 0o644); err != nil {
			t.Fatal(err)
		}
		if r := d.cli(t, nil, "start", id); r.err != nil {
			t.Fatal(r)
		}
		r := mounter(t, s.Config, "status")
		t.Logf("mounter status after the restart:\n%s", r.stdout)
		// poststop detached the dead mount but keeps its record for `mounter
		// recover`: status lists it as a recorded mount, missing, never as a
		// routed mount of the new mounter nor as a dead one.
		served, recorded, _ := strings.Cut(r.stdout, "RECORDED MOUNT")
		if code(r) != 0 || !row("running").MatchString(served) || strings.Contains(r.stdout, "DEAD MOUNT") || strings.Contains(served, target+" ") ||
			!regexp.MustCompile(regexp.QuoteMeta(target)+` .* missing\b`).MatchString(recorded) {
			t.Errorf("status after the restart: %v; want the mounter running, no dead mount, nothing served at %s, and its record listed as missing", r, target)
		}
		if r := mounter(t, s.Config, "mount", "-t", "glusterfs", src, target); r.err != nil {
			t.Fatalf("mount again at %s: %v", target, r)
		}
		checkGluster(t, s, target, "after")
	})
}
