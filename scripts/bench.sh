#!/usr/bin/env bash
# bench.sh runs the benchmarks of runc-shared (`make bench`; root; minutes, not
# part of `make test`):
#
#  1. Go micro-benchmarks of the hot path (argv parse, config load, spec
#     decode and rewrite, mountinfo scans), benchstat-compatible:
#     $OUT/micro.txt. Compare two runs with `benchstat old.txt new.txt`.
#  2. The end-to-end scenarios of bench/ (wrapper cost, start-up, routed
#     mount, I/O, scale, preload), each against its reference, alternating
#     A B B A: the Markdown table with the machine header goes to stdout and
#     $OUT/table.md.
#
# Environment: OUT (default bin/bench), BENCH_COUNT (micro-benchmark -count,
# default 6), BENCH_ARGS (flags for the scenarios, e.g. "-bench.runs=31
# -bench.only=wrapper|startup -bench.profile"; see bench/main_test.go),
# MICRO=0 to skip the micro-benchmarks.
#
# The scenarios clean up what they start (containers, glusterd, dockerd,
# mounts), also when they fail; Ctrl-C stops them after the current sample
# and runs the cleanups, so wait for it to return.
set -euo pipefail

cd "$(dirname "$0")/.."
GO=${GO:-go}
OUT=${OUT:-bin/bench}
COUNT=${BENCH_COUNT:-6}

die() {
	echo "bench.sh: $*" >&2
	exit 1
}

[ "$(id -u)" -eq 0 ] || die "run as root (the scenarios mount, run runc, glusterd and dockerd): sudo make bench"
for b in runc-shared mount-hook mounter libhostmount.so; do
	[ -e "bin/$b" ] || die "bin/$b is missing: run make first"
done
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

bin=$(mktemp "${TMPDIR:-/tmp}/rsbench-test.XXXXXX")
trap 'rm -f "$bin"' EXIT

if [ "${MICRO:-1}" != 0 ]; then
	echo "== micro-benchmarks (count $COUNT) -> $OUT/micro.txt" >&2
	$GO test -run '^$' -bench . -benchmem -count "$COUNT" \
		./internal/runtime ./internal/config ./pkg/spec ./internal/hostmount | tee "$OUT/micro.txt"
fi

echo "== scenarios -> $OUT/table.md" >&2
$GO test -tags bench -c -o "$bin" ./bench
# The test binary itself (not `go test`) gets Ctrl-C, so its handler can stop
# the loops and run the cleanups. It runs in bench/, as `go test` would. tee
# ignores Ctrl-C: it must outlive the test binary's cleanup output, or the
# binary would write into a closed pipe.
set +e
# shellcheck disable=SC2086 # BENCH_ARGS is a list of flags
(cd bench && "$bin" -test.v -test.count=1 -test.timeout=120m -bench.out="$OUT/table.md" ${BENCH_ARGS:-}) |
	(trap '' INT TERM && exec tee "$OUT/scenarios.log")
status=${PIPESTATUS[0]}
set -e
echo "bench.sh: table in $OUT/table.md, log in $OUT/scenarios.log, micro-benchmarks in $OUT/micro.txt" >&2
[ "$status" -eq 0 ] || echo "bench.sh: a scenario failed (exit $status): see the log" >&2
exit "$status"
