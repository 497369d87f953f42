package config

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"strings"

	"github.com/BurntSushi/toml"
)

// Error is an invalid configuration. Every problem found is listed, each
// with the line and key it is about and what to do.
type Error struct {
	File     string
	Problems []Problem
	// Err is the TOML library's error for a syntax error, else nil.
	Err error
}

// Problem is one thing wrong with a configuration file.
type Problem struct {
	// Line is from 1; 0 when unknown: the TOML library keeps one position
	// per dotted key, the last rule's, so an earlier rule's key has none.
	Line int
	// Key is dotted as written in the file, e.g. mounter.mode; without a
	// line, a rule's key names the rule by its place: mounter[1].mode.
	Key string
	Msg string // what is wrong and how to fix it
}

func (e *Error) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		s := "config " + e.File
		if p.Line > 0 {
			s += fmt.Sprintf(":%d", p.Line)
		}
		if p.Key != "" {
			s += ": key " + p.Key
		}
		parts[i] = s + ": " + p.Msg
	}
	return strings.Join(parts, "; ")
}

func (e *Error) Unwrap() error { return e.Err }

// document is the file as the TOML library decodes it. Values stay as TOML
// typed them (nil when absent) for the validator to check, so that one
// wrong value is reported with what to write instead and hides no other
// problem; the tables whose shape can be wrong ([mounter] for [[mounter]],
// match = 5) stay Primitives until the validator has checked their shape.
type document struct {
	Runtime        any             `toml:"runtime"`
	StateDir       any             `toml:"state-dir"`
	LogLevel       any             `toml:"log-level"`
	HostMntns      any             `toml:"host-mntns"`
	HookPath       any             `toml:"hook-path"`
	Mounter        *toml.Primitive `toml:"mounter"`
	MountContainer any             `toml:"mount-container"`
}

type ruleDoc struct {
	Name              any             `toml:"name"`
	FSTypes           any             `toml:"fstypes"`
	Mode              any             `toml:"mode"`
	Propagate         any             `toml:"propagate"`
	EnsureShared      any             `toml:"ensure-shared"`
	RequirePrivileged any             `toml:"require-privileged"`
	Namespaces        any             `toml:"namespaces"`
	Match             *toml.Primitive `toml:"match"`
}

type matchDoc struct {
	Annotations   any `toml:"annotations"`
	Env           any `toml:"env"`
	ContainerName any `toml:"container-name"`
}

// The keys of each table, in the order the documentation gives them.
var (
	topKeys   = []string{"runtime", "state-dir", "log-level", "host-mntns", "hook-path", "mounter", "mount-container"}
	ruleKeys  = []string{"name", "fstypes", "mode", "propagate", "ensure-shared", "require-privileged", "namespaces", "match"}
	matchKeys = []string{"annotations", "env", "container-name"}
	logLevels = []string{"panic", "fatal", "error", "warn", "warning", "info", "debug", "trace"}
)

// parse decodes and validates a configuration; file names it in errors and
// becomes Config.Path. Load is parse after the file checks.
func parse(file string, data []byte) (*Config, error) {
	src := blankComments(data)
	var doc document
	md, err := toml.Decode(src, &doc)
	if err != nil {
		// Into a document of any and Primitive fields only a syntax error
		// fails, and the library reports it as a ParseError; any other
		// error keeps its own text, without line.
		var pe toml.ParseError
		errors.As(err, &pe)
		return nil, &Error{File: file, Err: err, Problems: []Problem{{
			Line: pe.Position.Line, Key: pe.LastKey, Msg: cmp.Or(pe.Message, err.Error()) + ": fix the TOML syntax (https://toml.io)",
		}}}
	}
	keys := md.Keys()
	v := &validator{md: &md, keys: keys, rules: ruleOfKeys(&md, keys), names: map[string]bool{}, resolved: map[string]string{}}
	c := v.validate(&doc)
	if len(v.probs) > 0 {
		return nil, v.error(file, src)
	}
	c.Path = file
	return c, nil
}

// blankComments empties the comment lines of a document, keeping its line
// breaks (so lines in errors do not move). The TOML lexer walks comments
// rune by rune, and a well-documented configuration is mostly comments,
// which Load would otherwise lex on every runtime call. It is only safe
// without multi-line strings, the one place where a line starting with # is
// not a comment, so a document with triple quotes is left as is.
func blankComments(data []byte) string {
	if bytes.Contains(data, []byte(`"""`)) || bytes.Contains(data, []byte("'''")) {
		return string(data)
	}
	out := make([]byte, 0, len(data))
	for len(data) > 0 {
		line, rest, found := bytes.Cut(data, []byte("\n"))
		if t := bytes.TrimLeft(line, " \t"); len(t) == 0 || t[0] != '#' {
			out = append(out, line...)
		}
		if found {
			out = append(out, '\n')
		}
		data = rest
	}
	return string(out)
}
