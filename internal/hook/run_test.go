package hook

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/runc-shared/runc-shared/internal/registry"
	"github.com/runc-shared/runc-shared/pkg/spec"
)

// fixture is a state dir, a config with one rule and a bundle.
type fixture struct {
	stateDir, config, bundle, allow string
}

func newFixture(t *testing.T, mode string) *fixture {
	t.Helper()
	dir := t.TempDir()
	f := &fixture{
		stateDir: filepath.Join(dir, "state"),
		config:   filepath.Join(dir, "config.toml"),
		bundle:   filepath.Join(dir, "bundle"),
		allow:    filepath.Join(dir, "allow"),
	}
	cfg := fmt.Sprintf(`state-dir = %q
[[mounter]]
name = "gluster"
fstypes = ["glusterfs"]
mode = %q
propagate = [%q]
[mounter.match]
annotations = { %q = "glusterfs" }
`, f.stateDir, mode, f.allow, spec.AnnotationMounter)
	if err := os.WriteFile(f.config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{f.bundle, f.allow} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// writeSpec writes the bundle's config.json: annotated as a mounter when
// mounter is set, with CAP_SYS_ADMIN when privileged is.
func (f *fixture) writeSpec(t *testing.T, mounter, privileged bool) {
	t.Helper()
	s := specs.Spec{
		Version:     "1.0.2",
		Root:        &specs.Root{Path: "rootfs"},
		Process:     &specs.Process{Args: []string{"sleep", "1000"}, Capabilities: &specs.LinuxCapabilities{Bounding: []string{"CAP_KILL"}}},
		Mounts:      []specs.Mount{{Source: f.allow, Destination: "/var/lib/kubelet", Type: "bind", Options: []string{"rbind", "rshared"}}},
		Annotations: map[string]string{"other": "x"},
		Linux:       &specs.Linux{Namespaces: []specs.LinuxNamespace{{Type: specs.MountNamespace}}},
	}
	if mounter {
		s.Annotations[spec.AnnotationMounter] = "glusterfs"
	}
	if privileged {
		s.Process.Capabilities.Bounding = append(s.Process.Capabilities.Bounding, spec.CapSysAdmin)
	}
	data, err := json.Marshal(&s)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.bundle, "config.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) state(id string, pid int) string {
	return fmt.Sprintf(`{"ociVersion":"1.0.2","id":%q,"status":"creating","pid":%d,"bundle":%q}`, id, pid, f.bundle)
}

// run runs the hook with stdin and returns its stderr and error.
func (f *fixture) run(t *testing.T, stdin string, argv ...string) (string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	h := &Hook{Stdin: strings.NewReader(stdin), Stdout: &stdout, Stderr: &stderr,
		Now: func() time.Time { return time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC) }}
	err := h.Run(append([]string{"--config", f.config}, argv...))
	if stdout.Len() > 0 {
		t.Errorf("the hook wrote to stdout: %q", stdout.String())
	}
	return stderr.String(), err
}

func (f *fixture) logText(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(f.stateDir, LogName))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return string(b)
}

func TestRunNotAMounter(t *testing.T) {
	f := newFixture(t, "propagate")
	f.writeSpec(t, false, true)
	for _, stage := range []string{"createRuntime", "poststop"} {
		stderr, err := f.run(t, f.state("plain", os.Getpid()), stage)
		if err != nil || stderr != "" {
			t.Errorf("%s of a non-mounter: %v, stderr %q; want silence", stage, err, stderr)
		}
	}
	if _, err := os.Stat(f.stateDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the hook created %s for a non-mounter", f.stateDir)
	}
}

func TestRunNoConfigFile(t *testing.T) {
	f := newFixture(t, "propagate")
	f.writeSpec(t, true, true)
	f.config = filepath.Join(t.TempDir(), "missing.toml")
	stderr, err := f.run(t, f.state("c", os.Getpid()), "createRuntime")
	if err != nil || stderr != "" {
		t.Errorf("without a config file: %v, %q; want silence", err, stderr)
	}
}

func TestRunRegistersAndUnregisters(t *testing.T) {
	// Preload mode skips the propagation check (nothing is propagated), so
	// this runs without mounts; the e2e tests cover propagate mode.
	f := newFixture(t, "preload")
	f.writeSpec(t, true, true)
	pid := os.Getpid()
	stderr, err := f.run(t, f.state("m1", pid), "--runtime", "/usr/sbin/runc", "--root", "/run/x", "createRuntime")
	if err != nil || stderr != "" {
		t.Fatalf("createRuntime: %v, stderr %q", err, stderr)
	}
	rec, err := registry.New(f.stateDir).Read("m1")
	if err != nil {
		t.Fatal(err)
	}
	start, err := registry.ProcStart(pid)
	if err != nil {
		t.Fatal(err)
	}
	want := &registry.Record{
		ID: "m1", Name: "gluster", PID: pid, PIDStart: start, Bundle: f.bundle,
		Runtime: "/usr/sbin/runc", RuntimeRoot: "/run/x", FSTypes: []string{"glusterfs"},
		Propagate: []string{f.allow}, Mode: spec.ModePreload,
		Created: time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC),
	}
	if !reflect.DeepEqual(rec, want) {
		t.Errorf("record = %+v\nwant     %+v", rec, want)
	}
	if log := f.logText(t); !strings.Contains(log, `registered mounter of rule \"gluster\"`) || !strings.Contains(log, "id=m1") {
		t.Errorf("log file:\n%s", log)
	}

	// A late poststop of an earlier instance with the same ID (another
	// pid) leaves the record alone.
	if _, err := f.run(t, f.state("m1", pid+1), "poststop"); err != nil {
		t.Fatal(err)
	}
	if _, err := registry.New(f.stateDir).Read("m1"); err != nil {
		t.Fatalf("poststop of another pid removed the record: %v", err)
	}
	// Podman's poststop state has no pid.
	stopped := fmt.Sprintf(`{"id":"m1","status":"stopped","bundle":%q}`, f.bundle)
	if stderr, err := f.run(t, stopped, "poststop"); err != nil || stderr != "" {
		t.Fatalf("poststop: %v, %q", err, stderr)
	}
	if _, err := registry.New(f.stateDir).Read("m1"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("record after poststop: %v, want ErrNotFound", err)
	}
	if log := f.logText(t); !strings.Contains(log, "unregistered mounter") {
		t.Errorf("log file:\n%s", log)
	}
}

// TestRunPoststopBundleGone: engines may remove the bundle before poststop
// runs; the record names the rule.
func TestRunPoststopBundleGone(t *testing.T) {
	f := newFixture(t, "preload")
	f.writeSpec(t, true, true)
	if _, err := f.run(t, f.state("m2", os.Getpid()), "createRuntime"); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(f.bundle); err != nil {
		t.Fatal(err)
	}
	if stderr, err := f.run(t, f.state("m2", os.Getpid()), "poststop"); err != nil || stderr != "" {
		t.Fatalf("poststop: %v, %q", err, stderr)
	}
	if _, err := registry.New(f.stateDir).Read("m2"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("record after poststop: %v", err)
	}
}

func TestRunFailures(t *testing.T) {
	for _, tc := range []struct {
		name       string
		privileged bool
		config     string // replaces the config file when set
		stdin      func(f *fixture) string
		stage      string
		wantErr    bool   // createRuntime fails; poststop never does
		stderr     string // substring
	}{
		{"truncated state at createRuntime", true, "", func(f *fixture) string { return `{"id":"c","bun` }, "createRuntime", true,
			"mount-hook: createRuntime: bad OCI state on stdin: unexpected end of JSON input"},
		{"truncated state at poststop", true, "", func(f *fixture) string { return `{"id":"c","bun` }, "poststop", false,
			"mount-hook: poststop: bad OCI state on stdin"},
		{"no pid at createRuntime", true, "", func(f *fixture) string { return fmt.Sprintf(`{"id":"c","bundle":%q}`, f.bundle) }, "createRuntime", true,
			"has no pid"},
		{"policy refuses", false, "", func(f *fixture) string { return f.state("c", os.Getpid()) }, "createRuntime", true,
			"lacks CAP_SYS_ADMIN"},
		{"broken config at createRuntime", true, "runtime = 1\n", func(f *fixture) string { return f.state("c", os.Getpid()) }, "createRuntime", true,
			"runtime"},
		{"broken config at poststop", true, "runtime = 1\n", func(f *fixture) string { return f.state("c", os.Getpid()) }, "poststop", false,
			"runtime"},
		{"missing config.json", true, "", func(f *fixture) string {
			return fmt.Sprintf(`{"id":"c","pid":%d,"bundle":"/nonexistent/bundle"}`, os.Getpid())
		}, "createRuntime", true, "/nonexistent/bundle/config.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, "preload")
			f.writeSpec(t, true, tc.privileged)
			if tc.config != "" {
				if err := os.WriteFile(f.config, []byte(tc.config), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			stderr, err := f.run(t, tc.stdin(f), tc.stage)
			if (err != nil) != tc.wantErr {
				t.Errorf("Run = %v, want error: %v", err, tc.wantErr)
			}
			if !strings.Contains(stderr, tc.stderr) || strings.Count(stderr, "\n") != 1 {
				t.Errorf("stderr = %q, want one line containing %q", stderr, tc.stderr)
			}
			if _, err := os.Stat(filepath.Join(f.stateDir, "mounters")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a failed run registered something")
			}
		})
	}
}

func TestRunUsage(t *testing.T) {
	f := newFixture(t, "preload")
	for _, argv := range [][]string{{}, {"startContainer"}, {"--nope", "poststop"}} {
		stderr, err := f.run(t, "", argv...)
		if err == nil || !strings.HasPrefix(stderr, "mount-hook: ") {
			t.Errorf("Run(%q) = %v, stderr %q; want a usage error", argv, err, stderr)
		}
	}
	var usage bytes.Buffer
	h := &Hook{Stdin: strings.NewReader(""), Stdout: &usage, Stderr: &usage}
	if err := h.Run([]string{"--help"}); !errors.Is(err, flag.ErrHelp) || !strings.Contains(usage.String(), "usage: mount-hook") {
		t.Errorf("--help: %v, %q", err, usage.String())
	}
	var out bytes.Buffer
	h = &Hook{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &out}
	if err := h.Run([]string{"--version"}); err != nil || !strings.HasPrefix(out.String(), "mount-hook version ") {
		t.Errorf("--version: %v, %q", err, out.String())
	}
}
