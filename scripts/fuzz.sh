#!/usr/bin/env bash
# scripts/fuzz.sh [TIME]: run every Go fuzz target of the module for TIME
# each (default 30s, or $FUZZTIME), one target per `go test -fuzz` call (Go
# fuzzes one target per invocation). Targets are discovered, not listed:
# packages whose test files define `func FuzzX`, then `go test -list '^Fuzz'`
# for the exact names, so a new target is fuzzed without editing this file.
#
# A failing input is written by Go to PKG/testdata/fuzz/FuzzX/ and becomes a
# regression case of the plain `go test` from then on; this script names it
# and exits 1. New interesting inputs found on the way stay in the Go build
# cache ($(go env GOCACHE)/fuzz), not in the tree.
#
# Minimisation of new inputs is capped at 2 s: by default it may take a
# minute per input, during which no fuzzing happens.
set -euo pipefail

cd "$(dirname "$0")/.."
GO=${GO:-go}
FUZZTIME=${1:-${FUZZTIME:-30s}}

if ! [[ $FUZZTIME =~ ^[0-9]+(ns|us|ms|s|m|h|x)$ ]]; then
	echo "usage: scripts/fuzz.sh [TIME]   (a Go duration such as 3s or 30s, or a count such as 1000x)" >&2
	exit 2
fi

# Packages (as ./dir) whose test files hold a fuzz target.
mapfile -t pkgs < <(grep -rlE --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*\(' . |
	grep -v '^./.git/' | xargs -r -n1 dirname | sort -u)
if [ ${#pkgs[@]} -eq 0 ]; then
	echo "fuzz: no fuzz targets found" >&2
	exit 1
fi

passed=0
failed=0
total_execs=0
failures=()
log=$(mktemp)
trap 'rm -f "$log"' EXIT

for pkg in "${pkgs[@]}"; do
	if ! targets=$($GO test -list '^Fuzz' "$pkg" 2>&1); then
		echo "fuzz: $pkg: cannot list its fuzz targets:" >&2
		echo "$targets" >&2
		failed=$((failed + 1))
		failures+=("$pkg (does not build)")
		continue
	fi
	# sort -u: a package whose TestMain runs its suite twice (hostmount: fast
	# path and mountinfo fallback) lists every target twice.
	for t in $(grep -E '^Fuzz' <<<"$targets" | sort -u); do
		start=$SECONDS
		if $GO test "$pkg" -run '^$' -fuzz "^${t}\$" -fuzztime "$FUZZTIME" -fuzzminimizetime=2s >"$log" 2>&1; then
			status=ok
			passed=$((passed + 1))
		else
			status=FAIL
			failed=$((failed + 1))
			failures+=("$pkg $t")
		fi
		execs=$(grep -oE 'execs: [0-9]+' "$log" | tail -n1 | grep -oE '[0-9]+' || true)
		execs=${execs:-0}
		total_execs=$((total_execs + execs))
		printf 'fuzz: %-20s %-28s %10s execs in %3ds  %s\n' "$t" "$pkg" "$execs" $((SECONDS - start)) "$status"
		if [ "$status" = FAIL ]; then
			# The failure, and where Go saved the input.
			grep -vE '^fuzz: elapsed' "$log" | tail -n 30 | sed 's/^/    /' >&2
		fi
	done
done

echo "fuzz: $((passed + failed)) targets, $total_execs executions, $FUZZTIME each"
if [ "$failed" -gt 0 ]; then
	printf 'fuzz: failed: %s\n' "${failures[@]}" >&2
	echo "fuzz: reproduce with: go test ./PKG -run 'FuzzX/ID' (the input is in PKG/testdata/fuzz/FuzzX/)" >&2
fi
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
