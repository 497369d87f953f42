#!/usr/bin/env bash
# demo-lib.sh: what scripts/demo.sh and scripts/demo-csi.sh share, sourced by both after
# they set REPO and ID (the container's id): the settings, the transcript helpers, the
# prerequisites and the before-snapshot of the host, the temporary directory, the
# teardown with the host check, start_glusterd, the first step of both, and the
# parts of the second: the host side and the configuration, the mounter's rootfs and
# spec, its create and start.

export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
BIN="$REPO/bin"
SERVER=127.0.0.2 # glusterd refuses 127.0.0.1 and localhost for bricks
VOLUME=demo
STEP="checking prerequisites"

# --- transcript helpers ------------------------------------------------------

bold=$'\e[1m' dim=$'\e[2m' reset=$'\e[0m'
[ -t 1 ] || bold='' dim='' reset=''

step() { # step TITLE: a numbered heading
	STEP=$1
	STEPNO=$((${STEPNO:-0} + 1))
	printf '\n%s==> %d. %s%s\n' "$bold" "$STEPNO" "$1" "$reset"
}
say() { printf '%s    %s%s\n' "$dim" "$*" "$reset"; } # an explanation
show() { printf '%s$ %s%s\n' "$bold" "$*" "$reset"; } # a command, before it runs
run() { # run CMD...: show it, run it
	show "$*"
	"$@"
}
die() {
	printf 'demo: %s\n' "$*" >&2
	exit 1
}

# --- prerequisites -----------------------------------------------------------

[ "$(id -u)" = 0 ] || die "run as root (it mounts, runs runc and glusterd): sudo make demo"
for b in runc-shared mount-hook mounter; do
	[ -x "$BIN/$b" ] || die "$BIN/$b is missing: run make first"
done
for c in runc jq glusterd gluster mount.glusterfs findmnt; do
	command -v "$c" >/dev/null || die "$c not found: run make deps (scripts/deps.sh base gluster)"
done
[ "$(readlink /bin)" = usr/bin ] || die "the mounter rootfs borrows the host's /usr: this needs a merged-usr host (/bin -> usr/bin), as Debian 12 is"
if (exec 3<>"/dev/tcp/$SERVER/24007") 2>/dev/null; then
	die "$SERVER:24007 is taken: another glusterd runs; stop it first (this demo starts its own)"
fi

# What the host looks like before, to check at the end that it is unchanged.
GLUSTER_DIRS=(/var/run/gluster /var/log/glusterfs /var/lib/glusterd)
snapshot_gluster() { find "${GLUSTER_DIRS[@]}" -printf '%p %y %s\n' 2>/dev/null | sort; }
snapshot_mounts() { # the host's mounts outside /tmp (tests of other packages mount there)
	awk '$5 !~ "^/tmp/" { print $5, $9, $10 }' /proc/self/mountinfo | sort
}
GLUSTER_BEFORE=$(snapshot_gluster)
MOUNTS_BEFORE=$(snapshot_mounts)

# Short path: glusterd puts unix sockets (at most 108 bytes) below it.
TMP=$(mktemp -d /tmp/rs-demo.XXXXXX)
SHARED="$TMP/shared" # stands for /var/lib/kubelet
TARGET="$SHARED/vol"
GLUSTERD_PID='' BRICK_PID='' INIT_PID='' SHARED_MOUNTED=''
RUNC_ROOT="$TMP/runc"
CONFIG="$TMP/config.toml"
RS=("$BIN/runc-shared" --root "$RUNC_ROOT" --runc-shared-config="$CONFIG")

# --- helpers the teardown uses ------------------------------------------------

alive() { [ -n "$1" ] && [ -e "/proc/$1" ] && ! grep -q '^[^)]*) [ZX]' "/proc/$1/stat" 2>/dev/null; }

wait_gone() { # wait_gone PID SECONDS
	local i
	for ((i = 0; i < $2 * 20; i++)); do
		alive "$1" || return 0
		sleep 0.05
	done
	return 1
}

mounts_below() { # mount points below $1, deepest first
	awk -v p="$1/" 'index($5, p) == 1 { print $5 }' /proc/self/mountinfo | awk '{ print length, $0 }' | sort -rn | cut -d' ' -f2-
}

leftover_procs() { # processes with $TMP on their command line or as their root
	local p cmd root
	for p in /proc/[0-9]*; do
		[ "${p#/proc/}" = $$ ] && continue
		cmd=$(tr '\0' ' ' 2>/dev/null <"$p/cmdline") || continue
		root=$(readlink "$p/root" 2>/dev/null) || root=''
		case "$cmd $root" in *"$TMP"*) alive "${p#/proc/}" && echo "${p#/proc/} $cmd" ;; esac
	done
}

# The gluster CLI also writes its first-start files (geo-replication/gsyncd_template.conf)
# below /var/lib/glusterd: it runs in glusterd's mount namespace too.
gluster_cli() {
	nsenter --target "$GLUSTERD_PID" --mount -- gluster --mode=script --glusterd-sock="$TMP/run/glusterd.socket" --log-file="$TMP/log/cli.log" "$@"
}

# share_dir makes $SHARED lie on a shared mount, as /var/lib/kubelet must; it sets
# SHARED_MOUNTED when it made a mount the teardown removes.
share_dir() {
	if findmnt -n -o PROPAGATION --target "$SHARED" | grep -q '^shared'; then
		# A systemd host: / is shared, and so is every plain directory on it. A
		# self-bind there would join /'s peer group and every mount below it would
		# show twice (once hidden under the bind, on /); kubelet leaves the path as
		# it is too.
		say "It is shared already (this host's / is shared, as systemd leaves it): nothing to do."
	else
		say "This host's / is private, so the demo makes it a shared mount point of its own,"
		say "as kubelet does for /var/lib/kubelet."
		run mount --bind "$SHARED" "$SHARED"
		SHARED_MOUNTED=1
		run mount --make-rshared "$SHARED"
	fi
}

# host_and_config puts $SHARED on a shared mount and writes $CONFIG: one rule that
# routes glusterfs to the container annotated runc-shared.io/mounter=glusterfs, with
# runc-shared's state in $STATE_DIR.
host_and_config() {
	say "The host side: $SHARED stands for /var/lib/kubelet, which must lie on a shared mount."
	mkdir -p "$SHARED" "$TARGET"
	share_dir

	say "The configuration: one rule routes glusterfs to the container annotated"
	say "runc-shared.io/mounter=glusterfs and propagates $SHARED."
	cat >"$CONFIG" <<EOF
runtime = "runc"
state-dir = "$STATE_DIR"

[[mounter]]
name = "glusterfs"
fstypes = ["glusterfs"]
propagate = ["$SHARED"]

[mounter.match]
annotations = { "runc-shared.io/mounter" = "glusterfs" }
EOF
	chmod 0644 "$CONFIG"
	run cat "$CONFIG"
}

# create_mounter creates and starts the mounter container of $BUNDLE through
# runc-shared as an engine does; it sets INIT_PID.
create_mounter() {
	say "Created as an engine does it (containerd-shim: create, then start). The container's"
	say "stdio goes to a file, so nothing holds this terminal."
	show "${RS[*]} --log $BUNDLE/log.json --log-format json create --bundle $BUNDLE --pid-file $BUNDLE/init.pid $ID"
	"${RS[@]}" --log "$BUNDLE/log.json" --log-format json create --bundle "$BUNDLE" --pid-file "$BUNDLE/init.pid" "$ID" \
		</dev/null >"$BUNDLE/init.out" 2>&1 || {
		cat "$BUNDLE/init.out" >&2
		die "runc-shared create failed"
	}
	INIT_PID=$(cat "$BUNDLE/init.pid")
	run "${RS[@]}" start "$ID"
}

# mounter_bundle makes the mounter's rootfs and a default runc spec for it; it sets
# ROOTFS and BUNDLE, and each demo then edits $BUNDLE/config.json for its container.
mounter_bundle() {
	say "The rootfs borrows the host's /usr read-only (a bind mount in config.json, so"
	say "nothing is mounted on the host): mount.glusterfs and glusterfs exist inside."
	ROOTFS="$TMP/rootfs"
	mkdir -p "$ROOTFS"/{etc,usr,proc,sys,dev,tmp,root,run/gluster,var/log/glusterfs,var/lib/glusterd,var/tmp}
	chmod 1777 "$ROOTFS/tmp" "$ROOTFS/var/tmp"
	for l in bin sbin lib lib64; do ln -s "usr/$l" "$ROOTFS/$l"; done
	ln -s ../run "$ROOTFS/var/run"
	ln -s ../proc/self/mounts "$ROOTFS/etc/mtab"
	for f in passwd group nsswitch.conf hosts ld.so.cache; do
		[ -e "/etc/$f" ] && cp "/etc/$f" "$ROOTFS/etc/$f"
	done
	BUNDLE="$TMP/bundle"
	mkdir -p "$BUNDLE"
	runc spec --bundle "$BUNDLE"
	say "The spec: host network (to reach $SERVER), /dev/fuse, CAP_SYS_ADMIN, a bind of"
	say "$SHARED, and only the match annotation: runc-shared does the rest."
}

# --- teardown, also on failure ------------------------------------------------

# teardown runs on every exit: it removes what the demo started and mounted, in
# reverse order, then checks that the host is as it was. Each demo sets STATE_DIR
# (runc-shared's state dir, whose mounts go too) and FAILURE_LOGS (the files whose
# last lines a failure shows).
STATE_DIR="$TMP/state"
FAILURE_LOGS=()
teardown() {
	local rc=$?
	set +e
	trap - EXIT INT TERM
	if [ "$rc" != 0 ]; then
		printf '\n%sdemo FAILED (exit %d) during: %s%s\n' "$bold" "$rc" "$STEP" "$reset" >&2
		[ -n "$FAILED_CMD" ] && printf 'failed command: %s\n' "$FAILED_CMD" >&2
		for f in "${FAILURE_LOGS[@]}"; do
			[ -s "$f" ] && { echo "--- last lines of $f" >&2; tail -n 8 "$f" >&2; }
		done
	fi
	printf '\n%s==> teardown%s\n' "$bold" "$reset"
	# FUSE mounts first: their daemons live in the mounter.
	for m in $(mounts_below "$SHARED"); do
		say "unmounting $m"
		umount "$m" 2>/dev/null || umount -l "$m"
	done
	if [ -n "$INIT_PID" ] || [ -d "$RUNC_ROOT/$ID" ]; then
		say "stopping the mounter container (its poststop hook removes the registry record)"
		"${RS[@]}" kill "$ID" KILL >/dev/null 2>&1
		wait_gone "$INIT_PID" 10
		"${RS[@]}" delete --force "$ID" >/dev/null 2>&1 || runc --root "$RUNC_ROOT" delete --force "$ID" >/dev/null 2>&1
		if alive "$INIT_PID"; then
			kill -KILL "$INIT_PID" 2>/dev/null
			wait_gone "$INIT_PID" 5
		fi
	fi
	if [ -n "$GLUSTERD_PID" ] && alive "$GLUSTERD_PID"; then
		say "stopping volume $VOLUME, its brick (pid ${BRICK_PID:-?}) and glusterd (pid $GLUSTERD_PID)"
		gluster_cli volume stop "$VOLUME" force >/dev/null 2>&1
		gluster_cli volume delete "$VOLUME" >/dev/null 2>&1
	fi
	if alive "$BRICK_PID" && tr '\0' ' ' <"/proc/$BRICK_PID/cmdline" | grep -qF "$TMP/brick"; then
		kill -TERM "$BRICK_PID"
		wait_gone "$BRICK_PID" 5 || kill -KILL "$BRICK_PID"
	fi
	if alive "$GLUSTERD_PID"; then
		kill -TERM "$GLUSTERD_PID"
		wait_gone "$GLUSTERD_PID" 10 || {
			kill -KILL "$GLUSTERD_PID"
			wait_gone "$GLUSTERD_PID" 5
		}
	fi
	wait 2>/dev/null
	# runc-shared keeps <state-dir>/staging as an unbindable mount point of its own (the
	# pinned bind sources pass through it); the demo's state dir is temporary.
	for m in $(mounts_below "$STATE_DIR"); do
		umount -l "$m" 2>/dev/null
	done
	if [ -n "$SHARED_MOUNTED" ]; then
		umount -l "$SHARED"
	fi
	local left
	left=$(leftover_procs)
	if [ -n "$left" ]; then
		echo "demo: processes started by the demo are still running (not killed: check them):" >&2
		echo "$left" >&2
	fi
	if [ -z "$(mounts_below "$TMP")" ] && ! awk -v p="$TMP" '$5 == p' /proc/self/mountinfo | grep -q .; then
		rm -rf "$TMP"
	else
		echo "demo: leaving $TMP in place, something is still mounted below it:" >&2
		mounts_below "$TMP" >&2
		rc=1
	fi
	printf '\n%s==> host check%s\n' "$bold" "$reset"
	local bad=0
	[ -z "$left" ] || bad=1
	if [ "$(snapshot_gluster)" != "$GLUSTER_BEFORE" ]; then
		echo "FAIL: ${GLUSTER_DIRS[*]} changed:" >&2
		diff <(echo "$GLUSTER_BEFORE") <(snapshot_gluster) >&2
		bad=1
	fi
	if [ "$(snapshot_mounts)" != "$MOUNTS_BEFORE" ]; then
		echo "FAIL: the host's mount table changed:" >&2
		diff <(echo "$MOUNTS_BEFORE") <(snapshot_mounts) >&2
		bad=1
	fi
	if [ "$bad" = 0 ]; then
		say "the host is as it was: same mounts outside /tmp, ${GLUSTER_DIRS[*]} unchanged, no process left"
	elif [ "$rc" = 0 ]; then
		rc=1
	fi
	if [ "$rc" = 0 ]; then
		printf '\n%sdemo passed%s\n' "$bold" "$reset"
	fi
	exit "$rc"
}
FAILED_CMD=''
trap 'FAILED_CMD=$BASH_COMMAND' ERR
trap teardown EXIT
trap 'exit 130' INT TERM

# start_glusterd is the first step of both demos: a private glusterd on $SERVER with a
# one-brick volume; it sets GLUSTERD_PID and BRICK_PID.
start_glusterd() {

step "start a private glusterd on $SERVER with a one-brick volume"
say "glusterd gets its own working dir, run dir, CLI socket, pid file and log below $TMP."
say "Some paths are compiled into glusterd (the brick's socket and log, its first-start"
say "set-up: geo-replication, snaps, ss_brick): it runs in a mount namespace of its own"
say "where an empty tmpfs covers ${GLUSTER_DIRS[*]}, so the host's copies stay untouched."
mkdir -p "$TMP"/{glusterd,run,log,brick}
cat >"$TMP/glusterd.vol" <<EOF
volume management
    type mgmt/glusterd
    option working-directory $TMP/glusterd
    option run-directory $TMP/run
    option glusterd-sockfile $TMP/run/glusterd.socket
    option transport-type socket
    option transport.socket.bind-address $SERVER
    option transport.socket.listen-port 24007
    option transport.socket.read-fail-log off
    option ping-timeout 0
    option event-threads 1
    option max-port 60999
end-volume
EOF
# unshare execs sh, which execs glusterd: $! is glusterd's PID. The namespace and its
# tmpfs mounts go away with glusterd and its brick; none of them reaches the host
# (private propagation).
# A directory the host lacks is made inside a tmpfs over its nearest existing parent,
# so glusterd cannot create it on the host either.
HIDE=''
for d in "${GLUSTER_DIRS[@]}"; do
	if [ -d "$d" ]; then
		HIDE="$HIDE mount -t tmpfs -o mode=0755 rs-demo-gluster $(readlink -f "$d") &&"
		continue
	fi
	p=$(dirname "$d")
	until [ -d "$p" ]; do p=$(dirname "$p"); done
	HIDE="$HIDE mount -t tmpfs -o mode=0755 rs-demo-gluster $(readlink -f "$p") && mkdir -p $d &&"
done
show "unshare --mount --propagation private sh -c '$HIDE exec glusterd -N -f $TMP/glusterd.vol ...' &"
unshare --mount --propagation private -- sh -c "$HIDE exec \"\$@\"" glusterd \
	glusterd -N -f "$TMP/glusterd.vol" -p "$TMP/run/glusterd.pid" -l "$TMP/log/glusterd.log" \
	</dev/null >"$TMP/log/glusterd.out" 2>&1 &
GLUSTERD_PID=$!
for ((i = 0; i < 300; i++)); do
	alive "$GLUSTERD_PID" || die "glusterd exited during startup (see $TMP/log/glusterd.log)"
	gluster_cli pool list >/dev/null 2>&1 && break
	sleep 0.1
done
gluster_cli pool list >/dev/null || die "glusterd did not answer within 30 s"
say "glusterd (pid $GLUSTERD_PID) answers on $TMP/run/glusterd.socket"
show "gluster volume create $VOLUME $SERVER:$TMP/brick force   # in glusterd's namespace"
gluster_cli volume create "$VOLUME" "$SERVER:$TMP/brick" force
show "gluster volume start $VOLUME"
gluster_cli volume start "$VOLUME"
pidfile=$(ls "$TMP/run/vols/$VOLUME/"*.pid)
BRICK_PID=$(cat "$pidfile")
say "volume $SERVER:/$VOLUME is served by brick process $BRICK_PID from $TMP/brick"

}
