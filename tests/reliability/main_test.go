// Package reliability_test attacks bin/runc-shared the way a node does and the
// way an attacker would: SIGKILL in the middle of rewrites, a full and a
// read-only bundle directory, 50 concurrent creates on one host path, 100
// mounter lifecycles with FUSE mounts, and hostile specs and configuration
// files. Each test says what it proves; docs/security.md points here.
//
// Where a test only needs the wrapper's decision, the delegate runtime is a
// recorder script (the config's `runtime`), so no container is created and
// a spec that must never reach runc (a mount-namespace path) never does.
package reliability_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/moby/sys/mountinfo"
	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/runc-shared/runc-shared/internal/registry"
	"github.com/runc-shared/runc-shared/internal/testutil"
	"github.com/runc-shared/runc-shared/pkg/spec"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// rule is one [[mounter]] of a test configuration.
type rule struct {
	name       string
	propagate  []string
	annotation string // value of runc-shared.io/mounter to match; "" for none
	env        string // value of RUNC_SHARED_MOUNTER to match; "" for none
	extra      string // more TOML lines (namespaces = [...], ensure-shared = false)
}

// setup is a test's configuration file, state dir and delegate runtime.
type setup struct {
	Config   string
	StateDir string
	Runtime  string // the delegate the config names
	Calls    string // where the recorder delegate appends its argv, one call a line
}

// recorder writes a delegate runtime that appends its argv to calls and
// exits 0: it stands in for runc where only the wrapper's decision matters.
func recorder(t *testing.T) (bin, calls string) {
	t.Helper()
	dir := testutil.TempDir(t)
	bin, calls = filepath.Join(dir, "fake-runc"), filepath.Join(dir, "calls")
	script := fmt.Sprintf("#!/bin/sh\nprintf '%%s\\n' \"$*\" >> %q\nexit 0\n", calls)
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin, calls
}

// newSetup writes a configuration with the rules; runtime is the delegate
// ("" means a recorder).
func newSetup(t *testing.T, runtime string, rules ...rule) *setup {
	t.Helper()
	dir := testutil.TempDir(t)
	s := &setup{Config: filepath.Join(dir, "config.toml"), StateDir: filepath.Join(dir, "state"), Runtime: runtime}
	if runtime == "" {
		s.Runtime, s.Calls = recorder(t)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "runtime = %q\nstate-dir = %q\n", s.Runtime, s.StateDir)
	for _, r := range rules {
		quoted := make([]string, len(r.propagate))
		for i, p := range r.propagate {
			quoted[i] = fmt.Sprintf("%q", p)
		}
		fmt.Fprintf(&b, "\n[[mounter]]\nname = %q\nfstypes = [\"fuse.bindfs\", \"tmpfs\"]\npropagate = [%s]\n%s\n[mounter.match]\n",
			r.name, strings.Join(quoted, ", "), r.extra)
		if r.annotation != "" {
			fmt.Fprintf(&b, "annotations = { %q = %q }\n", spec.AnnotationMounter, r.annotation)
		}
		if r.env != "" {
			fmt.Fprintf(&b, "env = { %s = %q }\n", spec.EnvMounter, r.env)
		}
	}
	if err := os.WriteFile(s.Config, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return s
}

// delegateCalls returns the argv lines the recorder delegate got.
func (s *setup) delegateCalls(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile(s.Calls)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n")
}

// registryEmpty fails the test if a mounter record is left.
func (s *setup) registryEmpty(t *testing.T) {
	t.Helper()
	recs, err := registry.New(s.StateDir).List()
	if err != nil {
		t.Fatalf("list the registry: %v", err)
	}
	if len(recs) != 0 {
		var ids []string
		for _, r := range recs {
			ids = append(ids, r.ID)
		}
		t.Errorf("registry not empty: %v", ids)
	}
}

// result is one run of bin/runc-shared.
type result struct {
	Code           int
	Stdout, Stderr string
}

// wrapper runs bin/runc-shared with the setup's config and args, as an
// engine would (the config option first, then the runtime's own).
func (s *setup) wrapper(t *testing.T, args ...string) result {
	t.Helper()
	cmd := exec.Command(testutil.Bin(t, "runc-shared"), append([]string{"--runc-shared-config=" + s.Config}, args...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	code := 0
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("run runc-shared: %v", err)
	}
	return result{Code: code, Stdout: out.String(), Stderr: errOut.String()}
}

// create runs `create` like containerd-shim: --log LOG --log-format json
// create --bundle B --pid-file B/ID.pid ID.
func (s *setup) create(t *testing.T, bundle, log, id string) result {
	t.Helper()
	return s.wrapper(t, "--root", filepath.Join(filepath.Dir(s.Config), "runc-root"), "--log", log, "--log-format", "json",
		"create", "--bundle", bundle, "--pid-file", filepath.Join(bundle, id+".pid"), id)
}

// lastError returns the msg of the last "level":"error" line of a runtime
// JSON log: what containerd-shim shows the user.
func lastError(t *testing.T, log string) string {
	t.Helper()
	raw, err := os.ReadFile(log)
	if err != nil {
		t.Fatalf("read the --log file: %v", err)
	}
	msg := ""
	for _, l := range strings.Split(string(raw), "\n") {
		var e struct{ Level, Msg string }
		if json.Unmarshal([]byte(l), &e) == nil && e.Level == "error" {
			msg = e.Msg
		}
	}
	if msg == "" {
		t.Fatalf("no error line in %s:\n%s", log, raw)
	}
	return msg
}

// mustRefuse checks a refused create: a non-zero exit, the reason as the
// last error line of the --log file and on stderr, nothing on stdout.
func mustRefuse(t *testing.T, r result, log, want string) string {
	t.Helper()
	if r.Code == 0 {
		t.Fatalf("create succeeded, want a refusal matching %q; stderr %q", want, r.Stderr)
	}
	msg := lastError(t, log)
	if !regexp.MustCompile(want).MatchString(msg) {
		t.Errorf("refusal reason %q does not match %q", msg, want)
	}
	if !strings.Contains(r.Stderr, strings.TrimPrefix(msg, "runc-shared: ")) {
		t.Errorf("stderr %q does not carry the reason %q", r.Stderr, msg)
	}
	if r.Stdout != "" {
		t.Errorf("the wrapper wrote on stdout: %q", r.Stdout)
	}
	return msg
}

// writeSpec writes a bundle whose config.json is `runc spec` for rootfs
// edited by opts, without testutil's guards: hostile specs hold what they
// refuse. Only ever given to the wrapper with a recorder delegate, or to a
// real runc where the spec is one testutil would accept.
func writeSpec(t *testing.T, rootfs string, edit testutil.BundleOpt) (dir string, raw []byte) {
	t.Helper()
	b := testutil.NewBundle(t, rootfs)
	if edit != nil {
		edit(b.Spec)
	}
	raw, err := json.MarshalIndent(b.Spec, "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(b.ConfigPath(), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	return b.Dir, raw
}

// mounterEdit makes a spec a privileged mounter binding src at dst, matching
// the annotation value.
func mounterEdit(annotation, src, dst string) testutil.BundleOpt {
	return func(s *specs.Spec) {
		for _, o := range []testutil.BundleOpt{
			testutil.WithAnnotation(spec.AnnotationMounter, annotation),
			testutil.WithAddCaps("CAP_SYS_ADMIN"),
			testutil.WithBind(src, dst, "rbind", "rprivate"),
		} {
			o(s)
		}
	}
}

// mountSnapshot is the part of the host mount table a test may touch: the
// mounts below its directories, and every mount outside the temp dir.
type mountSnapshot map[int]string

func snapshot(t *testing.T, dirs ...string) mountSnapshot {
	t.Helper()
	all, err := mountinfo.GetMounts(nil)
	if err != nil {
		t.Fatal(err)
	}
	tmp, err := filepath.EvalSymlinks(os.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := mountSnapshot{}
	for _, m := range all {
		keep := !testutil.Below(m.Mountpoint, tmp)
		for _, d := range dirs {
			keep = keep || testutil.Below(m.Mountpoint, d)
		}
		if keep {
			s[m.ID] = fmt.Sprintf("%s %s %s %s", m.Mountpoint, m.FSType, m.Source, m.Optional)
		}
	}
	return s
}

// diff lists the mounts added and removed since s.
func (s mountSnapshot) diff(now mountSnapshot) []string {
	var d []string
	for id, m := range now {
		if _, ok := s[id]; !ok {
			d = append(d, "+ "+m)
		}
	}
	for id, m := range s {
		if _, ok := now[id]; !ok {
			d = append(d, "- "+m)
		}
	}
	sort.Strings(d)
	return d
}

// otherFiles lists the bundle's files other than keep.
func otherFiles(t *testing.T, dir string, keep ...string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if !contains(keep, e.Name()) {
			out = append(out, e.Name())
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
