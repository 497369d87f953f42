package config

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/runc-shared/runc-shared/pkg/spec"
)

// validator checks a decoded document against the schema, collecting every
// problem with the key it is about; error finds their lines afterwards, only
// when there is a problem.
type validator struct {
	md    *toml.MetaData
	probs []problem
	// names of the rules so far: each must be unique.
	names map[string]bool
	// resolved memoizes checkResolved: rules and mount-container entries
	// mostly name the same /var/lib/kubelet.
	resolved map[string]string
}

type problem struct {
	path keyPath
	at   int // index of the key in md.Keys() when known, else -1
	msg  string
}

func (v *validator) fail(p keyPath, format string, args ...any) {
	v.probs = append(v.probs, problem{path: p, at: -1, msg: fmt.Sprintf(format, args...)})
}

// decode decodes a part of the document into a list or a struct; when its
// value is not one, it returns false and the value's type for the problem.
// A struct of this file takes any table: only a value of another type makes
// the library fail, so a valid file is decoded once.
func (v *validator) decode(prim toml.Primitive, into any) (string, bool) {
	if v.md.PrimitiveDecode(prim, into) == nil {
		return "", true
	}
	var raw any
	_ = v.md.PrimitiveDecode(prim, &raw) // into any: cannot fail
	return typeName(raw), false
}

// validate checks every key and returns the configuration it makes.
func (v *validator) validate(d *document) *Config {
	c := Default()
	v.names = map[string]bool{}
	v.resolved = map[string]string{}
	// First, so that match can tell whether a table holds an unknown key.
	t := v.md.Type("mounter")
	v.unknownKeys(d.Mounter != nil && t != "ArrayHash" && t != "Array")
	if x := d.Runtime; x.set {
		if s, ok := v.runtime(top("runtime"), x.v); ok {
			c.Runtime = s
		}
	}
	if x := d.StateDir; x.set {
		if s, ok := v.absPath(top("state-dir"), x.v); ok {
			c.StateDir = s
		}
	}
	if x := d.LogLevel; x.set {
		if s, ok := v.logLevel(top("log-level"), x.v); ok {
			c.LogLevel = s
		}
	}
	if x := d.HostMntns; x.set {
		p := top("host-mntns")
		if s, ok := v.str(p, x.v); ok {
			if s == HostMntnsSelf {
				c.HostMntns = s
			} else if ns, why := cleanAbs(s); why != "" {
				v.fail(p, "%s, or \"self\" for the wrapper's own mount namespace", why)
			} else {
				c.HostMntns = ns
			}
		}
	}
	if x := d.HookPath; x.set {
		if s, ok := v.absPath(top("hook-path"), x.v); ok {
			c.HookPath = s
		}
	}
	// Rule order is significant: [[mounter]] rules first, in file order.
	c.Mounters = v.mounters(d.Mounter)
	if x := d.MountContainer; x.set {
		c.Mounters = append(c.Mounters, v.seed(top("mount-container"), x.v)...)
	}
	return c
}

// unknownKeys reports each key the schema does not know, once, at its first
// unknown part. It reads the document's keys rather than
// MetaData.Undecoded: the library decodes a key into a field whose name
// matches it in another case (Runtime into runtime), and keys here are
// lower case. Keys below a mounter that is no list of tables are left to
// that mounter's problem (skipMounter).
func (v *validator) unknownKeys(skipMounter bool) {
	aot := v.md.Type("mounter") == "ArrayHash"
	elem := -1
	seen := map[string]bool{}
	for j, k := range v.md.Keys() {
		if aot && len(k) == 1 && k[0] == "mounter" {
			elem++
		}
		n, known := unknownPart(k)
		if n < 0 || skipMounter && k[0] == "mounter" {
			continue
		}
		p := keyPath{elem: -1, parts: k[:n+1]}
		if aot && k[0] == "mounter" {
			p.elem = elem
		}
		if id := p.indexed(); !seen[id] {
			seen[id] = true
			v.probs = append(v.probs, problem{path: p, at: j, msg: unknownMsg(k[n], known)})
		}
	}
}

// unknownPart returns the index of the first part of key that the schema
// does not know, with the keys it knows there; -1 when it knows them all
// (the names below annotations and env are the user's).
func unknownPart(key toml.Key) (int, []string) {
	for i, level := range []struct {
		known []string
		table string // the key of this level that holds the next one
	}{{topKeys, "mounter"}, {ruleKeys, "match"}, {matchKeys, ""}} {
		switch {
		case i == len(key):
			return -1, nil
		case !slices.Contains(level.known, key[i]):
			return i, level.known
		case key[i] != level.table:
			return -1, nil
		}
	}
	return -1, nil
}

func unknownMsg(k string, known []string) string {
	norm := strings.ToLower(strings.ReplaceAll(k, "_", "-"))
	for _, want := range known {
		if norm == want || len(norm) > 3 && editDistance(norm, want) <= 2 {
			return fmt.Sprintf("unknown key: did you mean %q? (keys are lower case, with dashes)", want)
		}
	}
	return "unknown key: remove it or fix the spelling; the keys here are " + strings.Join(known, ", ")
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

func (v *validator) str(p keyPath, x any) (string, bool) {
	s, ok := x.(string)
	if !ok {
		v.fail(p, "is %s, want a string: quote the value, like %s = \"...\"", typeName(x), p.last())
		return "", false
	}
	if strings.IndexByte(s, 0) >= 0 {
		v.fail(p, "contains a NUL byte: remove it")
		return "", false
	}
	return s, true
}

func (v *validator) boolean(p keyPath, x any) bool {
	b, ok := x.(bool)
	if !ok {
		v.fail(p, "is %s, want true or false (unquoted)", typeName(x))
	}
	return b
}

func (v *validator) strList(p keyPath, x any) ([]string, bool) {
	list, ok := x.([]any)
	if !ok {
		if s, isStr := x.(string); isStr {
			v.fail(p, "is a string, want a list of strings: write %s = [%q]", p.last(), s)
		} else {
			v.fail(p, "is %s, want a list of strings, like %s = [\"...\"]", typeName(x), p.last())
		}
		return nil, false
	}
	out := make([]string, 0, len(list))
	for i, e := range list {
		s, ok := e.(string)
		if !ok {
			v.fail(p, "element %d is %s, want a string: quote it", i+1, typeName(e))
			return nil, false
		}
		if strings.TrimSpace(s) == "" || strings.IndexByte(s, 0) >= 0 {
			v.fail(p, "element %d is %q: give a non-empty value", i+1, s)
			return nil, false
		}
		out = append(out, s)
	}
	return out, true
}

func (v *validator) strMap(p keyPath, x any) (map[string]string, bool) {
	t, ok := x.(map[string]any)
	if !ok {
		v.fail(p, "is %s, want a table of strings, like %s = { \"key\" = \"value\" }", typeName(x), p.last())
		return nil, false
	}
	out := make(map[string]string, len(t))
	for k, e := range t {
		s, ok := e.(string)
		if !ok {
			v.fail(p.key(k), "is %s, want a string: values are matched exactly, so quote it", typeName(e))
			continue
		}
		if k == "" {
			v.fail(p, "has an empty key: name the %s to match", p.last())
			continue
		}
		out[k] = s
	}
	return out, true
}

func typeName(x any) string {
	switch x.(type) {
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
		return fmt.Sprintf("a %T", x)
	}
}

// Top-level values.

func (v *validator) runtime(p keyPath, x any) (string, bool) {
	s, ok := v.str(p, x)
	switch {
	case !ok:
		return "", false
	case s == "":
		v.fail(p, "is empty: give the real runtime, a name on PATH like \"runc\" or an absolute path, or remove the key")
		return "", false
	case strings.Contains(s, "/") && !filepath.IsAbs(s):
		v.fail(p, "%q is a relative path: give a name on PATH like \"runc\" or an absolute path like \"/usr/bin/runc\"", s)
		return "", false
	case strings.Contains(s, "/"):
		return filepath.Clean(s), true
	}
	return s, true
}

func (v *validator) logLevel(p keyPath, x any) (string, bool) {
	s, ok := v.str(p, x)
	if !ok {
		return "", false
	}
	if l := strings.ToLower(s); slices.Contains(logLevels, l) {
		return l, true
	}
	v.fail(p, "%q is not a log level: use one of %s", s, strings.Join(logLevels, ", "))
	return "", false
}

func (v *validator) absPath(p keyPath, x any) (string, bool) {
	s, ok := v.str(p, x)
	if !ok {
		return "", false
	}
	c, why := cleanAbs(s)
	if why != "" {
		v.fail(p, "%s", why)
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
	if slices.Contains(strings.Split(s, "/"), "..") {
		return "", fmt.Sprintf("%q contains \"..\": write the path without it", s)
	}
	c := filepath.Clean(s)
	if c == "/" {
		return "", fmt.Sprintf("%q is the root directory: name the directory itself, like %s", s, KubeletDir)
	}
	return c, ""
}

// [[mounter]] rules.

// mounters returns the rules of the [[mounter]] tables.
func (v *validator) mounters(prim *toml.Primitive) []spec.Rule {
	if prim == nil {
		return nil
	}
	p := top("mounter")
	var elems []toml.Primitive // [[mounter]], or mounter = [{...}, {...}]
	if typ, ok := v.decode(*prim, &elems); typ == "a table" {
		v.fail(p, "is a single table: write [[mounter]] with two brackets, once before each rule")
		return nil
	} else if !ok {
		v.fail(p, "is %s, want [[mounter]] tables: write [[mounter]] once before each rule", typ)
		return nil
	}
	rules := make([]spec.Rule, 0, len(elems))
	for i, e := range elems {
		ep := keyPath{elem: i, parts: []string{"mounter"}}
		var doc ruleDoc
		if typ, ok := v.decode(e, &doc); !ok {
			v.fail(ep, "element %d is %s, want a table: write each rule as a [[mounter]] table", i+1, typ)
			continue
		}
		r, ok := v.rule(ep, &doc)
		if !ok {
			continue
		}
		if v.names[r.Name] {
			v.fail(ep.key("name"), "%q is already the name of another rule: give each [[mounter]] its own name", r.Name)
			continue
		}
		v.names[r.Name] = true
		rules = append(rules, r)
	}
	return rules
}

func (v *validator) rule(p keyPath, d *ruleDoc) (spec.Rule, bool) {
	r := spec.Rule{Mode: spec.ModePropagate, EnsureShared: true, RequirePrivileged: true}
	before := len(v.probs)
	if x := d.Name; x.set {
		kp := p.key("name")
		if s, ok := v.str(kp, x.v); ok && strings.TrimSpace(s) == "" {
			v.fail(kp, "is empty: name the rule, like name = \"glusterfs\"")
		} else if ok {
			r.Name = s
		}
	}
	if x := d.FSTypes; x.set {
		r.FSTypes = v.fstypes(p.key("fstypes"), x.v)
	}
	if x := d.Mode; x.set {
		kp := p.key("mode")
		if s, ok := v.str(kp, x.v); ok {
			switch m := spec.Mode(s); m {
			case spec.ModePropagate, spec.ModePreload:
				r.Mode = m
			default:
				v.fail(kp, "%q is not a mode: use %q (the default) or %q", s, spec.ModePropagate, spec.ModePreload)
			}
		}
	}
	if x := d.Propagate; x.set {
		r.Propagate = v.propagate(p.key("propagate"), x.v)
	}
	if x := d.EnsureShared; x.set {
		r.EnsureShared = v.boolean(p.key("ensure-shared"), x.v)
	}
	if x := d.RequirePrivileged; x.set {
		r.RequirePrivileged = v.boolean(p.key("require-privileged"), x.v)
	}
	if x := d.Namespaces; x.set {
		r.Namespaces, _ = v.strList(p.key("namespaces"), x.v)
	}
	if d.Match != nil {
		r.Match = v.match(p.key("match"), *d.Match)
	}
	for _, req := range []struct {
		set          bool
		key, example string
	}{
		{d.Name.set, "name", `name = "glusterfs"`},
		{d.FSTypes.set, "fstypes", `fstypes = ["glusterfs"]`},
		{d.Propagate.set, "propagate", `propagate = ["/var/lib/kubelet"]`},
	} {
		if !req.set {
			v.fail(p, "[[mounter]] misses the required key %q: add %s", req.key, req.example)
		}
	}
	if d.Match == nil {
		example := r.Name
		if example == "" {
			example = "glusterfs"
		}
		v.fail(p, "[[mounter]] has no match condition, so it would match no container: add a [mounter.match] table with annotations, env or container-name, like annotations = { %q = %q }", spec.AnnotationMounter, example)
	}
	return r, len(v.probs) == before
}

func (v *validator) fstypes(p keyPath, x any) []string {
	list, ok := v.strList(p, x)
	if !ok {
		return nil
	}
	if len(list) == 0 {
		v.fail(p, "is empty: list the filesystem types the mounter serves, like fstypes = [\"glusterfs\"]")
		return nil
	}
	for _, t := range list {
		if strings.ContainsAny(t, " \t\n,/") {
			v.fail(p, "%q is not a filesystem type: give one type per element, as mount -t takes it, like \"glusterfs\" or \"fuse.sshfs\"", t)
			return nil
		}
	}
	return list
}

func (v *validator) propagate(p keyPath, x any) []string {
	list, ok := v.strList(p, x)
	if !ok {
		return nil
	}
	if len(list) == 0 {
		v.fail(p, "is empty: list the host directories the mounter mounts under, like propagate = [%q]", KubeletDir)
		return nil
	}
	out := make([]string, 0, len(list))
	for _, s := range list {
		c, why := cleanAbs(s)
		if why == "" {
			why = v.checkResolved(c)
		}
		if why != "" {
			v.fail(p, "%s", why)
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
func (v *validator) checkResolved(path string) string {
	if why, ok := v.resolved[path]; ok {
		return why
	}
	why := checkResolved(path)
	v.resolved[path] = why
	return why
}

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

func (v *validator) match(p keyPath, prim toml.Primitive) spec.Match {
	var m spec.Match
	var d matchDoc
	if typ, ok := v.decode(prim, &d); !ok {
		v.fail(p, "is %s, want a table: write [%s] on its own line and the keys below it", typ, p)
		return m
	}
	if x := d.Annotations; x.set {
		m.Annotations, _ = v.strMap(p.key("annotations"), x.v)
	}
	if x := d.Env; x.set {
		kp := p.key("env")
		env, ok := v.strMap(kp, x.v)
		for name := range env {
			if strings.Contains(name, "=") {
				v.fail(kp.key(name), "an environment variable name cannot hold \"=\": write the name as the key and the value as the value")
				ok = false
			}
		}
		if ok {
			m.Env = env
		}
	}
	if x := d.ContainerName; x.set {
		kp := p.key("container-name")
		if s, ok := v.str(kp, x.v); ok && s == "" {
			v.fail(kp, "is empty: give the container name, or remove the key")
		} else if ok {
			m.ContainerName = s
		}
	}
	if m.Empty() && !v.below(p) {
		v.fail(p, "has no condition, so it would match no container: give annotations, env or container-name, like annotations = { %q = \"glusterfs\" }", spec.AnnotationMounter)
	}
	return m
}

// below reports whether a problem was found at or below p. A key of a rule
// in an inline array of tables has no known rule (elem -1): it counts for
// every rule.
func (v *validator) below(p keyPath) bool {
	for _, q := range v.probs {
		if (q.path.elem == p.elem || q.path.elem < 0) && hasPrefix(q.path.parts, p.parts) {
			return true
		}
	}
	return false
}

// The seed's kubelet syntax: mount-container = ["FSTYPE:KEY=VALUE[:CONTAINER]"].

const seedFormat = `want "FSTYPE:KEY=VALUE" or "FSTYPE:KEY=VALUE:CONTAINER", like "glusterfs:name=glusterfs-mounter:mounter"`

func (v *validator) seed(p keyPath, x any) []spec.Rule {
	list, ok := x.([]any)
	if !ok {
		if s, isStr := x.(string); isStr {
			v.fail(p, "is a string, want a list: write mount-container = [%q]", s)
		} else {
			v.fail(p, "is %s, want a list of strings, like mount-container = [\"glusterfs:name=glusterfs-mounter:mounter\"]", typeName(x))
		}
		return nil
	}
	var rules []spec.Rule
	for i, e := range list {
		s, ok := e.(string)
		if !ok {
			v.fail(p, "element %d is %s: %s", i+1, typeName(e), seedFormat)
			continue
		}
		r, err := SeedRule(s)
		if err != nil {
			v.fail(p, "%v", err)
			continue
		}
		if why := v.checkResolved(KubeletDir); why != "" {
			v.fail(p, "entry %q propagates %s: %s", s, KubeletDir, why)
			continue
		}
		if v.names[r.Name] {
			v.fail(p, "entry %q makes a rule named %q, a name another rule already has: keep one of them, or rename the [[mounter]]", s, r.Name)
			continue
		}
		v.names[r.Name] = true
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
