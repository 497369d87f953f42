package hook

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/sirupsen/logrus"

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
// cannot be opened is reported once on stderr; the hook goes on.
type lazyFile struct {
	path   string
	stderr io.Writer
	once   sync.Once
	f      *os.File
}

func (l *lazyFile) Write(p []byte) (int, error) {
	l.once.Do(func() {
		if err := os.MkdirAll(filepath.Dir(l.path), 0o755); err != nil {
			fmt.Fprintf(l.stderr, "%swarning: cannot create the log directory: %v\n", prefix, err)
			return
		}
		f, err := os.OpenFile(l.path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
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
