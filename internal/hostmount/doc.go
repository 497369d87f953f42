// Package hostmount is the one place in runc-shared that does mount work on the
// host and answers questions from mountinfo.
//
// It offers:
//
//   - component-wise path checks (Within, WithinAny): "/var/lib/kubelet-evil"
//     is not within "/var/lib/kubelet";
//   - safe resolution of bind-mount sources against an allowlist
//     (ResolveSource, OpenResolved, ResolveAndOpen), with the sentinels
//     ErrNotAllowlisted ("not ours, leave it alone") and ErrOutsideAllowlist
//     ("claims an allowlisted path but resolves outside it: refuse");
//   - mountinfo queries (MountOf, MountOfIn, MountOfReader, MountsAt,
//     MountsUnder, PeerGroup, Master, IsShared, RequireShared, IsMountPoint);
//   - making a host path a shared mount once, under a file lock, however many
//     processes ask at the same time (EnsureShared);
//   - finding and detaching dead FUSE mounts (DeadFUSEMounts, ScanFUSE, Detach,
//     Unmount).
//
// The package logs nothing: it returns what it did (EnsureShared's changed) or
// found, and the caller logs.
//
// # Cost of a mountinfo query
//
// Every query reads /proc/<pid>/mountinfo once, from the start, and filters each
// entry as it is parsed (mountinfo.FilterFunc), so time is O(n) in the number of
// mounts of the namespace and memory is O(k) in the entries that pass the
// filter (a handful: the ancestors of a path, or the FUSE mounts under a
// prefix). With 5,000 mounts (about 550 kB of text) one query takes about
// 2.5 ms on a 2-core VM (BenchmarkMountOfReader5000). Nothing here caches:
// the mount table changes under us.
//
// MountOf (and so IsShared, RequireShared, EnsureShared) first tries
// statx(STATX_MNT_ID_UNIQUE) and statmount(2) (Linux 6.8+), about 5 µs
// whatever the number of mounts (BenchmarkMountOfHost), and reads mountinfo
// only when that fails: an older kernel, a missing path, a path not in the
// dentry cache, a symlink on the way. MountOfIn keeps reading
// /proc/<pid>/mountinfo: statmount answers for the caller's namespace only.
// MountsAt (the stack of mounts on one mount point) works the same way.
//
// MountsUnder (and so ScanFUSE, DeadFUSEMounts) lists the mounts below each
// path with listmount(2) and statmounts each, when every path is a mount
// point other than "/" (ensure-shared makes a rule path one when it is not
// on a shared mount yet; on a systemd host, where / is shared, it is left
// alone and often is not one): 18 µs for a few mounts under the path, 75 µs
// warm (350–760 µs on a process's first call) with 5,000 unrelated mounts on
// the host, against 6 ms for mountinfo (BenchmarkMountsUnder, this VM).
// Otherwise it reads mountinfo once: a path that is not a mount point has its
// mounts hanging off the containing mount among all that mount's other
// children, each of which would cost a statmount.
//
// # When not to read mountinfo
//
//   - In a loop over many paths: read once with a filter that selects all of
//     them, not once per path.
//   - To learn whether a single, trusted path is a mount point on a hot path:
//     mountinfo.MountedFast (openat2 RESOLVE_NO_XDEV) costs two syscalls.
//   - With an unresolved path: mountinfo holds canonical paths relative to the
//     reading process's root. Resolve symlinks first (ResolveSource), and read
//     /proc/<pid>/mountinfo (MountOfIn) for another process's view, since a
//     container sees other paths than the host.
//   - Never replace it with stat(2) when a mount may be a dead or hung FUSE
//     mount: reading mountinfo never touches the mounted file systems, whereas
//     stat/statfs of a dead FUSE mount fails with ENOTCONN and of a hung one
//     blocks. Only ScanFUSE stats mount points, each under a timeout. (The
//     statx fast path of MountOf keeps to that rule: it resolves with
//     RESOLVE_CACHED and AT_STATX_DONT_SYNC, so it never asks a file system.)
package hostmount
