package wrapper_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/runc-shared/runc-shared/internal/testutil"
	"github.com/runc-shared/runc-shared/pkg/spec"
)

// output is what one runtime call printed and how it ended.
type output struct {
	stdout, stderr, log string
	code                int
}

// logTime is the timestamp of runc's and our log lines: the only part of
// two calls' output that may differ.
var logTime = regexp.MustCompile(`time="[^"]*"|"time":"[^"]*"`)

// call runs bin with args as an engine does (by path, or by bare name when
// bin has no slash: looked up in PATH) and returns its output; logPath is
// read when set.
func call(t *testing.T, bin, logPath string, args ...string) output {
	t.Helper()
	if logPath != "" {
		if err := os.Remove(logPath); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	o := output{stdout: stdout.String(), stderr: logTime.ReplaceAllString(stderr.String(), "TIME")}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		o.code = exit.ExitCode()
	case err != nil:
		t.Fatalf("%s %q: %v", bin, args, err)
	}
	if logPath != "" {
		b, _ := os.ReadFile(logPath)
		o.log = logTime.ReplaceAllString(string(b), "TIME")
	}
	return o
}

// ours splits the lines runc-shared wrote into a log from runc's.
func ours(log string) (mine, runcs string) {
	var a, b strings.Builder
	for _, line := range strings.SplitAfter(log, "\n") {
		if strings.Contains(line, `"msg":"runc-shared: `) {
			a.WriteString(line)
		} else {
			b.WriteString(line)
		}
	}
	return a.String(), b.String()
}

// TestPassThroughIsExact: every call the wrapper does not rewrite prints,
// logs and exits exactly as runc does when the engine calls runc itself:
// runc's own messages (they name its argv[0]), no warning of ours on stderr
// (go-runc reads it), and runc's own error for a bundle it cannot read.
func TestPassThroughIsExact(t *testing.T) {
	runcPath, err := filepath.Abs(testutil.LookPath(t, "runc"))
	if err != nil {
		t.Fatal(err)
	}
	bin := testutil.Bin(t, "runc-shared")
	host := testutil.SharedDir(t)
	good := ruleConfig(t, testutil.TempDir(t), host, "")
	broken := writeConfig(t, "state-dir = 5\n[[mounter]]\n")
	root := filepath.Join(testutil.TempDir(t), "state")
	logPath := filepath.Join(testutil.TempDir(t), "log.json")
	unopenable := filepath.Join(testutil.TempDir(t), "missing", "log.json")

	noConfig := filepath.Join(testutil.TempDir(t), "bundle")
	if err := os.MkdirAll(noConfig, 0o755); err != nil {
		t.Fatal(err)
	}
	unreadable := testutil.NewBundle(t, testutil.BusyboxRootfs(t))
	if err := os.Remove(unreadable.ConfigPath()); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(unreadable.ConfigPath(), 0o755); err != nil {
		t.Fatal(err)
	}
	broke := testutil.NewBundle(t, testutil.BusyboxRootfs(t))
	if err := os.WriteFile(broke.ConfigPath(), []byte(`{"ociVersion": `), 0o644); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		cfg  string
		log  string
		args []string
	}{
		{"state without an ID", good, "", []string{"state"}},
		{"state of a missing container", good, "", []string{"state", "nope"}},
		{"delete without an ID", good, "", []string{"delete"}},
		{"create without an ID", good, logPath, []string{"create", "--bundle", noConfig}},
		{"an unknown command", good, "", []string{"frobnicate"}},
		{"list, broken config", broken, logPath, []string{"list"}},
		{"state, broken config", broken, logPath, []string{"state", "nope"}},
		{"features, broken config", broken, logPath, []string{"features"}},
		{"list, unopenable --log", good, unopenable, []string{"list"}},
		{"create, no config.json", good, logPath, []string{"create", "--bundle", noConfig, "id1"}},
		{"create, config.json a directory", good, logPath, []string{"create", "--bundle", unreadable.Dir, "id2"}},
		{"create, config.json not JSON", good, logPath, []string{"create", "--bundle", broke.Dir, "id3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			global := []string{"--root", root}
			if tc.log != "" {
				global = append(global, "--log", tc.log, "--log-format", "json")
			}
			args := append(global, tc.args...)
			withCfg := append([]string{"--runc-shared-config=" + tc.cfg}, args...)
			for _, by := range []struct{ runc, ours string }{
				{runcPath, bin},              // an engine: by path
				{"runc", filepath.Base(bin)}, // a shell: by name in PATH
			} {
				want := call(t, by.runc, tc.log, args...)
				t.Setenv("PATH", filepath.Dir(bin)+":"+os.Getenv("PATH"))
				got := call(t, by.ours, tc.log, withCfg...)
				// A broken config is a warning in the --log file, where
				// the engine does not read it as the call's output.
				var warning string
				warning, got.log = ours(got.log)
				if got != want {
					t.Errorf("called as %s:\nrunc-shared: %+v\nrunc:        %+v", by.ours, got, want)
				}
				if wantWarning := tc.cfg == broken && tc.log == logPath; wantWarning != strings.Contains(warning, `"level":"warning"`) {
					t.Errorf("called as %s: our lines in the log %q; want a warning: %v", by.ours, warning, wantWarning)
				}
			}
		})
	}
}

// TestPassThroughWhatRuncReads: a container no rule matches runs under the
// wrapper whenever it runs under runc, with config.json as runc reads it:
// data after the JSON object, or a file above the wrapper's size limit.
func TestPassThroughWhatRuncReads(t *testing.T) {
	host := testutil.SharedDir(t)
	r := testutil.Wrapper(t, ruleConfig(t, testutil.TempDir(t), host, ""))
	for _, tc := range []struct {
		name string
		edit func(raw []byte) []byte
	}{
		{"data after the object", func(raw []byte) []byte { return append(raw, "\n{\"more\": true} trailing"...) }},
		{"above the size limit", func(raw []byte) []byte {
			// Pad inside the object: runc reads all of it.
			pad := `{"pad": "` + strings.Repeat("x", spec.MaxConfigSize) + `",`
			return append([]byte(pad), bytes.TrimPrefix(bytes.TrimSpace(raw), []byte("{"))...)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := testutil.NewBundle(t, testutil.BusyboxRootfs(t))
			data := tc.edit(b.ConfigBytes(t))
			if err := os.WriteFile(b.ConfigPath(), data, 0o644); err != nil {
				t.Fatal(err)
			}
			id := "pt-" + strings.ReplaceAll(tc.name, " ", "-")
			if err := r.Create(t, b, id); err != nil {
				t.Fatalf("create under the wrapper: %v", err)
			}
			if st, err := r.State(t, id); err != nil || st.Status != "created" {
				t.Fatalf("state = %+v, %v; want created", st, err)
			}
			if !bytes.Equal(b.ConfigBytes(t), data) {
				t.Error("config.json changed")
			}
		})
	}
}
