package reliability_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runc-shared/runc-shared/internal/hostmount"
	"github.com/runc-shared/runc-shared/internal/testutil"
)

const concurrentCreates = 50

// TestConcurrentCreates starts 50 matching creates at once (real runc through
// the wrapper, busybox bundles, create only) with distinct bundles that all
// bind one host path that is not a mount point yet. All must succeed, the
// host path must be made shared exactly once (one self-bind in mountinfo, no
// stacked duplicates) and exactly one of the 50 logs says it did; after the
// deletes the registry is empty.
func TestConcurrentCreates(t *testing.T) {
	testutil.CheckLeaks(t)
	host := testutil.PrivateDir(t)
	runc := testutil.LookPath(t, "runc")
	s := newSetup(t, runc, rule{name: "conc", propagate: []string{host}, annotation: "conc"})
	r := testutil.Wrapper(t, s.Config)
	rootfs := testutil.BusyboxRootfs(t)

	bundles := make([]*testutil.Bundle, concurrentCreates)
	for i := range bundles {
		bundles[i] = testutil.NewBundle(t, rootfs,
			testutil.WithAnnotation("runc-shared.io/mounter", "conc"),
			testutil.WithAddCaps("CAP_SYS_ADMIN"),
			testutil.WithBind(host, "/host", "rbind", "rprivate"))
	}
	if ms := testutil.MountsUnder(t, host); len(ms) != 0 {
		t.Fatalf("host path %s is a mount point before the test: %v", host, ms)
	}

	start := time.Now()
	errs := make([]error, concurrentCreates)
	var wg sync.WaitGroup
	gate := make(chan struct{})
	for i, b := range bundles {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			errs[i] = r.Create(t, b, fmt.Sprintf("conc-%02d", i))
		}()
	}
	close(gate)
	wg.Wait()
	took := time.Since(start)
	failed := 0
	for i, err := range errs {
		if err != nil {
			failed++
			t.Errorf("create %d: %v", i, err)
		}
	}
	t.Logf("%d concurrent creates through runc-shared and runc in %v, %d failed", concurrentCreates, took.Round(time.Millisecond), failed)

	ms := testutil.MountsUnder(t, host)
	if len(ms) != 1 || ms[0].Mountpoint != host || hostmount.PeerGroup(ms[0]) == 0 {
		var desc []string
		for _, m := range ms {
			desc = append(desc, fmt.Sprintf("%d %s %s %s", m.ID, m.Mountpoint, m.Root, m.Optional))
		}
		t.Errorf("mounts at %s after the creates = %v, want exactly one shared self-bind", host, desc)
	}
	said := 0
	for _, b := range bundles {
		said += strings.Count(b.Log(t), "made host path "+host+" a shared mount")
	}
	if said != 1 {
		t.Errorf("%d logs say the host path was made shared, want exactly 1", said)
	}
	recs, err := os.ReadDir(filepath.Join(s.StateDir, "mounters"))
	if err != nil || len(recs) != concurrentCreates-failed {
		t.Errorf("registry holds %d records (%v), want %d", len(recs), err, concurrentCreates-failed)
	}

	for i := range bundles {
		if err := r.Delete(t, fmt.Sprintf("conc-%02d", i), true); err != nil {
			t.Errorf("delete %d: %v", i, err)
		}
	}
	s.registryEmpty(t)
}
