package mounter

import "github.com/runc-shared/runc-shared/internal/registry"

// A registry record outlives its container when the poststop hook never ran
// (the mounter was killed with SIGKILL and its engine died too, the node
// rebooted with a persistent state-dir): its PID is then gone, or, worse, now
// belongs to another process. registry.Checker tells these apart from
// /proc/PID/stat (state and start time against the record's PIDStart).

// liveChecker decides from the kernel alone (/proc, then the freezer
// cgroup) and skips the checker's `runtime state` exec. Routed mounts,
// umount and status use it: a routed mount execs the runtime anyway, and `runtime
// exec` refuses a stopped container with a clear message; status shows what
// a routed mount would use. That saves a runtime start on every call, and
// runc's cost grows with the host's mounts (it reads all of mountinfo:
// `runc state` takes 4 ms at 20 mounts, 12 ms at 5,000 here), which
// `mounter status` paid once per mounter.
var liveChecker = &registry.Checker{Kernel: true}

// fullChecker also asks the runtime, for doctor, which reports created
// containers as such.
var fullChecker = registry.DefaultChecker
