package csi

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/moby/sys/mountinfo"

	"github.com/runc-shared/runc-shared/pkg/spec"
)

// fastPolicy retries without making the tests wait.
var fastPolicy = RecoverPolicy{Initial: time.Millisecond, Max: 4 * time.Millisecond, Attempts: 3, Workers: 4}

// published stages volume id and publishes it at n targets; it returns the
// staging path and the targets.
func (e *nodeEnv) published(t *testing.T, id, source string, n int) (string, []string) {
	t.Helper()
	ctx := context.Background()
	staging := e.dir(t, "kubelet/plugins/csi/"+id+"/globalmount")
	vctx := glusterCtx()
	vctx["source"] = source
	if _, err := e.S.NodeStageVolume(ctx, stageReq(id, staging, vctx, rw)); err != nil {
		t.Fatal(err)
	}
	var targets []string
	for i := range n {
		pod := e.dir(t, "kubelet/pods/uid"+string(rune('a'+i))+"/volumes/kubernetes.io~csi/"+id)
		target := filepath.Join(pod, "mount")
		if _, err := e.S.NodePublishVolume(ctx, &csipb.NodePublishVolumeRequest{VolumeId: id, StagingTargetPath: staging,
			TargetPath: target, VolumeCapability: rw, VolumeContext: vctx}); err != nil {
			t.Fatal(err)
		}
		targets = append(targets, target)
	}
	return staging, targets
}

// top is the top mount at path and whether it answers.
func (e *nodeEnv) top(path string) (*mountinfo.Info, bool) {
	ms, _ := e.F.MountsAt(path)
	if len(ms) == 0 {
		return nil, false
	}
	return ms[len(ms)-1], e.F.statfs(path) == nil
}

// setRule changes the rule a volume's record names.
func (e *nodeEnv) setRule(t *testing.T, id, rule string) {
	t.Helper()
	rec, err := e.S.records.Read(id)
	if err != nil || rec == nil {
		t.Fatalf("record of %s: %v", id, err)
	}
	rec.Rule = rule
	if err := e.S.records.Write(rec); err != nil {
		t.Fatal(err)
	}
}

func (e *nodeEnv) depth(path string) int {
	ms, _ := e.F.MountsAt(path)
	return len(ms)
}

// recoverAsking runs one recovery pass and checks that it asked the helper
// for mounts mounts and binds binds. The function it returns runs a second
// pass and checks that it asked for nothing more: everything is live then.
func (e *nodeEnv) recoverAsking(t *testing.T, mounts, binds int) (again func()) {
	t.Helper()
	m0, b0, _ := e.F.count()
	if err := e.S.Recover(context.Background(), fastPolicy); err != nil {
		t.Fatalf("Recover: %v", err)
	}
	m1, b1, _ := e.F.count()
	if m1-m0 != mounts || b1-b0 != binds {
		t.Errorf("recovery asked for %d helper mounts and %d binds, want %d and %d", m1-m0, b1-b0, mounts, binds)
	}
	return func() {
		t.Helper()
		if err := e.S.Recover(context.Background(), fastPolicy); err != nil {
			t.Fatal(err)
		}
		if m2, b2, _ := e.F.count(); m2 != m1 || b2 != b1 {
			t.Errorf("a second recovery mounted %d and bound %d more", m2-m1, b2-b1)
		}
	}
}

func TestRecover(t *testing.T) {
	const src = "127.0.0.2:/v0"
	tests := []struct {
		name string
		// break_ does to the node what the test is about, after vol-1 was
		// staged and published at two targets.
		break_ func(t *testing.T, e *nodeEnv, staging string, targets []string)
		// mounts and binds that recovery asks for; the depth of the
		// mount stack at each target afterwards.
		mounts, binds, targetDepth int
		remounted                  bool
	}{
		{name: "live mounts are left alone",
			break_: func(*testing.T, *nodeEnv, string, []string) {}, targetDepth: 1},
		{name: "the daemon is gone: staging mounted again, targets bound on top of the dead binds",
			break_: func(_ *testing.T, e *nodeEnv, _ string, _ []string) { e.F.killDaemons() },
			mounts: 1, binds: 2, targetDepth: 2, remounted: true},
		{name: "nothing mounted any more: staging mounted, targets bound",
			break_: func(t *testing.T, e *nodeEnv, staging string, targets []string) {
				for _, p := range append([]string{staging}, targets...) {
					if err := unmountAll(e.F, p); err != nil {
						t.Fatal(err)
					}
				}
			},
			mounts: 1, binds: 2, targetDepth: 1, remounted: true},
		{name: "a target directory gone: made again and bound",
			break_: func(t *testing.T, e *nodeEnv, _ string, targets []string) {
				if err := unmountAll(e.F, targets[1]); err != nil {
					t.Fatal(err)
				}
				if err := os.Remove(targets[1]); err != nil {
					t.Fatal(err)
				}
			},
			binds: 1, targetDepth: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newNodeEnv(t)
			staging, targets := e.published(t, "vol-1", src, 2)
			before, _ := e.S.records.Read("vol-1")
			before.PID = -1 // an earlier server's
			if err := e.S.records.Write(before); err != nil {
				t.Fatal(err)
			}
			tt.break_(t, e, staging, targets)
			again := e.recoverAsking(t, tt.mounts, tt.binds)
			if m, live := e.top(staging); m == nil || !live || m.Source != src || e.depth(staging) != 1 {
				t.Errorf("staging: top %+v live=%v depth %d; want one live mount of %s", m, live, e.depth(staging), src)
			}
			for _, p := range targets {
				if m, live := e.top(p); m == nil || !live || m.Source != staging || e.depth(p) != tt.targetDepth {
					t.Errorf("target %s: top %+v live=%v depth %d; want a live bind of %s, %d deep", p, m, live, e.depth(p), staging, tt.targetDepth)
				}
			}
			after, err := e.S.records.Read("vol-1")
			if err != nil || after == nil || after.Recovery != nil || len(after.Targets) != 2 {
				t.Fatalf("record after recovery: %+v, %v; want both targets and no failure", after, err)
			}
			if wantPID := map[bool]int{true: os.Getpid(), false: -1}[tt.remounted]; after.PID != wantPID {
				t.Errorf("record's pid %d, want %d", after.PID, wantPID)
			}
			again() // a second recovery finds everything live
		})
	}
}

// TestRecoverStackPerRestart: each restart of the mounter leaves one more
// dead bind under the new one at a publish target, and no more: the dead
// ones stay because a consumer that (re)started after an earlier recovery
// binds that recovery's mount, and only a bind on top of it reaches the
// consumer. The staging path holds one mount however often it is made.
func TestRecoverStackPerRestart(t *testing.T) {
	e := newNodeEnv(t)
	src := "127.0.0.2:/v0"
	staging, targets := e.published(t, "vol-1", src, 1)
	for cycle := 1; cycle <= 3; cycle++ {
		e.F.killDaemons()
		for range 2 { // the second pass finds everything live
			if err := e.S.Recover(context.Background(), fastPolicy); err != nil {
				t.Fatalf("cycle %d: %v", cycle, err)
			}
		}
		if m, live := e.top(targets[0]); !live || m.Source != staging || e.depth(targets[0]) != 1+cycle {
			t.Errorf("cycle %d: target top %+v live=%v depth %d; want a live bind of %s, %d deep", cycle, m, live, e.depth(targets[0]), staging, 1+cycle)
		}
		if m, live := e.top(staging); !live || m.Source != src || e.depth(staging) != 1 {
			t.Errorf("cycle %d: staging top %+v live=%v depth %d; want one live mount of %s", cycle, m, live, e.depth(staging), src)
		}
	}
}

// TestRecoverFailures: what cannot be recovered is kept in the record,
// retried a bounded number of times, and recovered by a later run once the
// cause is gone; the other volumes are recovered meanwhile.
func TestRecoverFailures(t *testing.T) {
	tests := []struct {
		name    string
		break_  func(t *testing.T, e *nodeEnv, staging string)
		repair  func(t *testing.T, e *nodeEnv, staging string)
		attempt int // helper mounts asked for the broken volume per pass
		wantErr string
	}{
		{name: "the source is unreachable",
			break_: func(_ *testing.T, e *nodeEnv, _ string) {
				e.F.fail["127.0.0.2:/gone"] = errors.New("mount failed: no brick")
			},
			repair:  func(_ *testing.T, e *nodeEnv, _ string) { delete(e.F.fail, "127.0.0.2:/gone") },
			attempt: 1, wantErr: "no brick"},
		{name: "the staging directory is gone",
			break_: func(t *testing.T, e *nodeEnv, staging string) {
				if err := os.Remove(staging); err != nil {
					t.Fatal(err)
				}
			},
			repair:  func(t *testing.T, e *nodeEnv, staging string) { e.dir(t, strings.TrimPrefix(staging, e.Root)) },
			wantErr: "no such file"},
		{name: "the rule is gone",
			break_:  func(t *testing.T, e *nodeEnv, _ string) { e.setRule(t, "vol-gone", "removed") },
			repair:  func(t *testing.T, e *nodeEnv, _ string) { e.setRule(t, "vol-gone", "glusterfs") },
			wantErr: "no longer has"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newNodeEnv(t)
			staging, targets := e.published(t, "vol-gone", "127.0.0.2:/gone", 1)
			okStaging, _ := e.published(t, "vol-ok", "127.0.0.2:/v0", 1)
			e.F.killDaemons()
			// The dead mounts go first, as a stopped mounter's poststop
			// leaves the staging path.
			if err := unmountAll(e.F, staging); err != nil {
				t.Fatal(err)
			}
			tt.break_(t, e, staging)
			m0, _, _ := e.F.count()
			err := e.S.Recover(context.Background(), fastPolicy)
			if err == nil || !strings.Contains(err.Error(), "vol-gone") {
				t.Fatalf("Recover: %v, want an error naming vol-gone", err)
			}
			m1, _, _ := e.F.count()
			// vol-ok once, vol-gone at most once per attempt.
			if want := 1 + tt.attempt*fastPolicy.Attempts; m1-m0 != want {
				t.Errorf("%d helper mounts, want %d (bounded retries)", m1-m0, want)
			}
			if _, live := e.top(okStaging); !live {
				t.Errorf("the other volume was not recovered")
			}
			rec, rerr := e.S.records.Read("vol-gone")
			if rerr != nil || rec == nil || rec.Recovery == nil {
				t.Fatalf("record of the failed volume: %+v, %v; want it kept with the failure", rec, rerr)
			}
			if r := rec.Recovery; r.Attempts != fastPolicy.Attempts || !strings.Contains(r.Error, tt.wantErr) || !r.Next.IsZero() {
				t.Errorf("failure in the record: %+v; want %d attempts, an error with %q, no next attempt", r, fastPolicy.Attempts, tt.wantErr)
			}
			if len(rec.Targets) != 1 || rec.Targets[0].Path != targets[0] {
				t.Errorf("targets in the record: %+v", rec.Targets)
			}
			tt.repair(t, e, staging)
			if err := e.S.Recover(context.Background(), fastPolicy); err != nil {
				t.Fatalf("Recover after the repair: %v", err)
			}
			if _, live := e.top(staging); !live {
				t.Errorf("staging not live after the repair")
			}
			if _, live := e.top(targets[0]); !live {
				t.Errorf("target not live after the repair")
			}
			if rec, _ := e.S.records.Read("vol-gone"); rec == nil || rec.Recovery != nil {
				t.Errorf("record after the repair: %+v, want the failure cleared", rec)
			}
		})
	}
}

// TestRecoverLeavesAlone: hung mounts, unreadable records and another
// rule's volumes are reported or skipped, never touched.
func TestRecoverLeavesAlone(t *testing.T) {
	t.Run("hung mount", func(t *testing.T) {
		e := newNodeEnv(t)
		staging, _ := e.published(t, "vol-1", "127.0.0.2:/v0", 1)
		m, _ := e.top(staging)
		e.F.hung[m] = true
		m0, b0, _ := e.F.count()
		err := e.S.Recover(context.Background(), fastPolicy)
		if err == nil || !strings.Contains(err.Error(), "vol-1") {
			t.Fatalf("Recover: %v, want vol-1 reported", err)
		}
		if m1, b1, _ := e.F.count(); m1 != m0 || b1 != b0 || e.depth(staging) != 1 {
			t.Errorf("a hung mount was touched: %d mounts, %d binds asked; depth %d", m1-m0, b1-b0, e.depth(staging))
		}
	})
	t.Run("unreadable record", func(t *testing.T) {
		e := newNodeEnv(t)
		staging, _ := e.published(t, "vol-1", "127.0.0.2:/v0", 1)
		bad := filepath.Join(e.S.records.Dir, "0000.json")
		if err := os.WriteFile(bad, []byte("{half a rec"), 0o600); err != nil {
			t.Fatal(err)
		}
		e.F.killDaemons()
		err := e.S.Recover(context.Background(), fastPolicy)
		if err == nil || !strings.Contains(err.Error(), bad) {
			t.Fatalf("Recover: %v, want the unreadable record named", err)
		}
		if b, _ := os.ReadFile(bad); string(b) != "{half a rec" {
			t.Errorf("the unreadable record was changed: %q", b)
		}
		if _, live := e.top(staging); !live {
			t.Errorf("the readable volume was not recovered")
		}
	})
	t.Run("another rule's volume", func(t *testing.T) {
		e := newNodeEnv(t)
		staging, _ := e.published(t, "vol-1", "127.0.0.2:/v0", 1)
		e.S.Config.Mounters = append(e.S.Config.Mounters, spec.Rule{Name: "other", FSTypes: []string{"glusterfs"}, Propagate: []string{e.Kube}})
		e.S.RuleName = "other"
		e.F.killDaemons()
		m0, b0, _ := e.F.count()
		if err := e.S.Recover(context.Background(), fastPolicy); err != nil {
			t.Fatal(err)
		}
		if m1, b1, _ := e.F.count(); m1 != m0 || b1 != b0 {
			t.Errorf("a server of rule other recovered rule glusterfs's volume: %d mounts, %d binds", m1-m0, b1-b0)
		}
		if _, live := e.top(staging); live {
			t.Errorf("staging live, want it left dead for its own rule's server")
		}
	})
}

// TestStageOfDeadVolumeKeepsTargets: kubelet's NodeStageVolume of a volume
// whose daemon is gone mounts it again and binds its published targets
// again; the record keeps them.
func TestStageOfDeadVolumeKeepsTargets(t *testing.T) {
	e := newNodeEnv(t)
	staging, targets := e.published(t, "vol-1", "127.0.0.2:/v0", 2)
	e.F.killDaemons()
	if _, err := e.S.NodeStageVolume(context.Background(), stageReq("vol-1", staging, glusterCtx(), rw)); err != nil {
		t.Fatal(err)
	}
	rec, err := e.S.records.Read("vol-1")
	if err != nil || rec == nil || len(rec.Targets) != 2 {
		t.Fatalf("record after staging a dead volume again: %+v, %v; want both targets", rec, err)
	}
	for _, p := range append([]string{staging}, targets...) {
		if _, live := e.top(p); !live {
			t.Errorf("%s not live after staging again", p)
		}
	}
}

func TestRecoverPolicyDelay(t *testing.T) {
	p := RecoverPolicy{Initial: time.Second, Max: 5 * time.Second}
	for n, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 5 * time.Second, 40: 5 * time.Second} {
		if got := p.delay(n); got != want {
			t.Errorf("delay after attempt %d: %v, want %v", n, got, want)
		}
	}
}

// TestUnmountAllDeepStack: a target that recovery stacked on many times
// unmounts completely.
func TestUnmountAllDeepStack(t *testing.T) {
	e := newNodeEnv(t)
	target := e.dir(t, "kubelet/pods/uid/volumes/v/mount")
	for range 100 {
		if err := e.F.Bind("/src", target, false); err != nil {
			t.Fatal(err)
		}
	}
	if err := unmountAll(e.F, target); err != nil {
		t.Fatal(err)
	}
	if d := e.depth(target); d != 0 {
		t.Fatalf("%d mounts left", d)
	}
}
