package mounter

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/runc-shared/runc-shared/internal/config"
	"github.com/runc-shared/runc-shared/internal/registry"
)

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
// `runc state` reads all of mountinfo, so its cost grows with the host's
// mounts, which `mounter status` paid once per mounter.
var liveChecker = &registry.Checker{Kernel: true}

// mounters lists the registry of cfg by liveness, removing stale records.
// A record is used only as far as the configuration backs it: a running
// mounter whose rule is no longer configured, or whose runtime root is not a
// trusted directory holding its container, is held, not routed to. A
// registry that cannot be read at all is a system error (exit 2).
func mounters(cfg *config.Config, c *registry.Checker) (registry.Records, error) {
	reg := registry.New(cfg.StateDir)
	recs := c.Sort(reg)
	if errors.Is(recs.Err, registry.ErrUnreadable) {
		return recs, system("%w; mount-hook registers mounters there, so nothing can be routed until it is fixed", recs.Err)
	}
	for _, rec := range append([]*registry.Record(nil), recs.Live...) {
		if reason := unbacked(cfg, rec); reason != "" {
			recs.Hold(rec, registry.Verdict{Liveness: registry.Unknown, Reason: reason, State: "running"})
		}
	}
	return recs, nil
}

// unbacked says why a live record must not be used, or "".
func unbacked(cfg *config.Config, rec *registry.Record) string {
	if cfg.Rule(rec.Name) == nil {
		return fmt.Sprintf("its rule %q is not in %s: restart it under a configured rule, or restore the rule", rec.Name, cfg.Name())
	}
	if rec.RuntimeRoot == "" {
		return ""
	}
	if err := config.CheckDir(rec.RuntimeRoot); err != nil {
		return fmt.Sprintf("its runtime root is not trusted: %v", err)
	}
	if fi, err := os.Lstat(filepath.Join(rec.RuntimeRoot, rec.ID)); err != nil || !fi.IsDir() {
		return fmt.Sprintf("its runtime root %s holds no container %s", rec.RuntimeRoot, rec.ID)
	}
	return ""
}
