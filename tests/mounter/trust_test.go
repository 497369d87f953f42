package mounter_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/runc-shared/runc-shared/internal/registry"
	"github.com/runc-shared/runc-shared/internal/testutil"
	"github.com/runc-shared/runc-shared/pkg/spec"
)

// TestUntrustedStateDir: the state dir lies in a directory that anyone can
// write, and an unprivileged user planted a record there naming their own
// program as the runtime and a live process as the mounter. mounter mount
// and status refuse the registry with exit 2 and run nothing; a mounter
// started through runc-shared is refused too, since mount-hook will not
// register it there.
func TestUntrustedStateDir(t *testing.T) {
	testutil.CheckLeaks(t)
	open := filepath.Join(testutil.TempDir(t), "open")
	if err := os.Mkdir(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	s := newSetup(t, "")
	stateDir := filepath.Join(open, "state")
	s.StateDir = stateDir
	testutil.WriteFile(t, s.Config, testutil.GlusterRuleConfig(stateDir, s.Shared, spec.AnnotationMounter, annotationValue, ""))

	// What the attacker (uid 65534) plants: a runtime of theirs, and a
	// record that names it with this test's live process as the mounter.
	ran := filepath.Join(open, "ran")
	evil := filepath.Join(open, "evil-runc")
	if err := os.WriteFile(evil, []byte("#!/bin/sh\necho \"$@\" > "+ran+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	start, err := registry.ProcStart(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	bundle := testutil.NewBundle(t, testutil.BusyboxRootfs(t), testutil.WithBind(s.Shared, s.Shared, "rbind", "rshared"))
	rec, _ := json.Marshal(&registry.Record{ID: "forged", Name: "glusterfs", PID: os.Getpid(), PIDStart: start,
		Bundle: bundle.Dir, Runtime: evil, FSTypes: []string{"glusterfs"}, Propagate: []string{s.Shared}, Created: time.Now()})
	reg := filepath.Join(stateDir, "mounters")
	if err := os.MkdirAll(reg, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(reg, "forged.json"), rec, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{stateDir, reg, filepath.Join(reg, "forged.json"), evil} {
		if err := os.Chown(p, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}

	target := mkdir(t, s.Shared, "vol")
	testutil.UnmountLater(t, target)
	r := s.mounter(t, "mount", "-t", "glusterfs", "127.0.0.2:/v0", target)
	if r.Code != 2 || !contains(r.Stderr, "unsafe directory") {
		t.Errorf("mount with a planted registry: %v; want exit 2 naming the unsafe directory", r)
	}
	if b, err := os.ReadFile(ran); err == nil {
		t.Fatalf("the planted runtime ran as root: %q", b)
	}
	r = s.mounter(t, "status")
	if r.Code != 2 || contains(r.Stdout, "forged") {
		t.Errorf("status with a planted registry: %v; want exit 2 and the planted mounter not listed", r)
	}
	if ms := testutil.MountsUnder(t, target); len(ms) != 0 {
		t.Fatalf("something got mounted: %+v", ms[0])
	}

	// mount-hook refuses to register a real mounter in that registry, so
	// runc-shared's create fails with its reason.
	b := testutil.NewBundle(t, testutil.BusyboxRootfs(t),
		testutil.WithAddCaps("SYS_ADMIN"),
		testutil.WithAnnotation(spec.AnnotationMounter, annotationValue),
		testutil.WithArgs("sleep", "100000"),
		testutil.WithBind(s.Shared, s.Shared))
	err = s.Runc.Create(t, b, "untrusted-state")
	if err == nil || !contains(err.Error(), "unsafe directory") {
		t.Fatalf("create of a mounter whose registry others can write: %v; want it refused naming the unsafe directory", err)
	}
	t.Logf("create refused: %v", err)
	if _, err := os.Lstat(filepath.Join(reg, "untrusted-state.json")); err == nil {
		t.Fatal("mount-hook registered the mounter in the untrusted registry")
	}
}
