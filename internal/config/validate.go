package config

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/runc-shared/runc-shared/pkg/spec"
)

// validator checks a decoded document against the schema, collecting every
// problem with the key it is about; error finds their lines afterwards, only
// when there is a problem.
type validator struct {
	md *toml.MetaData
	// keys are the document's keys in file order, rules the [[mounter]]
	// table of each (ruleOfKeys).
	keys  []toml.Key
	rules []int
	probs []problem
	// names of the rules so far: each must be unique.
	names map[string]bool
	// resolved memoizes checkPropagate's resolution: rules and
	// mount-container entries mostly name the same /var/lib/kubelet.
	resolved map[string]string
}

type problem struct {
	path keyPath
	msg  string
	at   int // index in keys of the key the problem is about (find)
}

func (v *validator) fail(p keyPath, format string, args ...any) {
	v.probs = append(v.probs, problem{p, fmt.Sprintf(format, args...), v.find(p)})
}

// valueCheck turns a string value into the setting, or says why it is
// refused.
type valueCheck func(string) (string, string)

// validate checks every key and returns the configuration it makes.
func (v *validator) validate(d *document) *Config {
	c := Default()
	// First, so that match can tell whether a table holds an unknown key.
	t := v.md.Type("mounter")
	v.unknownKeys(d.Mounter != nil && t != "ArrayHash" && t != "Array")
	root := keyPath{elem: -1}
	v.setStr(root, "runtime", d.Runtime, checkRuntime, &c.Runtime)
	v.setStr(root, "state-dir", d.StateDir, cleanAbs, &c.StateDir)
	v.setStr(root, "log-level", d.LogLevel, checkLogLevel, &c.LogLevel)
	v.setStr(root, "host-mntns", d.HostMntns, checkHostMntns, &c.HostMntns)
	v.setStr(root, "hook-path", d.HookPath, cleanAbs, &c.HookPath)
	// Rule order is significant: [[mounter]] rules first, in file order.
	c.Mounters = v.mounters(d.Mounter)
	if d.MountContainer != nil {
		c.Mounters = append(c.Mounters, v.seed(root.key("mount-container"), d.MountContainer)...)
	}
	return c
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

// unknownKeys reports each key the schema does not know, once, at its first
// unknown part. It reads the document's keys rather than
// MetaData.Undecoded: the library decodes a key into a field whose name
// matches it in another case (Runtime into runtime), and keys here are
// lower case. Keys below a mounter that is no list of tables are left to
// that mounter's problem (skipMounter).
func (v *validator) unknownKeys(skipMounter bool) {
	seen := map[string]bool{}
	for j, k := range v.keys {
		n, known := unknownPart(k)
		if n < 0 || skipMounter && k[0] == "mounter" {
			continue
		}
		p := keyPath{elem: v.rules[j], parts: k[:n+1]}
		if id := p.indexed(); !seen[id] {
			seen[id] = true
			v.fail(p, "%s", unknownMsg(k[n], known))
		}
	}
}

// unknownPart returns the index of the first part of key that the schema
// does not know, with the keys it knows there; -1 when it knows them all
// (the names below annotations and env are the user's).
func unknownPart(key toml.Key) (int, []string) {
	for i, known := range [][]string{topKeys, ruleKeys, matchKeys} {
		switch {
		case i == len(key):
			return -1, nil
		case !slices.Contains(known, key[i]):
			return i, known
		case key[i] != "mounter" && key[i] != "match":
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
	prev, cur := make([]int, len(b)+1), make([]int, len(b)+1)
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

// Typed accessors: each reports a wrong type with what to write instead,
// and does nothing for an absent key (nil: TOML has no null). They make the
// key's path only for a problem, so a valid file costs no allocation here.

// setStr sets *dst to x, the string at key k of parent, as check (when not
// nil) accepts and makes it.
func (v *validator) setStr(parent keyPath, k string, x any, check valueCheck, dst *string) {
	if x == nil {
		return
	}
	s, ok := x.(string)
	why := ""
	switch {
	case !ok:
		why = fmt.Sprintf("is %s, want a string: quote the value, like %s = \"...\"", typeName(x), k)
	case strings.IndexByte(s, 0) >= 0:
		why = "contains a NUL byte: remove it"
	case check != nil:
		s, why = check(s)
	}
	if why != "" {
		v.fail(parent.key(k), "%s", why)
		return
	}
	*dst = s
}

func (v *validator) setBool(parent keyPath, k string, x any, dst *bool) {
	if b, ok := x.(bool); ok {
		*dst = b
	} else if x != nil {
		v.fail(parent.key(k), "is %s, want true or false (unquoted)", typeName(x))
	}
}

// list returns x, the list of non-empty strings at key k of parent, each as
// check (when not nil) makes it; empty, when not "", says why an empty list
// is refused.
func (v *validator) list(parent keyPath, k string, x any, check valueCheck, empty string) []string {
	list, ok := x.([]any)
	why := ""
	switch s, isStr := x.(string); {
	case x == nil:
		return nil
	case isStr:
		why = fmt.Sprintf("is a string, want a list of strings: write %s = [%q]", k, s)
	case !ok:
		why = fmt.Sprintf("is %s, want a list of strings, like %s = [\"...\"]", typeName(x), k)
	case len(list) == 0 && empty != "":
		why = empty
	}
	out := make([]string, len(list))
	for i := 0; i < len(list) && why == ""; i++ {
		s, ok := list[i].(string)
		switch {
		case !ok:
			why = fmt.Sprintf("element %d is %s, want a string: quote it", i+1, typeName(list[i]))
		case strings.TrimSpace(s) == "" || strings.IndexByte(s, 0) >= 0:
			why = fmt.Sprintf("element %d is %q: give a non-empty value", i+1, s)
		case check != nil:
			s, why = check(s)
		}
		out[i] = s
	}
	if why != "" {
		v.fail(parent.key(k), "%s", why)
		return nil
	}
	return out
}

// strMap returns x, the table of strings at key k of parent; ok is false
// when it is absent or anything in it is wrong.
func (v *validator) strMap(parent keyPath, k string, x any) (map[string]string, bool) {
	t, ok := x.(map[string]any)
	if !ok {
		if x != nil {
			v.fail(parent.key(k), "is %s, want a table of strings, like %s = { \"key\" = \"value\" }", typeName(x), k)
		}
		return nil, false
	}
	out := make(map[string]string, len(t))
	for name, e := range t {
		s, isStr := e.(string)
		switch {
		case !isStr:
			v.fail(parent.key(k).key(name), "is %s, want a string: values are matched exactly, so quote it", typeName(e))
		case name == "":
			v.fail(parent.key(k), "has an empty key: name the %s to match", k)
		default:
			out[name] = s
			continue
		}
		ok = false
	}
	return out, ok
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

// Checks of string values.

func checkRuntime(s string) (string, string) {
	switch {
	case s == "":
		return "", "is empty: give the real runtime, a name on PATH like \"runc\" or an absolute path, or remove the key"
	case strings.Contains(s, "/") && !filepath.IsAbs(s):
		return "", fmt.Sprintf("%q is a relative path: give a name on PATH like \"runc\" or an absolute path like \"/usr/bin/runc\"", s)
	case strings.Contains(s, "/"):
		return filepath.Clean(s), ""
	}
	return s, ""
}

func checkLogLevel(s string) (string, string) {
	if l := strings.ToLower(s); slices.Contains(logLevels, l) {
		return l, ""
	}
	return "", fmt.Sprintf("%q is not a log level: use one of %s", s, strings.Join(logLevels, ", "))
}

func checkHostMntns(s string) (string, string) {
	if s == HostMntnsSelf {
		return s, ""
	}
	c, why := cleanAbs(s)
	if why != "" {
		why += ", or \"self\" for the wrapper's own mount namespace"
	}
	return c, why
}

func checkMode(s string) (string, string) {
	if m := spec.Mode(s); m == spec.ModePropagate || m == spec.ModePreload {
		return s, ""
	}
	return "", fmt.Sprintf("%q is not a mode: use %q (the default) or %q", s, spec.ModePropagate, spec.ModePreload)
}

func checkFSType(s string) (string, string) {
	if strings.ContainsAny(s, " \t\n,/") {
		return "", fmt.Sprintf("%q is not a filesystem type: give one type per element, as mount -t takes it, like \"glusterfs\" or \"fuse.sshfs\"", s)
	}
	return s, ""
}

// cleanAbs checks a host path from the configuration and returns it cleaned,
// or why it is refused. ".." is refused before cleaning, since Clean would
// silently turn /var/lib/kubelet/../.. into /var.
func cleanAbs(s string) (string, string) {
	switch {
	case s == "":
		return "", "is empty: give an absolute path"
	case !strings.HasPrefix(s, "/"):
		return "", fmt.Sprintf("%q is not an absolute path: write the full path from /", s)
	case slices.Contains(strings.Split(s, "/"), ".."):
		return "", fmt.Sprintf("%q contains \"..\": write the path without it", s)
	}
	if c := filepath.Clean(s); c != "/" {
		return c, ""
	}
	return "", fmt.Sprintf("%q is the root directory: name the directory itself, like %s", s, KubeletDir)
}

// [[mounter]] rules.

// The keys of every rule and its match; keyPath.key copies them to append.
var mounterKey, matchKey = []string{"mounter"}, []string{"mounter", "match"}

// mounters returns the rules of the [[mounter]] tables.
func (v *validator) mounters(prim *toml.Primitive) []spec.Rule {
	if prim == nil {
		return nil
	}
	var elems []toml.Primitive // [[mounter]], or mounter = [{...}, {...}]
	if typ, ok := v.decode(*prim, &elems); typ == "a table" {
		v.fail(top("mounter"), "is a single table: write [[mounter]] with two brackets, once before each rule")
		return nil
	} else if !ok {
		v.fail(top("mounter"), "is %s, want [[mounter]] tables: write [[mounter]] once before each rule", typ)
		return nil
	}
	rules := make([]spec.Rule, 0, len(elems))
	for i, e := range elems {
		p := keyPath{elem: i, parts: mounterKey}
		var d ruleDoc
		if typ, ok := v.decode(e, &d); !ok {
			v.fail(p, "element %d is %s, want a table: write each rule as a [[mounter]] table", i+1, typ)
		} else if r, ok := v.rule(p, &d); ok && v.names[r.Name] {
			v.fail(p.key("name"), "%q is already the name of another rule: give each [[mounter]] its own name", r.Name)
		} else if ok {
			v.names[r.Name] = true
			rules = append(rules, r)
		}
	}
	return rules
}

func (v *validator) rule(p keyPath, d *ruleDoc) (spec.Rule, bool) {
	r := spec.Rule{Mode: spec.ModePropagate, EnsureShared: true, RequirePrivileged: true}
	before := len(v.probs)
	v.setStr(p, "name", d.Name, func(s string) (string, string) {
		if strings.TrimSpace(s) == "" {
			return "", `is empty: name the rule, like name = "glusterfs"`
		}
		return s, ""
	}, &r.Name)
	r.FSTypes = v.list(p, "fstypes", d.FSTypes, checkFSType,
		`is empty: list the filesystem types the mounter serves, like fstypes = ["glusterfs"]`)
	v.setStr(p, "mode", d.Mode, checkMode, (*string)(&r.Mode))
	r.Propagate = v.list(p, "propagate", d.Propagate, v.checkPropagate,
		`is empty: list the host directories the mounter mounts under, like propagate = ["`+KubeletDir+`"]`)
	v.setBool(p, "ensure-shared", d.EnsureShared, &r.EnsureShared)
	v.setBool(p, "require-privileged", d.RequirePrivileged, &r.RequirePrivileged)
	r.Namespaces = v.list(p, "namespaces", d.Namespaces, nil, "")
	if d.Match != nil {
		r.Match = v.match(keyPath{elem: p.elem, parts: matchKey}, *d.Match)
	}
	for _, req := range []struct {
		x            any
		key, example string
	}{
		{d.Name, "name", `name = "glusterfs"`},
		{d.FSTypes, "fstypes", `fstypes = ["glusterfs"]`},
		{d.Propagate, "propagate", `propagate = ["/var/lib/kubelet"]`},
	} {
		if req.x == nil {
			v.fail(p, "[[mounter]] misses the required key %q: add %s", req.key, req.example)
		}
	}
	if d.Match == nil {
		v.fail(p, "[[mounter]] has no match condition, so it would match no container: add a [mounter.match] table with annotations, env or container-name, like annotations = { %q = %q }",
			spec.AnnotationMounter, cmp.Or(r.Name, "glusterfs"))
	}
	return r, len(v.probs) == before
}

// checkPropagate checks a propagate path as written and, since the wrapper
// and the hook follow its symlinks (hostmount resolves the allowlisted
// prefixes), as they resolve on this host: a path refused as written is
// refused as a symlink's target too, like a symlink to /. A path that does
// not exist yet is checked as far as it exists.
func (v *validator) checkPropagate(s string) (string, string) {
	c, why := cleanAbs(s)
	if why != "" {
		return "", why
	}
	if why, ok := v.resolved[c]; ok {
		return c, why
	}
	resolved, err := resolveExisting(c)
	switch {
	case err != nil:
		why = fmt.Sprintf("%q cannot be resolved: %v; fix the path or its symlinks", c, err)
	case resolved != c:
		if _, refused := cleanAbs(resolved); refused != "" {
			why = fmt.Sprintf("%q resolves through symlinks to %q, refused: %s", c, resolved, refused)
		}
	}
	v.resolved[c] = why
	return c, why
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
	m.Annotations, _ = v.strMap(p, "annotations", d.Annotations)
	env, ok := v.strMap(p, "env", d.Env)
	for name := range env {
		if strings.Contains(name, "=") {
			v.fail(p.key("env").key(name), "an environment variable name cannot hold \"=\": write the name as the key and the value as the value")
			ok = false
		}
	}
	if ok {
		m.Env = env
	}
	v.setStr(p, "container-name", d.ContainerName, func(s string) (string, string) {
		if s == "" {
			return "", "is empty: give the container name, or remove the key"
		}
		return s, ""
	}, &m.ContainerName)
	if m.Empty() && !v.below(p) {
		v.fail(p, "has no condition, so it would match no container: give annotations, env or container-name, like annotations = { %q = \"glusterfs\" }", spec.AnnotationMounter)
	}
	return m
}

// below reports whether a problem was found at or below p. A key of a rule
// in an inline array of tables has no known rule (elem -1): it counts for
// every rule.
func (v *validator) below(p keyPath) bool {
	return slices.ContainsFunc(v.probs, func(q problem) bool {
		return (q.path.elem == p.elem || q.path.elem < 0) && hasPrefix(q.path.parts, p.parts)
	})
}

// The seed's kubelet syntax: mount-container = ["FSTYPE:KEY=VALUE[:CONTAINER]"].

const seedFormat = `want "FSTYPE:KEY=VALUE" or "FSTYPE:KEY=VALUE:CONTAINER", like "glusterfs:name=glusterfs-mounter:mounter"`

func (v *validator) seed(p keyPath, x any) []spec.Rule {
	list, ok := x.([]any)
	if s, isStr := x.(string); isStr {
		v.fail(p, "is a string, want a list: write mount-container = [%q]", s)
	} else if !ok {
		v.fail(p, "is %s, want a list of strings, like mount-container = [\"glusterfs:name=glusterfs-mounter:mounter\"]", typeName(x))
	}
	var rules []spec.Rule
	for i, e := range list {
		s, ok := e.(string)
		if !ok {
			v.fail(p, "element %d is %s: %s", i+1, typeName(e), seedFormat)
			continue
		}
		r, err := parseSeed(s)
		if err == nil {
			if _, why := v.checkPropagate(KubeletDir); why != "" {
				err = fmt.Errorf("entry %q propagates %s: %s", s, KubeletDir, why)
			} else if v.names[r.Name] {
				err = fmt.Errorf("entry %q makes a rule named %q, a name another rule already has: keep one of them, or rename the [[mounter]]", s, r.Name)
			}
		}
		if err != nil {
			v.fail(p, "%v", err)
			continue
		}
		v.names[r.Name] = true
		rules = append(rules, r)
	}
	return rules
}

// parseSeed turns one entry of the seed's kubelet syntax,
// "FSTYPE:KEY=VALUE[:CONTAINER]", into the rule it means: named FSTYPE,
// routing FSTYPE, matching annotation or env KEY=VALUE and, where the engine
// records a container name, CONTAINER; propagating /var/lib/kubelet with the
// default policy.
func parseSeed(entry string) (spec.Rule, error) {
	parts := strings.Split(entry, ":")
	key, value, kv := strings.Cut(parts[min(1, len(parts)-1)], "=")
	why := ""
	switch {
	case len(parts) < 2 || len(parts) > 3:
		why = fmt.Sprintf("has %d colon-separated parts", len(parts))
	case parts[0] == "" || strings.ContainsAny(parts[0], " \t\n,/=\x00"):
		why = "has no valid FSTYPE"
	case !kv || key == "" || value == "" || strings.IndexByte(parts[1], 0) >= 0:
		why = "has no KEY=VALUE"
	case len(parts) == 3 && (parts[2] == "" || strings.IndexByte(parts[2], 0) >= 0):
		why = "has an empty CONTAINER after the last colon"
	}
	if why != "" {
		return spec.Rule{}, fmt.Errorf("entry %q %s: %s", entry, why, seedFormat)
	}
	r := spec.Rule{
		Name:              parts[0],
		FSTypes:           []string{parts[0]},
		Mode:              spec.ModePropagate,
		Propagate:         []string{KubeletDir},
		EnsureShared:      true,
		RequirePrivileged: true,
		Match:             spec.Match{AnnotationOrEnv: map[string]string{key: value}},
	}
	if len(parts) == 3 {
		// Docker records no container name; the seed's kubelet checked
		// the name only where it knew one.
		r.Match.ContainerName, r.Match.ContainerNameIfRecorded = parts[2], true
	}
	return r, nil
}
