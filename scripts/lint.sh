#!/usr/bin/env bash
# scripts/lint.sh: every static check of the Go code, each reported on its
# own; exits 1 if any fails.
#   1. gofmt: no file needs formatting;
#   2. go vet;
#   3. staticcheck (its default checks; silence a deliberate use with a
#      `//lint:ignore CHECK reason` line above it);
#   4. errorlint: errors compared with errors.Is/As, never ==, and
#      fmt.Errorf wrapping with %w, so callers can test what went wrong;
#   5. a ban on truncating writes (os.Create, os.WriteFile, O_TRUNC) in
#      non-test code: a file the node depends on (config.json, the registry,
#      generated preload files) must never be seen half-written, so it goes
#      through internal/atomicfile (temp file, fsync, rename). A file that
#      really may be truncated goes on the allowlist below, with the reason.
#
# The linters run with `go run pkg@version`: pinned, fetched through the Go
# module proxy on first use, and never added to go.mod.
set -uo pipefail

cd "$(dirname "$0")/.."
GO=${GO:-go}
STATICCHECK=honnef.co/go/tools/cmd/staticcheck@v0.8.2
ERRORLINT=codeberg.org/polyfloyd/go-errorlint@v1.9.1

# Non-test files allowed to truncate, as "path-prefix  reason".
BAN_ALLOW=(
	"internal/testutil/  test harness: fixtures and logs of end-to-end tests, never read by the node"
)

failed=()
check() {
	local name=$1
	shift
	echo "lint: $name"
	if ! "$@"; then
		failed+=("$name")
	fi
}

gofiles() {
	find . -name '*.go' -not -path './.git/*' -not -path './vendor/*' -not -path '*/testdata/*' | sed 's|^\./||' | sort
}

gofmt_check() {
	local out
	out=$(gofmt -l $(gofiles))
	if [ -n "$out" ]; then
		echo "gofmt needed (run gofmt -w):"
		echo "$out" | sed 's/^/    /'
		return 1
	fi
}

ban_check() {
	local hits=() f line allowed entry
	while IFS= read -r line; do
		f=${line%%:*}
		allowed=no
		for entry in "${BAN_ALLOW[@]}"; do
			[[ $f == "${entry%%  *}"* ]] && allowed=yes
		done
		[ "$allowed" = yes ] || hits+=("$line")
	done < <(gofiles | grep -v '_test\.go$' | xargs grep -nE 'os\.Create\(|os\.WriteFile\(|O_TRUNC' /dev/null |
		grep -vE '^[^:]+:[0-9]+:[[:space:]]*//')
	if [ ${#hits[@]} -gt 0 ]; then
		echo "truncating writes outside the allowlist (use internal/atomicfile, or allowlist the file in scripts/lint.sh with the reason):"
		printf '    %s\n' "${hits[@]}"
		return 1
	fi
}

check gofmt gofmt_check
check "go vet" $GO vet ./...
check staticcheck $GO run $STATICCHECK ./...
check errorlint $GO run $ERRORLINT -errorf ./...
check "truncating-write ban" ban_check

if [ ${#failed[@]} -gt 0 ]; then
	echo "lint: FAILED: ${failed[*]}" >&2
	exit 1
fi
echo "lint: ok"
