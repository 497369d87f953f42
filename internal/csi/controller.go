package csi

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/runc-shared/runc-shared/internal/mountrec"
)

// metaDir holds, on each base volume, one small file per volume the
// controller created there: its parameters and capacity. It lives on the
// base volume, not on a node, so whichever node runs the controller finds
// it, and it is what makes CreateVolume idempotent per name.
const metaDir = ".runc-shared-csi"

// meta is the file in metaDir.
type meta struct {
	ID       string `json:"volume-id"`
	Capacity int64  `json:"capacity-bytes"`
}

// ControllerGetCapabilities: volumes are created and deleted; nothing needs
// attaching to a node.
func (s *Server) ControllerGetCapabilities(context.Context, *csipb.ControllerGetCapabilitiesRequest) (*csipb.ControllerGetCapabilitiesResponse, error) {
	return &csipb.ControllerGetCapabilitiesResponse{Capabilities: []*csipb.ControllerServiceCapability{{
		Type: &csipb.ControllerServiceCapability_Rpc{Rpc: &csipb.ControllerServiceCapability_RPC{
			Type: csipb.ControllerServiceCapability_RPC_CREATE_DELETE_VOLUME,
		}},
	}}}, nil
}

// capacity reads the range: the volume is a directory without a quota, so
// the capacity recorded and reported is the one asked for.
func capacity(r *csipb.CapacityRange) (int64, error) {
	req, lim := r.GetRequiredBytes(), r.GetLimitBytes()
	switch {
	case req < 0 || lim < 0:
		return 0, invalid("negative capacity range %d..%d", req, lim)
	case lim > 0 && req > lim:
		return 0, status.Errorf(codes.OutOfRange, "required bytes %d exceed the limit %d", req, lim)
	case req > 0:
		return req, nil
	}
	return lim, nil
}

// fits reports whether a volume of have bytes satisfies the range.
func fits(have int64, r *csipb.CapacityRange) bool {
	return r.GetRequiredBytes() <= have && (r.GetLimitBytes() == 0 || have <= r.GetLimitBytes())
}

// CreateVolume makes a directory named after the request on the base
// volume the StorageClass names, with the base mounted for this call only.
func (s *Server) CreateVolume(ctx context.Context, req *csipb.CreateVolumeRequest) (*csipb.CreateVolumeResponse, error) {
	caps := req.GetVolumeCapabilities()
	switch {
	case req.GetName() == "":
		return nil, invalid("no volume name")
	case len(caps) == 0:
		return nil, invalid("no volume capabilities")
	}
	var fstype string
	var flags []string
	for _, c := range caps {
		t, f, _, err := checkCapability(c)
		if err != nil {
			return nil, err
		}
		fstype = cmp.Or(fstype, t)
		flags = mergeOptions(flags, f)
	}
	if req.GetVolumeContentSource() != nil {
		return nil, invalid("volume content sources (snapshots, clones) are not supported")
	}
	c, err := createdFromParams(req.GetName(), req.GetParameters(), fstype, nil)
	if err != nil {
		return nil, err
	}
	size, err := capacity(req.GetCapacityRange())
	if err != nil {
		return nil, err
	}
	mount := c.Base
	mount.Options = mergeOptions(mount.Options, flags)
	id := c.ID()
	err = s.onCreated(ctx, c, mount, func(dir, metaFile string, m *meta) error {
		switch {
		case m != nil && (m.ID != id || !fits(m.Capacity, req.GetCapacityRange())):
			return status.Errorf(codes.AlreadyExists, "volume %q exists on %s with other parameters or capacity (%s, %d bytes)", c.Name, c.Base.Source, m.ID, m.Capacity)
		case m != nil:
			size = m.Capacity
		default:
			if _, err := os.Lstat(dir); err == nil {
				return status.Errorf(codes.AlreadyExists, "%s already has an entry %q that this driver did not create: choose another name or remove it", c.Base.Source, c.Name)
			}
			if err := mountrec.WriteJSON(metaFile, meta{ID: id, Capacity: size}); err != nil {
				return fmt.Errorf("write the volume's record on the base volume: %w", err)
			}
		}
		// After the record: a crash in between leaves a record whose next
		// CreateVolume makes the directory.
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("create the volume's directory %s on %s: %w", c.Name, c.Base.Source, err)
		}
		return checkPlainDir(dir)
	})
	if err != nil {
		return nil, err
	}
	return &csipb.CreateVolumeResponse{Volume: &csipb.Volume{
		VolumeId:      id,
		CapacityBytes: size,
		VolumeContext: c.Volume().Context(),
	}}, nil
}

// checkPlainDir refuses a symlink or a file where the volume's directory
// should be.
func checkPlainDir(path string) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return status.Errorf(codes.AlreadyExists, "%s is a %s, not the volume's directory", path, fi.Mode().Type())
	}
	return nil
}

// DeleteVolume removes the volume's directory (onDelete delete) or leaves
// it for an administrator (onDelete retain), and the record either way. An
// id this controller did not make, or a volume gone already, is deleted.
func (s *Server) DeleteVolume(ctx context.Context, req *csipb.DeleteVolumeRequest) (*csipb.DeleteVolumeResponse, error) {
	id := req.GetVolumeId()
	if id == "" {
		return nil, invalid("no volume id")
	}
	c, ok := parseID(id)
	if !ok {
		return &csipb.DeleteVolumeResponse{}, nil
	}
	err := s.onCreated(ctx, c, c.Base, func(dir, metaFile string, m *meta) error {
		if m == nil || m.ID != id {
			return nil // gone, or the name now holds another volume
		}
		if c.OnDelete == OnDeleteDelete {
			if err := checkPlainDir(dir); err == nil {
				if err := os.RemoveAll(dir); err != nil {
					return fmt.Errorf("remove the volume's directory %s on %s: %w", c.Name, c.Base.Source, err)
				}
			} else if !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
		if err := os.Remove(metaFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove the volume's record on %s: %w", c.Base.Source, err)
		}
		// The last volume gone takes the driver's directory with it (it
		// stays while it holds other records: ENOTEMPTY).
		_ = os.Remove(filepath.Dir(metaFile))
		return nil
	})
	return &csipb.DeleteVolumeResponse{}, err
}

// ValidateVolumeCapabilities confirms every filesystem capability of a
// volume this controller created.
func (s *Server) ValidateVolumeCapabilities(ctx context.Context, req *csipb.ValidateVolumeCapabilitiesRequest) (*csipb.ValidateVolumeCapabilitiesResponse, error) {
	id := req.GetVolumeId()
	switch {
	case id == "":
		return nil, invalid("no volume id")
	case len(req.GetVolumeCapabilities()) == 0:
		return nil, invalid("no volume capabilities")
	}
	c, ok := parseID(id)
	if !ok {
		return nil, status.Errorf(codes.NotFound, "volume %q was not created by %s", id, s.Driver)
	}
	err := s.onCreated(ctx, c, c.Base, func(dir, _ string, m *meta) error {
		err := checkPlainDir(dir)
		if m == nil || m.ID != id || errors.Is(err, fs.ErrNotExist) {
			return status.Errorf(codes.NotFound, "volume %s does not exist on %s", c.Name, c.Base.Source)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	for _, vc := range req.GetVolumeCapabilities() {
		if _, _, _, err := checkCapability(vc); err != nil {
			return &csipb.ValidateVolumeCapabilitiesResponse{Message: err.Error()}, nil
		}
	}
	return &csipb.ValidateVolumeCapabilitiesResponse{Confirmed: &csipb.ValidateVolumeCapabilitiesResponse_Confirmed{
		VolumeContext:      req.GetVolumeContext(),
		VolumeCapabilities: req.GetVolumeCapabilities(),
		Parameters:         req.GetParameters(),
	}}, nil
}

// onCreated runs fn on the created volume c with its base volume mounted
// (as base: the StorageClass's volume with the call's options): dir is the
// volume's directory on it, metaFile its record and m what that holds, nil
// when there is none. The calls for one volume name on one base volume are
// serialized.
func (s *Server) onCreated(ctx context.Context, c Created, base Volume, fn func(dir, metaFile string, m *meta) error) error {
	if _, err := s.ruleFor(c.Base.FSType); err != nil {
		return err
	}
	unlock, err := s.lockVolume(ctx, c.Base.Source+"|"+c.Name)
	if err != nil {
		return err
	}
	defer unlock()
	return s.withBase(ctx, base, func(dir string) error {
		metaFile := filepath.Join(dir, metaDir, c.Name+".json")
		m, err := mountrec.ReadJSON[meta](metaFile)
		if errors.Is(err, fs.ErrNotExist) {
			m, err = nil, nil
		}
		if err != nil {
			return err
		}
		return fn(filepath.Join(dir, c.Name), metaFile, m)
	})
}

// withBase mounts the base volume with its helper below the controller's
// private mount point, runs fn on it and unmounts it. The private mount
// point keeps the base out of every other mount namespace, even where the
// server's own paths propagate (a host whose / is shared, a mounter whose
// root is rshared).
func (s *Server) withBase(ctx context.Context, base Volume, fn func(dir string) error) error {
	if err := s.privateWork(); err != nil {
		return err
	}
	return s.mountedAt(ctx, base, s.work, "base-", fn)
}

// mountedAt mounts v with its helper at a directory it makes in parent
// (os.MkdirTemp's pattern), runs fn on it, then unmounts v and removes the
// directory.
func (s *Server) mountedAt(ctx context.Context, v Volume, parent, pattern string, fn func(dir string) error) error {
	dir, err := os.MkdirTemp(parent, pattern)
	if err != nil {
		return fmt.Errorf("create a mount point for %s in %s: %w", v.Source, parent, err)
	}
	defer func() {
		if err := unmountAll(s.Mounter, dir); err != nil {
			s.Log.Errorf("unmount %s at %s: %v", v.Source, dir, err)
			return
		}
		_ = os.Remove(dir)
	}()
	if err := s.mountHelper(ctx, v, dir); err != nil {
		return err
	}
	s.Log.Debugf("mounted %s at %s for the call", v.Source, dir)
	return fn(dir)
}

// makeWorkPrivate makes the work directory a private mount point of its
// own (bound onto itself); NewServer has it run once, as privateWork.
func (s *Server) makeWorkPrivate() error {
	if err := os.MkdirAll(s.work, 0o700); err != nil {
		return fmt.Errorf("create the controller's work directory: %w", err)
	}
	ms, err := s.Mounter.MountsAt(s.work)
	if err != nil {
		return err
	}
	if len(ms) == 0 {
		if err := unix.Mount(s.work, s.work, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind %s onto itself: %w", s.work, err)
		}
	}
	if err := unix.Mount("", s.work, "", unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make %s a private mount: %w", s.work, err)
	}
	return nil
}
