#!/usr/bin/env bash
# install.sh install|uninstall: what `make install` and `make uninstall` do, with
# PREFIX (default /usr/local) and DESTDIR (default empty) from the environment.
#
# install copies the binaries, libhostmount.so and the hooks.d files, and records
# the directories it had to create in LIBDIR/created-dirs (paths without DESTDIR,
# merged over earlier installs), so that uninstall removes those, and only those,
# when they are empty again.
#
# uninstall first asks `mounter list` whether registered mounters still run or are
# paused, and refuses if any does: the engine needs runc-shared (and mount-hook, for
# poststop) to stop and delete them, so with the binaries gone `docker rm -f` fails
# ("cannot delete running task") and a containerd shim, runc state, a dead FUSE mount
# and a stale registry record stay behind. FORCE=1 skips that question. The mounter
# reads the runc-shared configuration as always (RUNC_SHARED_CONFIG, else
# /etc/runc-shared/config.toml), whose state-dir holds the registry.
# Nothing is unmounted: a shared self-bind that runc-shared made (ensure-shared) may
# hold the host's mounts, and the state dir holds the registry of mounters that may
# start again.
set -euo pipefail

PREFIX=${PREFIX:-/usr/local}
DESTDIR=${DESTDIR:-}
SRC=${SRC:-bin}
HOOKS_SRC=${HOOKS_SRC:-hooks.d}
BINS=(runc-shared mount-hook mounter)

BINDIR=$PREFIX/bin
LIBDIR=$PREFIX/lib/runc-shared
HOOKSDIR=$PREFIX/share/containers/oci/hooks.d
CREATED=$DESTDIR$LIBDIR/created-dirs

die() {
	echo "install.sh: $*" >&2
	exit 1
}

# missing_dirs DIR prints DIR and each parent of it that does not exist under
# DESTDIR, deepest first (paths without DESTDIR).
missing_dirs() {
	local d=$1
	while [ "$d" != / ] && [ "$d" != . ] && [ ! -d "$DESTDIR$d" ]; do
		echo "$d"
		d=$(dirname "$d")
	done
}

do_install() {
	local f d new
	for f in "${BINS[@]}" libhostmount.so; do
		[ -f "$SRC/$f" ] || die "$SRC/$f not found: run make first"
	done
	new=$(for d in "$BINDIR" "$LIBDIR" "$HOOKSDIR"; do missing_dirs "$d"; done)
	install -d "$DESTDIR$BINDIR" "$DESTDIR$LIBDIR" "$DESTDIR$HOOKSDIR"
	# Merged over the list of an earlier install, which created what now exists.
	{
		[ ! -f "$CREATED" ] || cat "$CREATED"
		[ -z "$new" ] || echo "$new"
	} | sort -u >"$CREATED.new"
	chmod 0644 "$CREATED.new"
	mv -f "$CREATED.new" "$CREATED"
	for f in "${BINS[@]}"; do
		install -m 0755 "$SRC/$f" "$DESTDIR$BINDIR/"
	done
	install -m 0644 "$SRC/libhostmount.so" "$DESTDIR$LIBDIR/"
	# hooks.d files name the hook by absolute path: point them at PREFIX.
	for f in "$HOOKS_SRC"/*.json; do
		sed "s|\"/usr/local/bin/mount-hook\"|\"$PREFIX/bin/mount-hook\"|" "$f" >"$DESTDIR$HOOKSDIR/${f##*/}"
		chmod 0644 "$DESTDIR$HOOKSDIR/${f##*/}"
	done
}

# refuse_while_mounters_run asks the installed mounter (else the built one) which
# registered mounters still run or are paused, and stops the uninstall if any does
# or if it cannot tell.
refuse_while_mounters_run() {
	local m=$DESTDIR$BINDIR/mounter out err rc=0
	[ -x "$m" ] || m=$SRC/mounter
	if [ ! -x "$m" ]; then
		echo "install.sh: no mounter binary in $DESTDIR$BINDIR or $SRC to ask for running mounters; none was installed" >&2
		return 0
	fi
	err=$(mktemp)
	out=$("$m" list 2>"$err") || rc=$?
	if [ "$rc" -ne 0 ]; then
		{
			echo "install.sh: refusing to uninstall: \`$m list\` could not tell whether mounters run (exit $rc):"
			sed 's/^/  /' "$err"
			echo "Fix that (the runc-shared configuration, RUNC_SHARED_CONFIG, the state dir), or, when you know"
			echo "that no mounter runs, run \`make uninstall FORCE=1\`."
		} >&2
		rm -f "$err"
		exit 1
	fi
	rm -f "$err"
	[ -n "$out" ] || return 0
	{
		echo "install.sh: refusing to uninstall while these mounters are registered and still run or are paused:"
		echo "$out" | sed 's/^/  /'
		echo "Their engine runs runc-shared and mount-hook to stop and delete them; without those binaries the"
		echo "containers cannot be removed and their FUSE mounts die with nothing to clean them up."
		echo "Stop each mounter with the engine that started it, by the MOUNTER ID above:"
		echo "  docker stop ID && docker rm ID | podman stop ID && podman rm ID"
		echo "  ctr -n NAMESPACE task kill ID && ctr -n NAMESPACE task delete ID && ctr -n NAMESPACE container delete ID"
		echo "  Kubernetes: delete the mounter DaemonSet, or keep its pod off this node (a nodeSelector);"
		echo "  kubectl drain leaves DaemonSet pods in place"
		echo "  runc (ROOT as listed): runc --root ROOT kill ID KILL && runc --root ROOT delete ID"
		echo "then check with \`mounter list\` and run \`make uninstall\` again."
	} >&2
	exit 1
}

do_uninstall() {
	local f d dirs=''
	if [ "${FORCE:-}" != 1 ]; then
		refuse_while_mounters_run
	fi
	[ ! -f "$CREATED" ] || dirs=$(cat "$CREATED")
	for f in "${BINS[@]}"; do
		rm -f "$DESTDIR$BINDIR/$f"
	done
	rm -rf "$DESTDIR$LIBDIR"
	for f in "$HOOKS_SRC"/*.json; do
		rm -f "$DESTDIR$HOOKSDIR/${f##*/}"
	done
	# Deepest first; rmdir leaves a directory that holds anything else.
	if [ -n "$dirs" ]; then
		echo "$dirs" | sort -r | while IFS= read -r d; do
			rmdir "$DESTDIR$d" 2>/dev/null || true
		done
	fi
}

case "${1:-}" in
install) do_install ;;
uninstall) do_uninstall ;;
*)
	echo "usage: $0 install|uninstall   (PREFIX, DESTDIR, FORCE=1 from the environment)" >&2
	exit 2
	;;
esac
