package mounter

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/runc-shared/runc-shared/internal/csi"
	"github.com/runc-shared/runc-shared/internal/hostmount"
	"github.com/runc-shared/runc-shared/internal/mountrec"
	"github.com/runc-shared/runc-shared/internal/registry"
)

// csiTable writes to out the recorded CSI volumes and routed mounts: each path with
// the state of its mount, the live mounter of its rule, what recovery could
// not do, and per volume the consumers that cannot see a recovered mount.
// It returns the recorded publish targets, which the table of dead mounts
// must not advise to detach: pods' binds copy them, and recovery binds on
// top of them.
func (m *Mounter) csiTable(out io.Writer, stateDir string, live []*registry.Record) map[string]bool {
	vols, routed, _ := m.readRecords(stateDir)
	recorded := map[string]bool{}
	if len(vols)+len(routed) == 0 {
		return recorded
	}
	mounterOf := func(rule string) string {
		if rec := newestLive(live, rule); rec != nil {
			return rec.ID
		}
		return "(none live)"
	}
	fmt.Fprintln(out)
	w := newTable(out, "RECORDED MOUNT\tRECORD\tRULE\tMOUNTER\tSTATE")
	for _, p := range recordedMounts(vols, routed) {
		state, err := csi.MountState(p.Path)
		if err != nil {
			state = "unknown: " + err.Error()
		}
		fmt.Fprintf(w, "%s\t%s %s\t%s\t%s\t%s\n", p.Path, p.Record, p.Role, p.Rule, mounterOf(p.Rule), state)
		if p.Role == "(target)" {
			recorded[p.Path] = true
		}
	}
	w.Flush()
	for _, v := range vols {
		if rc := v.Recovery; rc != nil {
			fmt.Fprintf(out, "volume %s: recovery failed %s\n", v.VolumeID, describeRecovery(rc))
		}
	}
	for _, r := range routed {
		if rc := r.Recovery; rc != nil {
			fmt.Fprintf(out, "routed mount at %s: recovery failed %s\n", r.Target, describeRecovery(rc))
		}
	}
	private := scanConsumers("/proc", hostmount.TableOf, volumeDevices(vols))
	for _, v := range vols {
		for _, c := range private["volume "+v.VolumeID] {
			fmt.Fprintf(out, "volume %s: process %d (%s) binds it privately at %s: it cannot see a recovered mount; restart it, and bind the volume with mountPropagation: HostToContainer (rslave)\n",
				v.VolumeID, c.PID, c.Comm, c.Mountpoint)
		}
	}
	return recorded
}

// describeRecovery says how often recovery failed, why, and what happens
// next.
func describeRecovery(rc *mountrec.Recovery) string {
	var next string
	switch until := time.Until(rc.Next); {
	case rc.Next.IsZero():
		next = "waits for the next start of its server or mounter recover"
	case until < 0:
		next = "next attempt due"
	default:
		next = "next attempt in " + until.Round(time.Second).String()
	}
	return fmt.Sprintf("%d times, last %s ago: %s; %s", rc.Attempts, age(rc.Last), rc.Error, next)
}

// consumer is a process whose mount namespace binds a volume privately.
type consumer struct {
	PID        int
	Comm       string
	Mountpoint string
}

// volumeDevices maps the devices of the mounts stacked at the volumes'
// paths on the host to the volumes' keys ("volume ID").
func volumeDevices(vols []*mountrec.Record) map[uint64]string {
	devOf := map[uint64]string{}
	for _, p := range recordedMounts(vols, nil) {
		ms, _ := hostmount.MountsAt(p.Path) // none when it cannot tell
		for _, mi := range ms {
			devOf[unix.Mkdev(uint32(mi.Major), uint32(mi.Minor))] = p.Key
		}
	}
	return devOf
}

// scanConsumers finds, per volume, the mount namespaces (one process
// each) that hold a bind of the volume whose propagation is private: a
// mount made on the host later never reaches such a bind
// (mount_namespaces(7), "Shared subtrees"), so recovery cannot either. A
// bind is the volume's when its device is one of the devices stacked at
// the volume's paths on the host: the dead mount a publish target keeps
// and the live one recovery stacked on it. Binds that are shared or slaves
// (master:N) receive what recovery mounts and are not listed. It reads
// /proc/PID/ns/mnt of each process and the mount table of one process per
// namespace (parsing only the lines of the volumes' devices), and never
// statfs'es a mount (a dead one would fail, a hung one block).
// The processes are those under proc, but this one; tableOf gives a
// process's mount table, devOf the volumes' devices (volumeDevices).
func scanConsumers(proc string, tableOf func(pid int) *hostmount.Table, devOf map[uint64]string) map[string][]consumer {
	out := map[string][]consumer{}
	if len(devOf) == 0 {
		return out
	}
	volume := func(dev uint64) bool { _, ok := devOf[dev]; return ok }
	self, _ := os.Readlink(filepath.Join(proc, "self", "ns", "mnt"))
	seen := map[string]bool{self: true} // the host's own mounts are the volumes themselves
	for pid, dir := range pids(proc) {
		ns, err := os.Readlink(filepath.Join(dir, "ns", "mnt"))
		if err != nil || seen[ns] {
			continue
		}
		seen[ns] = true
		ms, _ := tableOf(pid).MountsOfDevices(volume, func(mi *mountinfo.Info) (skip, stop bool) {
			return propagates(mi), false
		})
		if len(ms) == 0 {
			continue
		}
		comm, _ := os.ReadFile(filepath.Join(dir, "comm"))
		for _, mi := range ms {
			id := devOf[unix.Mkdev(uint32(mi.Major), uint32(mi.Minor))]
			out[id] = append(out[id], consumer{PID: pid, Comm: strings.TrimSpace(string(comm)), Mountpoint: mi.Mountpoint})
		}
	}
	return out
}

// propagates reports whether a mount receives mounts from its peers or
// master: shared:N or master:N among mountinfo's optional fields.
func propagates(mi *mountinfo.Info) bool {
	return hostmount.PeerGroup(mi) > 0 || hostmount.Master(mi) > 0
}
