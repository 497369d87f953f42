//go:build bench

package bench

import (
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// interrupted is set by SIGINT/SIGTERM (see TestMain): the loops stop at the
// next sample and the test fails, so that its cleanups run.
var interrupted atomic.Bool

func checkInterrupt(t testing.TB) {
	t.Helper()
	if interrupted.Load() {
		t.Fatal("interrupted: stopping, cleaning up")
	}
}

// Measure is one sample: the value (wall seconds, or what the trial
// measures) and, where known, the CPU seconds (user + system) of the timed
// process and the descendants it waited for. CPU time hardly changes when
// other work competes for the cores, so it backs a wall-clock result
// taken on a busy machine.
type Measure struct {
	V   float64
	CPU float64 // 0: not measured
}

// Trial takes one sample. Whatever it does outside the measured part
// (resetting a bundle, unmounting) is not in the value it returns.
type Trial func() (Measure, error)

// Side is one side of a comparison.
type Side struct {
	Name  string
	Trial Trial
}

// Sample is the values of one side.
type Sample struct {
	Name   string
	Unit   Unit
	Values []float64
	CPU    []float64 // parallel to Values, when the trial measures it
}

func (s *Sample) add(m Measure) {
	s.Values = append(s.Values, m.V)
	if m.CPU > 0 {
		s.CPU = append(s.CPU, m.CPU)
	}
}

// CPUSample is the CPU times of s as a sample of their own.
func (s Sample) CPUSample() Sample { return Sample{Name: s.Name, Unit: Seconds, Values: s.CPU} }

// Median, Min and Max of the values.
func (s Sample) Median() float64 { return quantile(s.Values, 0.5) }
func (s Sample) Min() float64    { return slices.Min(s.Values) }
func (s Sample) Max() float64    { return slices.Max(s.Values) }

func quantile(v []float64, q float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	pos := q * float64(len(s)-1)
	lo := int(math.Floor(pos))
	hi := int(math.Ceil(pos))
	return s[lo] + (s[hi]-s[lo])*(pos-float64(lo))
}

// Unit formats values.
type Unit int

const (
	Seconds     Unit = iota // shown in ms
	KiB                     // shown in MiB
	BytesPerSec             // shown in MiB/s
	Micros                  // in-process timings, shown in µs
)

func (u Unit) format(v float64) string {
	switch u {
	case Seconds:
		ms := v * 1e3
		switch {
		case ms >= 100:
			return fmt.Sprintf("%.0f ms", ms)
		case ms >= 10:
			return fmt.Sprintf("%.1f ms", ms)
		default:
			return fmt.Sprintf("%.2f ms", ms)
		}
	case KiB:
		return fmt.Sprintf("%.1f MiB", v/1024)
	case BytesPerSec:
		return fmt.Sprintf("%.0f MiB/s", v/(1<<20))
	case Micros:
		return fmt.Sprintf("%.0f µs", v)
	}
	return fmt.Sprint(v)
}

// Compare measures a and b alternating, after warm runs of each, n samples
// each, and swaps the order of every other pair: a b, b a, a b ... The side
// that runs second in a pair was measured faster on this machine (caches
// the first one warmed), by as much as some rows look for, so one fixed
// order would count it as a difference. A failed sample fails the test: a
// benchmark of a broken path means nothing.
func Compare(t testing.TB, warm, n int, a, b Side) (Sample, Sample) {
	t.Helper()
	sides := []Side{a, b}
	out := []Sample{{Name: a.Name}, {Name: b.Name}}
	for i := 0; i < warm+n; i++ {
		for j := range sides {
			k := j
			if i%2 == 1 {
				k = len(sides) - 1 - j
			}
			s := sides[k]
			checkInterrupt(t)
			m, err := s.Trial()
			if err != nil {
				t.Fatalf("%s, run %d: %v", s.Name, i+1, err)
			}
			if i >= warm {
				out[k].add(m)
			}
		}
	}
	return out[0], out[1]
}

// Goal is what a row must reach. Metric "ratio" tests the row's ratio;
// "b" tests B's median itself (peak RSS).
type Goal struct {
	Metric string // "ratio" or "b"; "" means no goal (information only)
	Op     string // ">=", ">", "<=" or "<"
	Value  float64
	Text   string // as printed, e.g. "direct/wrapper ≥ 0.95"
}

func (g Goal) met(ratio, b float64) bool {
	v := ratio
	if g.Metric == "b" {
		v = b
	}
	switch g.Op {
	case ">=":
		return v >= g.Value
	case ">":
		return v > g.Value
	case "<":
		return v < g.Value
	}
	return v <= g.Value
}

// Row is one line of the table.
type Row struct {
	Scenario string
	A, B     Sample
	// AOverB: the ratio is A's median over B's (direct/wrapper, for
	// throughput-like goals); otherwise B over A (routed/native).
	AOverB bool
	// NoRatio: A and B are two measurements side by side, not a comparison.
	NoRatio bool
	Goal    Goal
	Note    string
	// CPU adds a line with the CPU times of the same runs (information).
	CPU    bool
	Status string // set by Finish: "pass", "**miss**", "info", "n/a: why"
}

// Ratio is the row's ratio, or NaN without two sides.
func (r *Row) Ratio() float64 {
	if r.NoRatio || len(r.A.Values) == 0 || len(r.B.Values) == 0 {
		return math.NaN()
	}
	if r.AOverB {
		return r.A.Median() / r.B.Median()
	}
	return r.B.Median() / r.A.Median()
}

func (r *Row) ratioName() string {
	if r.AOverB {
		return "A/B"
	}
	return "B/A"
}

// Finish sets Status from the goal.
func (r *Row) Finish() {
	if r.Status != "" {
		return
	}
	switch {
	case r.Goal.Metric == "":
		r.Status = "info"
	case len(r.B.Values) == 0:
		r.Status = "n/a"
	case r.Goal.met(r.Ratio(), r.B.Median()):
		r.Status = "pass"
	default:
		r.Status = "**miss**"
	}
}

func cell(s Sample) (name, median, spread string) {
	if len(s.Values) == 0 {
		return s.Name, "—", "—"
	}
	return s.Name, s.Unit.format(s.Median()),
		fmt.Sprintf("%s – %s", s.Unit.format(s.Min()), s.Unit.format(s.Max()))
}

// Markdown renders rows as a table.
func Markdown(rows []*Row) string {
	var b strings.Builder
	b.WriteString("| # | Scenario | A | A median | A min – max | B | B median | B min – max | Ratio | Goal | Result |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|\n")
	for i, r := range rows {
		r.Finish()
		an, am, as := cell(r.A)
		bn, bm, bs := cell(r.B)
		ratio := "—"
		if x := r.Ratio(); !math.IsNaN(x) {
			ratio = fmt.Sprintf("%s %.3f", r.ratioName(), x)
		}
		goal := r.Goal.Text
		if goal == "" {
			goal = "—"
		}
		status := r.Status
		if r.Note != "" {
			status += " (" + r.Note + ")"
		}
		fmt.Fprintf(&b, "| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			i+1, r.Scenario, an, am, as, bn, bm, bs, ratio, goal, status)
		if r.CPU && len(r.A.CPU) > 0 && len(r.B.CPU) > 0 {
			c := &Row{A: r.A.CPUSample(), B: r.B.CPUSample(), AOverB: r.AOverB}
			an, am, as = cell(c.A)
			bn, bm, bs = cell(c.B)
			fmt.Fprintf(&b, "| %d′ | … CPU time (user+sys) of the same runs | %s | %s | %s | %s | %s | %s | %s %.3f | — | info |\n",
				i+1, an, am, as, bn, bm, bs, c.ratioName(), c.Ratio())
		}
	}
	return b.String()
}

// Cmd is a command the benchmark times: the wall time from start to the
// end of wait, nothing else (no temp files, no spec checks in between).
type Cmd struct {
	Argv []string
	Env  []string // added to the environment
	Dir  string
	// Stdin is a file to read stdin from (opened before the clock starts);
	// "" means /dev/null.
	Stdin string
	// Out receives stdout and stderr (a file, never a pipe: a container init
	// or a FUSE daemon inherits it and would keep a pipe open). nil means
	// /dev/null.
	Out *os.File
	// Timeout kills the command; 0 means 2 minutes.
	Timeout time.Duration
}

// Result of one run.
type Result struct {
	Wall   time.Duration
	CPU    time.Duration // user + system, the process and its waited-for descendants
	Output string
}

var devNull = func() *os.File {
	f, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		panic(err)
	}
	return f
}()

// Run runs c once. A non-zero exit is an error that holds the output.
func (c Cmd) Run() (Result, error) {
	out := c.Out
	var tmp *os.File
	if out == nil {
		var err error
		if tmp, err = os.CreateTemp("", "rsbench-out-"); err != nil {
			return Result{}, err
		}
		defer os.Remove(tmp.Name())
		defer tmp.Close()
		out = tmp
	}
	cmd := exec.Command(c.Argv[0], c.Argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devNull, out, out
	if c.Stdin != "" {
		in, err := os.Open(c.Stdin)
		if err != nil {
			return Result{}, err
		}
		defer in.Close()
		cmd.Stdin = in
	}
	cmd.Dir = c.Dir
	if len(c.Env) > 0 {
		cmd.Env = append(os.Environ(), c.Env...)
	}
	timeout := c.Timeout
	if timeout == 0 {
		timeout = 2 * time.Minute
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return Result{}, fmt.Errorf("start %s: %w", c.Argv[0], err)
	}
	timer := time.AfterFunc(timeout, func() { _ = cmd.Process.Kill() })
	err := cmd.Wait()
	wall := time.Since(start)
	timer.Stop()
	res := Result{Wall: wall, CPU: cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()}
	if tmp != nil {
		b, _ := os.ReadFile(tmp.Name())
		res.Output = string(b)
	}
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && wall >= timeout {
			err = fmt.Errorf("%w (killed after %v)", err, timeout)
		}
		return res, fmt.Errorf("%s: %w: %s", strings.Join(c.Argv, " "), err, strings.TrimSpace(res.Output))
	}
	return res, nil
}

func (r Result) measure() Measure { return Measure{V: r.Wall.Seconds(), CPU: r.CPU.Seconds()} }

// Timed is a Trial that runs setup (not measured), then c (measured).
func Timed(setup func() error, c Cmd) Trial {
	return func() (Measure, error) {
		if setup != nil {
			if err := setup(); err != nil {
				return Measure{}, err
			}
		}
		r, err := c.Run()
		return r.measure(), err
	}
}

// TimedFunc times f, all of it (for in-process steps).
func TimedFunc(f func() error) Trial {
	return func() (Measure, error) {
		start := time.Now()
		err := f()
		return Measure{V: time.Since(start).Seconds()}, err
	}
}
