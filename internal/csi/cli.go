package csi

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"google.golang.org/grpc"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"

	"github.com/runc-shared/runc-shared/internal/config"
)

// Exit codes, as the rest of mounter's.
const (
	exitUsage  = 1
	exitSystem = 2
)

// stopTimeout bounds the wait for calls in flight at SIGTERM: a helper that
// hangs on an unreachable server must not keep the pod from stopping.
const stopTimeout = 30 * time.Second

// Usage is the help of `mounter csi`.
const Usage = `usage: mounter csi --endpoint unix:///PATH --driver-name NAME --node-id ID
                   [--config PATH] [--rule NAME] [--registration-dir DIR] [--kubelet-endpoint PATH]

Serves the CSI Identity, Node and Controller services on the unix socket PATH and
mounts with the helpers installed where it runs (mount -t TYPE): run it as the
mounter container's main process. The [[mounter]] rule (--rule, else the only rule,
else the first whose fstypes hold the volume's type) gives the allowed types and
the paths staging and target paths must lie under.
With --registration-dir (kubelet's /var/lib/kubelet/plugins_registry) it also serves
kubelet's plugin registration on DIR/NAME-reg.sock, naming --kubelet-endpoint (default:
the --endpoint path) as the CSI socket, so no node-driver-registrar sidecar is needed.
Volume context and StorageClass parameters: fstype, source, options; StorageClass
also onDelete (delete or retain). SIGTERM finishes the calls in flight and stops.

mounter csi call --endpoint unix:///PATH METHOD [REQUEST-JSON] calls one method of a
running driver (mounter csi call --help).
`

// Options are the command line of `mounter csi`.
type Options struct {
	Endpoint, Driver, NodeID string
	ConfigPath               string
	ConfigSet                bool
	Rule                     string
	RegistrationDir          string
	KubeletEndpoint          string
}

// ParseArgs reads the arguments after `csi`.
func ParseArgs(args []string) (*Options, error) {
	o := &Options{}
	fs := flag.NewFlagSet("mounter csi", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	for name, p := range map[string]*string{"endpoint": &o.Endpoint, "driver-name": &o.Driver, "node-id": &o.NodeID, "config": &o.ConfigPath,
		"rule": &o.Rule, "registration-dir": &o.RegistrationDir, "kubelet-endpoint": &o.KubeletEndpoint} {
		fs.StringVar(p, name, "", "")
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	fs.Visit(func(f *flag.Flag) { o.ConfigSet = o.ConfigSet || f.Name == "config" })
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	for _, m := range []struct{ name, v string }{{"--endpoint", o.Endpoint}, {"--driver-name", o.Driver}, {"--node-id", o.NodeID}} {
		if m.v == "" {
			return nil, fmt.Errorf("%s is required", m.name)
		}
	}
	if _, err := socketPath(o.Endpoint); err != nil {
		return nil, err
	}
	if p, err := socketPath(cmp.Or(o.KubeletEndpoint, o.Endpoint)); err == nil {
		o.KubeletEndpoint = p
	}
	return o, nil
}

// Main runs `mounter csi` with args (after "csi") until SIGTERM or SIGINT,
// and returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) == 1 && (args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
		fmt.Fprint(stdout, Usage)
		return 0
	}
	if len(args) > 0 && args[0] == "call" {
		return Call(args[1:], stdout, stderr)
	}
	o, err := ParseArgs(args)
	if err != nil {
		fmt.Fprintf(stderr, "mounter csi: %v\n%s", err, Usage)
		return exitUsage
	}
	cfg, err := config.Load(config.Path(o.ConfigPath, o.ConfigSet))
	if err != nil {
		fmt.Fprintf(stderr, "mounter csi: %v\n", err)
		return exitUsage
	}
	log := NewLogger(stderr, cfg.LogLevel)
	s, err := NewServer(o.Driver, o.NodeID, cfg, o.Rule, SystemMounter{}, log)
	if err != nil {
		log.Error(err.Error())
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := Serve(ctx, s, o); err != nil {
		log.Error(err.Error())
		return exitSystem
	}
	return 0
}

// NewLogger writes one text line per entry on w, at the configuration's
// level: the container's log, which kubectl logs shows. logrus writes each
// entry with one Write under its lock, so lines do not interleave.
func NewLogger(w io.Writer, level string) *logrus.Logger {
	log := logrus.New()
	log.SetOutput(w)
	log.SetFormatter(&logrus.TextFormatter{DisableColors: true, FullTimestamp: true})
	l, err := logrus.ParseLevel(level)
	if err != nil {
		l = logrus.InfoLevel
	}
	log.SetLevel(l)
	return log
}

// Serve serves s on o's endpoint (and kubelet's registration socket) until
// ctx ends, then stops: calls in flight finish (for at most stopTimeout),
// the sockets are removed, the controller's mount point released.
func Serve(ctx context.Context, s *Server, o *Options) (err error) {
	l, sock, err := Listen(o.Endpoint)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, removeSocket(sock)) }()
	g := s.NewGRPC()
	s.Register(g)
	servers := []*grpc.Server{g}
	errs := make(chan error, 2)
	go func() { errs <- g.Serve(l) }()

	if o.RegistrationDir != "" {
		regSock := RegistrationSocket(o.RegistrationDir, o.Driver)
		rl, _, lerr := Listen("unix://" + regSock)
		if lerr != nil {
			g.Stop()
			return fmt.Errorf("kubelet registration: %w", lerr)
		}
		defer func() { err = errors.Join(err, removeSocket(regSock)) }()
		rg := grpc.NewServer()
		registerapi.RegisterRegistrationServer(rg, &Registration{Driver: o.Driver, Endpoint: o.KubeletEndpoint, Log: s.Log})
		servers = append(servers, rg)
		go func() { errs <- rg.Serve(rl) }()
		s.Log.WithField("socket", regSock).Infof("serving kubelet plugin registration (CSI endpoint for kubelet: %s)", o.KubeletEndpoint)
	}
	s.Log.WithFields(logrus.Fields{"socket": sock, "node": o.NodeID, "config": s.Config.Path}).Infof("serving CSI driver %s", o.Driver)
	// Without the announcement the host falls back to a runtime exec: a
	// slower route, not a reason to stop serving kubelet.
	if a, aerr := s.announce(sock); aerr != nil {
		s.Log.Warnf("%v: `mounter` on the host will use a runtime exec into this mounter", aerr)
	} else {
		defer func() {
			if uerr := s.unannounce(a); uerr != nil {
				s.Log.Warn(uerr.Error())
			}
		}()
	}

	// Recovery runs beside the calls: a call for a volume waits for that
	// volume's recovery (the volume lock), the others are served at once.
	recoverCtx, stopRecovery := context.WithCancel(ctx)
	var recovery sync.WaitGroup
	recovery.Go(func() {
		if err := s.Recover(recoverCtx, defaultRecoverPolicy); err != nil && !errors.Is(err, context.Canceled) {
			s.Log.Errorf("recovery: %v", err)
		}
	})

	select {
	case <-ctx.Done():
		s.Log.Info("stopping: finishing the calls in flight")
	case err = <-errs:
		err = fmt.Errorf("serve: %w", err)
	}
	stopRecovery()
	recovery.Wait()
	for _, srv := range servers {
		gracefulStop(srv, stopTimeout)
	}
	if cerr := s.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("release the controller's mount point: %w", cerr))
	}
	s.Log.Info("stopped")
	return err
}

// gracefulStop waits for the calls in flight, then cuts the rest.
func gracefulStop(g *grpc.Server, timeout time.Duration) {
	done := make(chan struct{})
	go func() { g.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
		g.Stop()
	}
}

// removeSocket removes the socket file a server listened on, if it still is
// a socket.
func removeSocket(path string) error {
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode()&os.ModeSocket == 0 {
		return nil
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("remove the socket %s: %w", path, err)
	}
	return nil
}
