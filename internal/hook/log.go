package hook

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/sirupsen/logrus"

	"github.com/runc-shared/runc-shared/internal/config"
	"github.com/runc-shared/runc-shared/internal/logging"
)

// LogName is the hook's log file in the state directory.
const LogName = "mount-hook.log"

// prefix starts every line on stderr: runc and Podman quote the hook's stderr
// inside their own error message, and the prefix says who is speaking.
const prefix = "mount-hook: "

// newLogger logs everything at level and above to file (opened on the first
// line, so a run that logs nothing creates nothing) and warnings and errors
// to stderr, one short line each: a hook's stderr ends up in the runtime's
// error message.
func newLogger(file, level string, stderr io.Writer) *logrus.Logger {
	log := logrus.New()
	log.SetOutput(io.Discard)
	lvl, err := logrus.ParseLevel(level)
	if err != nil {
		lvl = logrus.InfoLevel
	}
	log.SetLevel(lvl)
	if file != "" {
		log.AddHook(logging.NewWriterHook(&lazyFile{path: file, stderr: stderr},
			&logrus.TextFormatter{DisableColors: true, FullTimestamp: true}, logrus.AllLevels...))
	}
	log.AddHook(logging.NewWriterHook(stderr, stderrFormatter{},
		logrus.PanicLevel, logrus.FatalLevel, logrus.ErrorLevel, logrus.WarnLevel))
	return log
}

// stderrFormatter writes "mount-hook: [warning: ]message".
type stderrFormatter struct{}

func (stderrFormatter) Format(e *logrus.Entry) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(prefix)
	if e.Level > logrus.ErrorLevel {
		b.WriteString(e.Level.String() + ": ")
	}
	b.WriteString(e.Message)
	b.WriteByte('\n')
	return b.Bytes(), nil
}

// lazyFile opens its file for appending on the first write. A file that
// cannot be opened, or one in a directory others could write (they could
// plant a symlink there to have root append to a file of theirs), is
// reported once on stderr; the hook goes on.
type lazyFile struct {
	path   string
	stderr io.Writer
	once   sync.Once
	f      *os.File
}

func (l *lazyFile) Write(p []byte) (int, error) {
	l.once.Do(func() {
		dir := filepath.Dir(l.path)
		if err := config.CheckDir(dir); err != nil {
			fmt.Fprintf(l.stderr, "%swarning: not logging to %s: %v\n", prefix, l.path, err)
			return
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			fmt.Fprintf(l.stderr, "%swarning: cannot create the log directory: %v\n", prefix, err)
			return
		}
		if err := config.CheckDir(dir); err != nil {
			fmt.Fprintf(l.stderr, "%swarning: not logging to %s: %v\n", prefix, l.path, err)
			return
		}
		f, err := logging.OpenAppend(l.path)
		if err != nil {
			fmt.Fprintf(l.stderr, "%swarning: cannot open the log file: %v\n", prefix, err)
			return
		}
		l.f = f
	})
	if l.f == nil {
		return len(p), nil
	}
	return l.f.Write(p)
}
