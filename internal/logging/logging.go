// Package logging sets up runc-shared's logger so that its messages reach the
// user through the engine.
//
// Engines read the runtime's --log file, not its stderr: containerd-shim
// shows the last `"level":"error"` line of that file when a runtime call
// fails, and Docker only says "unable to retrieve OCI runtime error" when the
// file holds none. So every line goes to the --log file in its --log-format
// (runc appends its own lines to the same file), and errors also go to stderr
// as plain text. stderr carries nothing else, warnings included: go-runc reads
// `runc state` with stdout and stderr combined, so a warning there (a broken
// config, an unopenable --log) would break the engine on every call.
package logging

import (
	"bytes"
	"cmp"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/sirupsen/logrus"
)

// Prefix starts every message runc-shared writes, so its lines stand out
// among the delegate's in the shared log file.
const Prefix = "runc-shared: "

// Options say where and how much to log.
type Options struct {
	// File is the delegate's --log file; "" means stderr only.
	File string
	// Format is the delegate's --log-format: "json" or "text" (default).
	Format string
	// Level is the config's log-level (a logrus level name); "" means info.
	Level string
	// Debug is the delegate's --debug global option: it raises the level
	// to debug.
	Debug bool
	// Stderr receives errors; nil means os.Stderr.
	Stderr io.Writer
	// Name starts every message: "runc-shared" when empty.
	Name string
	// Hook lays the lines out for an OCI hook (mount-hook): runtimes quote
	// a hook's stderr in their own error message, and a hook has no --log
	// file of the runtime's. So warnings go to stderr too, one line each
	// without fields, and File is the hook's own log: text without Name,
	// opened on the first line (a run that logs nothing creates nothing)
	// by OpenAppend, in a directory that CheckDir accepts before and after
	// it is created.
	Hook bool
	// CheckDir vets the directory of a Hook's log file; nil accepts any.
	CheckDir func(dir string) error
}

// Setup returns a logger writing to o's log file and stderr. The file is
// never closed: it is opened close-on-exec, so it closes when the process
// execs the delegate or exits, and every line is written whole at once. It
// never fails: a log file that cannot be opened or an unknown level or
// format is a warning, written where warnings go (the log file, if one is
// open).
func Setup(o Options) *logrus.Logger {
	stderr := cmp.Or(o.Stderr, io.Writer(os.Stderr))
	prefix := cmp.Or(o.Name, "runc-shared") + ": "
	log := logrus.New()
	// Output goes through the hooks below, one per destination, since the
	// file and stderr use different formats and levels.
	log.SetOutput(io.Discard)

	level, levelErr := parseLevel(o.Level)
	if o.Debug && level < logrus.DebugLevel {
		level = logrus.DebugLevel
	}
	log.SetLevel(level)

	if o.Hook {
		if o.File != "" {
			lf := &lazyFile{path: o.File, prefix: prefix, stderr: stderr, checkDir: o.CheckDir}
			log.AddHook(&writerHook{w: lf, f: textFormatter(), levels: logrus.AllLevels})
		}
		log.AddHook(&writerHook{w: stderr, f: stderrFormatter{prefix: prefix},
			levels: []logrus.Level{logrus.PanicLevel, logrus.FatalLevel, logrus.ErrorLevel, logrus.WarnLevel}})
		return log
	}
	var file *os.File
	var fileErr, formatErr error
	if o.File != "" {
		if file, fileErr = os.OpenFile(o.File, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); fileErr != nil {
			fileErr = fmt.Errorf("cannot open the runtime log file (--log): %w; logging to stderr only", fileErr)
		} else {
			var f logrus.Formatter
			f, formatErr = fileFormatter(o.Format)
			log.AddHook(&writerHook{w: file, f: prefixFormatter{prefix, f}, levels: logrus.AllLevels})
		}
	}
	if file == nil || !sameFile(file, stderr) {
		levels := []logrus.Level{logrus.PanicLevel, logrus.FatalLevel, logrus.ErrorLevel}
		if file == nil && level >= logrus.DebugLevel {
			// No log file and details were asked for: stderr is the
			// only place left for them.
			levels = logrus.AllLevels
		}
		log.AddHook(&writerHook{w: stderr, f: stderrFormatter{prefix: prefix, fields: true}, levels: levels})
	}

	for _, err := range []error{fileErr, levelErr, formatErr} {
		if err != nil {
			log.Warn(err.Error())
		}
	}
	return log
}

// Error logs err as one error line: `{"level":"error","msg":"runc-shared:
// <reason>","time":...}` in a JSON log file (the line containerd-shim shows
// the user) and "runc-shared: <reason>" on stderr.
func Error(log *logrus.Logger, err error) {
	if err != nil {
		log.Error(strings.TrimPrefix(err.Error(), Prefix))
	}
}

func parseLevel(name string) (logrus.Level, error) {
	if name == "" {
		return logrus.InfoLevel, nil
	}
	l, err := logrus.ParseLevel(name)
	if err != nil {
		return logrus.InfoLevel, fmt.Errorf("config log-level %q is not a level (use error, warn, info, debug or trace); using info", name)
	}
	return l, nil
}

func fileFormatter(format string) (logrus.Formatter, error) {
	switch format {
	case "json":
		// Default keys, as runc's own JSON lines: level, msg, time.
		return &logrus.JSONFormatter{}, nil
	case "", "text":
		return textFormatter(), nil
	}
	return textFormatter(), fmt.Errorf("unknown --log-format %q; writing text", format)
}

func textFormatter() logrus.Formatter {
	return &logrus.TextFormatter{DisableColors: true, FullTimestamp: true}
}

// sameFile reports whether w is the open file f (e.g. --log /dev/stderr),
// so a line is not written twice to one place.
func sameFile(f *os.File, w io.Writer) bool {
	o, ok := w.(*os.File)
	if !ok {
		return false
	}
	a, errA := f.Stat()
	b, errB := o.Stat()
	return errA == nil && errB == nil && os.SameFile(a, b)
}

// writerHook writes the entries of some levels to one destination, each as
// a single write so that lines appended by concurrent runtimes to the same
// O_APPEND file do not interleave.
type writerHook struct {
	mu     sync.Mutex
	w      io.Writer
	f      logrus.Formatter
	levels []logrus.Level
}

func (h *writerHook) Levels() []logrus.Level { return h.levels }

func (h *writerHook) Fire(e *logrus.Entry) error {
	b, err := h.f.Format(e)
	if err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err = h.w.Write(b)
	return err
}

// prefixFormatter adds a prefix to the message.
type prefixFormatter struct {
	prefix string
	logrus.Formatter
}

func (p prefixFormatter) Format(e *logrus.Entry) ([]byte, error) {
	c := *e
	c.Message = p.prefix + e.Message
	return p.Formatter.Format(&c)
}

// stderrFormatter writes "prefix[level: ]message[ key=value...]": what a
// person reads; errors carry no level word.
type stderrFormatter struct {
	prefix string
	fields bool
}

func (s stderrFormatter) Format(e *logrus.Entry) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(s.prefix)
	if e.Level > logrus.ErrorLevel {
		b.WriteString(e.Level.String())
		b.WriteString(": ")
	}
	b.WriteString(e.Message)
	if s.fields {
		for _, k := range slices.Sorted(maps.Keys(e.Data)) {
			v := fmt.Sprint(e.Data[k])
			if strings.ContainsAny(v, " \t\n\"=") || v == "" {
				v = fmt.Sprintf("%q", v)
			}
			fmt.Fprintf(&b, " %s=%s", k, v)
		}
	}
	b.WriteByte('\n')
	return b.Bytes(), nil
}
