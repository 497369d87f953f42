#!/usr/bin/env bash
# demo-csi.sh: a GlusterFS volume created and used through CSI, on this host.
#
# `mounter csi` runs as the main process of a mounter container started through
# runc-shared, where mount.glusterfs is. Driven as the external-provisioner and kubelet
# would drive it (here with `mounter csi call`), it creates a volume (a directory on
# the GlusterFS volume), stages it at kubelet's staging path and publishes it at a
# pod's volume path, both below a shared directory that stands for /var/lib/kubelet:
# the mounts, made inside the container, are on the host. A file written on the host
# lands on the brick. Then unpublish, unstage, delete, and SIGTERM.
#
# Needs root, `make deps` and `make build`. Everything lives in one temp dir; only
# PIDs started here are stopped; the host is left as found (the last step checks it).
# Exit status: 0 when every step passed.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ID=glusterfs-csi
DRIVER=glusterfs.csi.runc-shared.io

# shellcheck source=scripts/demo-lib.sh
. "$REPO/scripts/demo-lib.sh"
CSI="$TMP/csi" # socket, the server's configuration and the state dir; /run/csi inside
SOCK="$CSI/csi.sock"
STATE_DIR="$CSI/state"
FAILURE_LOGS=("$TMP/log/glusterd.log" "$TMP/bundle/log.json" "$STATE_DIR/mount-hook.log" "$TMP/bundle/init.out")

# --- 1. glusterd --------------------------------------------------------------

start_glusterd

# --- 2. the mounter -----------------------------------------------------------

step "start the mounter container through runc-shared, with mounter csi as its main process"
host_and_config
say "The server inside reads the same rule with the state dir as it sees it (/run/csi)."
mkdir -p "$CSI"
sed 's|^state-dir = .*|state-dir = "/run/csi/state"|' "$CONFIG" >"$CSI/config.toml"
chmod 0644 "$CSI/config.toml"

mounter_bundle
show "jq '...' $BUNDLE/config.json   # edits below"
jq --arg rootfs "$ROOTFS" --arg shared "$SHARED" --arg bin "$BIN" --arg csi "$CSI" --arg driver "$DRIVER" '
	.root = {path: $rootfs, readonly: false}
	| .process.terminal = false
	| .process.args = ["/mnt/mounter", "csi", "--endpoint", "unix:///run/csi/csi.sock", "--driver-name", $driver,
		"--node-id", "demo-node", "--config", "/run/csi/config.toml", "--registration-dir", ($shared + "/plugins_registry")]
	| reduce ("bounding", "effective", "permitted") as $set (.; .process.capabilities[$set] += ["CAP_SYS_ADMIN"])
	| .linux.namespaces |= map(select(.type != "network"))
	| .linux.devices += [{path: "/dev/fuse", type: "c", major: 10, minor: 229, fileMode: 438, uid: 0, gid: 0}]
	| .linux.resources.devices += [{allow: true, type: "c", major: 10, minor: 229, access: "rwm"}]
	| .mounts += [
		{destination: "/usr", type: "bind", source: "/usr", options: ["rbind", "ro"]},
		{destination: $shared, type: "bind", source: $shared, options: ["rbind"]},
		{destination: "/mnt", type: "bind", source: $bin, options: ["rbind", "ro"]},
		{destination: "/run/csi", type: "bind", source: $csi, options: ["rbind"]}]
	| .annotations = {"runc-shared.io/mounter": "glusterfs"}
' "$BUNDLE/config.json" >"$BUNDLE/config.json.new"
mv "$BUNDLE/config.json.new" "$BUNDLE/config.json"
jq -c '{annotations, mounts: [.mounts[] | select(.type == "bind")], namespaces: [.linux.namespaces[].type], rootfsPropagation: .linux.rootfsPropagation}' "$BUNDLE/config.json"

create_mounter
say "mount-hook checked that propagation is live and registered the mounter:"
run cat "$CSI/state/mounters/$ID.json"
for ((i = 0; i < 100; i++)); do
	[ -S "$SOCK" ] && break
	alive "$INIT_PID" || die "mounter csi exited: $(cat "$BUNDLE/init.out")"
	sleep 0.05
done
[ -S "$SOCK" ] || die "mounter csi did not serve on $SOCK"
say "mounter csi serves CSI on $SOCK (/run/csi/csi.sock inside) and kubelet's plugin"
say "registration on $SHARED/plugins_registry/$DRIVER-reg.sock:"
run sed -n 1,3p "$BUNDLE/init.out"
call() { run "$BIN/mounter" csi call --endpoint "unix://$SOCK" "$@"; }
callq() { # callq METHOD JSON: show the call, print and return its answer
	show "$BIN/mounter csi call --endpoint unix://$SOCK $*" >&2
	"$BIN/mounter" csi call --endpoint "unix://$SOCK" "$@"
}

# --- 3. provisioning ---------------------------------------------------------------

step "CreateVolume, as the external-provisioner calls it for a PVC"
CAP='{"access_mode": {"mode": "MULTI_NODE_MULTI_WRITER"}, "mount": {}}'
PV=pvc-6f1d2c3b-demo
OUT=$(callq CreateVolume "{\"name\": \"$PV\", \"volume_capabilities\": [$CAP], \"parameters\": {\"fstype\": \"glusterfs\", \"source\": \"$SERVER:/$VOLUME\"}}")
echo "$OUT"
VOLUME_ID=$(echo "$OUT" | jq -r .volume.volume_id)
VCTX=$(echo "$OUT" | jq -c .volume.volume_context)
say "The volume is a directory on the GlusterFS volume; its id says how to find it again:"
run ls -la "$TMP/brick"
[ -d "$TMP/brick/$PV" ] || die "no directory $PV on the brick"

# --- 4. stage and publish ------------------------------------------------------------

STAGING="$SHARED/plugins/kubernetes.io/csi/$DRIVER/0a1b2c3d/globalmount"
POD_TARGET="$SHARED/pods/6a1e2f3c-demo/volumes/kubernetes.io~csi/$PV/mount"
mkdir -p "$STAGING" "$(dirname "$POD_TARGET")"
step "NodeStageVolume at kubelet's staging path, NodePublishVolume at the pod's path"
say "The helper mount runs inside the mounter container; runc-shared made $SHARED"
say "an rshared bind there, so the mount lands on the host."
call NodeStageVolume "{\"volume_id\": \"$VOLUME_ID\", \"staging_target_path\": \"$STAGING\", \"volume_capability\": $CAP, \"volume_context\": $VCTX}"
call NodePublishVolume "{\"volume_id\": \"$VOLUME_ID\", \"staging_target_path\": \"$STAGING\", \"target_path\": \"$POD_TARGET\", \"volume_capability\": $CAP, \"volume_context\": $VCTX}"
# Each mount by its own path: $SHARED itself is a mount point only where the demo made
# it one (a host whose / is private); findmnt -R needs one.
run findmnt -o TARGET,FSTYPE,SOURCE,PROPAGATION "$STAGING"
run findmnt -n -o TARGET,FSTYPE,SOURCE,PROPAGATION "$POD_TARGET"
[ "$(findmnt -n -o FSTYPE "$POD_TARGET")" = fuse.glusterfs ] || die "$POD_TARGET is not a fuse.glusterfs mount on the host"

step "write a file at the pod's path on the host and find it on the brick"
show "echo 'hello through CSI' > $POD_TARGET/hello.txt"
echo 'hello through CSI' >"$POD_TARGET/hello.txt"
run cat "$TMP/brick/$PV/hello.txt"
[ "$(cat "$TMP/brick/$PV/hello.txt")" = 'hello through CSI' ] || die "the brick does not hold the write"
say "The node's record of the volume (what mounter status reads) and its health:"
run cat "$CSI/state/csi/$DRIVER/volumes/"*.json
call NodeGetVolumeHealth "{\"volume_id\": \"$VOLUME_ID\"}"
call NodeGetVolumeStats "{\"volume_id\": \"$VOLUME_ID\", \"volume_path\": \"$POD_TARGET\"}"

# --- 5. teardown through CSI -------------------------------------------------------------

step "NodeUnpublishVolume, NodeUnstageVolume, DeleteVolume"
call NodeUnpublishVolume "{\"volume_id\": \"$VOLUME_ID\", \"target_path\": \"$POD_TARGET\"}"
call NodeUnstageVolume "{\"volume_id\": \"$VOLUME_ID\", \"staging_target_path\": \"$STAGING\"}"
call DeleteVolume "{\"volume_id\": \"$VOLUME_ID\"}"
[ -z "$(mounts_below "$SHARED")" ] || die "mounts left below $SHARED: $(mounts_below "$SHARED")"
[ ! -e "$POD_TARGET" ] || die "$POD_TARGET is still there"
[ ! -e "$TMP/brick/$PV" ] || die "$PV is still on the brick"
! ls "$CSI/state/csi/$DRIVER/volumes/"*.json >/dev/null 2>&1 || die "records left in $CSI/state/csi"
say "no mount, no directory, no record left; the brick holds no $PV"

step "SIGTERM: mounter csi finishes its calls, removes its sockets and exits"
run "${RS[@]}" kill "$ID" TERM
wait_gone "$INIT_PID" 40 || die "mounter csi did not stop on SIGTERM"
run tail -n 2 "$BUNDLE/init.out"
[ ! -e "$SOCK" ] || die "$SOCK is still there"
STEP="teardown"
