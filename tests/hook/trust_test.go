package hook_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/runc-shared/runc-shared/internal/registry"
	"github.com/runc-shared/runc-shared/internal/testutil"
)

// TestPoststopWithBrokenConfig: the configuration breaks (a bad value) while
// a mounter runs, and its FUSE daemon dies with it. The poststop that runs at
// delete cannot load the configuration; it finds the record through the
// state-dir the broken file still names, removes it, detaches the dead FUSE
// mount below the record's paths, and says so in its log.
func TestPoststopWithBrokenConfig(t *testing.T) {
	testutil.CheckLeaks(t)
	testutil.ForEachHost(t, func(t *testing.T, _ testutil.Host) {
		host := testutil.SharedDir(t)
		e := newEnv(t, host, "")
		r := e.wrapper(t)
		b := mounterBundle(t, testutil.HostUsrRootfs(t), host, testutil.WithFuse())
		r.Up(t, b, "broken-cfg")
		bindfsInside(t, r, "broken-cfg", "a")
		dead := filepath.Join(host, "a")

		cfg, err := os.ReadFile(e.config)
		if err != nil {
			t.Fatal(err)
		}
		broken := strings.Replace(string(cfg), "state-dir =", "log-level = \"loud\"\nstate-dir =", 1)
		if err := os.WriteFile(e.config, []byte(broken), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := r.Kill(t, "broken-cfg", "KILL"); err != nil {
			t.Fatal(err)
		}
		waitStopped(t, r, "broken-cfg")
		if got := fuseMountsUnder(t, host); len(got) != 1 || got[0] != dead {
			t.Fatalf("FUSE mounts under %s after the mounter died = %v, want the dead %s", host, got, dead)
		}
		if err := r.Delete(t, "broken-cfg", false); err != nil {
			t.Fatal(err)
		}
		log := e.hookLog(t)
		t.Logf("hook log:\n%s", log)
		if got := fuseMountsUnder(t, host); len(got) != 0 {
			t.Errorf("dead FUSE mounts left under %s: %v", host, got)
		}
		if _, err := e.registry().Read("broken-cfg"); !errors.Is(err, registry.ErrNotFound) {
			t.Errorf("record of the deleted mounter: %v, want none", err)
		}
		for _, want := range []string{"the configuration cannot be loaded, so this poststop works from the registry record in " + e.registry().Dir,
			"log-level", `unregistered mounter of rule \"fuse\"`, "detached dead FUSE mount " + dead} {
			if !strings.Contains(log, want) {
				t.Errorf("hook log lacks %q", want)
			}
		}
	})
}

// hookPoststop runs bin/mount-hook ARGS poststop as a runtime would, with
// the OCI state of container id on stdin.
func hookPoststop(t *testing.T, id, bundle string, args ...string) (stderr string, err error) {
	t.Helper()
	cmd := exec.Command(testutil.Bin(t, "mount-hook"), append(args, "poststop")...)
	cmd.Stdin = strings.NewReader(fmt.Sprintf(`{"ociVersion":"1.0.2","id":%q,"status":"stopped","bundle":%q}`, id, bundle))
	var out bytes.Buffer
	cmd.Stderr = &out
	err = cmd.Run()
	return out.String(), err
}

// TestPoststopStateDirFlag: a configuration that is not even TOML names no
// state-dir; --state-dir tells poststop where the registry is.
func TestPoststopStateDirFlag(t *testing.T) {
	testutil.CheckLeaks(t)
	testutil.ForEachHost(t, func(t *testing.T, _ testutil.Host) {
		host := testutil.SharedDir(t)
		e := newEnv(t, host, "")
		dead := filepath.Join(host, "dead")
		testutil.DeadFuseMount(t, dead)
		writeRecord(t, e.stateDir, &registry.Record{ID: "gone", Name: "fuse", PID: 1, Bundle: "/nonexistent",
			Propagate: []string{host}, Created: time.Now()})
		if err := os.WriteFile(e.config, []byte("[[[ not toml\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		stderr, err := hookPoststop(t, "gone", "/nonexistent", "--config", e.config, "--state-dir", e.stateDir)
		log := e.hookLog(t)
		t.Logf("stderr: %s\nhook log:\n%s", stderr, log)
		if err != nil {
			t.Fatalf("poststop failed: %v", err)
		}
		if got := fuseMountsUnder(t, host); len(got) != 0 {
			t.Errorf("dead FUSE mounts left under %s: %v", host, got)
		}
		if _, err := e.registry().Read("gone"); !errors.Is(err, registry.ErrNotFound) {
			t.Errorf("record: %v, want removed", err)
		}
		if !strings.Contains(log, "detached dead FUSE mount "+dead) || !strings.Contains(log, "fix the TOML syntax") {
			t.Errorf("hook log does not say what it did and why")
		}
	})
}

// TestInjectedPoststopWithoutConfig: the configuration file is removed while
// a mounter runs. The wrapper gave the injected hook --state-dir, so the
// poststop at delete still finds the mounter's record there and removes it.
func TestInjectedPoststopWithoutConfig(t *testing.T) {
	testutil.CheckLeaks(t)
	testutil.ForEachHost(t, func(t *testing.T, _ testutil.Host) {
		e := newEnv(t, testutil.SharedDir(t), "")
		r := e.wrapper(t)
		b := mounterBundle(t, testutil.BusyboxRootfs(t), e.host)
		r.Up(t, b, "no-cfg")
		if _, err := e.registry().Read("no-cfg"); err != nil {
			t.Fatalf("no record while the mounter runs: %v\nhook log:\n%s", err, e.hookLog(t))
		}
		if err := os.Remove(e.config); err != nil {
			t.Fatal(err)
		}
		if err := r.Kill(t, "no-cfg", "KILL"); err != nil {
			t.Fatal(err)
		}
		waitStopped(t, r, "no-cfg")
		if err := r.Delete(t, "no-cfg", false); err != nil {
			t.Fatal(err)
		}
		log := e.hookLog(t)
		if _, err := e.registry().Read("no-cfg"); !errors.Is(err, registry.ErrNotFound) {
			t.Errorf("record of the deleted mounter: %v, want removed\nhook log:\n%s", err, log)
		}
		for _, want := range []string{"the configuration names no rule, so this poststop works from the registry record in " + e.registry().Dir,
			`unregistered mounter of rule \"fuse\"`} {
			if !strings.Contains(log, want) {
				t.Errorf("hook log lacks %q:\n%s", want, log)
			}
		}
	})
}

// TestHookLogSymlink: a symlink planted as mount-hook.log does not make the
// hook append to its target; the hook says why it does not log there.
func TestHookLogSymlink(t *testing.T) {
	host := testutil.TempDir(t)
	e := newEnv(t, host, "")
	writeRecord(t, e.stateDir, &registry.Record{ID: "m", Name: "fuse", PID: 1, Bundle: "/nonexistent",
		Propagate: []string{host}, Created: time.Now()})
	victim := filepath.Join(testutil.TempDir(t), "shadow")
	if err := os.WriteFile(victim, []byte("root:secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, filepath.Join(e.stateDir, "mount-hook.log")); err != nil {
		t.Fatal(err)
	}
	stderr, err := hookPoststop(t, "m", "/nonexistent", "--config", e.config)
	if err != nil {
		t.Fatalf("poststop failed: %v: %s", err, stderr)
	}
	if _, err := e.registry().Read("m"); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("record: %v, want removed (so the hook had something to log)", err)
	}
	if got, _ := os.ReadFile(victim); string(got) != "root:secret\n" {
		t.Fatalf("the hook appended to the symlink's target: %q", got)
	}
	if !strings.Contains(stderr, "it is a symlink") {
		t.Errorf("stderr does not say why the log was not written: %s", stderr)
	}
}

func writeRecord(t *testing.T, stateDir string, rec *registry.Record) {
	t.Helper()
	if err := registry.New(stateDir).Write(rec); err != nil {
		t.Fatal(err)
	}
}
