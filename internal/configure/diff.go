package configure

import (
	"fmt"
	"strings"
)

// diffContext is the number of unchanged lines around each change, as in
// diff -u.
const diffContext = 3

// unifiedDiff returns the change from a to b in unified format ("" when
// equal). Configuration files are small (containers.conf, the biggest, has
// under a thousand lines), so a plain LCS table is fast enough.
func unifiedDiff(fromName, toName string, a, b []byte) string {
	x, y := splitLines(a), splitLines(b)
	ops := diffLines(x, y)
	var sb strings.Builder
	for _, h := range hunks(ops) {
		if sb.Len() == 0 {
			fmt.Fprintf(&sb, "--- %s\n+++ %s\n", fromName, toName)
		}
		sb.WriteString(h)
	}
	return sb.String()
}

// splitLines splits after each newline; a last line without one is marked
// as diff does.
func splitLines(b []byte) []string {
	if len(b) == 0 {
		return nil
	}
	lines := strings.SplitAfter(string(b), "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	} else {
		lines[len(lines)-1] += "\n\\ No newline at end of file\n"
	}
	return lines
}

// op is one line of the edit script: ' ' kept, '-' removed, '+' added, with
// the 1-based line numbers it has in a and b.
type op struct {
	kind   byte
	line   string
	ai, bi int
}

func diffLines(a, b []string) []op {
	n, m := len(a), len(b)
	// lcs[i][j] is the length of the longest common subsequence of a[i:]
	// and b[j:].
	lcs := make([][]int32, n+1)
	for i := range lcs {
		lcs[i] = make([]int32, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var ops []op
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && a[i] == b[j]:
			ops = append(ops, op{' ', a[i], i + 1, j + 1})
			i, j = i+1, j+1
		// Removals before additions, as diff(1) prints them.
		case i < n && (j == m || lcs[i+1][j] >= lcs[i][j+1]):
			ops = append(ops, op{'-', a[i], i + 1, j + 1})
			i++
		default:
			ops = append(ops, op{'+', b[j], i + 1, j + 1})
			j++
		}
	}
	return ops
}

// hunks groups the edit script into @@ hunks with diffContext lines of
// context.
func hunks(ops []op) []string {
	var out []string
	for start := 0; start < len(ops); {
		// Find the next change.
		first := start
		for first < len(ops) && ops[first].kind == ' ' {
			first++
		}
		if first == len(ops) {
			break
		}
		// Extend while the gap between changes is at most 2*context.
		last := first
		for k := first; k < len(ops); k++ {
			if ops[k].kind != ' ' {
				last = k
			} else if k-last > 2*diffContext {
				break
			}
		}
		lo := max(first-diffContext, start)
		hi := min(last+diffContext+1, len(ops))
		out = append(out, formatHunk(ops[lo:hi]))
		start = hi
	}
	return out
}

func formatHunk(ops []op) string {
	var body strings.Builder
	aStart, bStart, aLen, bLen := 0, 0, 0, 0
	for _, o := range ops {
		if aStart == 0 && o.kind != '+' {
			aStart = o.ai
		}
		if bStart == 0 && o.kind != '-' {
			bStart = o.bi
		}
		switch o.kind {
		case ' ':
			aLen++
			bLen++
		case '-':
			aLen++
		case '+':
			bLen++
		}
		body.WriteByte(o.kind)
		body.WriteString(o.line)
	}
	// diff -u numbers an empty side by the line before it.
	if aLen == 0 {
		aStart = ops[0].ai - 1
	}
	if bLen == 0 {
		bStart = ops[0].bi - 1
	}
	return fmt.Sprintf("@@ -%s +%s @@\n%s", span(aStart, aLen), span(bStart, bLen), body.String())
}

func span(start, n int) string {
	if n == 1 {
		return fmt.Sprint(start)
	}
	return fmt.Sprintf("%d,%d", start, n)
}
