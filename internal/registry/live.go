package registry

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Liveness is what a check found out about the container of a record.
type Liveness int

const (
	// Unknown: the check could not tell (the runtime could not be run).
	// Keep the record; do not route to it.
	Unknown Liveness = iota
	// Running: the init process is the one recorded and the runtime says
	// "running" (with Checker.Kernel: its freezer cgroup is not frozen; a
	// created container counts as running). Route mounts to it.
	Running
	// NotRunning: the container exists but does not run (yet): creating,
	// created (between createRuntime and start; the runtime's word only) or
	// paused. Keep the record; do not route to it.
	NotRunning
	// Stale: the mounter is gone. Its init PID is gone, a zombie or reused
	// by another process, or the runtime says stopped or does not know the
	// container. Sort removes the record.
	Stale
)

var livenessNames = [...]string{Unknown: "unknown", Running: "running", NotRunning: "not running", Stale: "stale"}

func (l Liveness) String() string {
	if l < 0 || int(l) >= len(livenessNames) {
		return livenessNames[Unknown]
	}
	return livenessNames[l]
}

// Verdict is the result of a check, with the reason for anything but Running.
type Verdict struct {
	Liveness Liveness
	Reason   string
	// State is the container's state where the check learnt it: "running",
	// "paused" (its freezer cgroup is frozen, or the runtime says so),
	// "created", ...; "" when unknown or stale.
	State string
}

// DefaultStateTimeout bounds one `<runtime> state` call.
const DefaultStateTimeout = 5 * time.Second

// Checker decides whether records are alive. The zero value checks the real
// host: /proc and an exec of the record's runtime.
type Checker struct {
	// ProcDir is the proc file system; "" means /proc.
	ProcDir string
	// Kernel, with State nil, asks the kernel instead of the runtime: a
	// process that /proc shows alive is paused when its freezer cgroup is
	// frozen (freezerState) and running otherwise. It cannot tell a created
	// container (init not yet exec'd) from a running one; `runtime exec`
	// works in both. No runtime start, and no cost that grows with the
	// host's mounts.
	Kernel bool
	// CgroupDir is where the cgroup hierarchies are mounted; "" means
	// /sys/fs/cgroup.
	CgroupDir string
	// State returns the status the runtime reports for the record's
	// container ("running", "created", ...), or ErrNoContainer when the
	// runtime does not know it. nil runs `<Runtime> [--root R] state <id>`.
	State func(rec *Record) (string, error)
	// Runtime is the runtime binary that State nil runs: the configured
	// one, resolved. A record names its runtime too, but a record is not
	// trusted to choose a program that root runs.
	Runtime string
}

// ErrNoContainer is returned by a state function when the runtime does not
// know the container.
var ErrNoContainer = errors.New("the runtime does not know the container")

// Check decides the liveness of rec. The cheap checks come first, on
// /proc/<pid>/stat: a PID that is gone, a zombie or started at another time
// than recorded (reused) is Stale with no exec at all. Only a record whose
// process is still there costs an exec of the runtime's `state`, which knows
// whether the container is running, paused or stopped (or, with Kernel, a
// read of its freezer cgroup).
func (c *Checker) Check(rec *Record) Verdict {
	if rec.PID <= 0 {
		return Verdict{Liveness: Stale, Reason: "the record has no init PID"}
	}
	procDir := cmp.Or(c.ProcDir, "/proc")
	state, start, err := procStat(procDir, rec.PID)
	switch {
	case errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ESRCH):
		// ESRCH: the process exited between open and read.
		return Verdict{Liveness: Stale, Reason: fmt.Sprintf("its init process %d is gone", rec.PID)}
	case err != nil:
		return Verdict{Liveness: Unknown, Reason: err.Error()}
	case state == 'Z' || state == 'X':
		return Verdict{Liveness: Stale, Reason: fmt.Sprintf("its init process %d has exited", rec.PID)}
	case rec.PIDStart != 0 && start != rec.PIDStart:
		return Verdict{Liveness: Stale, Reason: fmt.Sprintf("its init PID %d now belongs to another process (started at tick %d, not %d)", rec.PID, start, rec.PIDStart)}
	}
	stateFn := c.State
	if stateFn == nil && c.Kernel {
		switch status, err := freezerState(procDir, cmp.Or(c.CgroupDir, "/sys/fs/cgroup"), rec.PID); {
		case errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ESRCH):
			// It exited between the two reads of /proc.
			return Verdict{Liveness: Stale, Reason: fmt.Sprintf("its init process %d is gone", rec.PID)}
		case err != nil:
			return Verdict{Liveness: Unknown, Reason: err.Error()}
		case status == "paused":
			return Verdict{Liveness: NotRunning, Reason: "its freezer cgroup is frozen (paused)", State: "paused"}
		default:
			return Verdict{Liveness: Running, State: "running"}
		}
	}
	if stateFn == nil {
		stateFn = func(rec *Record) (string, error) { return runtimeState(c.Runtime, rec) }
	}
	status, err := stateFn(rec)
	switch {
	case errors.Is(err, ErrNoContainer):
		return Verdict{Liveness: Stale, Reason: err.Error()}
	case err != nil:
		return Verdict{Liveness: Unknown, Reason: err.Error()}
	case status == "running":
		return Verdict{Liveness: Running, State: status}
	case status == "stopped":
		return Verdict{Liveness: Stale, Reason: "the runtime reports it stopped"}
	default:
		return Verdict{Liveness: NotRunning, Reason: fmt.Sprintf("the runtime reports it %s", status), State: status}
	}
}

// StaleRecord is a record of a mounter that no longer runs.
type StaleRecord struct {
	Record    *Record
	Reason    string
	RemoveErr error // why it could not be removed, if it could not
}

// HeldRecord is a record kept but not used: its mounter is not running
// (paused, created) or its liveness is undecided.
type HeldRecord struct {
	Record  *Record
	Verdict Verdict
}

// Records is a registry listing sorted by liveness.
type Records struct {
	Live    []*Record     // oldest first
	Stale   []StaleRecord // removed (unless RemoveErr)
	Held    []HeldRecord  // not running, or undecided: kept, not used
	Skipped []error       // why each of Held is not used
	// Err holds the refused records and, wrapping ErrUnreadable, why the
	// registry could not be read at all.
	Err error
}

// Hold moves a record out of Live, saying why; callers use it for what the
// registry cannot judge (the record's rule is no longer configured).
func (r *Records) Hold(rec *Record, v Verdict) {
	r.Live = slices.DeleteFunc(r.Live, func(x *Record) bool { return x == rec })
	r.hold(rec, v)
}

func (r *Records) hold(rec *Record, v Verdict) {
	r.Held = append(r.Held, HeldRecord{Record: rec, Verdict: v})
	r.Skipped = append(r.Skipped, fmt.Errorf("mounter %s (rule %q) is %s: %s", rec.ID, rec.Name, v.Liveness, v.Reason))
}

// Sort lists r, decides each record and removes the stale ones. Removal is
// safe against a race: another client may remove the same record (Remove
// tolerates that), and a container that registered under the same ID since
// the listing (engines reuse names) keeps its record: it is re-read and
// compared under the record's lock first (removeIf), and a record that
// changed is left out of the result.
func (c *Checker) Sort(r *Registry) Records {
	recs, err := r.List()
	out := Records{Err: err}
	for _, rec := range recs {
		v := c.Check(rec)
		switch v.Liveness {
		case Running:
			out.Live = append(out.Live, rec)
		case Stale:
			if removed, err := r.removeIf(rec); removed || err != nil {
				out.Stale = append(out.Stale, StaleRecord{Record: rec, Reason: v.Reason, RemoveErr: err})
			}
		default:
			out.hold(rec, v)
		}
	}
	return out
}

// Problems joins what kept records from being used, for error messages.
func (r Records) Problems() error {
	return errors.Join(append(r.Skipped, r.Err)...)
}

func sameRecord(a, b *Record) bool {
	return a.PID == b.PID && a.PIDStart == b.PIDStart && a.Created.Equal(b.Created)
}

// procStat returns the state letter (field 3) and the start time (field 22,
// clock ticks after boot) of pid from <procDir>/<pid>/stat.
func procStat(procDir string, pid int) (state byte, start uint64, err error) {
	path := procDir + "/" + strconv.Itoa(pid) + "/stat"
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, fmt.Errorf("read %s: %w", path, err)
	}
	// The command name (field 2) may hold spaces and parentheses: the
	// fields after it start behind the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("parse %s: no ')' after the command name", path)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 || len(f[0]) != 1 {
		return 0, 0, fmt.Errorf("parse %s: %d fields after the command name, want at least 20", path, len(f))
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("parse start time in %s: %w", path, err)
	}
	return f[0][0], start, nil
}

// ProcStart returns the start time of pid (field 22 of /proc/<pid>/stat), the
// value to store in Record.PIDStart.
func ProcStart(pid int) (uint64, error) {
	_, start, err := procStat("/proc", pid)
	return start, err
}

// runtimeState runs `<runtime> [--root R] state <id>` with R the record's
// runtime root, and returns the status it prints. A runtime that does not
// know the container (runc: "container does not exist") gives
// ErrNoContainer.
func runtimeState(runtime string, rec *Record) (string, error) {
	if runtime == "" {
		return "", fmt.Errorf("mounter %s: no runtime to ask for its state", rec.ID)
	}
	args := []string{}
	if rec.RuntimeRoot != "" {
		args = append(args, "--root", rec.RuntimeRoot)
	}
	args = append(args, "state", rec.ID)
	ctx, cancel := context.WithTimeout(context.Background(), DefaultStateTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, runtime, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	what := runtime + " " + strings.Join(args, " ")
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		var exit *exec.ExitError
		if errors.As(err, &exit) && notExist(msg) {
			return "", fmt.Errorf("%s: %w", what, ErrNoContainer)
		}
		return "", fmt.Errorf("%s: %w: %s", what, err, msg)
	}
	var st struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &st); err != nil || st.Status == "" {
		return "", fmt.Errorf("%s printed no state: %.200q", what, stdout.String())
	}
	return st.Status, nil
}

// notExist recognises "no such container" in a runtime's error output: runc
// says "container does not exist", crun "No such file or directory".
func notExist(msg string) bool {
	m := strings.ToLower(msg)
	return strings.Contains(m, "does not exist") || strings.Contains(m, "no such file or directory")
}
