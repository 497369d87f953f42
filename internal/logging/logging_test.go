package logging

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func readLines(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
}

func TestErrorJSONLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log.json")
	// runc may have written its own line before.
	runcLine := `{"level":"info","msg":"runc line","time":"2024-01-01T00:00:00Z"}`
	if err := os.WriteFile(path, []byte(runcLine+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	log := Setup(Options{File: path, Format: "json", Stderr: &stderr})
	Error(log, errors.New("container c1 matches rule \"glusterfs\" but lacks CAP_SYS_ADMIN"))

	lines := readLines(t, path)
	if len(lines) != 2 || lines[0] != runcLine {
		t.Fatalf("log file lines = %q, want runc's line then exactly one of ours", lines)
	}
	var got map[string]string
	if err := json.Unmarshal([]byte(lines[1]), &got); err != nil {
		t.Fatalf("line %q is not a flat JSON object: %v", lines[1], err)
	}
	if len(got) != 3 || got["level"] != "error" ||
		got["msg"] != `runc-shared: container c1 matches rule "glusterfs" but lacks CAP_SYS_ADMIN` {
		t.Errorf("JSON line = %v, want exactly level=error, msg with the runc-shared: prefix, time", got)
	}
	if _, err := time.Parse(time.RFC3339, got["time"]); err != nil {
		t.Errorf("time %q: %v", got["time"], err)
	}
	want := "runc-shared: container c1 matches rule \"glusterfs\" but lacks CAP_SYS_ADMIN\n"
	if stderr.String() != want {
		t.Errorf("stderr = %q, want %q", stderr.String(), want)
	}
}

func TestErrorNoDoublePrefix(t *testing.T) {
	var stderr bytes.Buffer
	log := Setup(Options{Stderr: &stderr})
	Error(log, errors.New("runc-shared: already prefixed"))
	Error(log, nil)
	if want := "runc-shared: already prefixed\n"; stderr.String() != want {
		t.Errorf("stderr = %q, want %q", stderr.String(), want)
	}
}

func TestTextFormat(t *testing.T) {
	for _, format := range []string{"text", ""} {
		path := filepath.Join(t.TempDir(), "log")
		var stderr bytes.Buffer
		log := Setup(Options{File: path, Format: format, Stderr: &stderr})
		Error(log, errors.New(`bad "spec"`))
		lines := readLines(t, path)
		re := regexp.MustCompile(`^time="[^"]+" level=error msg="runc-shared: bad \\"spec\\""$`)
		if len(lines) != 1 || !re.MatchString(lines[0]) {
			t.Errorf("format %q: lines = %q, want one matching %s", format, lines, re)
		}
	}
}

func TestLevels(t *testing.T) {
	tests := []struct {
		name        string
		opts        Options
		noFile      bool
		fileHas     []string // substrings expected in the file, in order
		fileLacks   []string
		stderrHas   []string
		stderrLacks []string
	}{
		{name: "default info",
			fileHas:     []string{"runc-shared: info line", "runc-shared: warn line", "runc-shared: error line"},
			fileLacks:   []string{"debug line"},
			stderrHas:   []string{"runc-shared: error line\n"},
			stderrLacks: []string{"warn line", "info line", "debug line"}},
		{name: "runc --debug", opts: Options{Debug: true},
			fileHas:     []string{"runc-shared: debug line", "runc-shared: info line"},
			stderrLacks: []string{"debug line", "info line"}},
		{name: "config debug", opts: Options{Level: "debug"},
			fileHas: []string{"runc-shared: debug line"}},
		{name: "config warn", opts: Options{Level: "warn"},
			fileHas: []string{"warn line"}, fileLacks: []string{"info line", "debug line"}},
		{name: "debug without a log file goes to stderr", opts: Options{Level: "debug"}, noFile: true,
			stderrHas: []string{"runc-shared: debug: debug line key=v\n", "runc-shared: info: info line\n"}},
		{name: "unknown level is a warning in the file only", opts: Options{Level: "loud"},
			fileHas:     []string{"log-level \\\"loud\\\"", "info line"},
			stderrLacks: []string{"loud"}},
		{name: "unknown format is a warning in the file only", opts: Options{Format: "xml"},
			fileHas:     []string{`unknown --log-format \"xml\"`, `level=info msg="runc-shared: info line"`},
			stderrLacks: []string{"xml"}},
		{name: "debug without a log file has warnings on stderr", opts: Options{Debug: true}, noFile: true,
			stderrHas: []string{"runc-shared: warning: warn line\n", "runc-shared: error line\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			o := tt.opts
			o.Stderr = &stderr
			if !tt.noFile {
				o.File = filepath.Join(t.TempDir(), "log.json")
				if o.Format == "" {
					o.Format = "json"
				}
			}
			log := Setup(o)
			log.WithField("key", "v").Debug("debug line")
			log.Info("info line")
			log.Warn("warn line")
			log.Error("error line")
			file := ""
			if !tt.noFile {
				data, err := os.ReadFile(o.File)
				if err != nil {
					t.Fatal(err)
				}
				file = string(data)
			}
			check(t, "log file", file, tt.fileHas, tt.fileLacks)
			check(t, "stderr", stderr.String(), tt.stderrHas, tt.stderrLacks)
		})
	}
}

func check(t *testing.T, what, got string, has, lacks []string) {
	t.Helper()
	for _, s := range has {
		if !strings.Contains(got, s) {
			t.Errorf("%s %q lacks %q", what, got, s)
		}
	}
	for _, s := range lacks {
		if strings.Contains(got, s) {
			t.Errorf("%s %q has %q", what, got, s)
		}
	}
}

func TestUnopenableFileStaysOffStderr(t *testing.T) {
	dir := t.TempDir()
	for _, path := range []string{
		filepath.Join(dir, "missing", "dir", "log.json"), // parent missing
		dir, // a directory
	} {
		var stderr bytes.Buffer
		log := Setup(Options{File: path, Format: "json", Stderr: &stderr})
		if log == nil {
			t.Fatal("Setup returned a nil logger")
		}
		Error(log, errors.New("refused"))
		// The warning has nowhere to go: stderr carries errors only.
		if out := stderr.String(); out != "runc-shared: refused\n" {
			t.Errorf("stderr = %q, want only the error", out)
		}
	}
}

func TestFileModeAndSameFileAsStderr(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log.json")
	// --log /dev/stderr: the file is stderr itself, so each line once.
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	log := Setup(Options{File: path, Format: "json", Stderr: f})
	Error(log, errors.New("once"))
	lines := readLines(t, path)
	if len(lines) != 1 || !strings.Contains(lines[0], `"msg":"runc-shared: once"`) {
		t.Errorf("lines = %q, want one JSON line", lines)
	}

	fresh := filepath.Join(t.TempDir(), "new.json")
	Setup(Options{File: fresh, Format: "json", Stderr: &bytes.Buffer{}})
	fi, err := os.Stat(fresh)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm&^0o644 != 0 || perm&0o600 != 0o600 {
		t.Errorf("new log file mode %v, want 0644 (less the umask)", perm)
	}
}
