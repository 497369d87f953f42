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
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
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

// hostServer is the service's implementation.
type hostServer interface {
	recoverCall(ctx context.Context, req *RecoverRequest) (*RecoverResponse, error)
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
	Methods: []grpc.MethodDesc{{
		MethodName: "Recover",
		Handler: func(srv any, ctx context.Context, dec func(any) error, in grpc.UnaryServerInterceptor) (any, error) {
			req := new(RecoverRequest)
			if err := dec(req); err != nil {
				return nil, err
			}
			call := func(ctx context.Context, r any) (any, error) {
				return srv.(hostServer).recoverCall(ctx, r.(*RecoverRequest))
			}
			if in == nil {
				return call(ctx, req)
			}
			return in(ctx, req, &grpc.UnaryServerInfo{Server: srv, FullMethod: "/" + hostService + "/Recover"}, call)
		},
	}},
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

func (c *HostClient) invoke(ctx context.Context, method string, req, resp any) error {
	return c.conn.Invoke(ctx, "/"+hostService+"/"+method, req, resp, grpc.CallContentSubtype("json"), grpc.WaitForReady(false))
}
