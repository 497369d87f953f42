// Package hostmount is the one place in runc-shared that reads mount tables
// and does mount work on the host: path checks that compare whole components
// (Within), bind sources resolved against an allowlist (ResolveSource,
// Allowlist), staging and shared mounts (Stage, EnsureShared), mount table
// queries of this process (MountOf, MountsAt, MountsUnder, IsShared) and of
// another (Table; ParseTable for mountinfo text), and dead FUSE mounts
// (ScanFUSE, Detach).
//
// It never logs (it returns what it did or found, and the caller logs),
// never stats a mount that may be a dead or hung FUSE mount but in ScanFUSE,
// under a timeout, and keeps no mount table beyond the one a caller holds in
// a Table.
//
// # How a query reaches the mount table
//
// A query asks the kernel about the mounts it needs where it can, and reads
// /proc/<pid>/mountinfo only where it cannot; docs/benchmarks.md has what
// each way costs and the benchmarks that measure it.
//
// MountOf (and so IsShared and EnsureShared) first tries
// statx(STATX_MNT_ID_UNIQUE) and statmount(2) (Linux 6.8+), whose cost does
// not grow with the number of mounts, and reads mountinfo only when that
// fails: an older kernel, a missing path, a path not in the dentry cache, a
// symlink on the way. A Table does the same in another process's namespace
// (Linux 6.11+, where statmount takes a namespace), else reads
// /proc/<pid>/mountinfo, parsed at most once for all its questions.
// Table.IsMountPoint asks only that file, up to the first match, so it never
// touches the file system at the path. MountsAt (the stack of mounts on one
// mount point) works like MountOf, except for a path not in the dentry cache
// (a mount's target unmounted since, evicted by memory pressure or
// drop_caches; a path that is gone): it lists the mounts under the mount of
// the path's nearest cached ancestor, and reads mountinfo only when that
// mount is "/".
//
// MountsUnder (and so ScanFUSE) lists the mounts below each
// path with listmount(2) and statmounts each, when every path is a mount
// point other than "/" (ensure-shared makes a rule path one). listmount
// still walks every mount of the namespace in the kernel, so its cost grows
// with them, but far more slowly than reading mountinfo. Otherwise it reads
// mountinfo once: a path that is not a mount point has its mounts hanging off
// the containing mount among all that mount's other children, each of which
// would cost a statmount.
//
// A mountinfo read parses /proc/<pid>/mountinfo once, from the start, and
// filters each entry as it is parsed (mountinfo.FilterFunc): time is O(n) in
// the mounts of the namespace, memory O(k) in the entries that pass the
// filter (a handful: the ancestors of a path, or the FUSE mounts under a
// prefix); a Table keeps every entry, for the many questions of one check.
// Nothing else here caches: the mount table changes under us.
//
// # When not to read mountinfo
//
//   - In a loop over many paths: read once with a filter that selects all of
//     them, or hold a Table, not once per path.
//   - To learn whether a single, trusted path is a mount point on a hot path:
//     mountinfo.MountedFast (openat2 RESOLVE_NO_XDEV) costs two syscalls.
//   - With an unresolved path: mountinfo holds canonical paths relative to the
//     reading process's root. Resolve symlinks first (ResolveSource), and read
//     /proc/<pid>/mountinfo (TableOf) for another process's view, since a
//     container sees other paths than the host.
//   - Never replace it with stat(2) when a mount may be a dead or hung FUSE
//     mount: reading mountinfo never touches the mounted file systems, whereas
//     stat/statfs of a dead FUSE mount fails with ENOTCONN and of a hung one
//     blocks. Only ScanFUSE stats mount points, each under a timeout. (The
//     statx fast path of MountOf keeps to that rule: it resolves with
//     RESOLVE_CACHED and AT_STATX_DONT_SYNC, so it never asks a file system.)
package hostmount
