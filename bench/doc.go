// Package bench is `make bench`: end-to-end benchmarks of runc-shared, each
// scenario measured against its reference in the same run, the two sides
// alternating (A B B A ...) after a warm-up, so that load from elsewhere on
// the machine hits both alike. It prints a Markdown table of medians, min-max
// spreads and ratios, with the machine at the top; where the trial can tell,
// a second line gives the CPU time (user + system, the process and the
// descendants it waited for) of the same runs, which hardly moves when other
// work competes for the cores.
//
// The scenarios live in _test.go files behind the build tag "bench", so that
// `go test ./...` and `make test` never run them (they take minutes, need
// root, and start glusterd, dockerd and containers):
//
//	go test -tags bench -count=1 -timeout 60m -v ./bench -args -bench.out=table.md
//
// scripts/bench.sh builds the test binary and runs it (so that Ctrl-C
// reaches its handler), and adds the Go micro-benchmarks of the packages on
// the hot path (benchstat-compatible). Flags (after -args, or BENCH_ARGS for
// scripts/bench.sh): -bench.runs, -bench.warm, -bench.only (wrapper,
// startup, mount, io, scale, preload, csi, recover), -bench.iosize, -bench.ioruns,
// -bench.docker, -bench.profile (strace summaries and mountinfo reads of
// the slow paths, the FUSE daemons' cgroups), -bench.before=DIR (compare
// the runc-shared of another build with bin/runc-shared), and
// -bench.io-rootcpu (experiment: the routed FUSE daemon in the root cpu
// cgroup).
//
// Files: measure_test.go (alternation, statistics, the table, timed
// commands), main_test.go (flags, machine header, scenario groups), one file
// per scenario (wrapper, startup, gluster: routed mount and I/O, scale,
// preload, csi, recover: volumes live again after a mounter is killed), docker_test.go (a dockerd of its own for the seed's route) and
// profile_test.go.
//
// Everything a scenario starts (containers, glusterd, dockerd, mounts) is
// removed by the test's cleanups, also when it fails or is interrupted
// (SIGINT stops the measuring loops and lets the cleanups run).
package bench
