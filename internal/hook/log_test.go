package hook

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
)

// TestLogLines pins the hook's lines byte for byte: runc and Podman quote
// its stderr in their own error message, and people grep its log file.
func TestLogLines(t *testing.T) {
	stamp := regexp.MustCompile(`^time="[^"]+" `)
	for _, tc := range []struct {
		name   string
		level  string
		file   []string // lines of the log file, without their time
		stderr string
	}{
		{"info", "info", []string{
			`level=info msg="registered mounter of rule \"gluster\"" id=m1 stage=createRuntime`,
			`level=warning msg="dead FUSE mount left in place: busy" id=m1 stage=createRuntime`,
			`level=error msg="createRuntime of container m1: refused"`,
		}, "mount-hook: warning: dead FUSE mount left in place: busy\nmount-hook: createRuntime of container m1: refused\n"},
		{"debug", "debug", []string{
			`level=debug msg="FUSE mounts under [/a]: 0 dead" id=m1 stage=createRuntime`,
			`level=info msg="registered mounter of rule \"gluster\"" id=m1 stage=createRuntime`,
			`level=warning msg="dead FUSE mount left in place: busy" id=m1 stage=createRuntime`,
			`level=error msg="createRuntime of container m1: refused"`,
		}, "mount-hook: warning: dead FUSE mount left in place: busy\nmount-hook: createRuntime of container m1: refused\n"},
		{"error", "error", []string{
			`level=error msg="createRuntime of container m1: refused"`,
		}, "mount-hook: createRuntime of container m1: refused\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state", LogName)
			var stderr bytes.Buffer
			log := newLogger(path, tc.level, &stderr)
			e := log.WithFields(logrus.Fields{"id": "m1", "stage": "createRuntime"})
			e.Debugf("FUSE mounts under %v: %d dead", []string{"/a"}, 0)
			e.Infof("registered mounter of rule %q", "gluster")
			e.Warnf("dead FUSE mount left in place: %v", "busy")
			log.Error("createRuntime of container m1: refused")
			if stderr.String() != tc.stderr {
				t.Errorf("stderr = %q\nwant     %q", stderr.String(), tc.stderr)
			}
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
			for i, l := range lines {
				if !stamp.MatchString(l) {
					t.Errorf("line %q does not start with a time", l)
				}
				lines[i] = stamp.ReplaceAllString(l, "")
			}
			if strings.Join(lines, "\n") != strings.Join(tc.file, "\n") {
				t.Errorf("log file:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(tc.file, "\n"))
			}
		})
	}
}

// TestLogFileLazyAndRefused: a run that logs nothing at its level creates
// nothing, and a log file the hook must not write is one warning on stderr,
// once, while the lines still reach stderr.
func TestLogFileLazyAndRefused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	var stderr bytes.Buffer
	newLogger(filepath.Join(dir, LogName), "info", &stderr).Debug("quiet")
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) || stderr.Len() != 0 {
		t.Errorf("a debug line at level info: stat %v, stderr %q; want no directory and no output", err, stderr.String())
	}

	open := t.TempDir()
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), LogName)
	if err := os.Symlink(filepath.Join(t.TempDir(), "elsewhere"), link); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		want *regexp.Regexp
	}{
		{filepath.Join(open, LogName), regexp.MustCompile(`^mount-hook: warning: not logging to ` + regexp.QuoteMeta(filepath.Join(open, LogName)) + `: [^\n]+\n` +
			`mount-hook: warning: one\nmount-hook: two\n$`)},
		{link, regexp.MustCompile(`^mount-hook: warning: cannot open the log file: log file ` + regexp.QuoteMeta(link) + `: unsafe log file: it is a symlink: remove it\n` +
			`mount-hook: warning: one\nmount-hook: two\n$`)},
	} {
		var stderr bytes.Buffer
		log := newLogger(tc.path, "info", &stderr)
		log.Warn("one")
		log.Error("two")
		if !tc.want.MatchString(stderr.String()) {
			t.Errorf("log file %s: stderr = %q, want %s", tc.path, stderr.String(), tc.want)
		}
	}
}
