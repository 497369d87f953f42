package reliability_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/opencontainers/runtime-spec/specs-go"
	"github.com/runc-shared/runc-shared/internal/testutil"
	"github.com/runc-shared/runc-shared/pkg/spec"
)

// hostileTree is a host layout for hostile specs: an allowlisted dir that is
// not a mount point (a refused create must leave it so), its prefix sibling,
// a dir outside the allowlist, and a symlink in the allowlisted dir that
// leads outside.
type hostileTree struct {
	base, allow, sibling, outside, link string
}

func newHostileTree(t *testing.T) *hostileTree {
	t.Helper()
	base := testutil.TempDir(t)
	h := &hostileTree{base: base, allow: filepath.Join(base, "kubelet"), sibling: filepath.Join(base, "kubelet-evil"),
		outside: filepath.Join(base, "outside")}
	h.link = filepath.Join(h.allow, "link")
	for _, d := range []string{h.allow, h.sibling, h.outside} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("../outside", h.link); err != nil {
		t.Fatal(err)
	}
	return h
}

// refusedUntouched runs a create of bundle and checks the refusal, that it
// took at most 2 s, and that nothing changed: config.json, the bundle's files, the host mounts below
// the tree and outside the temp dir, and the delegate never ran.
func refusedUntouched(t *testing.T, s *setup, h *hostileTree, bundle string, want string) string {
	t.Helper()
	cfg := filepath.Join(bundle, "config.json")
	orig, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	files := otherFiles(t, bundle)
	before := snapshot(t, h.base)
	log := filepath.Join(testutil.TempDir(t), "log.json")
	// Refusing is quick whatever the spec: the bound is on the wrapper's
	// create alone, not on the checks around it.
	start := time.Now()
	res := s.create(t, bundle, log, "hostile")
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("refusal took %v", took)
	}
	msg := mustRefuse(t, res, log, want)
	if got, _ := os.ReadFile(cfg); !bytes.Equal(got, orig) {
		t.Errorf("config.json changed by a refused create")
	}
	if now := otherFiles(t, bundle); strings.Join(now, " ") != strings.Join(files, " ") {
		t.Errorf("bundle files changed: %v, then %v", files, now)
	}
	if d := before.diff(snapshot(t, h.base)); len(d) != 0 {
		t.Errorf("host mounts changed by a refused create:\n%s", strings.Join(d, "\n"))
	}
	if calls := s.delegateCalls(t); len(calls) != 0 {
		t.Errorf("the delegate runtime ran: %q", calls)
	}
	return msg
}

// TestHostileSpecs: specs that try to get rshared binds of the wrong host
// paths, or to become a mounter without the privilege, are refused before
// the delegate runs, with the reason logged, and the host is left alone.
func TestHostileSpecs(t *testing.T) {
	testutil.CheckLeaks(t)
	h := newHostileTree(t)
	rootfs := testutil.BusyboxRootfs(t)
	privileged := func(ann, src string, more ...testutil.BundleOpt) testutil.BundleOpt {
		return func(s *specs.Spec) {
			mounterEdit(ann, src, "/host")(s)
			for _, o := range more {
				o(s)
			}
		}
	}
	huge := strings.Repeat("x", 64<<20)
	for _, tc := range []struct {
		name string
		edit testutil.BundleOpt
		raw  func([]byte) []byte // rewrites the encoded config.json
		want string
	}{{
		name: "symlink-out-of-allowlist",
		edit: privileged("ann", h.link),
		want: `^runc-shared: rewrite .*/config.json for rule "ann": bind mount .*/kubelet/link -> /host: unsafe bind source: resolve .*/kubelet/link: it resolves to .*/outside: path resolves outside the allowlisted prefixes`,
	}, {
		name: "dotdot-segments",
		edit: privileged("ann", h.allow+"/../outside"),
		want: `^runc-shared: rewrite .*: bind mount .*/kubelet/\.\./outside -> /host: unsafe bind source: resolve .*: path resolves outside the allowlisted prefixes: its "\.\." segments leave the allowlisted prefix`,
	}, {
		name: "prefix-sibling",
		edit: privileged("ann", h.sibling),
		want: `^runc-shared: rewrite .*: no bind mount of the rule's paths \[.*/kubelet\]`,
	}, {
		name: "unprivileged",
		edit: func(s *specs.Spec) {
			testutil.WithAnnotation(spec.AnnotationMounter, "ann")(s)
			testutil.WithBind(h.allow, "/host")(s)
		},
		want: `^runc-shared: container matches mounter rule "ann" but is refused: it lacks CAP_SYS_ADMIN in its bounding set`,
	}, {
		name: "namespace-not-allowed",
		edit: privileged("ns", h.allow, testutil.WithAnnotation("io.kubernetes.pod.namespace", "default")),
		want: `^runc-shared: container matches mounter rule "ns" but is refused: Kubernetes namespace "default" is not in the rule's namespaces \[kube-system\]`,
	}, {
		name: "no-namespace",
		edit: privileged("ns", h.allow),
		want: `^runc-shared: container matches mounter rule "ns" but is refused: the rule allows only Kubernetes namespaces \[kube-system\] and the container carries no namespace annotation`,
	}, {
		name: "disagreeing-namespaces",
		edit: privileged("ns", h.allow,
			testutil.WithAnnotation("io.kubernetes.pod.namespace", "kube-system"),
			testutil.WithAnnotation("io.kubernetes.cri.sandbox-namespace", "default")),
		want: `^runc-shared: container matches mounter rule "ns" but is refused: its Kubernetes namespace annotations disagree`,
	}, {
		name: "64MiB-config",
		edit: privileged("ann", h.allow, testutil.WithAnnotation("pad", huge)),
		want: `^runc-shared: .*/config.json: config.json too large: more than 8388608 bytes; fix the bundle`,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSetup(t, "",
				rule{name: "ann", propagate: []string{h.allow}, annotation: "ann"},
				rule{name: "ns", propagate: []string{h.allow}, annotation: "ns", extra: `namespaces = ["kube-system"]`})
			bundle, raw := writeSpec(t, rootfs, tc.edit)
			if tc.raw != nil {
				if err := os.WriteFile(filepath.Join(bundle, "config.json"), tc.raw(raw), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			msg := refusedUntouched(t, s, h, bundle, tc.want)
			if len(msg) > 600 {
				msg = msg[:600] + "..."
			}
			t.Logf("refused: %s", msg)
			if ms := testutil.MountsUnder(t, h.allow); len(ms) != 0 {
				t.Errorf("allowlisted path became a mount: %v", ms)
			}
		})
	}
}

// TestEnvRuleIgnoresAnnotation: an env-only rule is not satisfied by an
// annotation of the same name and value (anyone who can set one can set the
// other, but engines differ in what reaches the spec, and a rule means what
// it says). The container is not a mounter: passed through untouched.
func TestEnvRuleIgnoresAnnotation(t *testing.T) {
	h := newHostileTree(t)
	s := newSetup(t, "", rule{name: "env", propagate: []string{h.allow}, env: "env"})
	bundle, raw := writeSpec(t, testutil.BusyboxRootfs(t), func(s *specs.Spec) {
		testutil.WithAnnotation(spec.EnvMounter, "env")(s)
		testutil.WithAddCaps("CAP_SYS_ADMIN")(s)
		testutil.WithBind(h.allow, "/host")(s)
	})
	log := filepath.Join(testutil.TempDir(t), "log.json")
	before := snapshot(t, h.base)
	r := s.wrapper(t, "--debug", "--log", log, "--log-format", "json", "create", "--bundle", bundle, "ctr")
	if r.Code != 0 {
		t.Fatalf("create: %+v", r)
	}
	if got, _ := os.ReadFile(filepath.Join(bundle, "config.json")); !bytes.Equal(got, raw) {
		t.Error("config.json of a container that matches no rule changed")
	}
	if calls := s.delegateCalls(t); len(calls) != 1 || calls[0] != "--debug --log "+log+" --log-format json create --bundle "+bundle+" ctr" {
		t.Errorf("delegate calls = %q, want the create passed through unchanged", calls)
	}
	if logged, _ := os.ReadFile(log); bytes.Contains(logged, []byte("matches mounter rule")) {
		t.Errorf("the wrapper took the container for a mounter:\n%s", logged)
	}
	if d := before.diff(snapshot(t, h.base)); len(d) != 0 {
		t.Errorf("host mounts changed:\n%s", strings.Join(d, "\n"))
	}
}

// TestMountNamespaceJoinRefused: a matching spec that joins a mount namespace
// by path is refused before runc runs (runc would run its rootfs setup,
// pivot_root included, in that namespace). The namespace is a throwaway one:
// a sleeping child of this test in its own mount namespace, its ns file bound
// under a temp dir. The delegate is a recorder: runc never sees the spec.
func TestMountNamespaceJoinRefused(t *testing.T) {
	testutil.CheckLeaks(t)
	h := newHostileTree(t)
	s := newSetup(t, "", rule{name: "ann", propagate: []string{h.allow}, annotation: "ann"})

	nsPath := fmt.Sprintf("/proc/%d/ns/mnt", throwawayMountNamespace(t))
	nsFile := filepath.Join(h.base, "throwaway-mntns")
	if err := os.WriteFile(nsFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(nsPath, nsFile, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind the throwaway namespace: %v", err)
	}

	bundle, _ := writeSpec(t, testutil.BusyboxRootfs(t), func(s *specs.Spec) {
		mounterEdit("ann", h.allow, "/host")(s)
		for i, ns := range s.Linux.Namespaces {
			if ns.Type == specs.MountNamespace {
				s.Linux.Namespaces[i].Path = nsFile
			}
		}
	})
	msg := refusedUntouched(t, s, h, bundle,
		`^runc-shared: container matches mounter rule "ann" but is refused: it joins the mount namespace `+regexp.QuoteMeta(nsFile)+` by path; a mounter must get a new mount namespace`)
	t.Logf("refused: %s", msg)
}

// TestHostileConfigFile: a configuration that others could have written
// decides nothing: a matching create is refused with the fix, while calls
// that must keep working on a broken node (state, delete) pass through.
func TestHostileConfigFile(t *testing.T) {
	h := newHostileTree(t)
	for _, tc := range []struct {
		name  string
		apply func(path string) error
		want  string
	}{
		{"world-writable", func(p string) error { return os.Chmod(p, 0o666) },
			`^runc-shared: config .*/config.toml: unsafe configuration file: mode 0666 lets group or others write it, and it decides which containers get host mounts: run .chmod 0644 `},
		{"group-writable", func(p string) error { return os.Chmod(p, 0o664) },
			`^runc-shared: config .*/config.toml: unsafe configuration file: mode 0664 lets group or others write it`},
		{"not-owned-by-root", func(p string) error { return os.Chown(p, 65534, 65534) },
			`^runc-shared: config .*/config.toml: unsafe configuration file: owned by uid 65534, not root, and it decides which containers get host mounts: run .chown root:root `},
		// A safe file in a directory others can write: they could rename
		// their own file over it.
		{"world-writable-directory", func(p string) error { return os.Chmod(filepath.Dir(p), 0o777) },
			`^runc-shared: config .*/config.toml: unsafe configuration file: directory .* \(mode 0777\) lets group or others replace the file: run .chmod go-w `},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSetup(t, "", rule{name: "ann", propagate: []string{h.allow}, annotation: "ann"})
			if err := tc.apply(s.Config); err != nil {
				t.Fatal(err)
			}
			bundle, _ := writeSpec(t, testutil.BusyboxRootfs(t), mounterEdit("ann", h.allow, "/host"))
			msg := refusedUntouched(t, s, h, bundle, tc.want)
			t.Logf("refused: %s", msg)

			// `state` must still reach the runtime. The unsafe file names no
			// runtime the wrapper may trust, so the default (runc) answers;
			// use a missing container and look only at the warning.
			// The warning goes to the --log file only: engines read stderr.
			log := filepath.Join(testutil.TempDir(t), "log.json")
			r := s.wrapper(t, "--root", testutil.TempDir(t), "--log", log, "state", "no-such-container")
			logged, _ := os.ReadFile(log)
			if !strings.Contains(string(logged), "unsafe configuration file") || !strings.Contains(string(logged), `using the defaults for \"state\"`) {
				t.Errorf("state with an unsafe config: log %q, want a warning that the defaults are used", logged)
			}
			if strings.Contains(r.Stderr, "runc-shared") {
				t.Errorf("state with an unsafe config: stderr %q, want runc's output only", r.Stderr)
			}
			if !strings.Contains(string(logged), "container does not exist") {
				t.Errorf("state did not reach runc: %+v, log %q", r, logged)
			}
		})
	}
}
