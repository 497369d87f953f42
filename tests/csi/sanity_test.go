package csi_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/kubernetes-csi/csi-test/v5/pkg/sanity"
	"github.com/onsi/ginkgo/v2"
	"github.com/onsi/ginkgo/v2/types"

	"github.com/runc-shared/runc-shared/internal/csi"
	"github.com/runc-shared/runc-shared/internal/mountrec"
	"github.com/runc-shared/runc-shared/internal/testutil"
)

// sanityReport is what the suite's ReportAfterSuite saw.
var sanityReport struct {
	sync.Mutex
	done                    bool
	passed, failed, skipped int
	skips                   []string // "spec: reason"
	failures                []string
}

var _ = ginkgo.ReportAfterSuite("csi-sanity summary", func(r ginkgo.Report) {
	sanityReport.Lock()
	defer sanityReport.Unlock()
	sanityReport.done = true
	for _, s := range r.SpecReports {
		if s.LeafNodeType != types.NodeTypeIt {
			continue
		}
		switch {
		case s.State == types.SpecStatePassed:
			sanityReport.passed++
		case s.State == types.SpecStateSkipped || s.State == types.SpecStatePending:
			sanityReport.skipped++
			sanityReport.skips = append(sanityReport.skips, s.FullText()+": "+strings.TrimSpace(s.Failure.Message))
		case s.State.Is(types.SpecStateFailureStates):
			sanityReport.failed++
			sanityReport.failures = append(sanityReport.failures, s.FullText()+": "+s.Failure.Message)
		}
	}
})

// allowedSkips are the skips of capabilities the driver does not claim:
// snapshots, cloning, ListVolumes, GetCapacity, ControllerPublish
// (attachRequired false), expansion, modification, volume health of the
// controller, storage health, single-node-multi-writer, and csi-sanity's
// pending pagination spec. A skip for any other reason fails the test.
var allowedSkips = regexp.MustCompile(`(?i)(snapshot|cloning|ListVolumes not supported|GetCapacity not supported|` +
	`ControllerPublishVolume not supported|ControllerUnpublishVolume not supported|Controller Publish, UnpublishVolume not supported|` +
	`testnodevolumeattachlimit not enabled|ControllerExpandVolume not supported|NodeExpandVolume not supported|` +
	`ControllerModifyVolume not supported|Modify volume not supported|ControllerGetVolumeHealth not supported|` +
	`ControllerListVolumeHealth not supported|NodeGetStorageHealth not supported|single node multi writer|` +
	`GroupController|readonly field not supported|pagination)`)

// TestSanity runs csi-sanity (its Identity, Controller and Node suites,
// with the full "should work" and "should be idempotent" node cycles)
// against bin/mounter csi with a real GlusterFS volume, staging and
// publishing below a shared directory that stands for /var/lib/kubelet.
func TestSanity(t *testing.T) {
	testutil.CheckLeaks(t)
	g := testutil.Glusterd(t)
	e := newEnv(t)
	srv := startServer(t, e)

	cfg := sanity.NewTestConfig()
	cfg.Address = "unix://" + srv.Socket
	cfg.TargetPath = filepath.Join(e.Shared, "csi-target")
	cfg.StagingPath = filepath.Join(e.Shared, "csi-staging")
	cfg.TestVolumeParameters = map[string]string{csi.KeyFSType: "glusterfs", csi.KeySource: g.Server + ":/" + g.Volume}
	cfg.IdempotentCount = 3
	sanity.Test(t, cfg)

	sanityReport.Lock()
	defer sanityReport.Unlock()
	if !sanityReport.done {
		t.Fatal("csi-sanity's suite report was not produced")
	}
	sort.Strings(sanityReport.skips)
	summary := fmt.Sprintf("csi-sanity: %d passed, %d failed, %d skipped", sanityReport.passed, sanityReport.failed, sanityReport.skipped)
	t.Log(summary)
	for _, s := range sanityReport.skips {
		t.Logf("skipped: %s", s)
		if !allowedSkips.MatchString(s) {
			t.Errorf("skipped for a capability the driver claims, or for a set-up reason: %s", s)
		}
	}
	if out := os.Getenv("RSTEST_SANITY_SUMMARY"); out != "" {
		_ = os.WriteFile(out, []byte(summary+"\n"+strings.Join(sanityReport.skips, "\n")+"\n"), 0o644)
	}
	if sanityReport.passed == 0 {
		t.Error("no csi-sanity spec passed")
	}
	// The suite deleted what it created: no mount, no record, nothing on
	// the brick but what glusterd keeps there.
	if ms := mountsUnder(t, e.Shared); len(ms) != 0 {
		t.Errorf("mounts left under %s: %v", e.Shared, ms)
	}
	if recs, errs := mountrec.List(e.StateDir); len(recs)+len(errs) != 0 {
		t.Errorf("CSI records left: %+v %v", recs, errs)
	}
	if left := brickEntries(t, g.Brick); len(left) != 0 {
		t.Errorf("brick entries left: %v", left)
	}
	// The node cycles really mounted GlusterFS through the helper.
	log := srv.Log()
	for _, m := range []string{"CreateVolume", "NodeStageVolume", "NodePublishVolume", "NodeUnpublishVolume", "NodeUnstageVolume", "DeleteVolume", "NodeGetVolumeStats", "NodeGetVolumeHealth"} {
		if n := strings.Count(log, "msg="+m+" code=OK"); n == 0 {
			t.Errorf("no successful %s in the server's log", m)
		}
	}
	if t.Failed() || testing.Verbose() {
		t.Logf("mounter csi log:\n%s", log)
	}
}
