package csi

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/moby/sys/mountinfo"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/runc-shared/runc-shared/internal/config"
	"github.com/runc-shared/runc-shared/internal/mountrec"
	"github.com/runc-shared/runc-shared/internal/testutil"
	"github.com/runc-shared/runc-shared/pkg/spec"
)

// fakeMounter keeps a mount table in memory: the node's logic runs without
// root, and every mount it asks for is counted.
type fakeMounter struct {
	mu     sync.Mutex
	table  map[string][]*mountinfo.Info
	mounts int // helper mounts asked for
	binds  int
	// block, when set, is waited on by Mount (to hold a call in flight).
	block   chan struct{}
	running int // Mount calls in flight
	maxRun  int
	// dead marks mounts whose FUSE daemon is gone; hung, those that do
	// not answer; fail makes the helper fail for a source.
	dead, hung map[*mountinfo.Info]bool
	fail       map[string]error
}

func newFake() *fakeMounter {
	return &fakeMounter{table: map[string][]*mountinfo.Info{}, dead: map[*mountinfo.Info]bool{},
		hung: map[*mountinfo.Info]bool{}, fail: map[string]error{}}
}

// killDaemons makes every mount there is dead, as the mounter's death does.
func (f *fakeMounter) killDaemons() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ms := range f.table {
		for _, m := range ms {
			f.dead[m] = true
		}
	}
}

// statfs answers for the top mount at path as the kernel would.
func (f *fakeMounter) statfs(path string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	ms := f.table[path]
	switch {
	case len(ms) == 0:
		return nil
	case f.dead[ms[len(ms)-1]]:
		return &os.PathError{Op: "statfs", Path: path, Err: syscall.ENOTCONN}
	case f.hung[ms[len(ms)-1]]:
		return errStatTimeout
	}
	return nil
}

func (f *fakeMounter) Mount(ctx context.Context, v Volume, target string) error {
	f.mu.Lock()
	f.mounts++
	f.running++
	if f.running > f.maxRun {
		f.maxRun = f.running
	}
	block := f.block
	fail := f.fail[v.Source]
	f.mu.Unlock()
	if fail != nil {
		f.mu.Lock()
		f.running--
		f.mu.Unlock()
		return fail
	}
	if block != nil {
		<-block
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.running--
	f.table[target] = append(f.table[target], &mountinfo.Info{Mountpoint: target, Source: v.Source, FSType: v.FSType, Options: v.OptionString()})
	return nil
}

func (f *fakeMounter) Bind(source, target string, ro bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.binds++
	opts := "rw"
	if ro {
		opts = "ro"
	}
	f.table[target] = append(f.table[target], &mountinfo.Info{Mountpoint: target, Source: source, FSType: "bind", Options: opts})
	return nil
}

func (f *fakeMounter) Unmount(target string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	ms := f.table[target]
	if len(ms) == 0 {
		return os.ErrInvalid
	}
	f.table[target] = ms[:len(ms)-1]
	if len(f.table[target]) == 0 {
		delete(f.table, target)
	}
	return nil
}

func (f *fakeMounter) Detach(target string) error { return f.Unmount(target) }

func (f *fakeMounter) MountsAt(target string) ([]*mountinfo.Info, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*mountinfo.Info(nil), f.table[target]...), nil
}

func (f *fakeMounter) count() (mounts, binds, live int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ms := range f.table {
		live += len(ms)
	}
	return f.mounts, f.binds, live
}

// nodeEnv is a server whose rule allows glusterfs under Kube.
type nodeEnv struct {
	Root, Kube string
	S          *Server
	F          *fakeMounter
}

func newNodeEnv(t *testing.T) *nodeEnv {
	t.Helper()
	root, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e := &nodeEnv{Root: root, Kube: filepath.Join(root, "kubelet"), F: newFake()}
	for _, d := range []string{e.Kube, filepath.Join(root, "kubelet-evil"), filepath.Join(root, "outside")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cfg := config.Default()
	cfg.StateDir = filepath.Join(root, "state")
	cfg.Mounters = []spec.Rule{{Name: "glusterfs", FSTypes: []string{"glusterfs"}, Propagate: []string{e.Kube}}}
	e.S, err = NewServer("test.runc-shared.io", "node-1", cfg, "", e.F, NewLogger(io.Discard, "info"))
	if err != nil {
		t.Fatal(err)
	}
	e.S.statfsFunc = e.F.statfs
	return e
}

func (e *nodeEnv) dir(t *testing.T, rel string) string {
	t.Helper()
	p := filepath.Join(e.Root, rel)
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func mountCap(mode csipb.VolumeCapability_AccessMode_Mode, flags ...string) *csipb.VolumeCapability {
	return &csipb.VolumeCapability{
		AccessMode: &csipb.VolumeCapability_AccessMode{Mode: mode},
		AccessType: &csipb.VolumeCapability_Mount{Mount: &csipb.VolumeCapability_MountVolume{MountFlags: flags}},
	}
}

var rw = mountCap(csipb.VolumeCapability_AccessMode_SINGLE_NODE_WRITER)

func glusterCtx() map[string]string {
	return map[string]string{"fstype": "glusterfs", "source": "127.0.0.2:/v0"}
}

func stageReq(id, staging string, ctx map[string]string, c *csipb.VolumeCapability) *csipb.NodeStageVolumeRequest {
	return &csipb.NodeStageVolumeRequest{VolumeId: id, StagingTargetPath: staging, VolumeCapability: c, VolumeContext: ctx}
}

func wantCode(t *testing.T, err error, code codes.Code) {
	t.Helper()
	if got := status.Code(grpcError(err)); got != code {
		t.Fatalf("code %v (%v), want %v", got, err, code)
	}
}

// TestStageRefusals: every refusal is InvalidArgument and mounts nothing.
func TestStageRefusals(t *testing.T) {
	e := newNodeEnv(t)
	if err := os.Symlink(filepath.Join(e.Root, "outside"), filepath.Join(e.Kube, "link")); err != nil {
		t.Fatal(err)
	}
	ok := e.dir(t, "kubelet/plugins/stage")
	with := func(k, v string) map[string]string {
		c := glusterCtx()
		c[k] = v
		return c
	}
	tests := []struct {
		name    string
		staging string
		ctx     map[string]string
		cap     *csipb.VolumeCapability
	}{
		{"staging outside the allowlist", e.dir(t, "outside/stage"), glusterCtx(), rw},
		{"staging in a prefix sibling", e.dir(t, "kubelet-evil/stage"), glusterCtx(), rw},
		{"staging through a symlink out", filepath.Join(e.Kube, "link"), glusterCtx(), rw},
		{"staging below a symlink out", filepath.Join(e.Kube, "link", "new"), glusterCtx(), rw},
		{"staging with dot-dot out", e.Kube + "/../outside", glusterCtx(), rw},
		{"relative staging path", "kubelet/plugins/stage", glusterCtx(), rw},
		{"type outside the rule", ok, with("fstype", "nfs"), rw},
		{"source starting with a dash", ok, with("source", "-oremount,rw"), rw},
		{"options with a newline", ok, with("options", "ro\nfoo"), rw},
		{"options with a second -o", ok, with("options", "ro,-o,rw"), rw},
		{"mount flag with a second -o", ok, glusterCtx(), mountCap(csipb.VolumeCapability_AccessMode_SINGLE_NODE_WRITER, "-o")},
		{"block access", ok, glusterCtx(), &csipb.VolumeCapability{AccessMode: rw.AccessMode, AccessType: &csipb.VolumeCapability_Block{Block: &csipb.VolumeCapability_BlockVolume{}}}},
		{"no capability", ok, glusterCtx(), nil},
		{"no access mode", ok, glusterCtx(), mountCap(csipb.VolumeCapability_AccessMode_UNKNOWN)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.S.NodeStageVolume(context.Background(), stageReq("vol-1", tt.staging, tt.ctx, tt.cap))
			wantCode(t, err, codes.InvalidArgument)
			if m, b, live := e.F.count(); m+b+live != 0 {
				t.Fatalf("refused, yet %d mounts and %d binds asked, %d live", m, b, live)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(e.Root, "outside", "new")); !os.IsNotExist(err) {
		t.Errorf("a refused staging path was created outside the allowlist: %v", err)
	}
	// The same call inside the rule mounts: the refusals above were not
	// refusing everything.
	if _, err := e.S.NodeStageVolume(context.Background(), stageReq("vol-1", ok, glusterCtx(), rw)); err != nil {
		t.Fatalf("stage inside the rule: %v", err)
	}
	if m, _, _ := e.F.count(); m != 1 {
		t.Fatalf("%d helper mounts, want 1", m)
	}
}

func TestNodeLifecycle(t *testing.T) {
	e := newNodeEnv(t)
	ctx := context.Background()
	staging := e.dir(t, "kubelet/plugins/csi/pv1/globalmount")
	e.dir(t, "kubelet/pods/uid1/volumes/kubernetes.io~csi/pv1")
	target := filepath.Join(e.Kube, "pods/uid1/volumes/kubernetes.io~csi/pv1/mount")
	pub := &csipb.NodePublishVolumeRequest{VolumeId: "vol-1", StagingTargetPath: staging, TargetPath: target, VolumeCapability: rw, VolumeContext: glusterCtx()}

	_, err := e.S.NodePublishVolume(ctx, pub)
	wantCode(t, err, codes.FailedPrecondition)

	for i := 0; i < 2; i++ {
		if _, err := e.S.NodeStageVolume(ctx, stageReq("vol-1", staging, glusterCtx(), rw)); err != nil {
			t.Fatalf("stage #%d: %v", i+1, err)
		}
	}
	if m, _, live := e.F.count(); m != 1 || live != 1 {
		t.Fatalf("after two stages: %d helper mounts, %d live; want one of each", m, live)
	}
	other := glusterCtx()
	other["source"] = "127.0.0.2:/v1"
	_, err = e.S.NodeStageVolume(ctx, stageReq("vol-2", staging, other, rw))
	wantCode(t, err, codes.AlreadyExists)

	rec, err := e.S.records.Read("vol-1")
	if err != nil || rec == nil || rec.Staging != staging || rec.Source != "127.0.0.2:/v0" || rec.Node != "node-1" {
		t.Fatalf("record after stage: %+v, %v", rec, err)
	}
	for i := 0; i < 2; i++ {
		if _, err := e.S.NodePublishVolume(ctx, pub); err != nil {
			t.Fatalf("publish #%d: %v", i+1, err)
		}
	}
	if _, b, _ := e.F.count(); b != 1 {
		t.Fatalf("%d binds after two publishes, want 1", b)
	}
	if fi, err := os.Stat(target); err != nil || !fi.IsDir() {
		t.Fatalf("target not created: %v", err)
	}
	roPub := proto.Clone(pub).(*csipb.NodePublishVolumeRequest)
	roPub.Readonly = true
	_, err = e.S.NodePublishVolume(ctx, roPub)
	wantCode(t, err, codes.AlreadyExists)

	all, errs := mountrec.List(e.S.Config.StateDir)
	if len(errs) != 0 || len(all) != 1 || len(all[0].Targets) != 1 || all[0].Targets[0].Path != target {
		t.Fatalf("records %+v %v, want vol-1 published at %s", all, errs, target)
	}

	unpub := &csipb.NodeUnpublishVolumeRequest{VolumeId: "vol-1", TargetPath: target}
	for i := 0; i < 2; i++ {
		if _, err := e.S.NodeUnpublishVolume(ctx, unpub); err != nil {
			t.Fatalf("unpublish #%d: %v", i+1, err)
		}
	}
	if _, err := os.Stat(target); !os.IsNotExist(err) {
		t.Fatalf("target still there after unpublish: %v", err)
	}
	unstage := &csipb.NodeUnstageVolumeRequest{VolumeId: "vol-1", StagingTargetPath: staging}
	for i := 0; i < 2; i++ {
		if _, err := e.S.NodeUnstageVolume(ctx, unstage); err != nil {
			t.Fatalf("unstage #%d: %v", i+1, err)
		}
	}
	if _, _, live := e.F.count(); live != 0 {
		t.Fatalf("%d mounts left after unstage", live)
	}
	if all, _ := mountrec.List(e.S.Config.StateDir); len(all) != 0 {
		t.Fatalf("records left after unstage: %+v", all)
	}
}

// TestVolumeCallsSerialized: two stages of one volume never run their
// helpers at once; two volumes do.
func TestVolumeCallsSerialized(t *testing.T) {
	for _, tc := range []struct {
		name    string
		ids     [2]string
		wantMax int
	}{{"same volume", [2]string{"vol-1", "vol-1"}, 1}, {"two volumes", [2]string{"vol-1", "vol-2"}, 2}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newNodeEnv(t)
			e.F.block = make(chan struct{})
			var wg sync.WaitGroup
			for i, id := range tc.ids {
				staging := e.dir(t, "kubelet/stage"+id)
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, _ = e.S.NodeStageVolume(context.Background(), stageReq(id, staging, glusterCtx(), rw))
				}()
				_ = i
			}
			// Let both calls reach the helper (or the lock) before
			// releasing: the second of one volume waits on the lock.
			// The count is checked below, once the helpers are released.
			testutil.Poll(5*time.Second, func() bool {
				e.F.mu.Lock()
				defer e.F.mu.Unlock()
				return e.F.running == tc.wantMax
			})
			time.Sleep(50 * time.Millisecond)
			close(e.F.block)
			wg.Wait()
			if e.F.maxRun != tc.wantMax {
				t.Fatalf("%d helper mounts ran at once, want %d", e.F.maxRun, tc.wantMax)
			}
			if e.S.locks.size() != 0 {
				t.Fatalf("%d volume locks left held", e.S.locks.size())
			}
		})
	}
}

func TestVolumeStatsAndHealth(t *testing.T) {
	e := newNodeEnv(t)
	ctx := context.Background()
	_, err := e.S.NodeGetVolumeStats(ctx, &csipb.NodeGetVolumeStatsRequest{VolumeId: "v", VolumePath: "some/path"})
	wantCode(t, err, codes.NotFound)
	_, err = e.S.NodeGetVolumeStats(ctx, &csipb.NodeGetVolumeStatsRequest{VolumeId: "v", VolumePath: filepath.Join(e.Kube, "missing")})
	wantCode(t, err, codes.NotFound)
	st, err := e.S.NodeGetVolumeStats(ctx, &csipb.NodeGetVolumeStatsRequest{VolumeId: "v", VolumePath: e.Kube})
	if err != nil || len(st.GetUsage()) != 2 || st.GetUsage()[0].GetTotal() <= 0 {
		t.Fatalf("stats of %s: %+v, %v", e.Kube, st, err)
	}
	_, err = e.S.NodeGetVolumeHealth(ctx, &csipb.NodeGetVolumeHealthRequest{VolumeId: "vol-1"})
	wantCode(t, err, codes.NotFound)
	staging := e.dir(t, "kubelet/stage")
	if _, err := e.S.NodeStageVolume(ctx, stageReq("vol-1", staging, glusterCtx(), rw)); err != nil {
		t.Fatal(err)
	}
	h, err := e.S.NodeGetVolumeHealth(ctx, &csipb.NodeGetVolumeHealthRequest{VolumeId: "vol-1"})
	if err != nil || h.GetVolumeHealth().GetVolumeId() != "vol-1" || len(h.GetVolumeHealth().GetHealthStatuses()) != 0 {
		t.Fatalf("health of a staged volume: %+v, %v; want no adverse status", h, err)
	}
	// The mount vanished behind the driver's back.
	if err := e.F.Unmount(staging); err != nil {
		t.Fatal(err)
	}
	h, err = e.S.NodeGetVolumeHealth(ctx, &csipb.NodeGetVolumeHealthRequest{VolumeId: "vol-1"})
	if err != nil || len(h.GetVolumeHealth().GetHealthStatuses()) != 1 || h.GetVolumeHealth().GetHealthStatuses()[0].GetReason() != ReasonNotMounted {
		t.Fatalf("health of a volume whose mount is gone: %+v, %v; want %s", h, err, ReasonNotMounted)
	}
}
