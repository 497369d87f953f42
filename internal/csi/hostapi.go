package csi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
)

// The host service: what `mounter` on the host asks of the live mounter's
// server beside CSI, on the same socket. CSI has no call for "make your
// recorded volumes live again", and a routed `mounter mount` sent here runs
// its helper inside the mounter (its cgroup, seccomp profile and
// capabilities) without the cost of a runtime exec. Its messages are JSON:
// a few plain structs need no generated protobuf code.
//
// The host speaks it as one JSON line per connection (hostRequest, then
// hostResponse), not through gRPC: a routed mount is one short-lived
// process making one call, and a gRPC client's connection set-up (its
// resolver and balancer goroutines, the HTTP/2 preface and settings
// exchange) cost that process more than the rest of its routing. The
// server tells the two apart by a connection's first byte: an HTTP/2 client
// preface starts with "PRI" (RFC 9113, section 3.4), a host request with
// "{".

// hostService names the host service in messages and in the call log.
const hostService = "runcshared.host.v1.Mounter"

// RecoverRequest asks the server for one recovery pass over its records.
type RecoverRequest struct {
	// Rule limits the pass to the records of that rule; "" means all the
	// server recovers.
	Rule string `json:"rule,omitempty"`
}

// VolumeResult is what one pass did with one volume.
type VolumeResult struct {
	VolumeID string `json:"volume-id,omitempty"`
	// Remounted: the helper mounted the volume again (staging path, or the
	// target of an inline volume).
	Remounted bool `json:"remounted,omitempty"`
	// Rebound is the number of publish targets bound again.
	Rebound int `json:"rebound,omitempty"`
	// Error is err for the host, set by RecoverNow.
	Error string `json:"error,omitempty"`
	err   error
}

// RecoverResponse lists the volumes of the pass.
type RecoverResponse struct {
	Results []VolumeResult `json:"results"`
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

// mountCall runs the helper for a routed mount, with the checks a CSI
// volume gets: a type of the rule, a source and options that cannot read as
// flags, a target below the rule's paths that is a directory.
// Its response is empty: the host checks the result on its own side.
func (s *Server) mountCall(ctx context.Context, req *MountRequest) (*struct{}, error) {
	v := Volume{FSType: req.FSType, Source: req.Source, Options: req.Options}
	if err := v.validate(); err != nil {
		return nil, err
	}
	rule := s.Config.Rule(req.Rule)
	switch {
	case rule == nil:
		return nil, invalid("rule %q: %s has no [[mounter]] rule of that name", req.Rule, s.Config.Name())
	case s.RuleName != "" && rule.Name != s.RuleName:
		return nil, invalid("rule %q: this server serves rule %q only", req.Rule, s.RuleName)
	case !rule.Routes(v.FSType):
		return nil, invalid("file system type %q is not among the types %v of rule %q", v.FSType, rule.FSTypes, rule.Name)
	}
	target, err := ResolvePath("mount point", req.Target, rule.Propagate)
	if err != nil {
		return nil, err
	}
	unlock, err := s.lockVolume(ctx, "mount:"+target)
	if err != nil {
		return nil, err
	}
	defer unlock()
	return &struct{}{}, s.mountHelper(ctx, v, target)
}

func (s *Server) recoverCall(ctx context.Context, req *RecoverRequest) (*RecoverResponse, error) {
	if req.Rule != "" && s.Config.Rule(req.Rule) == nil {
		return nil, invalid("rule %q: %s has no [[mounter]] rule of that name", req.Rule, s.Config.Name())
	}
	return &RecoverResponse{Results: s.RecoverNow(ctx, req.Rule)}, nil
}

// hostMethods are the methods of the host protocol.
var hostMethods = map[string]func(s *Server, ctx context.Context, method string, body json.RawMessage) (any, error){
	"Recover": hostMethod((*Server).recoverCall),
	"Mount":   hostMethod((*Server).mountCall),
}

// hostMethod decodes a call's request for call and runs it through the
// logging interceptor that gRPC uses.
func hostMethod[Req, Resp any](call func(*Server, context.Context, *Req) (*Resp, error)) func(*Server, context.Context, string, json.RawMessage) (any, error) {
	return func(s *Server, ctx context.Context, method string, body json.RawMessage) (any, error) {
		req := new(Req)
		if err := json.Unmarshal(body, req); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "decode the %s request: %v", method, err)
		}
		info := &grpc.UnaryServerInfo{Server: s, FullMethod: "/" + hostService + "/" + method}
		return s.logCall(ctx, req, info, func(ctx context.Context, _ any) (any, error) { return call(s, ctx, req) })
	}
}

// hostRequest is a call of the host protocol: a method of hostMethods and
// its request message.
type hostRequest struct {
	Method  string          `json:"method"`
	Request json.RawMessage `json:"request"`
}

// hostResponse is the answer: a gRPC status code and message, and the
// response message when the code is OK.
type hostResponse struct {
	Code     codes.Code      `json:"code"`
	Message  string          `json:"message,omitempty"`
	Response json.RawMessage `json:"response,omitempty"`
}

// maxHostRequest bounds a request line: the largest is a mount's options.
const maxHostRequest = 1 << 20

// hostCreds hands the host protocol's connections to serveHost from
// inside gRPC's own accept path: a server's transport credentials see each
// new connection first, in a goroutine of its own, before any HTTP/2 (and
// under gRPC's connection timeout), and a connection they keep
// (credentials.ErrConnDispatched) is one gRPC leaves alone. Every other
// connection goes on without transport security, as a server without
// credentials has it. The host call runs in that goroutine, which gRPC's
// stop waits for, so a graceful stop lets it finish as it lets gRPC calls
// finish.
type hostCreds struct {
	credentials.TransportCredentials
	s *Server
}

func (h hostCreds) ServerHandshake(c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	r := bufio.NewReader(c)
	first, err := r.Peek(1)
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.EOF // gRPC's own word for a client that left before a byte
		}
		return nil, nil, err
	}
	if first[0] != '{' {
		return h.TransportCredentials.ServerHandshake(&peekedConn{Conn: c, r: r})
	}
	_ = c.SetDeadline(time.Time{})
	h.s.serveHost(c, r)
	return nil, nil, credentials.ErrConnDispatched
}

func (h hostCreds) Clone() credentials.TransportCredentials {
	return hostCreds{TransportCredentials: h.TransportCredentials.Clone(), s: h.s}
}

// peekedConn is a connection whose first bytes sit in r.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// serveHost answers the one call of a host connection through the method
// table and the logging interceptor that gRPC uses. The call's context ends
// when the client hangs up, as a gRPC call's does.
func (s *Server) serveHost(c net.Conn, r *bufio.Reader) {
	defer c.Close()
	out, err := s.hostCall(r)
	resp := hostResponse{Code: codes.OK}
	if err == nil {
		resp.Response, err = json.Marshal(out)
	}
	if err != nil {
		st := status.Convert(err)
		resp = hostResponse{Code: st.Code(), Message: st.Message()}
	}
	// One Write of the line: plain fields and a RawMessage json.Marshal made.
	_ = json.NewEncoder(c).Encode(resp)
}

func (s *Server) hostCall(r *bufio.Reader) (any, error) {
	// The request line, up to maxHostRequest bytes; r itself reads on
	// below, for the client's hang-up.
	line, err := bufio.NewReader(io.LimitReader(r, maxHostRequest+1)).ReadBytes('\n')
	if len(line) > maxHostRequest {
		err = fmt.Errorf("request longer than %d bytes", maxHostRequest)
	}
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "read the request: %v", err)
	}
	var req hostRequest
	if err := json.Unmarshal(line, &req); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "decode the request: %v", err)
	}
	method := hostMethods[req.Method]
	if method == nil {
		return nil, status.Errorf(codes.Unimplemented, "unknown method %q of %s", req.Method, hostService)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The client sends nothing after its request: a read returns when it
	// hangs up (or when this side closes the connection after answering).
	go func() { _, _ = r.ReadByte(); cancel() }()
	return method(s, ctx, req.Method, req.Request)
}

// HostClient talks to a live mounter's server from the host.
type HostClient struct {
	// addr reaches the socket through the handle sock.
	addr string
	sock *os.File
}

// DialMounter opens the socket of the server whose endpoint is endpoint
// (an absolute path as the server sees it) in the mount namespace of
// process pid (a mounter's init, as the host sees it). The path is resolved
// inside that process's root, as the server would (openat2
// RESOLVE_IN_ROOT: a symlink there cannot lead to a socket of the host),
// and each call connects through the handle, which also lifts the 108-byte
// limit of a socket address.
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
	return &HostClient{addr: fmt.Sprintf("/proc/self/fd/%d", sfd), sock: sock}, nil
}

// Close releases the handle on the socket.
func (c *HostClient) Close() error { return c.sock.Close() }

// Recover asks the server for one recovery pass.
func (c *HostClient) Recover(ctx context.Context, rule string) ([]VolumeResult, error) {
	var resp RecoverResponse
	err := c.invoke(ctx, "Recover", &RecoverRequest{Rule: rule}, &resp)
	return resp.Results, err
}

// Unavailable reports an error of a call that never reached the server:
// the socket does not answer, or its server does not speak the host
// protocol.
func Unavailable(err error) bool { return status.Code(err) == codes.Unavailable }

// Mount asks the server to run the helper of a routed mount.
func (c *HostClient) Mount(ctx context.Context, req *MountRequest) error {
	return c.invoke(ctx, "Mount", req, &struct{}{})
}

// invoke makes one call on a connection of its own. Its errors are gRPC
// statuses: the server's, or Unavailable when nothing was asked of it.
func (c *HostClient) invoke(ctx context.Context, method string, req, resp any) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.addr)
	if err != nil {
		return status.Errorf(codes.Unavailable, "connect to the mounter's server: %v", err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	// hostRequest's fields, with the request message as it is, in one Write.
	if err := json.NewEncoder(conn).Encode(map[string]any{"method": method, "request": req}); err != nil {
		return status.Errorf(codes.Unavailable, "send the request to the mounter's server: %v", err)
	}
	r := bufio.NewReader(conn)
	if first, err := r.Peek(1); err == nil && first[0] != '{' {
		// A gRPC server answers any connection with its settings frame
		// (RFC 9113, section 3.4), then drops one that sends no HTTP/2
		// preface: it ran nothing.
		return status.Error(codes.Unavailable, "the mounter's server does not speak the host protocol: a `mounter csi` of an earlier release")
	}
	answer, err := r.ReadBytes('\n')
	if err != nil {
		if ctx.Err() != nil {
			return status.FromContextError(ctx.Err()).Err()
		}
		return status.Errorf(codes.Unknown, "the mounter's server hung up before it answered %s: %v; it may have stopped during the call", method, err)
	}
	var hr hostResponse
	err = json.Unmarshal(answer, &hr)
	if err == nil && hr.Code == codes.OK && len(hr.Response) > 0 {
		err = json.Unmarshal(hr.Response, resp)
	}
	if err != nil {
		return status.Errorf(codes.Unknown, "decode the answer of the mounter's server: %v", err)
	}
	return status.Error(hr.Code, hr.Message) // nil for OK
}
