package testutil

import (
	"net"
	"testing"
	"time"
)

// Eventually calls cond until it reports done and fails the test (Fatalf)
// when timeout passes first. The message names what was awaited and the
// status cond gave last (what is still missing), e.g. "waited 10s for the
// socket /x/csi.sock: not there". cond runs on the test's goroutine, so it
// may itself stop the test early (t.Fatal on a daemon that exited).
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() (done bool, status string)) {
	t.Helper()
	var status string
	if !Poll(timeout, func() bool {
		var done bool
		done, status = cond()
		return done
	}) {
		t.Fatalf("waited %v for %s: %s", timeout, what, status)
	}
}

// Poll calls cond until it returns true or timeout passes, and reports
// whether cond held: for cleanups and helpers that decide themselves what a
// timeout means. The first calls follow each other closely (most waits end
// within milliseconds); the pause grows to 100ms so a long wait costs
// little.
func Poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for pause := time.Millisecond; ; pause = min(2*pause, 100*time.Millisecond) {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(pause)
	}
}

// WaitSocket waits until a server accepts connections on the unix socket at
// path. The file alone proves nothing: it exists from bind(2), before
// listen(2), and a killed server leaves its socket behind, so WaitSocket
// connects (and hangs up at once). It fails the test with log() when exited is
// closed first (the server died before serving) or timeout passes; exited
// may be nil.
func WaitSocket(t testing.TB, path string, timeout time.Duration, exited <-chan struct{}, log func() string) {
	t.Helper()
	died := false
	if Poll(timeout, func() bool {
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return true
		}
		select {
		case <-exited:
			died = true
			return true
		default:
			return false
		}
	}) && !died {
		return
	}
	if died {
		t.Fatalf("the server exited before it served on %s:\n%s", path, log())
	}
	t.Fatalf("waited %v for the socket %s:\n%s", timeout, path, log())
}
