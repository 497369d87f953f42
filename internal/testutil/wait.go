package testutil

import (
	"testing"
	"time"
)

// Eventually calls cond until it reports done and fails the test (Fatalf)
// when timeout passes first, with the status cond gave last: what is still
// missing, for the failure message. cond runs on the test's goroutine, so it
// may itself stop the test early (t.Fatal on a daemon that exited).
func Eventually(t testing.TB, timeout time.Duration, cond func() (done bool, status string)) {
	t.Helper()
	var status string
	if !Poll(timeout, func() bool {
		var done bool
		done, status = cond()
		return done
	}) {
		t.Fatalf("not within %v: %s", timeout, status)
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
