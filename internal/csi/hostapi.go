package csi

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/status"
)

// The host service: what `mounter` on the host asks of the live mounter's
// server beside CSI, on the same socket. CSI has no call for "make your
// recorded volumes live again", and a routed `mounter mount` sent here runs
// its helper inside the mounter (its cgroup, seccomp profile and
// capabilities) without the cost of a runtime exec. Its messages are JSON:
// a few plain structs need no generated protobuf code.

// hostService is the gRPC service name.
const hostService = "runcshared.host.v1.Mounter"

// jsonCodec is the gRPC codec of the host service, chosen by the content
// subtype "json" (application/grpc+json).
type jsonCodec struct{}

func (jsonCodec) Marshal(v any) ([]byte, error)      { return json.Marshal(v) }
func (jsonCodec) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }
func (jsonCodec) Name() string                       { return "json" }

func init() { encoding.RegisterCodec(jsonCodec{}) }

// RecoverRequest asks the server for one recovery pass over its records.
type RecoverRequest struct {
	// Rule limits the pass to the records of that rule; "" means all the
	// server recovers.
	Rule string `json:"rule,omitempty"`
}

// VolumeResult is what one pass did with one volume.
type VolumeResult struct {
	VolumeID  string `json:"volume-id,omitempty"`
	Remounted bool   `json:"remounted,omitempty"`
	Rebound   int    `json:"rebound,omitempty"`
	Error     string `json:"error,omitempty"`
}

// RecoverResponse lists the volumes of the pass.
type RecoverResponse struct {
	Results []VolumeResult `json:"results"`
}

// Results converts a pass's results for the wire.
func Results(rs []RecoverResult) []VolumeResult {
	out := make([]VolumeResult, len(rs))
	for i, r := range rs {
		out[i] = VolumeResult{VolumeID: r.VolumeID, Remounted: r.Remounted, Rebound: r.Rebound}
		if r.Err != nil {
			out[i].Error = r.Err.Error()
		}
	}
	return out
}

// MountRequest asks the server to mount like `mount -t FSTYPE -o OPTIONS
// SOURCE TARGET` with its helpers, for a mount `mounter mount` routes.
type MountRequest struct {
	// Rule is the rule the host routed the mount by.
	Rule    string   `json:"rule"`
	FSType  string   `json:"fstype"`
	Source  string   `json:"source"`
	Options []string `json:"options,omitempty"`
	// Target is the mount point as the server sees it.
	Target string `json:"target"`
}

// MountResponse is empty: the host checks the result on its own side.
type MountResponse struct{}

// hostServer is the service's implementation.
type hostServer interface {
	recoverCall(ctx context.Context, req *RecoverRequest) (*RecoverResponse, error)
	mountCall(ctx context.Context, req *MountRequest) (*MountResponse, error)
}

// mountCall runs the helper for a routed mount, with the checks a CSI
// volume gets: a type of the rule, a source and options that cannot read as
// flags, a target below the rule's paths that is a directory.
func (s *Server) mountCall(ctx context.Context, req *MountRequest) (*MountResponse, error) {
	v := Volume{FSType: req.FSType, Source: req.Source, Options: req.Options}
	if err := v.validate(); err != nil {
		return nil, err
	}
	rule := s.Config.Rule(req.Rule)
	switch {
	case rule == nil:
		return nil, invalid("rule %q: %s has no [[mounter]] rule of that name", req.Rule, configName(s.Config))
	case s.RuleName != "" && rule.Name != s.RuleName:
		return nil, invalid("rule %q: this server serves rule %q only", req.Rule, s.RuleName)
	case !rule.Routes(v.FSType):
		return nil, invalid("file system type %q is not among the types %v of rule %q", v.FSType, rule.FSTypes, rule.Name)
	}
	target, err := resolvePath("mount point", req.Target, rule.Propagate)
	if err != nil {
		return nil, err
	}
	if err := isDir(target); err != nil {
		return nil, err
	}
	unlock, err := s.lockVolume(ctx, "mount:"+target)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := s.mountHelper(ctx, v, target); err != nil {
		return nil, err
	}
	return &MountResponse{}, nil
}

// unaryHandler adapts a method of hostServer to gRPC.
func unaryHandler[Req any, Resp any](method string, call func(hostServer, context.Context, *Req) (*Resp, error)) grpc.MethodDesc {
	return grpc.MethodDesc{
		MethodName: method,
		Handler: func(srv any, ctx context.Context, dec func(any) error, in grpc.UnaryServerInterceptor) (any, error) {
			req := new(Req)
			if err := dec(req); err != nil {
				return nil, err
			}
			h := func(ctx context.Context, r any) (any, error) { return call(srv.(hostServer), ctx, r.(*Req)) }
			if in == nil {
				return h(ctx, req)
			}
			return in(ctx, req, &grpc.UnaryServerInfo{Server: srv, FullMethod: "/" + hostService + "/" + method}, h)
		},
	}
}

func (s *Server) recoverCall(ctx context.Context, req *RecoverRequest) (*RecoverResponse, error) {
	if req.Rule != "" && s.Config.Rule(req.Rule) == nil {
		return nil, invalid("rule %q: %s has no [[mounter]] rule of that name", req.Rule, configName(s.Config))
	}
	return &RecoverResponse{Results: Results(s.RecoverNow(ctx, req.Rule))}, nil
}

var hostServiceDesc = grpc.ServiceDesc{
	ServiceName: hostService,
	HandlerType: (*hostServer)(nil),
	Methods: []grpc.MethodDesc{
		unaryHandler("Recover", hostServer.recoverCall),
		unaryHandler("Mount", hostServer.mountCall),
	},
}

// registerHost adds the host service to g.
func (s *Server) registerHost(g *grpc.Server) { g.RegisterService(&hostServiceDesc, s) }

// HostClient talks to a live mounter's server from the host.
type HostClient struct {
	conn *grpc.ClientConn
	// sock is the handle on the socket file the connection dials.
	sock *os.File
}

// DialMounter connects to the server whose socket is endpoint (an absolute
// path as the server sees it) in the mount namespace of process pid (a
// mounter's init, as the host sees it). The path is resolved inside that
// process's root, as the server would (openat2 RESOLVE_IN_ROOT: a symlink
// there cannot lead to a socket of the host), and dialed through the
// handle, which also lifts the 108-byte limit of a socket address.
func DialMounter(pid int, endpoint string) (*HostClient, error) {
	return dialInRoot(filepath.Join("/proc", strconv.Itoa(pid), "root"), endpoint)
}

func dialInRoot(root, endpoint string) (*HostClient, error) {
	sockPath, err := socketPath("unix://" + endpoint)
	if err != nil {
		return nil, err
	}
	fd, err := unix.Openat2(unix.AT_FDCWD, root, &unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC})
	if err != nil {
		return nil, fmt.Errorf("open the mounter's root %s: %w", root, err)
	}
	defer unix.Close(fd)
	sfd, err := unix.Openat2(fd, sockPath, &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS})
	if err != nil {
		return nil, fmt.Errorf("open the socket %s in the mounter's root %s: %w", sockPath, root, err)
	}
	sock := os.NewFile(uintptr(sfd), sockPath)
	var st unix.Stat_t
	if err := unix.Fstat(sfd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		_ = sock.Close()
		return nil, fmt.Errorf("%s in the mounter's root %s is not a socket", sockPath, root)
	}
	addr := fmt.Sprintf("/proc/self/fd/%d", sfd)
	conn, err := grpc.NewClient("passthrough:///"+sockPath,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", addr)
		}))
	if err != nil {
		_ = sock.Close()
		return nil, err
	}
	return &HostClient{conn: conn, sock: sock}, nil
}

// Close closes the connection.
func (c *HostClient) Close() error {
	err := c.conn.Close()
	_ = c.sock.Close()
	return err
}

// Recover asks the server for one recovery pass.
func (c *HostClient) Recover(ctx context.Context, rule string) ([]VolumeResult, error) {
	var resp RecoverResponse
	if err := c.invoke(ctx, "Recover", &RecoverRequest{Rule: rule}, &resp); err != nil {
		return nil, err
	}
	return resp.Results, nil
}

// Unavailable reports an error of a call that never reached the server:
// the socket does not answer.
func Unavailable(err error) bool { return status.Code(err) == codes.Unavailable }

// Mount asks the server to run the helper of a routed mount.
func (c *HostClient) Mount(ctx context.Context, req *MountRequest) error {
	return c.invoke(ctx, "Mount", req, &MountResponse{})
}

func (c *HostClient) invoke(ctx context.Context, method string, req, resp any) error {
	return c.conn.Invoke(ctx, "/"+hostService+"/"+method, req, resp, grpc.CallContentSubtype("json"), grpc.WaitForReady(false))
}
