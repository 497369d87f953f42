package csi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/runc-shared/runc-shared/internal/registry"
)

// serveHost serves e's server on a socket below a long directory, so that
// the path through /proc/PID/root is longer than a socket address may be.
func serveHost(t *testing.T, e *nodeEnv) string { return serveOn(t, e, e.S.NewGRPC()) }

// serveOn serves e's services through g, as serveHost does.
func serveOn(t *testing.T, e *nodeEnv, g *grpc.Server) string {
	t.Helper()
	pad := 100 - len(e.Root) - len("//csi.sock")
	if pad < 1 {
		t.Fatalf("temporary directory %s too long", e.Root)
	}
	dir := e.dir(t, strings.Repeat("d", pad))
	l, sock, err := Listen("unix://" + filepath.Join(dir, "csi.sock"))
	if err != nil {
		t.Fatal(err)
	}
	e.S.Register(g)
	go func() { _ = g.Serve(l) }()
	t.Cleanup(g.Stop)
	return sock
}

// hostClient dials the server at sock as `mounter` on the host does, and
// gives a context for its calls.
func hostClient(t *testing.T, sock string) (*HostClient, context.Context) {
	t.Helper()
	c, err := DialMounter(os.Getpid(), sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c, ctx
}

// TestHostRecover: `mounter recover` on the host asks the server through
// the mounter's root for one pass; the answer names each volume of the
// rule asked for, what was done, and what failed, which the record keeps.
func TestHostRecover(t *testing.T) {
	e := newNodeEnv(t)
	staging, targets := e.published(t, "vol-1", "127.0.0.2:/v0", 2)
	bad, _ := e.published(t, "vol-2", "127.0.0.2:/gone", 1)
	e.F.killDaemons()
	e.F.fail["127.0.0.2:/gone"] = errors.New("mount.glusterfs: volume gone")
	sock := serveHost(t, e)
	if len("/proc/self/root"+sock) <= 108 {
		t.Fatalf("socket path %s too short to test the long-path dial", sock)
	}

	c, ctx := hostClient(t, sock)
	res, err := c.Recover(ctx, "glusterfs")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]VolumeResult{}
	for _, r := range res {
		got[r.VolumeID] = r
	}
	if r := got["vol-1"]; !r.Remounted || r.Rebound != 2 || r.Error != "" {
		t.Errorf("vol-1: %+v, want remounted, 2 targets bound again", r)
	}
	if r := got["vol-2"]; r.Error == "" || !strings.Contains(r.Error, "volume gone") {
		t.Errorf("vol-2: %+v, want the helper's failure", r)
	}
	for _, p := range append([]string{staging}, targets...) {
		if _, live := e.top(p); !live {
			t.Errorf("%s not live after the host's recover", p)
		}
	}
	if _, live := e.top(bad); live {
		t.Errorf("%s live, want it dead", bad)
	}
	rec, err := e.S.records.Read("vol-2")
	if err != nil || rec == nil || rec.Recovery == nil || rec.Recovery.Attempts != 1 || !rec.Recovery.Next.IsZero() {
		t.Errorf("record of vol-2 after a failed recover: %+v, %v; want the failure kept, no retry scheduled", rec, err)
	}

	// Another rule: nothing of it; an unknown rule: InvalidArgument.
	if res, err := c.Recover(ctx, ""); err != nil || len(res) != 2 {
		t.Errorf("Recover of every rule: %+v, %v; want both volumes", res, err)
	}
	if _, err := c.Recover(ctx, "nope"); status.Code(err) != codes.InvalidArgument {
		t.Errorf("Recover of an unknown rule: %v, want InvalidArgument", err)
	}
}

// TestDialMounterRefuses: the socket path is resolved inside the mounter's
// root; a symlink there that names a socket of the host reaches nothing,
// and a file that is no socket is refused before anything is sent.
func TestDialMounterRefuses(t *testing.T) {
	e := newNodeEnv(t)
	sock := serveHost(t, e)
	root := e.dir(t, "rootfs")
	if err := os.MkdirAll(filepath.Join(root, "run"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{sock, strings.Repeat("../", 40) + sock[1:]} {
		link := filepath.Join(root, "run", "csi.sock")
		_ = os.Remove(link)
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
		if c, err := dialInRoot(root, "/run/csi.sock"); err == nil {
			_ = c.Close()
			t.Errorf("a symlink to %s in the mounter's root reached the host's socket", target)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "plain"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := dialInRoot(root, "/plain"); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("a plain file: %v, want refused as not a socket", err)
	}
	if _, err := DialMounter(os.Getpid(), "relative.sock"); err == nil {
		t.Errorf("a relative endpoint was accepted")
	}
}

// TestAnnounce: the server announces itself with its mount namespace and
// removes only its own announcement.
func TestAnnounce(t *testing.T) {
	e := newNodeEnv(t)
	a, err := e.S.announce("/run/x/csi.sock")
	if err != nil {
		t.Fatal(err)
	}
	ns, err := MountNSOf("self")
	if err != nil {
		t.Fatal(err)
	}
	got, errs := Announcements(e.S.Config.StateDir)
	if len(errs) != 0 || len(got) != 1 || got[0].Endpoint != "/run/x/csi.sock" || got[0].MountNS != ns || got[0].Driver != e.S.Driver {
		t.Fatalf("announcements: %+v, %v", got, errs)
	}
	if start, err := registry.ProcStart(os.Getpid()); err != nil || got[0].StartTicks != start {
		t.Errorf("announced start ticks %d, want this process's %d (%v)", got[0].StartTicks, start, err)
	}
	newer := *a
	newer.Started = a.Started.Add(time.Second)
	if err := e.S.unannounce(&newer); err != nil {
		t.Fatal(err)
	}
	if got, _ := Announcements(e.S.Config.StateDir); len(got) != 1 {
		t.Fatalf("another server's stop removed this one's announcement")
	}
	if err := e.S.unannounce(a); err != nil {
		t.Fatal(err)
	}
	if got, _ := Announcements(e.S.Config.StateDir); len(got) != 0 {
		t.Fatalf("announcement left after its server stopped: %+v", got)
	}
}

// TestHostMount: a routed mount sent to the server is run by its helper
// when the rule routes the type and the mount point lies below the rule's
// paths; anything else is InvalidArgument, with no helper run.
func TestHostMount(t *testing.T) {
	e := newNodeEnv(t)
	sock := serveHost(t, e)
	c, ctx := hostClient(t, sock)
	target := e.dir(t, "kubelet/routed")
	ok := MountRequest{Rule: "glusterfs", FSType: "glusterfs", Source: "127.0.0.2:/v0", Options: []string{"ro"}, Target: target}
	if err := c.Mount(ctx, &ok); err != nil {
		t.Fatal(err)
	}
	if m, _ := e.top(target); m == nil || m.Source != "127.0.0.2:/v0" || m.Options != "ro" {
		t.Fatalf("mount at %s: %+v, want the helper's", target, m)
	}
	bad := map[string]func(r *MountRequest){
		"source reads as an option": func(r *MountRequest) { r.Source = "-oremount" },
		"option smuggles a flag":    func(r *MountRequest) { r.Options = []string{"-t"} },
		"type not of the rule":      func(r *MountRequest) { r.FSType = "nfs" },
		"unknown rule":              func(r *MountRequest) { r.Rule = "nope" },
		"outside the rule's paths":  func(r *MountRequest) { r.Target = e.dir(t, "outside") },
		"a prefix, not a parent":    func(r *MountRequest) { r.Target = e.dir(t, "kubelet-evil") },
		"relative":                  func(r *MountRequest) { r.Target = "kubelet/routed" },
	}
	m0, _, _ := e.F.count()
	for name, change := range bad {
		r := ok
		change(&r)
		if err := c.Mount(ctx, &r); status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s: %v, want InvalidArgument", name, err)
		}
	}
	if m1, _, _ := e.F.count(); m1 != m0 {
		t.Errorf("%d helper mounts run for refused requests", m1-m0)
	}
}

// TestHostProtocolBesideGRPC: on the server's one socket, kubelet's gRPC
// calls and the host protocol are both answered.
func TestHostProtocolBesideGRPC(t *testing.T) {
	e := newNodeEnv(t)
	sock := serveHost(t, e)
	c, ctx := hostClient(t, sock)

	conn, err := grpc.NewClient("passthrough:///csi", grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	info, err := csipb.NewIdentityClient(conn).GetPluginInfo(ctx, &csipb.GetPluginInfoRequest{})
	if err != nil || info.GetName() != e.S.Driver {
		t.Fatalf("GetPluginInfo over gRPC: %v, %v; want %s", info, err, e.S.Driver)
	}
	req := &MountRequest{Rule: "glusterfs", FSType: "glusterfs", Source: "127.0.0.2:/v0", Target: e.dir(t, "kubelet/new-client")}
	if err := c.Mount(ctx, req); err != nil {
		t.Fatalf("Mount through the host protocol: %v", err)
	}
	if m, _ := e.top(req.Target); m == nil || m.Source != "127.0.0.2:/v0" {
		t.Errorf("mount at %s: %+v, want the helper's", req.Target, m)
	}
	if m, _, _ := e.F.count(); m != 1 {
		t.Errorf("%d helper mounts, want 1", m)
	}
}

// TestHostProtocolOlderServer: a server that speaks only gRPC (an earlier
// release) runs nothing for a host call, and the client says Unavailable,
// so that `mounter mount` falls back to the runtime exec.
func TestHostProtocolOlderServer(t *testing.T) {
	e := newNodeEnv(t)
	c, ctx := hostClient(t, serveOn(t, e, grpc.NewServer()))
	err := c.Mount(ctx, &MountRequest{Rule: "glusterfs", FSType: "glusterfs", Source: "127.0.0.2:/v0", Target: e.dir(t, "kubelet/routed")})
	if !Unavailable(err) {
		t.Errorf("Mount on a gRPC-only server: %v, want Unavailable", err)
	}
	if m, _, _ := e.F.count(); m != 0 {
		t.Errorf("%d helper mounts run by a server that did not understand the call", m)
	}
}

// TestHostProtocolRefuses: a host request the server cannot read or does
// not know is refused with a status, and the server goes on serving.
func TestHostProtocolRefuses(t *testing.T) {
	e := newNodeEnv(t)
	sock := serveHost(t, e)
	for name, tc := range map[string]struct {
		line string
		want codes.Code
	}{
		"not JSON":       {"{nope\n", codes.InvalidArgument},
		"unknown method": {`{"method":"Format","request":{}}` + "\n", codes.Unimplemented},
		"bad request":    {`{"method":"Mount","request":{"rule":1}}` + "\n", codes.InvalidArgument},
		"refused mount":  {`{"method":"Mount","request":{"rule":"glusterfs","fstype":"nfs","source":"h:/v","target":"/x"}}` + "\n", codes.InvalidArgument},
		// Read whole, it would be an unknown method.
		"too long": {`{"method":"Format","pad":"` + strings.Repeat("x", maxHostRequest) + `"}` + "\n", codes.InvalidArgument},
	} {
		t.Run(name, func(t *testing.T) {
			conn, err := net.Dial("unix", sock)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
			// The server answers a request too long before it has read
			// all of it, and hangs up: the rest of the write may fail.
			go func() { _, _ = conn.Write([]byte(tc.line)) }()
			line, err := bufio.NewReader(conn).ReadBytes('\n')
			if err != nil {
				t.Fatal(err)
			}
			var resp hostResponse
			if err := json.Unmarshal(line, &resp); err != nil || resp.Code != tc.want || resp.Message == "" {
				t.Errorf("answer %s (%v), want code %v with a message", line, err, tc.want)
			}
		})
	}
	if m, _, _ := e.F.count(); m != 0 {
		t.Errorf("%d helper mounts run for refused requests", m)
	}
}
