package wrapper_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/runc-shared/runc-shared/internal/wrapper"
	"github.com/runc-shared/runc-shared/pkg/spec"
)

// ptConfig has two rules; a container matches "ann" by its annotation.
const ptConfig = `runtime = "/bin/true"
state-dir = %q
%s
[[mounter]]
name = "ann"
fstypes = ["glusterfs"]
propagate = ["/var/lib/example"]
[mounter.match]
annotations = { "runc-shared.io/mounter" = "glusterfs" }

[[mounter]]
name = "env"
fstypes = ["sshfs"]
propagate = ["/var/lib/example"]
[mounter.match]
env = { RUNC_SHARED_MOUNTER = "sshfs" }
`

const (
	ptMatched   = `{"annotations":{"runc-shared.io/mounter":"glusterfs"},"process":{"env":["PATH=/bin"]}}`
	ptUnmatched = `{"annotations":{"runc-shared.io/mounter":"ceph"},"process":{"env":["PATH=/bin"]}}`
)

// ptLarge is an unmatched config.json above spec.MaxConfigSize: a big but
// valid annotation, as runc reads it.
func ptLarge(ann string) []byte {
	pad := strings.Repeat("x", spec.MaxConfigSize)
	return []byte(fmt.Sprintf(`{"annotations":{"runc-shared.io/mounter":%q,"pad":%q}}`, ann, pad))
}

type ptRun struct {
	err    error
	execd  []string // the delegate's argv, nil when it did not run
	stderr string
	log    string // the --log file
}

// ptDir stands for a config.json that is a directory.
var ptDir = []byte("directory")

// ptWrapper runs the wrapper on a create of bundle with config.json data
// (nil: no config.json; ptDir: a directory) and the given extra config
// lines.
func ptWrapper(t *testing.T, data []byte, extraConfig string, debug bool) ptRun {
	t.Helper()
	dir := t.TempDir()
	bundle := filepath.Join(dir, "bundle")
	if err := os.MkdirAll(bundle, 0o755); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf(ptConfig, filepath.Join(dir, "state"), extraConfig)), 0o644); err != nil {
		t.Fatal(err)
	}
	switch {
	case bytes.Equal(data, ptDir):
		if err := os.Mkdir(filepath.Join(bundle, "config.json"), 0o755); err != nil {
			t.Fatal(err)
		}
		data = nil
	case data != nil:
		if err := os.WriteFile(filepath.Join(bundle, "config.json"), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	logPath := filepath.Join(dir, "log.json")
	argv := []string{"--runc-shared-config=" + cfgPath, "--log", logPath, "--log-format", "json"}
	if debug {
		argv = append(argv, "--debug")
	}
	argv = append(argv, "create", "--bundle", bundle, "ctr")
	var r ptRun
	var stderr bytes.Buffer
	w := &wrapper.Wrapper{
		Stdout: &bytes.Buffer{}, Stderr: &stderr, Self: filepath.Join(dir, "runc-shared"),
		Exec: func(path string, a []string, _ []string) error {
			r.execd = append([]string{path}, a...)
			return nil
		},
	}
	r.err = w.Run(argv)
	r.stderr = stderr.String()
	log, _ := os.ReadFile(logPath)
	r.log = string(log)
	if data != nil {
		if after, err := os.ReadFile(filepath.Join(bundle, "config.json")); err != nil || !bytes.Equal(after, data) {
			t.Errorf("config.json changed (%v)", err)
		}
	}
	return r
}

// TestPassThroughWhatCannotMatch: a create whose config.json the wrapper
// cannot read, or reads differently from runc, goes to runc untouched when
// no rule matches what runc reads, so runc reports its own error or runs it.
func TestPassThroughWhatCannotMatch(t *testing.T) {
	for _, tc := range []struct {
		name string
		data []byte
		why  string // in the debug log line
	}{
		{"no config.json", nil, "open bundle config"},
		{"a directory", ptDir, "is a directory"},
		{"not JSON", []byte("{"), "decode runtime spec"},
		{"empty", []byte{}, "decode runtime spec"},
		{"unmatched with data after the object", []byte(ptUnmatched + "\n{}garbage"), "data after its JSON object"},
		{"unmatched above the size limit", ptLarge("ceph"), "larger than"},
		{"wrong type where rules look", []byte(`{"annotations":5}`), "decode runtime spec"},
		// runc's decoder stops at the same depth: runc refuses it itself.
		{"matched, nested beyond the decoder's depth", []byte(`{"annotations":{"runc-shared.io/mounter":"glusterfs"},"deep":` +
			strings.Repeat("[", 1<<17) + strings.Repeat("]", 1<<17) + `}`), "exceeded max depth"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := ptWrapper(t, tc.data, "", true)
			if r.err != nil {
				t.Fatalf("Run = %v; want the call passed through", r.err)
			}
			if r.execd == nil || r.execd[0] != "/bin/true" || !slices.Contains(r.execd, "create") {
				t.Fatalf("delegate argv %q; want the create passed through", r.execd)
			}
			if r.stderr != "" {
				t.Errorf("stderr %q; want nothing from the wrapper", r.stderr)
			}
			if !strings.Contains(r.log, `"level":"debug"`) || !strings.Contains(r.log, tc.why) {
				t.Errorf("debug log %q lacks why the call passed through (%q)", r.log, tc.why)
			}
		})
	}
}

// TestMatchedSpecStaysStrict: a container that a rule matches is rewritten
// only from a config.json that is one JSON object within the size limit;
// anything else is refused with the reason, and nothing runs.
func TestMatchedSpecStaysStrict(t *testing.T) {
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"data after the object", []byte(ptMatched + " {}"),
			`decode runtime spec: invalid character '{' after top-level value: runc-shared rewrites only a config.json that holds one JSON object`},
		{"above the size limit", ptLarge("glusterfs"),
			`config.json: config.json too large: more than 8388608 bytes; fix the bundle`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := ptWrapper(t, tc.data, "", false)
			const rule = `container ctr matches mounter rule "ann", but `
			if r.err == nil || !strings.HasPrefix(r.err.Error(), rule) || !strings.Contains(r.err.Error(), tc.want) {
				t.Fatalf("Run = %v; want a refusal containing %q", r.err, tc.want)
			}
			if r.execd != nil {
				t.Errorf("refused, yet the delegate ran: %q", r.execd)
			}
			if !strings.Contains(r.stderr, tc.want) || !strings.Contains(r.log, `"level":"error"`) {
				t.Errorf("the refusal is not on stderr and in the log: stderr %q, log %q", r.stderr, r.log)
			}
		})
	}
}

// TestDebugSaysWhyNoRuleMatched: at debug level (runc's --debug, or
// log-level = "debug" in the config), a create that matches no rule logs
// each rule's first failing condition; at info level it logs nothing.
func TestDebugSaysWhyNoRuleMatched(t *testing.T) {
	const want = `container ctr matches no mounter rule, passed through: ` +
		`rule \"ann\": annotation runc-shared.io/mounter is \"ceph\", not \"glusterfs\"; ` +
		`rule \"env\": env RUNC_SHARED_MOUNTER not set (want \"sshfs\")`
	for _, tc := range []struct {
		name   string
		extra  string
		debug  bool
		logged bool
	}{
		{"--debug", "", true, true},
		{"log-level debug", `log-level = "debug"`, false, true},
		{"info", "", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := ptWrapper(t, []byte(ptUnmatched), tc.extra, tc.debug)
			if r.err != nil || r.execd == nil {
				t.Fatalf("Run = %v, delegate argv %q; want the call passed through", r.err, r.execd)
			}
			if got := strings.Contains(r.log, want); got != tc.logged {
				t.Errorf("log has the reason: %v, want %v; log:\n%s", got, tc.logged, r.log)
			}
			if r.stderr != "" {
				t.Errorf("stderr %q; want nothing", r.stderr)
			}
		})
	}
}
