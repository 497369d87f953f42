package csi

import (
	"github.com/runc-shared/runc-shared/internal/atomicfile"
	"github.com/runc-shared/runc-shared/internal/mountrec"
)

// Record is one volume this node holds (mountrec.Record). The node writes
// it before a call returns, so `mounter status` on the host can list the
// CSI volumes and the mounter that serves them, mount-hook keeps their dead
// publish targets for recovery, and a restarted server knows what to mount
// again.
type Record = mountrec.Record

// Target is one publish target.
type Target = mountrec.Target

// Recovery is what recovery could not do for a volume.
type Recovery = mountrec.Recovery

// recordVolume is the mounted volume rec describes.
func recordVolume(rec *Record) Volume {
	return Volume{FSType: rec.FSType, Source: rec.Source, Options: rec.Options, Subdir: rec.Subdir}
}

// records is one driver's record store; only this server writes it.
type records struct{ mountrec.Store }

func (s records) read(id string) (*Record, error) { return s.Read(id) }
func (s records) write(r *Record) error           { return s.Write(r) }
func (s records) remove(id string) error          { return s.Remove(id) }
func (s records) list() ([]*Record, []error)      { return s.List() }

// removeLeftovers removes the temporary file a killed write of id's record
// left; the caller holds the volume's lock, and no other process writes
// this driver's records.
func (s records) removeLeftovers(id string) { atomicfile.RemoveLeftovers(s.Path(id)) }
