package hook

import (
	"io"

	"github.com/sirupsen/logrus"

	"github.com/runc-shared/runc-shared/internal/config"
	"github.com/runc-shared/runc-shared/internal/hookargs"
	"github.com/runc-shared/runc-shared/internal/logging"
)

// LogName is the hook's log file in the state directory.
const LogName = "mount-hook.log"

// newLogger logs everything at level and above to file, and warnings and
// errors to stderr as "mount-hook: [warning: ]message": a hook's stderr ends
// up in the runtime's error message. The log file's directory must pass the
// configuration file's trust rule.
func newLogger(file, level string, stderr io.Writer) *logrus.Logger {
	return logging.Setup(logging.Options{File: file, Level: level, Stderr: stderr,
		Name: hookargs.Name, Hook: true, CheckDir: config.CheckDir})
}
