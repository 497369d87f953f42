package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/runc-shared/runc-shared/pkg/spec"
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
	Line int    // from 1; 0 when unknown
	Key  string // dotted key as written in the file, e.g. mounter.mode
	Msg  string // what is wrong and how to fix it
}

func (e *Error) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		var b strings.Builder
		b.WriteString("config ")
		b.WriteString(e.File)
		if p.Line > 0 {
			fmt.Fprintf(&b, ":%d", p.Line)
		}
		if p.Key != "" {
			fmt.Fprintf(&b, ": key %s", p.Key)
		}
		b.WriteString(": ")
		b.WriteString(p.Msg)
		parts[i] = b.String()
	}
	return strings.Join(parts, "; ")
}

func (e *Error) Unwrap() error { return e.Err }

// Parse decodes and validates a configuration; file names it in errors and
// becomes Config.Path. Load is Parse after the file checks.
func Parse(file string, data []byte) (*Config, error) {
	var raw map[string]any
	if _, err := toml.Decode(blankComments(data), &raw); err != nil {
		return nil, syntaxError(file, err)
	}
	d := &decoder{}
	c := d.config(raw)
	if len(d.probs) > 0 {
		return nil, d.error(file, data)
	}
	c.Path = file
	return c, nil
}

// blankComments empties the comment lines of a document, keeping its line
// breaks (so lines in errors do not move). The TOML lexer walks comments
// rune by rune through a channel, and a well-documented configuration is
// mostly comments: this halves what Load costs on every runtime call. It is
// only safe without multi-line strings, the one place where a line starting
// with # is not a comment, so a document with triple quotes is left as is.
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

func syntaxError(file string, err error) error {
	var pe toml.ParseError
	if !errors.As(err, &pe) {
		return &Error{File: file, Err: err, Problems: []Problem{{Msg: err.Error() + ": fix the TOML syntax"}}}
	}
	return &Error{File: file, Err: err, Problems: []Problem{{
		Line: pe.Position.Line,
		Key:  pe.LastKey,
		Msg:  pe.Message + ": fix the TOML syntax (https://toml.io)",
	}}}
}

// decoder walks the generic TOML tree against the schema, collecting
// problems; each problem keeps the indexed path of its key so that its line
// can be found afterwards, only if there is a problem.
type decoder struct {
	probs []problem
}

type problem struct {
	path keyPath
	msg  string
}

func (d *decoder) fail(p keyPath, format string, args ...any) {
	d.probs = append(d.probs, problem{path: p, msg: fmt.Sprintf(format, args...)})
}

func (d *decoder) error(file string, data []byte) error {
	lines := keyLines(string(data))
	e := &Error{File: file, Problems: make([]Problem, len(d.probs))}
	for i, p := range d.probs {
		e.Problems[i] = Problem{Line: lines.find(p.path), Key: p.path.String(), Msg: p.msg}
	}
	// Map iteration found them in random order: report in file order.
	sort.SliceStable(e.Problems, func(i, j int) bool {
		a, b := e.Problems[i], e.Problems[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Key < b.Key
	})
	return e
}

var (
	topKeys   = []string{"runtime", "state-dir", "log-level", "host-mntns", "hook-path", "mounter", "mount-container"}
	ruleKeys  = []string{"name", "fstypes", "mode", "propagate", "ensure-shared", "require-privileged", "namespaces", "match"}
	matchKeys = []string{"annotations", "env", "container-name"}
	logLevels = []string{"panic", "fatal", "error", "warn", "warning", "info", "debug", "trace"}
)

func (d *decoder) config(raw map[string]any) *Config {
	c := Default()
	for k, v := range raw {
		p := keyPath{k}
		switch k {
		case "runtime":
			if s, ok := d.runtime(p, v); ok {
				c.Runtime = s
			}
		case "state-dir":
			if s, ok := d.absPath(p, v); ok {
				c.StateDir = s
			}
		case "log-level":
			if s, ok := d.logLevel(p, v); ok {
				c.LogLevel = s
			}
		case "host-mntns":
			if s, ok := d.str(p, v); ok {
				if s == HostMntnsSelf {
					c.HostMntns = s
				} else if ns, why := cleanAbs(s); why != "" {
					d.fail(p, "%s, or \"self\" for the wrapper's own mount namespace", why)
				} else {
					c.HostMntns = ns
				}
			}
		case "hook-path":
			if s, ok := d.absPath(p, v); ok {
				c.HookPath = s
			}
		case "mounter", "mount-container":
			// Below, in a fixed order: rule order is significant.
		default:
			d.unknown(p, topKeys)
		}
	}
	names := map[string]bool{}
	if v, ok := raw["mounter"]; ok {
		c.Mounters = d.mounters(keyPath{"mounter"}, v, names)
	}
	if v, ok := raw["mount-container"]; ok {
		c.Mounters = append(c.Mounters, d.seed(keyPath{"mount-container"}, v, names)...)
	}
	return c
}

func (d *decoder) unknown(p keyPath, known []string) {
	k := p[len(p)-1]
	norm := strings.ToLower(strings.ReplaceAll(k, "_", "-"))
	for _, want := range known {
		if norm == want || len(norm) > 3 && editDistance(norm, want) <= 2 {
			d.fail(p, "unknown key: did you mean %q? (keys are lower case, with dashes)", want)
			return
		}
	}
	d.fail(p, "unknown key: remove it or fix the spelling; the keys here are %s", strings.Join(known, ", "))
}

// editDistance is the Levenshtein distance of two short keys.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// Typed accessors: each reports a wrong type with what to write instead.

func (d *decoder) str(p keyPath, v any) (string, bool) {
	s, ok := v.(string)
	if !ok {
		d.fail(p, "is %s, want a string: quote the value, like %s = \"...\"", typeName(v), p[len(p)-1])
		return "", false
	}
	if strings.IndexByte(s, 0) >= 0 {
		d.fail(p, "contains a NUL byte: remove it")
		return "", false
	}
	return s, true
}

func (d *decoder) boolean(p keyPath, v any) (bool, bool) {
	b, ok := v.(bool)
	if !ok {
		d.fail(p, "is %s, want true or false (unquoted)", typeName(v))
	}
	return b, ok
}

func (d *decoder) strList(p keyPath, v any) ([]string, bool) {
	list, ok := v.([]any)
	if !ok {
		if s, isStr := v.(string); isStr {
			d.fail(p, "is a string, want a list of strings: write %s = [%q]", p[len(p)-1], s)
		} else {
			d.fail(p, "is %s, want a list of strings, like %s = [\"...\"]", typeName(v), p[len(p)-1])
		}
		return nil, false
	}
	out := make([]string, 0, len(list))
	for i, e := range list {
		s, ok := e.(string)
		if !ok {
			d.fail(p, "element %d is %s, want a string: quote it", i+1, typeName(e))
			return nil, false
		}
		if strings.TrimSpace(s) == "" || strings.IndexByte(s, 0) >= 0 {
			d.fail(p, "element %d is %q: give a non-empty value", i+1, s)
			return nil, false
		}
		out = append(out, s)
	}
	return out, true
}

func (d *decoder) strMap(p keyPath, v any) (map[string]string, bool) {
	t, ok := v.(map[string]any)
	if !ok {
		d.fail(p, "is %s, want a table of strings, like %s = { \"key\" = \"value\" }", typeName(v), p[len(p)-1])
		return nil, false
	}
	out := make(map[string]string, len(t))
	for k, e := range t {
		s, ok := e.(string)
		if !ok {
			d.fail(p.key(k), "is %s, want a string: values are matched exactly, so quote it", typeName(e))
			continue
		}
		if k == "" {
			d.fail(p, "has an empty key: name the %s to match", p[len(p)-1])
			continue
		}
		out[k] = s
	}
	return out, true
}

func (d *decoder) table(p keyPath, v any) (map[string]any, bool) {
	t, ok := v.(map[string]any)
	if !ok {
		d.fail(p, "is %s, want a table: write [%s] on its own line and the keys below it", typeName(v), p.String())
	}
	return t, ok
}

func typeName(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case []any, []map[string]any:
		return "a list"
	case map[string]any:
		return "a table"
	case time.Time: // local dates and times too, in a special Location
		return "a date or time"
	default:
		return fmt.Sprintf("a %T", v)
	}
}

// Top-level values.

func (d *decoder) runtime(p keyPath, v any) (string, bool) {
	s, ok := d.str(p, v)
	switch {
	case !ok:
		return "", false
	case s == "":
		d.fail(p, "is empty: give the real runtime, a name on PATH like \"runc\" or an absolute path, or remove the key")
		return "", false
	case strings.Contains(s, "/") && !filepath.IsAbs(s):
		d.fail(p, "%q is a relative path: give a name on PATH like \"runc\" or an absolute path like \"/usr/bin/runc\"", s)
		return "", false
	case strings.Contains(s, "/"):
		return filepath.Clean(s), true
	}
	return s, true
}

func (d *decoder) logLevel(p keyPath, v any) (string, bool) {
	s, ok := d.str(p, v)
	if !ok {
		return "", false
	}
	l := strings.ToLower(s)
	for _, want := range logLevels {
		if l == want {
			return l, true
		}
	}
	d.fail(p, "%q is not a log level: use one of %s", s, strings.Join(logLevels, ", "))
	return "", false
}

func (d *decoder) absPath(p keyPath, v any) (string, bool) {
	s, ok := d.str(p, v)
	if !ok {
		return "", false
	}
	c, why := cleanAbs(s)
	if why != "" {
		d.fail(p, "%s", why)
		return "", false
	}
	return c, true
}

// cleanAbs checks a host path from the configuration and returns it cleaned,
// or why it is refused. ".." is refused before cleaning, since Clean would
// silently turn /var/lib/kubelet/../.. into /var.
func cleanAbs(s string) (string, string) {
	switch {
	case s == "":
		return "", "is empty: give an absolute path"
	case strings.IndexByte(s, 0) >= 0:
		return "", fmt.Sprintf("%q contains a NUL byte: remove it", s)
	case !strings.HasPrefix(s, "/"):
		return "", fmt.Sprintf("%q is not an absolute path: write the full path from /", s)
	}
	for _, c := range strings.Split(s, "/") {
		if c == ".." {
			return "", fmt.Sprintf("%q contains \"..\": write the path without it", s)
		}
	}
	c := filepath.Clean(s)
	if c == "/" {
		return "", fmt.Sprintf("%q is the root directory: name the directory itself, like %s", s, KubeletDir)
	}
	return c, ""
}

// [[mounter]] rules.

func (d *decoder) mounters(p keyPath, v any, names map[string]bool) []spec.Rule {
	var tables []map[string]any
	switch t := v.(type) {
	case []map[string]any:
		tables = t
	case []any: // mounter = [{...}, {...}]
		for i, e := range t {
			m, ok := e.(map[string]any)
			if !ok {
				d.fail(p.index(i), "element %d is %s, want a table: write each rule as a [[mounter]] table", i+1, typeName(e))
				continue
			}
			tables = append(tables, m)
		}
	case map[string]any:
		d.fail(p, "is a single table: write [[mounter]] with two brackets, once before each rule")
		return nil
	default:
		d.fail(p, "is %s, want [[mounter]] tables: write [[mounter]] once before each rule", typeName(v))
		return nil
	}
	rules := make([]spec.Rule, 0, len(tables))
	for i, t := range tables {
		ep := p.index(i)
		r, ok := d.rule(ep, t)
		if !ok {
			continue
		}
		if names[r.Name] {
			d.fail(ep.key("name"), "%q is already the name of another rule: give each [[mounter]] its own name", r.Name)
			continue
		}
		names[r.Name] = true
		rules = append(rules, r)
	}
	return rules
}

func (d *decoder) rule(p keyPath, t map[string]any) (spec.Rule, bool) {
	r := spec.Rule{Mode: spec.ModePropagate, EnsureShared: true, RequirePrivileged: true}
	before := len(d.probs)
	for k, v := range t {
		kp := p.key(k)
		switch k {
		case "name":
			if s, ok := d.str(kp, v); ok && strings.TrimSpace(s) == "" {
				d.fail(kp, "is empty: name the rule, like name = \"glusterfs\"")
			} else if ok {
				r.Name = s
			}
		case "fstypes":
			r.FSTypes = d.fstypes(kp, v)
		case "mode":
			if s, ok := d.str(kp, v); ok {
				switch m := spec.Mode(s); m {
				case spec.ModePropagate, spec.ModePreload:
					r.Mode = m
				default:
					d.fail(kp, "%q is not a mode: use %q (the default) or %q", s, spec.ModePropagate, spec.ModePreload)
				}
			}
		case "propagate":
			r.Propagate = d.propagate(kp, v)
		case "ensure-shared":
			r.EnsureShared, _ = d.boolean(kp, v)
		case "require-privileged":
			r.RequirePrivileged, _ = d.boolean(kp, v)
		case "namespaces":
			r.Namespaces, _ = d.strList(kp, v)
		case "match":
			if m, ok := d.table(kp, v); ok {
				n := len(d.probs)
				r.Match = d.match(kp, m)
				if len(d.probs) == n && r.Match.Empty() {
					d.fail(kp, "has no condition, so it would match no container: give annotations, env or container-name, like annotations = { %q = \"glusterfs\" }", spec.AnnotationMounter)
				}
			}
		default:
			d.unknown(kp, ruleKeys)
		}
	}
	for _, req := range []struct {
		key, example string
	}{
		{"name", `name = "glusterfs"`},
		{"fstypes", `fstypes = ["glusterfs"]`},
		{"propagate", `propagate = ["/var/lib/kubelet"]`},
	} {
		if _, ok := t[req.key]; !ok {
			d.fail(p, "[[mounter]] misses the required key %q: add %s", req.key, req.example)
		}
	}
	if _, ok := t["match"]; !ok {
		example := r.Name
		if example == "" {
			example = "glusterfs"
		}
		d.fail(p, "[[mounter]] has no match condition, so it would match no container: add a [mounter.match] table with annotations, env or container-name, like annotations = { %q = %q }", spec.AnnotationMounter, example)
	}
	return r, len(d.probs) == before
}

func (d *decoder) fstypes(p keyPath, v any) []string {
	list, ok := d.strList(p, v)
	if !ok {
		return nil
	}
	if len(list) == 0 {
		d.fail(p, "is empty: list the filesystem types the mounter serves, like fstypes = [\"glusterfs\"]")
		return nil
	}
	for _, t := range list {
		if strings.ContainsAny(t, " \t\n,/") {
			d.fail(p, "%q is not a filesystem type: give one type per element, as mount -t takes it, like \"glusterfs\" or \"fuse.sshfs\"", t)
			return nil
		}
	}
	return list
}

func (d *decoder) propagate(p keyPath, v any) []string {
	list, ok := d.strList(p, v)
	if !ok {
		return nil
	}
	if len(list) == 0 {
		d.fail(p, "is empty: list the host directories the mounter mounts under, like propagate = [%q]", KubeletDir)
		return nil
	}
	out := make([]string, 0, len(list))
	for _, s := range list {
		c, why := cleanAbs(s)
		if why == "" {
			why = checkResolved(c)
		}
		if why != "" {
			d.fail(p, "%s", why)
			return nil
		}
		out = append(out, c)
	}
	return out
}

// checkResolved checks a propagate path, cleaned, as its symlinks resolve on
// this host: the wrapper and the hook follow them (hostmount resolves the
// allowlisted prefixes), so a path refused as written is refused as a
// symlink's target too, like a symlink to /. A path that does not exist yet
// is checked as far as it exists. It returns why the path is refused, or "".
func checkResolved(path string) string {
	resolved, err := resolveExisting(path)
	if err != nil {
		return fmt.Sprintf("%q cannot be resolved: %v; fix the path or its symlinks", path, err)
	}
	if resolved == path {
		return ""
	}
	if _, why := cleanAbs(resolved); why != "" {
		return fmt.Sprintf("%q resolves through symlinks to %q, refused: %s", path, resolved, why)
	}
	return ""
}

// resolveExisting resolves the symlinks of path's longest existing prefix
// and appends the rest unchanged.
func resolveExisting(path string) (string, error) {
	var rest []string
	for p := path; ; p = filepath.Dir(p) {
		r, err := filepath.EvalSymlinks(p)
		if err == nil {
			return filepath.Join(append([]string{r}, rest...)...), nil
		}
		if !errors.Is(err, fs.ErrNotExist) || p == "/" {
			return "", err
		}
		rest = append([]string{filepath.Base(p)}, rest...)
	}
}

func (d *decoder) match(p keyPath, t map[string]any) spec.Match {
	var m spec.Match
	for k, v := range t {
		kp := p.key(k)
		switch k {
		case "annotations":
			m.Annotations, _ = d.strMap(kp, v)
		case "env":
			env, ok := d.strMap(kp, v)
			for name := range env {
				if strings.Contains(name, "=") {
					d.fail(kp.key(name), "an environment variable name cannot hold \"=\": write the name as the key and the value as the value")
					ok = false
				}
			}
			if ok {
				m.Env = env
			}
		case "container-name":
			if s, ok := d.str(kp, v); ok && s == "" {
				d.fail(kp, "is empty: give the container name, or remove the key")
			} else if ok {
				m.ContainerName = s
			}
		default:
			d.unknown(kp, matchKeys)
		}
	}
	return m
}

// The seed's kubelet syntax: mount-container = ["FSTYPE:KEY=VALUE[:CONTAINER]"].

const seedFormat = `want "FSTYPE:KEY=VALUE" or "FSTYPE:KEY=VALUE:CONTAINER", like "glusterfs:name=glusterfs-mounter:mounter"`

func (d *decoder) seed(p keyPath, v any, names map[string]bool) []spec.Rule {
	list, ok := v.([]any)
	if !ok {
		if s, isStr := v.(string); isStr {
			d.fail(p, "is a string, want a list: write mount-container = [%q]", s)
		} else {
			d.fail(p, "is %s, want a list of strings, like mount-container = [\"glusterfs:name=glusterfs-mounter:mounter\"]", typeName(v))
		}
		return nil
	}
	var rules []spec.Rule
	for i, e := range list {
		s, ok := e.(string)
		if !ok {
			d.fail(p, "element %d is %s: %s", i+1, typeName(e), seedFormat)
			continue
		}
		r, err := SeedRule(s)
		if err != nil {
			d.fail(p, "%v", err)
			continue
		}
		if why := checkResolved(KubeletDir); why != "" {
			d.fail(p, "entry %q propagates %s: %s", s, KubeletDir, why)
			continue
		}
		if names[r.Name] {
			d.fail(p, "entry %q makes a rule named %q, a name another rule already has: keep one of them, or rename the [[mounter]]", s, r.Name)
			continue
		}
		names[r.Name] = true
		rules = append(rules, r)
	}
	return rules
}

// SeedRule turns one entry of the seed's kubelet syntax,
// "FSTYPE:KEY=VALUE[:CONTAINER]", into the rule it means: named FSTYPE,
// routing FSTYPE, matching annotation or env KEY=VALUE and, where the engine
// records a container name, CONTAINER; propagating /var/lib/kubelet with the
// default policy.
func SeedRule(entry string) (spec.Rule, error) {
	bad := func(why string) (spec.Rule, error) {
		return spec.Rule{}, fmt.Errorf("entry %s %s: %s", strconv.Quote(entry), why, seedFormat)
	}
	parts := strings.Split(entry, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return bad(fmt.Sprintf("has %d colon-separated parts", len(parts)))
	}
	fstype := parts[0]
	if fstype == "" || strings.ContainsAny(fstype, " \t\n,/=\x00") {
		return bad("has no valid FSTYPE")
	}
	key, value, ok := strings.Cut(parts[1], "=")
	if !ok || key == "" || value == "" || strings.IndexByte(parts[1], 0) >= 0 {
		return bad("has no KEY=VALUE")
	}
	r := spec.Rule{
		Name:              fstype,
		FSTypes:           []string{fstype},
		Mode:              spec.ModePropagate,
		Propagate:         []string{KubeletDir},
		EnsureShared:      true,
		RequirePrivileged: true,
		Match:             spec.Match{AnnotationOrEnv: map[string]string{key: value}},
	}
	if len(parts) == 3 {
		if parts[2] == "" || strings.IndexByte(parts[2], 0) >= 0 {
			return bad("has an empty CONTAINER after the last colon")
		}
		r.Match.ContainerName = parts[2]
		// Docker records no container name; the seed's kubelet checked
		// the name only where it knew one.
		r.Match.ContainerNameIfRecorded = true
	}
	return r, nil
}
