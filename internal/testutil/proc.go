package testutil

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc identifies one process: a PID plus its start time, so a recycled PID is
// never mistaken for (and never signalled as) the process we started.
type proc struct {
	pid   int
	start uint64
}

// stat reads the state letter, parent PID and start time of pid (fields 3,
// 4 and 22 of /proc/PID/stat). The command name (field 2) may hold spaces
// and parentheses: the fields after it are counted from the last ')'.
func stat(pid int) (state byte, ppid int, start uint64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, 0, err
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 20 || len(f[0]) != 1 {
		return 0, 0, 0, fmt.Errorf("/proc/%d/stat: %q: want the state and 19 more fields after the command name", pid, b)
	}
	ppid, _ = strconv.Atoi(f[1])
	start, err = strconv.ParseUint(f[19], 10, 64)
	return f[0][0], ppid, start, err
}

// findProc records pid with its start time.
func findProc(pid int) (proc, error) {
	_, _, start, err := stat(pid)
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
	state, _, start, err := stat(p.pid)
	return err == nil && start == p.start && state != 'Z' && state != 'X'
}

// waitGone polls until p is dead or timeout passes; it reports whether p is dead.
func (p proc) waitGone(timeout time.Duration) bool {
	return Poll(timeout, func() bool { return !p.alive() })
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

// Alive tells whether process pid runs: it exists and is not a zombie.
func Alive(pid int) bool {
	p, err := findProc(pid)
	return err == nil && p.alive()
}

// Pids returns the live processes, other than this one, whose argv
// satisfies match.
func Pids(match func(argv []string) bool) []int {
	var pids []int
	for _, p := range findProcs(match) {
		pids = append(pids, p.pid)
	}
	return pids
}

// Stop sends SIGTERM to pid, waits up to grace, then sends SIGKILL; it
// reports whether the process is gone. Its start time is read first: a
// recycled PID, another process by then, is never signalled.
func Stop(pid int, grace time.Duration) bool {
	p, err := findProc(pid)
	if err != nil {
		return true
	}
	return p.stop(grace)
}

// Exited returns a channel that is closed once process pid no longer runs:
// for a process the test did not fork itself (a container's init), which it
// cannot Wait for. It polls /proc until then.
func Exited(pid int) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		for Alive(pid) {
			time.Sleep(20 * time.Millisecond)
		}
		close(ch)
	}()
	return ch
}
