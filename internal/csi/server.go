package csi

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/runc-shared/runc-shared/internal/config"
	"github.com/runc-shared/runc-shared/internal/hostmount"
	"github.com/runc-shared/runc-shared/internal/mountrec"
	"github.com/runc-shared/runc-shared/pkg/spec"
)

// Server is one `mounter csi`: the Identity, Node and Controller services
// on one unix socket, and kubelet's registration service on another.
type Server struct {
	Driver string
	NodeID string
	Config *config.Config
	// RuleName fixes the rule (--rule); "" picks it per volume type.
	RuleName string
	Mounter  Mounter
	Log      *logrus.Logger

	locks keyLocks
	// records are this driver's: this server writes them, and the host's
	// `mounter recover` when no server answers, each under the volume's
	// lock (lockVolume).
	records mountrec.Store
	// work is the controller's private mount point: a base volume is
	// mounted below it for one call and seen by nobody else.
	work        string
	privateWork func() error
	// statfsFunc replaces the statfs of a mount point in tests.
	statfsFunc func(path string) error
	// HelperPID is the process whose helpers hold the mounts, for the
	// records; 0 means this process. `mounter recover` on the host, which
	// mounts through a runtime exec into a mounter, names that mounter.
	HelperPID int

	csipb.UnimplementedIdentityServer
	csipb.UnimplementedNodeServer
	csipb.UnimplementedControllerServer
}

// NewServer checks the configuration for what the driver needs.
func NewServer(driver, nodeID string, cfg *config.Config, rule string, m Mounter, log *logrus.Logger) (*Server, error) {
	switch {
	case driver == "" || nodeID == "":
		return nil, errors.New("the driver name and the node id must not be empty")
	// CSI's rule for plugin names (a domain name, at most 63 characters),
	// loosely: the name becomes a directory name.
	case len(driver) > 63 || strings.ContainsAny(driver, "/ \t\n") || driver == "." || driver == "..":
		return nil, fmt.Errorf("driver name %q: use a domain name of at most 63 characters, such as glusterfs.runc-shared.io", driver)
	case len(cfg.Mounters) == 0:
		return nil, fmt.Errorf("%s has no [[mounter]] rule: mounter csi mounts only the types and paths a rule allows; add one", cfg.Name())
	case rule != "" && cfg.Rule(rule) == nil:
		return nil, fmt.Errorf("--rule %q: %s has no [[mounter]] rule of that name", rule, cfg.Name())
	}
	s := &Server{Driver: driver, NodeID: nodeID, Config: cfg, RuleName: rule, Mounter: m, Log: log}
	s.records = mountrec.Store{Dir: mountrec.Dir(cfg.StateDir, driver)}
	s.work = filepath.Join(cfg.StateDir, "csi", driver, "controller")
	s.privateWork = sync.OnceValue(s.makeWorkPrivate)
	return s, nil
}

// ruleFor returns the rule that serves fstype: --rule when given (its
// types must hold fstype), else the only rule, else the first rule whose
// types hold it.
func (s *Server) ruleFor(fstype string) (*spec.Rule, error) {
	var r *spec.Rule
	switch {
	case s.RuleName != "":
		r = s.Config.Rule(s.RuleName)
	case len(s.Config.Mounters) == 1:
		r = &s.Config.Mounters[0]
	default:
		if rs := s.Config.RulesFor(fstype); len(rs) > 0 {
			r = rs[0]
		}
	}
	if r == nil {
		return nil, invalid("no [[mounter]] rule of %s serves file system type %q", s.Config.Name(), fstype)
	}
	if !r.Routes(fstype) {
		return nil, invalid("file system type %q is not among the types %v of rule %q", fstype, r.FSTypes, r.Name)
	}
	return r, nil
}

func (s *Server) pid() int { return cmp.Or(s.HelperPID, os.Getpid()) }

// Register adds the CSI services to g.
func (s *Server) Register(g *grpc.Server) {
	csipb.RegisterIdentityServer(g, s)
	csipb.RegisterNodeServer(g, s)
	csipb.RegisterControllerServer(g, s)
}

// lockVolume serializes the calls for one volume id, in this process and
// across processes: a server that starts recovers its volumes while the
// host's `mounter recover`, finding no server that answers yet, may
// recover the same ones with a Server of its own. The file lock beside the
// records is taken after the in-process one, so the calls of one process
// wait on the channel and only one of them polls the file.
func (s *Server) lockVolume(ctx context.Context, id string) (func(), error) {
	unlock, err := s.locks.lock(ctx, id)
	if err != nil {
		return nil, status.Errorf(codes.Aborted, "volume %s: another call for it is still running: %v", id, err)
	}
	unlockFile, err := s.records.Lock(ctx, id)
	switch {
	case err != nil && ctx.Err() != nil:
		unlock()
		return nil, status.Errorf(codes.Aborted, "volume %s: another call for it is still running: %v", id, err)
	case err != nil:
		unlock()
		return nil, fmt.Errorf("volume %s: %w", id, err)
	}
	return func() { unlockFile(); unlock() }, nil
}

// grpcCodes are the gRPC codes of the package's errors; any other error is
// Internal.
var grpcCodes = []struct {
	err  error
	code codes.Code
}{{errInvalid, codes.InvalidArgument}, {fs.ErrNotExist, codes.NotFound}, {context.DeadlineExceeded, codes.DeadlineExceeded}, {context.Canceled, codes.Canceled}}

// grpcError maps an error to its gRPC code; nil, and an error that already
// is a status, stay as they are.
func grpcError(err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	for _, c := range grpcCodes {
		if errors.Is(err, c.err) {
			return status.Error(c.code, err.Error())
		}
	}
	return status.Error(codes.Internal, err.Error())
}

// logCall is the interceptor that writes one line per call: the method, the
// volume, the code and the time taken; the error's message when it failed.
func (s *Server) logCall(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := handler(ctx, req)
	err = grpcError(err)
	fields := logrus.Fields{"took": time.Since(start).Round(time.Microsecond).String(), "code": status.Code(err).String()}
	if v, ok := req.(interface{ GetVolumeId() string }); ok && v.GetVolumeId() != "" {
		fields["volume"] = v.GetVolumeId()
	}
	if n, ok := req.(interface{ GetName() string }); ok && n.GetName() != "" {
		fields["name"] = n.GetName()
	}
	method := info.FullMethod[strings.LastIndexByte(info.FullMethod, '/')+1:]
	e := s.Log.WithFields(fields)
	switch status.Code(err) {
	case codes.OK:
		e.Info(method)
	case codes.InvalidArgument, codes.NotFound, codes.AlreadyExists, codes.FailedPrecondition, codes.Aborted:
		e.Warnf("%s: %s", method, status.Convert(err).Message())
	default:
		e.Errorf("%s: %s", method, status.Convert(err).Message())
	}
	return resp, err
}

// Listen opens the unix socket of endpoint ("unix:///path" or
// "unix:/path"), replacing a stale socket file left by a killed server.
func Listen(endpoint string) (net.Listener, string, error) {
	path, err := socketPath(endpoint)
	if err != nil {
		return nil, "", err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, "", fmt.Errorf("create the directory of %s: %w", path, err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, "", fmt.Errorf("%s exists and is not a socket: choose another endpoint or remove it", path)
		}
		if c, err := net.Dial("unix", path); err == nil {
			_ = c.Close()
			return nil, "", fmt.Errorf("%s: another server answers there: stop it first", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, "", fmt.Errorf("remove the stale socket %s: %w", path, err)
		}
	}
	// The socket is bound and listening under a private name, then renamed
	// into place: kubelet's plugin watcher and the clients that wait for the
	// file dial as soon as it appears, and a socket bound but not yet
	// listening refuses them (ECONNREFUSED, unix(7)).
	// The private name is random, not the PID: servers in containers of
	// their own are all PID 1, and several drivers' servers share kubelet's
	// registration directory. It is short: a socket's path has at most 107
	// bytes.
	var tmp string
	var l net.Listener
	for range 5 {
		tmp = filepath.Join(filepath.Dir(path), fmt.Sprintf(".%06x", rand.Uint32N(1<<24)))
		if l, err = net.Listen("unix", tmp); !errors.Is(err, unix.EADDRINUSE) {
			break
		}
	}
	if err != nil {
		return nil, "", fmt.Errorf("listen on %s: %w", path, err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	if err := os.Rename(tmp, path); err != nil {
		_ = l.Close()
		_ = os.Remove(tmp)
		return nil, "", fmt.Errorf("listen on %s: %w", path, err)
	}
	return l, path, nil
}

// socketPath reads a unix endpoint.
func socketPath(endpoint string) (string, error) {
	p, ok := strings.CutPrefix(endpoint, "unix://")
	if !ok {
		p, ok = strings.CutPrefix(endpoint, "unix:")
	}
	if !ok || !filepath.IsAbs(p) {
		return "", fmt.Errorf("endpoint %q: use unix:///ABSOLUTE/PATH", endpoint)
	}
	return filepath.Clean(p), nil
}

// NewGRPC returns a gRPC server that logs each call through s and also
// answers the host protocol on its connections (hostCreds).
func (s *Server) NewGRPC() *grpc.Server {
	return grpc.NewServer(grpc.UnaryInterceptor(s.logCall), grpc.Creds(hostCreds{TransportCredentials: insecure.NewCredentials(), s: s}))
}

// Close releases the controller's private mount point.
func (s *Server) Close() error {
	if s.work == "" {
		return nil
	}
	// Detached with whatever a cancelled call left mounted below it.
	if ms, err := s.Mounter.MountsAt(s.work); err == nil && len(ms) > 0 {
		if err := hostmount.Detach(s.work); err != nil {
			return err
		}
	}
	if err := os.Remove(s.work); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
