package csi

import "github.com/runc-shared/runc-shared/internal/mountrec"

// Record is one volume this node holds (mountrec.Record). The node writes
// it before a call returns, so `mounter status` on the host can list the
// CSI volumes and the mounter that serves them, mount-hook keeps their dead
// publish targets for recovery, and a restarted server knows what to mount
// again.
type Record = mountrec.Record

// recordVolume is the mounted volume rec describes.
func recordVolume(rec *Record) Volume {
	return Volume{FSType: rec.FSType, Source: rec.Source, Options: rec.Options, Subdir: rec.Subdir}
}
