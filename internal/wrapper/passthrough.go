package wrapper

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/sirupsen/logrus"

	"github.com/runc-shared/runc-shared/internal/config"
	"github.com/runc-shared/runc-shared/internal/runtime"
	"github.com/runc-shared/runc-shared/pkg/spec"
)

// The wrapper must be invisible to every container no rule matches: such a
// call goes to the delegate untouched, and whatever is wrong with its bundle
// is the delegate's to report, in its own words. So what the wrapper cannot
// read only refuses a call when a rule could have matched it. runc reads
// config.json with a json.Decoder (loadSpec in runc's spec.go): the first
// JSON value counts, whatever its size, and anything after it is ignored.
// The wrapper matches on the same value; it rewrites only a config.json that
// is one JSON object and nothing else, within spec.MaxConfigSize.

// examine reads the bundle's config.json as far as matching needs. It
// returns the file and the rule that matches what the delegate will read,
// nil when the call passes through untouched (the reason is logged at debug
// level), or an error when a rule matches a file the wrapper will not
// rewrite. The rule is matched here only: the full decode reads the same
// annotations and env with the same decoder.
func (w *Wrapper) examine(cfg *config.Config, args *runtime.Args, bundle string) (*spec.File, *spec.Rule, error) {
	path := filepath.Join(bundle, "config.json")
	unexamined := func(err error) (*spec.File, *spec.Rule, error) {
		w.log.Debugf("container %s: %v; passed through unexamined, for %s to report", args.ContainerID, err, cfg.Runtime)
		return nil, nil, nil
	}
	// A config.json that Peek does not take is matched on its first JSON
	// value, read as runc reads it: a rule that matches it refuses the call
	// (err, then refusal, say why), any other container passes through.
	var first io.Reader
	var refusal, note string
	file, err := spec.Read(path)
	switch {
	case errors.Is(err, spec.ErrTooLarge):
		f, oerr := os.Open(path)
		if oerr != nil {
			return unexamined(oerr)
		}
		defer f.Close()
		first, refusal = f, "; fix the bundle or the engine that wrote it (a mounter's spec is a few kilobytes)"
		note = fmt.Sprintf(" (config.json is larger than %d bytes)", spec.MaxConfigSize)
	case err != nil:
		return unexamined(err)
	default:
		peek, perr := file.Peek()
		if perr == nil {
			rule := spec.FindRule(cfg.Mounters, peek)
			if rule == nil {
				w.logNoMatch(cfg, args, peek, "")
				return nil, nil, nil
			}
			return file, rule, nil
		}
		err, first = perr, bytes.NewReader(file.Data)
		refusal = ": runc-shared rewrites only a config.json that holds one JSON object and nothing after it; fix the bundle or the engine that wrote it"
		note = " (config.json has data after its JSON object, which runc ignores)"
	}
	// The first JSON value, decoded as runc does (a json.Decoder into a
	// specs.Spec) in one pass: the file may be above spec.MaxConfigSize.
	var peek specs.Spec
	if ferr := json.NewDecoder(first).Decode(&peek); ferr != nil {
		return unexamined(fmt.Errorf("%s: decode runtime spec: %w", path, ferr))
	}
	if rule := spec.FindRule(cfg.Mounters, &peek); rule != nil {
		return nil, nil, fmt.Errorf("container %s matches mounter rule %q, but %w%s", args.ContainerID, rule.Name, err, refusal)
	}
	w.logNoMatch(cfg, args, &peek, note)
	return nil, nil, nil
}

// logNoMatch logs, at debug level, why a create matched no rule: for each
// rule, the first condition the container does not meet. It costs nothing
// at other levels.
func (w *Wrapper) logNoMatch(cfg *config.Config, args *runtime.Args, peek *specs.Spec, note string) {
	if !w.log.IsLevelEnabled(logrus.DebugLevel) {
		return
	}
	why := make([]string, 0, len(cfg.Mounters))
	for i := range cfg.Mounters {
		if m := cfg.Mounters[i].Mismatch(peek); m != nil {
			why = append(why, m.String())
		}
	}
	w.log.Debugf("container %s matches no mounter rule%s, passed through: %s", args.ContainerID, note, strings.Join(why, "; "))
}

// logPassThrough logs, at debug level, why a create, run or restore is not
// examined at all.
func (w *Wrapper) logPassThrough(cfg *config.Config, args *runtime.Args) {
	// A call that could not be rewritten anyway (another command, --help,
	// --version, or a parse error, which is logged already) says nothing.
	if !w.log.IsLevelEnabled(logrus.DebugLevel) || !args.MayRewrite() {
		return
	}
	switch {
	case cfg.Missing:
		w.log.Debugf("container %s passed through: no configuration file", args.ContainerID)
	case len(cfg.Mounters) == 0:
		w.log.Debugf("container %s passed through: %s has no mounter rule", args.ContainerID, cfg.Path)
	}
}
