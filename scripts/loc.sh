#!/usr/bin/env bash
# loc.sh prints the lines of non-test Go code per package (go list's GoFiles and
# CgoFiles, no _test.go), then the total: the size the project asks a reader to carry.
# Blank lines and comment-only lines are not counted.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
total=0
while read -r dir files; do
	[ -n "$files" ] || continue
	n=0
	for f in $files; do
		# Count lines that are neither blank nor a // comment (block comments are rare here).
		c=$(grep -cvE '^[[:space:]]*(//.*)?$' "$dir/$f" || true)
		n=$((n + c))
	done
	total=$((total + n))
	printf '%6d  %s\n' "$n" "${dir#"$PWD"/}"
done < <($GO list -f '{{.Dir}} {{join .GoFiles " "}} {{join .CgoFiles " "}}' ./...)
printf '%6d  total\n' "$total"
