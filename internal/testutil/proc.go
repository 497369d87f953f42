package testutil

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/runc-shared/runc-shared/internal/registry"
)

// proc identifies one process: a PID plus its start time, so a recycled PID is
// never mistaken for (and never signalled as) the process we started.
type proc struct {
	pid   int
	start uint64
}

// procStat returns the state letter and start time (field 22) of pid.
func procStat(pid int) (state byte, start uint64, err error) {
	return registry.ProcStat("/proc", pid)
}

// findProc records pid with its start time.
func findProc(pid int) (proc, error) {
	_, start, err := procStat(pid)
	if err != nil {
		return proc{}, fmt.Errorf("process %d: %w", pid, err)
	}
	return proc{pid: pid, start: start}, nil
}

// alive tells whether p still runs. A zombie counts as dead: PID 1 on this machine
// reaps orphans only now and then, and a zombie holds no mounts, files or sockets.
func (p proc) alive() bool {
	if p.pid <= 0 {
		return false
	}
	state, start, err := procStat(p.pid)
	return err == nil && start == p.start && state != 'Z' && state != 'X'
}

// waitGone polls until p is dead or timeout passes; it reports whether p is dead.
func (p proc) waitGone(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for p.alive() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// signal sends sig to p if it is still the process we recorded.
func (p proc) signal(sig syscall.Signal) error {
	if !p.alive() {
		return nil
	}
	return syscall.Kill(p.pid, sig)
}

// stop sends SIGTERM, waits up to grace, then SIGKILL; it reports whether p is gone.
func (p proc) stop(grace time.Duration) bool {
	_ = p.signal(syscall.SIGTERM)
	if p.waitGone(grace) {
		return true
	}
	_ = p.signal(syscall.SIGKILL)
	return p.waitGone(5 * time.Second)
}

// cmdline returns the argv of pid, or nil.
func cmdline(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
}

// findProcs returns the live processes whose argv satisfies match.
func findProcs(match func(argv []string) bool) []proc {
	ents, _ := os.ReadDir("/proc")
	var ps []proc
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if argv := cmdline(pid); argv != nil && match(argv) {
			if p, err := findProc(pid); err == nil && p.alive() {
				ps = append(ps, p)
			}
		}
	}
	return ps
}
