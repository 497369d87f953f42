#!/usr/bin/env bash
# deps.sh [group...] installs the Debian packages that the tests, the demo and the
# benchmarks need, when they are missing, then checks that their commands exist.
#
# Groups: base (default), gluster, engines, bench, all.
# A second run with everything installed only asks dpkg and takes a few milliseconds.
# Packages are installed with their recommends: the engine tests were run against that
# set, and a leaner one (--no-install-recommends) is untested.
set -euo pipefail

# Commands live in sbin on Debian; a non-root PATH may lack it.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

usage() {
	echo "usage: $0 [base|gluster|engines|bench|all]..." >&2
	exit 2
}

# packages GROUP prints the Debian packages of GROUP.
packages() {
	case "$1" in
	base) echo "runc busybox-static jq bindfs fuse3 util-linux" ;;
	gluster) echo "glusterfs-server glusterfs-client" ;;
	engines) echo "docker.io containerd podman umoci" ;;
	bench) echo "hyperfine fio" ;;
	*) return 1 ;;
	esac
}

# commands GROUP prints the commands GROUP must provide once installed.
commands() {
	case "$1" in
	base) echo "runc busybox jq bindfs fusermount3 mount umount nsenter" ;;
	gluster) echo "glusterd gluster glusterfsd mount.glusterfs" ;;
	engines) echo "dockerd containerd containerd-shim-runc-v2 ctr podman umoci" ;;
	bench) echo "hyperfine fio" ;;
	esac
}

die() {
	echo "deps.sh: $*" >&2
	exit 1
}

[ $# -gt 0 ] || set -- base
groups=()
for g in "$@"; do
	case "$g" in
	-h | --help) usage ;;
	all) groups+=(base gluster engines bench) ;;
	*)
		if ! packages "$g" >/dev/null; then
			echo "deps.sh: unknown group '$g'" >&2
			usage
		fi
		groups+=("$g")
		;;
	esac
done

wanted=()
for g in "${groups[@]}"; do
	# shellcheck disable=SC2207 # word splitting of a fixed list is intended
	wanted+=($(packages "$g"))
done

# missing_commands prints the commands of the selected groups that are not on PATH.
missing_commands() {
	local g c
	for g in "${groups[@]}"; do
		for c in $(commands "$g"); do
			command -v "$c" >/dev/null 2>&1 || printf ' %s' "$c"
		done
	done
}

if ! command -v dpkg-query >/dev/null 2>&1; then
	# Not Debian: accept a machine that has the commands by other means.
	miss=$(missing_commands)
	[ -z "$miss" ] && exit 0
	die "dpkg-query not found, so packages cannot be checked or installed here (this script needs Debian or Ubuntu with apt-get). Missing commands:${miss}. Install the packages ${wanted[*]} by hand."
fi

# One dpkg-query for all packages. It prints the packages it knows and exits 1 when
# any is unknown, which is every package on a machine that never had them: its
# status must not stop the script (set -e and pipefail), only its output counts.
installed=" $( (dpkg-query -W -f='${Package}=${Status}\n' "${wanted[@]}" 2>/dev/null || true) |
	sed -n 's/=install ok installed$//p' | tr '\n' ' ') "
missing=()
for p in "${wanted[@]}"; do
	[[ "$installed" == *" $p "* ]] || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
	command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install ${missing[*]} by hand"
	[ "$(id -u)" -eq 0 ] || die "missing packages ${missing[*]}: run as root (sudo $0 $*) to install them"
	echo "deps.sh: installing ${missing[*]}" >&2
	# needrestart (pulled in elsewhere) would ask about services: keep it quiet.
	export DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1
	# docker.io, containerd and glusterfs-server ship init scripts that their postinst
	# starts through invoke-rc.d; the tests and the demo start their own daemons, so a
	# policy-rc.d that denies every start (exit 101, Debian's invoke-rc.d interface)
	# stands for the install unless the machine already has one.
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\n# written by runc-shared scripts/deps.sh for one apt-get install\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 0755 /usr/sbin/policy-rc.d
		trap 'rm -f /usr/sbin/policy-rc.d' EXIT
	fi
	apt-get update -qq </dev/null || die "apt-get update failed: check the network or the apt sources"
	apt-get install -y -qq "${missing[@]}" </dev/null ||
		die "apt-get install ${missing[*]} failed (see above)"
fi

miss=$(missing_commands)
[ -z "$miss" ] || die "after installing ${wanted[*]}, these commands are still missing:${miss}"
