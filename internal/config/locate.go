package config

import (
	"strconv"
	"strings"
)

// The TOML library reports the line of a syntax error, but not of a key
// whose value our schema refuses, and it keeps a single position per key
// name, so the fifth [[mounter]]'s "mode" and the first one's are the same
// key to it. This file finds lines itself, by scanning the text for table
// headers and key/value pairs. It runs only when a configuration is invalid,
// so a valid one costs nothing here.

// keyPath is a key from the root of the document. Elements of an array of
// tables are addressed by an index element (see index), so the lines of
// every [[mounter]] are told apart.
type keyPath []string

// idxMark starts an index element; no bare key and no sane quoted key holds
// a NUL byte.
const idxMark = "\x00"

func (p keyPath) key(k string) keyPath { return append(p[:len(p):len(p)], k) }

func (p keyPath) index(i int) keyPath {
	return append(p[:len(p):len(p)], idxMark+strconv.Itoa(i))
}

func (p keyPath) id() string { return strings.Join(p, "\x1f") }

// String is the key as a user writes it: dotted, indices dropped, parts
// quoted where TOML needs quotes (annotation keys hold dots and slashes).
func (p keyPath) String() string {
	var b strings.Builder
	for _, k := range p {
		if strings.HasPrefix(k, idxMark) {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		if isBareKey(k) {
			b.WriteString(k)
		} else {
			b.WriteString(strconv.Quote(k))
		}
	}
	return b.String()
}

func isBareKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if !isBareChar(k[i]) {
			return false
		}
	}
	return true
}

func isBareChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// lineIndex maps keyPath.id() to the line (from 1) that defines the key.
type lineIndex map[string]int

// find returns the line of p, or of its closest ancestor that the scan saw
// (a key inside an inline table is found as the line of the table), or 0.
func (ix lineIndex) find(p keyPath) int {
	for n := len(p); n > 0; n-- {
		if l, ok := ix[p[:n].id()]; ok {
			return l
		}
	}
	return 0
}

// keyLines scans a TOML document for the lines of its keys and headers. It
// is lenient: the document already parsed, and a line it cannot read only
// costs precision (find falls back to an ancestor).
func keyLines(src string) lineIndex {
	sc := &scanner{s: src, line: 1, ix: lineIndex{}, aot: map[string]int{}}
	sc.run()
	return sc.ix
}

type scanner struct {
	s    string
	i    int
	line int
	ix   lineIndex
	cur  keyPath        // the table that following keys belong to
	aot  map[string]int // array of tables (id) → elements seen so far
}

func (sc *scanner) run() {
	for {
		sc.skipBlank()
		if sc.i >= len(sc.s) {
			return
		}
		start := sc.i
		if sc.s[sc.i] == '[' {
			sc.header()
		} else {
			sc.keyValue()
		}
		if sc.i == start {
			sc.skipLine()
		}
	}
}

func (sc *scanner) record(p keyPath, line int) {
	if _, ok := sc.ix[p.id()]; !ok {
		sc.ix[p.id()] = line
	}
}

// header reads [table] or [[array.of.tables]].
func (sc *scanner) header() {
	line := sc.line
	double := strings.HasPrefix(sc.s[sc.i:], "[[")
	closing := "]"
	sc.i++
	if double {
		sc.i++
		closing = "]]"
	}
	comps, ok := sc.key()
	if !ok || !strings.HasPrefix(sc.s[sc.i:], closing) {
		sc.skipLine()
		return
	}
	sc.i += len(closing)
	var p keyPath
	if double {
		p = sc.resolve(comps[:len(comps)-1]).key(comps[len(comps)-1])
		n := sc.aot[p.id()]
		sc.aot[p.id()] = n + 1
		sc.record(p, line)
		p = p.index(n)
	} else {
		p = sc.resolve(comps)
	}
	sc.record(p, line)
	sc.cur = p
}

// resolve turns a header's key into a path: a component naming an array of
// tables means its latest element, as in TOML.
func (sc *scanner) resolve(comps []string) keyPath {
	p := keyPath{}
	for _, c := range comps {
		p = p.key(c)
		if n, ok := sc.aot[p.id()]; ok {
			p = p.index(n - 1)
		}
	}
	return p
}

func (sc *scanner) keyValue() {
	line := sc.line
	comps, ok := sc.key()
	if !ok || sc.i >= len(sc.s) || sc.s[sc.i] != '=' {
		sc.skipLine()
		return
	}
	sc.i++
	p := sc.cur
	for _, c := range comps {
		p = p.key(c)
		sc.record(p, line)
	}
	sc.value()
}

// key reads a dotted key and the blanks after it.
func (sc *scanner) key() ([]string, bool) {
	var comps []string
	for {
		sc.spaces()
		c, ok := sc.keyPart()
		if !ok {
			return nil, false
		}
		comps = append(comps, c)
		sc.spaces()
		if sc.i < len(sc.s) && sc.s[sc.i] == '.' {
			sc.i++
			continue
		}
		return comps, true
	}
}

func (sc *scanner) keyPart() (string, bool) {
	if sc.i >= len(sc.s) {
		return "", false
	}
	switch q := sc.s[sc.i]; q {
	case '"', '\'':
		start := sc.i
		sc.quoted(q)
		raw := sc.s[start:sc.i]
		if len(raw) < 2 || raw[len(raw)-1] != q {
			return "", false
		}
		if q == '\'' {
			return raw[1 : len(raw)-1], true
		}
		if s, err := strconv.Unquote(raw); err == nil {
			return s, true
		}
		return raw[1 : len(raw)-1], true // an escape Go lacks: close enough
	default:
		start := sc.i
		for sc.i < len(sc.s) && isBareChar(sc.s[sc.i]) {
			sc.i++
		}
		return sc.s[start:sc.i], sc.i > start
	}
}

// value skips a value, which may span lines (arrays, multi-line strings),
// up to the end of its last line.
func (sc *scanner) value() {
	depth := 0
	for sc.i < len(sc.s) {
		rest := sc.s[sc.i:]
		switch c := rest[0]; {
		case strings.HasPrefix(rest, `"""`), strings.HasPrefix(rest, `'''`):
			sc.multiline(rest[:3])
		case c == '"' || c == '\'':
			sc.quoted(c)
		case c == '[' || c == '{':
			depth++
			sc.i++
		case c == ']' || c == '}':
			depth--
			sc.i++
		case c == '#':
			sc.skipComment()
		case c == '\n':
			if depth <= 0 {
				return
			}
			sc.line++
			sc.i++
		default:
			sc.i++
		}
	}
}

// quoted skips a one-line string; q is its quote.
func (sc *scanner) quoted(q byte) {
	sc.i++
	for sc.i < len(sc.s) {
		switch c := sc.s[sc.i]; {
		case c == '\n':
			return // unterminated: leave the newline to the caller
		case c == '\\' && q == '"':
			sc.i += 2
			if sc.i > len(sc.s) {
				sc.i = len(sc.s)
			}
		case c == q:
			sc.i++
			return
		default:
			sc.i++
		}
	}
}

// multiline skips a multi-line string (triple quotes), counting its lines.
func (sc *scanner) multiline(delim string) {
	sc.i += 3
	for sc.i < len(sc.s) {
		c := sc.s[sc.i]
		switch {
		case c == '\\' && delim[0] == '"':
			if sc.i+1 < len(sc.s) && sc.s[sc.i+1] == '\n' {
				sc.line++
			}
			sc.i += 2
		case strings.HasPrefix(sc.s[sc.i:], delim):
			sc.i += 3
			// Up to two more quotes belong to the content ("""a""""").
			for n := 0; n < 2 && sc.i < len(sc.s) && sc.s[sc.i] == delim[0]; n++ {
				sc.i++
			}
			return
		case c == '\n':
			sc.line++
			sc.i++
		default:
			sc.i++
		}
	}
	if sc.i > len(sc.s) {
		sc.i = len(sc.s)
	}
}

// skipBlank skips blanks, newlines and comments between statements.
func (sc *scanner) skipBlank() {
	for sc.i < len(sc.s) {
		switch sc.s[sc.i] {
		case ' ', '\t', '\r':
			sc.i++
		case '\n':
			sc.line++
			sc.i++
		case '#':
			sc.skipComment()
		default:
			return
		}
	}
}

func (sc *scanner) spaces() {
	for sc.i < len(sc.s) && (sc.s[sc.i] == ' ' || sc.s[sc.i] == '\t') {
		sc.i++
	}
}

// skipComment stops at the newline, which the caller counts.
func (sc *scanner) skipComment() {
	if n := strings.IndexByte(sc.s[sc.i:], '\n'); n >= 0 {
		sc.i += n
	} else {
		sc.i = len(sc.s)
	}
}

func (sc *scanner) skipLine() {
	sc.skipComment()
	if sc.i < len(sc.s) {
		sc.line++
		sc.i++
	}
}
