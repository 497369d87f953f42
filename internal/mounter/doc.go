// Package mounter is the routing client: `mounter mount -t TYPE SRC TGT` (and
// the mount(8) helper form, `mount.TYPE SRC TGT -o OPTS`) runs the mount
// inside the live mounter container of a [[mounter]] rule that routes TYPE,
// through the delegate runtime's `exec`, then checks that the mount arrived on
// the host. Every other type goes to plain /bin/mount by exec, so the exit
// code and messages are mount(8)'s own.
//
// The steps of a routed mount, each in its own small file:
//
//   - args.go: the three calling forms (CLI, kubelet's mounter path, mount(8)
//     helper) into one Invocation;
//   - live.go: which registry records still name a running mounter (a PID
//     can die without the poststop hook, and PIDs are reused);
//   - translate.go: the host target seen from inside the mounter, through the
//     bind mounts of its spec;
//   - exec.go: `<runtime> [--root R] exec ID mount ...`, output captured in
//     memory files, never pipes (see there why);
//   - verify.go: polling the host for the new mount at the target (statmount
//     of the mount stack there, mountinfo where the kernel lacks it);
//   - fastroute.go: the mount sent to the mounter's own server (`mounter
//     csi`) over its socket instead of the runtime's exec, when it runs one;
//   - records.go: the record of each routed mount, for recovery, and the
//     lock of its target.
//
// `mounter recover` (recover.go) makes the recorded mounts of live mounters
// again after a mounter restarted; `mounter status` (status.go,
// csi_status.go) shows them, what recovery could not do, and the processes
// whose private binds cannot see a recovered mount.
//
// # Runtime roots
//
// The exec runs the configured runtime (`runtime` in the configuration,
// never the program a record names) with the --root the engine gave it,
// which mount-hook copies into the record from the wrapper's argv; a root
// that is not a trusted directory holding the container keeps the record
// from being used. So the exec reaches the container whichever engine
// started it:
//
//   - Docker 20.10 through containerd-shim: <exec-root>/runtime-runc/moby,
//     by default /run/docker/runtime-runc/moby, whatever the runtime's name
//     in daemon.json (seen with a runtime named "shared");
//   - containerd: /run/containerd/runc/<namespace>: /run/containerd/runc/k8s.io
//     for Kubernetes (CRI), /run/containerd/runc/default for ctr;
//   - Podman and CRI-O pass no --root: runc's default, /run/runc when root.
//     Their hook comes from hooks.d and learns no root, which records "" and
//     means that same default.
//
// # The helper link
//
// mount(8) runs /sbin/mount.TYPE for a type it does not handle itself, so
//
//	ln -s /usr/local/bin/mounter /sbin/mount.glusterfs
//
// routes the host's own `mount -t glusterfs` and fstab entries. Where /sbin
// is read-only (/usr on Fedora CoreOS and Flatcar), use kubelet's
// --experimental-mounter-path=/usr/local/bin/mounter, or call `mounter
// mount`. In the helper form an unrouted type goes to `mount -i`, which does
// not call mount.TYPE again, so the link cannot loop.
//
// Nothing here holds a global lock: concurrent routed mounts (kubelet mounts
// many volumes at once) share no state but the registry, whose readers and
// the stale-record removal tolerate each other. One target is worked on by
// one call at a time: mount, umount and recover of a routed mount take the
// lock of its target (lockTarget), so that a recovery does not make again
// a mount unmounted meanwhile.
package mounter
