package testutil

import (
	"os"
	"slices"
	"strconv"
	"testing"
	"time"
)

// Runs returns how many timed runs a latency test makes: def, or the
// number in the environment variable env (at least 15, so that the median
// and the spread mean something).
func Runs(t testing.TB, env string, def int) int {
	t.Helper()
	v := os.Getenv(env)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 15 {
		t.Fatalf("%s=%q: want a number of at least 15", env, v)
	}
	return n
}

// Median returns the median of ds (the mean of the middle two for an even
// count); ds is left as it is.
func Median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
