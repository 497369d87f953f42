package csi

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/runc-shared/runc-shared/internal/hostmount"
	"github.com/runc-shared/runc-shared/internal/mountrec"
	"github.com/runc-shared/runc-shared/pkg/spec"
)

// NodeGetInfo names the node; the driver declares no topology and no
// volume limit.
func (s *Server) NodeGetInfo(context.Context, *csipb.NodeGetInfoRequest) (*csipb.NodeGetInfoResponse, error) {
	return &csipb.NodeGetInfoResponse{NodeId: s.NodeID}, nil
}

// NodeGetCapabilities: staging (one helper mount per volume per node,
// however many pods use it), volume stats and volume health.
func (s *Server) NodeGetCapabilities(context.Context, *csipb.NodeGetCapabilitiesRequest) (*csipb.NodeGetCapabilitiesResponse, error) {
	var caps []*csipb.NodeServiceCapability
	for _, t := range []csipb.NodeServiceCapability_RPC_Type{
		csipb.NodeServiceCapability_RPC_STAGE_UNSTAGE_VOLUME,
		csipb.NodeServiceCapability_RPC_GET_VOLUME_STATS,
		csipb.NodeServiceCapability_RPC_GET_VOLUME_HEALTH,
	} {
		caps = append(caps, &csipb.NodeServiceCapability{Type: &csipb.NodeServiceCapability_Rpc{Rpc: &csipb.NodeServiceCapability_RPC{Type: t}}})
	}
	return &csipb.NodeGetCapabilitiesResponse{Capabilities: caps}, nil
}

// checkCapability refuses a missing capability, block access and a missing
// access mode, and returns the mount's fs_type and flags and whether the
// mode only reads.
func checkCapability(c *csipb.VolumeCapability) (fstype string, flags []string, readOnly bool, err error) {
	if c == nil {
		return "", nil, false, invalid("no volume capability")
	}
	m := c.GetMount()
	if m == nil {
		return "", nil, false, invalid("only the filesystem access type is served (no block volumes)")
	}
	switch mode := c.GetAccessMode().GetMode(); mode {
	case csipb.VolumeCapability_AccessMode_UNKNOWN:
		return "", nil, false, invalid("no access mode in the volume capability")
	case csipb.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY, csipb.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY:
		readOnly = true
	}
	if err := checkOptions(m.GetMountFlags()...); err != nil {
		return "", nil, false, err
	}
	return m.GetFsType(), m.GetMountFlags(), readOnly, nil
}

// nodeVolume reads the volume of a node call: the volume context, else
// (for a volume this controller created, whose PV lost its attributes) the
// volume id.
func nodeVolume(id string, vctx map[string]string, fstype string, flags []string) (Volume, error) {
	if vctx[KeySource] == "" {
		if c, ok := parseID(id); ok {
			v := c.Volume()
			v.Options = mergeOptions(v.Options, flags)
			return v, v.validate()
		}
	}
	return volumeFromContext(vctx, fstype, flags)
}

// allowAll is the allowlist of every rule the server may use: for calls
// that name a path but no file system type.
func (s *Server) allowAll() []string {
	if s.RuleName != "" {
		return s.Config.Rule(s.RuleName).Propagate
	}
	var out []string
	for _, r := range s.Config.Mounters {
		out = append(out, r.Propagate...)
	}
	return out
}

// allowOf is the allowlist of the rule a record names, else allowAll.
func (s *Server) allowOf(rec *Record) []string {
	if rec != nil {
		if r := s.Config.Rule(rec.Rule); r != nil {
			return r.Propagate
		}
	}
	return s.allowAll()
}

// openVolume is the prologue of a node call on one volume: it checks the
// volume id and the path the call names (what: "staging target path",
// "target path"), takes the volume's lock and reads its record, nil when
// there is none. The caller runs unlock.
func (s *Server) openVolume(ctx context.Context, id, what, path string) (rec *Record, unlock func(), err error) {
	switch {
	case id == "":
		return nil, nil, invalid("no volume id")
	case path == "":
		return nil, nil, invalid("no %s", what)
	}
	unlock, err = s.lockVolume(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	if rec, err = s.records.Read(id); err != nil {
		unlock()
		return nil, nil, err
	}
	return rec, unlock, nil
}

// mountable reads the volume a call mounts with its helper (a stage, an
// inline publish) and the rule that serves it.
func (s *Server) mountable(id string, vctx map[string]string, c *csipb.VolumeCapability) (Volume, *spec.Rule, bool, error) {
	fstype, flags, ro, err := checkCapability(c)
	if err != nil {
		return Volume{}, nil, false, err
	}
	v, err := nodeVolume(id, vctx, fstype, flags)
	if err != nil {
		return Volume{}, nil, false, err
	}
	rule, err := s.ruleFor(v.FSType)
	return v, rule, ro, err
}

// keep writes rec after a mount at path, and undoes the mount when the
// record cannot be written: an unrecorded mount would never be recovered.
func (s *Server) keep(rec *Record, path string) error {
	if err := s.records.Write(rec); err != nil {
		return errors.Join(err, unmountAll(s.Mounter, path))
	}
	return nil
}

// unmountVolume is the prologue of the unstage and unpublish calls:
// openVolume, then every mount at the path removed. It returns the
// resolved path, "" when the path does not exist (nothing to unmount).
func (s *Server) unmountVolume(ctx context.Context, id, what, path string) (rec *Record, resolved string, unlock func(), err error) {
	if rec, unlock, err = s.openVolume(ctx, id, what, path); err != nil {
		return nil, "", nil, err
	}
	resolved, err = ResolvePath(what, path, s.allowOf(rec))
	if errors.Is(err, fs.ErrNotExist) {
		return rec, "", unlock, nil
	}
	if err == nil {
		err = unmountAll(s.Mounter, resolved)
	}
	if err != nil {
		unlock()
		return nil, "", nil, err
	}
	return rec, resolved, unlock, nil
}

// NodeStageVolume mounts the volume at the staging path with its helper.
func (s *Server) NodeStageVolume(ctx context.Context, req *csipb.NodeStageVolumeRequest) (*csipb.NodeStageVolumeResponse, error) {
	id := req.GetVolumeId()
	rec, unlock, err := s.openVolume(ctx, id, "staging target path", req.GetStagingTargetPath())
	if err != nil {
		return nil, err
	}
	defer unlock()
	v, rule, _, err := s.mountable(id, req.GetVolumeContext(), req.GetVolumeCapability())
	if err != nil {
		return nil, err
	}
	staging, err := makeDir("staging target path", req.GetStagingTargetPath(), rule.Propagate)
	if err != nil {
		return nil, err
	}
	if done, err := s.staged(ctx, rec, v, staging); done || err != nil {
		return &csipb.NodeStageVolumeResponse{}, err
	}
	base := v
	base.Subdir = ""
	if err := s.mountHelper(ctx, base, staging); err != nil {
		return nil, err
	}
	if _, err := s.volumeDir(staging, v.Subdir, rule.Propagate); err != nil {
		return nil, errors.Join(err, unmountAll(s.Mounter, staging))
	}
	rec = s.newRecord(id, rule, v)
	rec.Staging = staging
	return &csipb.NodeStageVolumeResponse{}, s.keep(rec, staging)
}

// staged decides what an existing mount at the staging path means: the
// same volume staged and alive is done; the same volume with a dead FUSE
// daemon (its mounter restarted) is recovered: mounted again, and its
// publish targets bound again; anything else is another volume's mount:
// AlreadyExists.
func (s *Server) staged(ctx context.Context, rec *Record, v Volume, staging string) (bool, error) {
	ms, err := s.Mounter.MountsAt(staging)
	if err != nil || len(ms) == 0 {
		return false, err
	}
	if rec == nil || rec.Staging != staging || !recordVolume(rec).Equal(v) {
		top := ms[len(ms)-1]
		return false, status.Errorf(codes.AlreadyExists, "staging path %s already holds a mount of %s (%s) that is not this volume staged with these parameters", staging, top.Source, top.FSType)
	}
	if err := s.statfs(staging); err == nil || !deadMount(err) {
		return true, nil
	}
	s.Log.WithField("volume", rec.VolumeID).Warnf("staging path %s holds a dead mount (its FUSE daemon is gone): mounting it again", staging)
	if _, _, err := s.recoverRecord(ctx, rec); err != nil {
		return false, err
	}
	rec.PID, rec.Recovery = s.pid(), nil
	return true, s.records.Write(rec)
}

// volumeDir returns the volume's directory below the mounted base: base
// itself without a subdir, else base/subdir once it is sure to be a
// directory inside the mount, not a symlink that leads elsewhere.
func (s *Server) volumeDir(base, subdir string, allow []string) (string, error) {
	if subdir == "" {
		return base, nil
	}
	p, err := ResolvePath("volume directory", filepath.Join(base, subdir), allow)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", status.Errorf(codes.NotFound, "the volume's directory %s does not exist on %s", subdir, base)
		}
		return "", err
	}
	if !hostmount.Within(p, base) || p == filepath.Clean(base) {
		return "", invalid("the volume's directory %s/%s resolves to %s, outside the volume", base, subdir, p)
	}
	return filepath.Join(base, subdir), isDir(p)
}

func (s *Server) newRecord(id string, rule *spec.Rule, v Volume) *Record {
	return &Record{VolumeID: id, Driver: s.Driver, Node: s.NodeID, Rule: rule.Name, FSType: v.FSType,
		Source: v.Source, Options: v.Options, Subdir: v.Subdir, PID: s.pid(), Created: time.Now().UTC()}
}

// mountHelper runs the helper on target, a directory (or a dead mount
// point, which was one), and checks that a mount is there afterwards (a
// helper that exits 0 without mounting is a failure). The Mounter's
// error names the mount already; it is not wrapped, so that a CSI caller
// gets Internal whatever it holds (grpcError), and `mounter recover`
// prints it as it is.
func (s *Server) mountHelper(ctx context.Context, v Volume, target string) error {
	if err := isDir(target); err != nil {
		return err
	}
	if err := s.Mounter.Mount(ctx, v, target); err != nil {
		return errors.New(err.Error())
	}
	ms, err := s.Mounter.MountsAt(target)
	if err != nil {
		return err
	}
	if len(ms) == 0 {
		return fmt.Errorf("the %s helper exited 0 but nothing is mounted on %s", v.FSType, target)
	}
	return nil
}

// NodeUnstageVolume unmounts the staging path. A path that does not exist
// or holds no mount is unstaged already.
func (s *Server) NodeUnstageVolume(ctx context.Context, req *csipb.NodeUnstageVolumeRequest) (*csipb.NodeUnstageVolumeResponse, error) {
	id := req.GetVolumeId()
	rec, staging, unlock, err := s.unmountVolume(ctx, id, "staging target path", req.GetStagingTargetPath())
	if err != nil {
		return nil, err
	}
	defer unlock()
	if rec != nil && (rec.Staging == staging || staging == "") {
		return &csipb.NodeUnstageVolumeResponse{}, s.records.Remove(id)
	}
	return &csipb.NodeUnstageVolumeResponse{}, nil
}

// NodePublishVolume binds the staged volume (or its directory) at the
// target path, read-only when asked. Without a staging path (a CSI inline
// volume, which kubelet does not stage) the helper mounts at the target.
func (s *Server) NodePublishVolume(ctx context.Context, req *csipb.NodePublishVolumeRequest) (*csipb.NodePublishVolumeResponse, error) {
	id := req.GetVolumeId()
	rec, unlock, err := s.openVolume(ctx, id, "target path", req.GetTargetPath())
	if err != nil {
		return nil, err
	}
	defer unlock()
	if req.GetStagingTargetPath() == "" {
		return s.publishInline(ctx, req, rec)
	}
	_, _, roMode, err := checkCapability(req.GetVolumeCapability())
	if err != nil {
		return nil, err
	}
	ro := req.GetReadonly() || roMode
	if rec == nil || rec.Staging == "" {
		return nil, status.Errorf(codes.FailedPrecondition, "volume %s is not staged on this node: NodeStageVolume first", id)
	}
	allow := s.allowOf(rec)
	staging, err := ResolvePath("staging target path", req.GetStagingTargetPath(), allow)
	if err != nil {
		return nil, err
	}
	if staging != rec.Staging {
		return nil, status.Errorf(codes.FailedPrecondition, "volume %s is staged at %s, not at %s", id, rec.Staging, staging)
	}
	if ms, err := s.Mounter.MountsAt(staging); err != nil || len(ms) == 0 {
		return nil, status.Errorf(codes.FailedPrecondition, "volume %s: nothing is mounted at its staging path %s (%v): stage it again", id, staging, err)
	}
	src, err := s.volumeDir(staging, rec.Subdir, allow)
	if err != nil {
		return nil, err
	}
	target, err := makeDir("target path", req.GetTargetPath(), allow)
	if err != nil {
		return nil, err
	}
	if ms, err := s.Mounter.MountsAt(target); err != nil {
		return nil, err
	} else if len(ms) > 0 {
		if i := rec.TargetIndex(target); i >= 0 && rec.Targets[i].ReadOnly == ro {
			return &csipb.NodePublishVolumeResponse{}, nil
		}
		return nil, status.Errorf(codes.AlreadyExists, "target path %s already holds a mount (%s) that is not this volume published with readonly=%v", target, ms[len(ms)-1].Source, ro)
	}
	if err := s.Mounter.Bind(src, target, ro); err != nil {
		return nil, err
	}
	rec.Targets = append(slices.DeleteFunc(rec.Targets, func(t mountrec.Target) bool { return t.Path == target }), mountrec.Target{Path: target, ReadOnly: ro})
	return &csipb.NodePublishVolumeResponse{}, s.keep(rec, target)
}

// publishInline mounts an inline volume straight at its target: kubelet
// stages no ephemeral volume, and the volume lives as long as the pod. The
// caller holds the volume's lock; rec is its record.
func (s *Server) publishInline(ctx context.Context, req *csipb.NodePublishVolumeRequest, rec *Record) (*csipb.NodePublishVolumeResponse, error) {
	id := req.GetVolumeId()
	v, rule, roMode, err := s.mountable(id, req.GetVolumeContext(), req.GetVolumeCapability())
	if err != nil {
		return nil, err
	}
	if v.Subdir != "" {
		return nil, invalid("an unstaged (inline) volume cannot have a %s: name the directory in its %s", KeySubdir, KeySource)
	}
	ro := req.GetReadonly() || roMode
	if ro {
		v.Options = mergeOptions(v.Options, []string{"ro"})
	}
	target, err := makeDir("target path", req.GetTargetPath(), rule.Propagate)
	if err != nil {
		return nil, err
	}
	if ms, err := s.Mounter.MountsAt(target); err != nil {
		return nil, err
	} else if len(ms) > 0 {
		if rec != nil && rec.Staging == "" && rec.TargetIndex(target) >= 0 && recordVolume(rec).Equal(v) {
			return &csipb.NodePublishVolumeResponse{}, nil
		}
		return nil, status.Errorf(codes.AlreadyExists, "target path %s already holds a mount (%s) that is not this volume", target, ms[len(ms)-1].Source)
	}
	if err := s.mountHelper(ctx, v, target); err != nil {
		return nil, err
	}
	rec = s.newRecord(id, rule, v)
	rec.Targets = []mountrec.Target{{Path: target, ReadOnly: ro}}
	return &csipb.NodePublishVolumeResponse{}, s.keep(rec, target)
}

// NodeUnpublishVolume unmounts the target and removes the directory
// NodePublishVolume made there, as the CSI spec asks of the plugin.
func (s *Server) NodeUnpublishVolume(ctx context.Context, req *csipb.NodeUnpublishVolumeRequest) (*csipb.NodeUnpublishVolumeResponse, error) {
	id := req.GetVolumeId()
	rec, target, unlock, err := s.unmountVolume(ctx, id, "target path", req.GetTargetPath())
	if err != nil {
		return nil, err
	}
	defer unlock()
	if target != "" {
		// Remove, not RemoveAll: with nothing mounted, files left there
		// are someone's data on the node's disk, not ours to delete.
		if err := os.Remove(target); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("remove the target directory %s after unmounting it: %w", target, err)
		}
	} else {
		target = filepath.Clean(req.GetTargetPath())
	}
	if rec == nil || rec.TargetIndex(target) < 0 {
		return &csipb.NodeUnpublishVolumeResponse{}, nil
	}
	rec.Targets = slices.DeleteFunc(rec.Targets, func(t mountrec.Target) bool { return t.Path == target })
	if rec.Staging == "" {
		return &csipb.NodeUnpublishVolumeResponse{}, s.records.Remove(id)
	}
	return &csipb.NodeUnpublishVolumeResponse{}, s.records.Write(rec)
}

// NodeGetVolumeStats reports the file system's usage at the volume path. A
// volume whose FUSE daemon is gone has no usage: Unavailable, and
// NodeGetVolumeHealth says why.
func (s *Server) NodeGetVolumeStats(ctx context.Context, req *csipb.NodeGetVolumeStatsRequest) (*csipb.NodeGetVolumeStatsResponse, error) {
	switch {
	case req.GetVolumeId() == "":
		return nil, invalid("no volume id")
	case req.GetVolumePath() == "":
		return nil, invalid("no volume path")
	case !filepath.IsAbs(req.GetVolumePath()):
		return nil, status.Errorf(codes.NotFound, "volume path %q: no volume is published at a relative path", req.GetVolumePath())
	}
	p, err := ResolvePath("volume path", req.GetVolumePath(), s.allowAll())
	if err != nil {
		return nil, err
	}
	st, err := statfs(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, status.Errorf(codes.NotFound, "volume path %s does not exist", p)
	case deadMount(err), errors.Is(err, errStatTimeout):
		return nil, status.Errorf(codes.Unavailable, "%v", err)
	case err != nil:
		return nil, fmt.Errorf("statfs %s: %w", p, err)
	}
	bs := st.Bsize
	return &csipb.NodeGetVolumeStatsResponse{Usage: []*csipb.VolumeUsage{
		{Unit: csipb.VolumeUsage_BYTES, Total: int64(st.Blocks) * bs, Available: int64(st.Bavail) * bs, Used: int64(st.Blocks-st.Bfree) * bs},
		{Unit: csipb.VolumeUsage_INODES, Total: int64(st.Files), Available: int64(st.Ffree), Used: int64(st.Files - st.Ffree)},
	}}, nil
}

// Reasons NodeGetVolumeHealth gives.
const (
	ReasonDaemonGone    = "FUSEDaemonGone"
	ReasonNotResponding = "NotResponding"
	ReasonNotMounted    = "NotMounted"
)

// NodeGetVolumeHealth looks at the volume's staging mount and publish
// targets (those of the request, else the recorded ones): a mount whose
// FUSE daemon is gone (its mounter stopped) is INACCESSIBLE, one that does
// not answer statfs in time DEGRADED, a missing mount INACCESSIBLE.
func (s *Server) NodeGetVolumeHealth(ctx context.Context, req *csipb.NodeGetVolumeHealthRequest) (*csipb.NodeGetVolumeHealthResponse, error) {
	id := req.GetVolumeId()
	if id == "" {
		return nil, invalid("no volume id")
	}
	rec, err := s.records.Read(id)
	if err != nil {
		return nil, err
	}
	paths := []string{req.GetStagingTargetPath(), req.GetVolumePublishPath()}
	if paths[0] == "" && paths[1] == "" && rec != nil {
		paths = []string{rec.Staging} // "" for an inline volume
		for _, t := range rec.Targets {
			paths = append(paths, t.Path)
		}
	}
	paths = slices.DeleteFunc(paths, func(p string) bool { return p == "" })
	if len(paths) == 0 {
		return nil, status.Errorf(codes.NotFound, "volume %s is neither staged nor published on this node", id)
	}
	h := &csipb.VolumeHealth{VolumeId: id}
	for _, p := range paths {
		if e := s.pathHealth(p, s.allowOf(rec)); e != nil {
			h.HealthStatuses = append(h.HealthStatuses, e)
		}
	}
	return &csipb.NodeGetVolumeHealthResponse{VolumeHealth: h}, nil
}

// pathHealth is the health entry of one mount point, nil when it is fine.
func (s *Server) pathHealth(path string, allow []string) *csipb.VolumeHealth_VolumeHealthEntry {
	entry := func(st csipb.VolumeHealthErrorType, reason, format string, args ...any) *csipb.VolumeHealth_VolumeHealthEntry {
		return &csipb.VolumeHealth_VolumeHealthEntry{Status: st, Reason: reason, Message: fmt.Sprintf(format, args...)}
	}
	p, err := ResolvePath("volume path", path, allow)
	if err != nil {
		return entry(csipb.VolumeHealthErrorType_INACCESSIBLE, ReasonNotMounted, "%v", err)
	}
	if ms, err := s.Mounter.MountsAt(p); err == nil && len(ms) == 0 {
		return entry(csipb.VolumeHealthErrorType_INACCESSIBLE, ReasonNotMounted, "nothing is mounted at %s", p)
	}
	err = s.statfs(p)
	switch {
	case deadMount(err):
		return entry(csipb.VolumeHealthErrorType_INACCESSIBLE, ReasonDaemonGone,
			"%s: %v: the FUSE daemon of the volume is gone (its mounter stopped); restart the pods that use it, or unstage and stage it again", p, err)
	case errors.Is(err, errStatTimeout):
		return entry(csipb.VolumeHealthErrorType_DEGRADED, ReasonNotResponding, "%s: %v", p, err)
	case err != nil:
		return entry(csipb.VolumeHealthErrorType_INACCESSIBLE, ReasonNotMounted, "%s: %v", p, err)
	}
	return nil
}

var errStatTimeout = errors.New("the file system did not answer statfs in time (its daemon hangs)")

// statfs is statfs(2) that gives up after hostmount.DefaultStatTimeout: a
// hung FUSE daemon would block the call, and the goroutine, until it
// answers.
func statfs(path string) (unix.Statfs_t, error) {
	done := make(chan error, 1)
	var st unix.Statfs_t
	go func() { done <- unix.Statfs(path, &st) }()
	select {
	case err := <-done:
		if err != nil {
			return st, &fs.PathError{Op: "statfs", Path: path, Err: err}
		}
		return st, nil
	case <-time.After(hostmount.DefaultStatTimeout):
		return unix.Statfs_t{}, errStatTimeout
	}
}
