#!/usr/bin/env bash
# demo.sh: the main job of runc-shared, end to end, on this host.
#
# A GlusterFS volume is mounted on the host although the host has no business
# running mount.glusterfs: the mount runs inside a privileged "mounter"
# container started through runc-shared, and appears on the host because
# runc-shared gave the container's bind mount rshared propagation.
#
# Steps: start a private glusterd on 127.0.0.2 with a one-brick volume; start a
# mounter container through bin/runc-shared (mount-hook registers it); route
# `mount -t glusterfs` through bin/mounter; write a file on the host and find it
# on the brick; show `mounter status` and `mounter doctor`; unmount; tear down.
#
# Needs root, `make deps` (runc, jq, glusterfs-server, glusterfs-client) and
# `make build` (bin/). Everything lives in one temp dir: glusterd's working
# dir, sockets and pid files, the brick, the container's rootfs and state, the
# shared mount point. Only PIDs started here are stopped. The host is left as
# found; the last step checks it. Exit status: 0 when every step passed.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ID=glusterfs-mounter

# shellcheck source=scripts/demo-lib.sh
. "$REPO/scripts/demo-lib.sh"
STATE_DIR="$TMP/state"
FAILURE_LOGS=("$TMP/log/glusterd.log" "$TMP/bundle/log.json" "$STATE_DIR/mount-hook.log")

# --- 1. glusterd --------------------------------------------------------------

start_glusterd

# --- 2. the mounter -----------------------------------------------------------

step "start the mounter container through runc-shared"
host_and_config

mounter_bundle
show "jq '...' $BUNDLE/config.json   # edits below"
jq --arg rootfs "$ROOTFS" --arg shared "$SHARED" '
	.root = {path: $rootfs, readonly: false}
	| .process.terminal = false
	| .process.args = ["sleep", "infinity"]
	| reduce ("bounding", "effective", "permitted") as $set (.; .process.capabilities[$set] += ["CAP_SYS_ADMIN"])
	| .linux.namespaces |= map(select(.type != "network"))
	| .linux.devices += [{path: "/dev/fuse", type: "c", major: 10, minor: 229, fileMode: 438, uid: 0, gid: 0}]
	| .linux.resources.devices += [{allow: true, type: "c", major: 10, minor: 229, access: "rwm"}]
	| .mounts += [
		{destination: "/usr", type: "bind", source: "/usr", options: ["rbind", "ro"]},
		{destination: $shared, type: "bind", source: $shared, options: ["rbind"]}]
	| .annotations = {"runc-shared.io/mounter": "glusterfs"}
' "$BUNDLE/config.json" >"$BUNDLE/config.json.new"
mv "$BUNDLE/config.json.new" "$BUNDLE/config.json"
jq -c '{annotations, mounts: [.mounts[] | select(.type == "bind")], namespaces: [.linux.namespaces[].type], rootfsPropagation: .linux.rootfsPropagation}' "$BUNDLE/config.json"

create_mounter
say "runc-shared rewrote the spec: the bind and the root are now rshared, and mount-hook is injected:"
jq -c '{mounts: [.mounts[] | select(.destination == $shared)], rootfsPropagation: .linux.rootfsPropagation, hooks: (.hooks | map_values([.[].path]))}' \
	--arg shared "$SHARED" "$BUNDLE/config.json"
say "mount-hook checked at createRuntime that propagation is live and registered the mounter:"
run cat "$TMP/state/mounters/$ID.json"

# --- 3. the routed mount -------------------------------------------------------

step "route mount -t glusterfs through mounter"
say "glusterfs is in the rule's fstypes, so mounter runs the mount inside the live mounter"
say "(runc --root ... exec $ID mount ...) and checks that it shows up on the host."
run "$BIN/mounter" --config "$CONFIG" mount -t glusterfs "$SERVER:/$VOLUME" "$TARGET"
say "On the host, $TARGET is a GlusterFS (FUSE) mount; its daemon runs in the mounter:"
run findmnt -o TARGET,FSTYPE,SOURCE,PROPAGATION "$TARGET"
[ "$(findmnt -n -o FSTYPE "$TARGET")" = fuse.glusterfs ] || die "$TARGET is not a fuse.glusterfs mount on the host"

# --- 4. data path ----------------------------------------------------------------

step "write a file from the host and find it on the brick"
show "echo 'hello from the host' > $TARGET/hello.txt"
echo 'hello from the host' >"$TARGET/hello.txt"
run ls -l "$TMP/brick"
run cat "$TMP/brick/hello.txt"
[ "$(cat "$TMP/brick/hello.txt")" = 'hello from the host' ] || die "the brick does not hold the host's write"

# --- 5. status and doctor ----------------------------------------------------------

step "show mounter status and mounter doctor"
run "$BIN/mounter" --config "$CONFIG" status
run "$BIN/mounter" --config "$CONFIG" doctor

# --- 6. unmount ------------------------------------------------------------------

step "unmount"
say "A host umount removes the mount in the mounter too (propagation goes both ways),"
say "and the glusterfs daemon in the mounter exits."
run "$BIN/mounter" --config "$CONFIG" umount "$TARGET"
if findmnt -n "$TARGET" >/dev/null; then
	die "$TARGET is still mounted"
fi
say "$TARGET is no longer a mount point"
STEP="teardown"
