// Package wrapper_test drives bin/runc-shared in front of Debian's runc with
// busybox bundles, as containerd-shim does: the core issue's end-to-end
// acceptance.
package wrapper_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/opencontainers/runtime-spec/specs-go"
	"github.com/runc-shared/runc-shared/internal/hostmount"
	"github.com/runc-shared/runc-shared/internal/testutil"
)

func TestMain(m *testing.M) { testutil.Main(m) }

const mounterAnnotation = "runc-shared.io/mounter"

// writeConfig writes a runc-shared config with one rule for hostDir.
func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(testutil.TempDir(t), "config.toml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func ruleConfig(t *testing.T, stateDir, hostDir string, extra string) string {
	return hostRuleConfig(t, testutil.Host{}, stateDir, hostDir, extra)
}

// hostRuleConfig is ruleConfig with the top-level lines host set-up h needs.
func hostRuleConfig(t *testing.T, h testutil.Host, stateDir, hostDir string, extra string) string {
	return writeConfig(t, h.ConfigLines()+fmt.Sprintf(`state-dir = %q
[[mounter]]
name = "tmpfs"
fstypes = ["tmpfs"]
propagate = [%q]
%s
[mounter.match]
annotations = { %q = "tmpfs" }
`, stateDir, hostDir, extra, mounterAnnotation))
}

// mountInside mounts a tmpfs at dir inside container id.
func mountInside(t *testing.T, r *testutil.Runc, id, dir string) {
	t.Helper()
	if out, errOut, err := r.Exec(t, id, "sh", "-c", "mkdir -p "+dir+" && mount -t tmpfs tmpfs "+dir); err != nil {
		t.Fatalf("mount inside %s: %v: %s %s", id, err, out, errOut)
	}
}

// TestMatchingMounterReachesHost runs on both host set-ups. With / rshared
// (a systemd host) the allowlisted path is a plain directory on / and so is
// the rootfs: runc makes the rootfs's parent mount (/) private in the
// container, so a bind of the path itself would land in a new peer group;
// the wrapper's staged bind keeps it in the host's.
func TestMatchingMounterReachesHost(t *testing.T) {
	testutil.ForEachHost(t, func(t *testing.T, h testutil.Host) {
		host := testutil.PrivateDir(t) // not a mount point; shared only where / is
		cfg := hostRuleConfig(t, h, testutil.TempDir(t), host, "")
		r := testutil.Wrapper(t, cfg)
		b := testutil.NewBundle(t, testutil.BusyboxRootfs(t),
			testutil.WithAnnotation(mounterAnnotation, "tmpfs"),
			testutil.WithAddCaps("CAP_SYS_ADMIN"),
			testutil.WithBind(host, "/host", "rbind", "rprivate"))
		r.Up(t, b, "mounter")

		s := b.ReadSpec(t)
		if got := s.Linux.RootfsPropagation; got != "rshared" {
			t.Errorf("rootfsPropagation = %q, want rshared", got)
		}
		last := s.Mounts[len(s.Mounts)-1]
		if strings.Join(last.Options, ",") != "rbind,rshared" || last.Destination != "/host" {
			t.Errorf("last mount = %s %v, want /host [rbind rshared]", last.Destination, last.Options)
		}
		if m := testutil.MountOf(t, host); hostmount.PeerGroup(m) == 0 {
			t.Fatalf("host path %s is not on a shared mount after create: %+v", host, m)
		}
		made := strings.Contains(b.Log(t), "made host path "+host+" a shared mount")
		if made == h.SharedRoot {
			t.Errorf("log says the host path was made shared: %v; want %v (/ shared: %v):\n%s", made, !h.SharedRoot, h.SharedRoot, b.Log(t))
		}

		mountInside(t, r, "mounter", "/host/sub")
		if m := testutil.MountAt(t, filepath.Join(host, "sub")); m == nil || m.FSType != "tmpfs" {
			t.Fatalf("tmpfs mounted in the mounter at /host/sub is not on the host under %s: %v", host, testutil.MountsUnder(t, host))
		}
	})
}

func TestNonMatchingContainerUntouched(t *testing.T) {
	testutil.ForEachHost(t, func(t *testing.T, _ testutil.Host) {
		host := testutil.SharedDir(t)
		cfg := ruleConfig(t, testutil.TempDir(t), host, "")
		r := testutil.Wrapper(t, cfg)
		b := testutil.NewBundle(t, testutil.BusyboxRootfs(t),
			testutil.WithAnnotation(mounterAnnotation, "something-else"),
			testutil.WithAddCaps("CAP_SYS_ADMIN"),
			testutil.WithBind(host, "/host", "rbind", "rprivate"))
		before := b.ConfigBytes(t)
		pid := r.Up(t, b, "plain")
		if after := b.ConfigBytes(t); !bytes.Equal(before, after) {
			t.Fatalf("config.json of a non-matching container changed:\n%s\n---\n%s", before, after)
		}
		mountInside(t, r, "plain", "/host/sub")
		if ms := testutil.MountsUnder(t, host); len(ms) != 1 { // the shared dir itself
			t.Errorf("a non-matching container's mount reached the host: %v", ms)
		}
		var inside bool
		for _, m := range testutil.MountsUnderPid(t, pid, "/host") {
			inside = inside || m.Mountpoint == "/host/sub"
		}
		if !inside {
			t.Errorf("the mount is not inside the container either")
		}
	})
}

// errorLine returns the last "level":"error" line of a runc JSON log.
func errorLine(t *testing.T, log string) map[string]any {
	t.Helper()
	var last map[string]any
	for _, l := range strings.Split(log, "\n") {
		var e map[string]any
		if json.Unmarshal([]byte(l), &e) == nil && e["level"] == "error" {
			last = e
		}
	}
	if last == nil {
		t.Fatalf("no error line in --log:\n%s", log)
	}
	return last
}

func TestRefusals(t *testing.T) {
	testutil.ForEachHost(t, func(t *testing.T, _ testutil.Host) {
		host := testutil.SharedDir(t)
		cfg := ruleConfig(t, testutil.TempDir(t), host, "")
		rootfs := testutil.BusyboxRootfs(t)
		for _, tc := range []struct {
			name string
			opts []testutil.BundleOpt
			raw  string // replaces config.json when set
			want string
		}{{
			name: "unprivileged",
			opts: []testutil.BundleOpt{
				testutil.WithAnnotation(mounterAnnotation, "tmpfs"),
				testutil.WithBind(host, "/host", "rbind"),
			},
			want: `^runc-shared: container matches mounter rule "tmpfs" but is refused: it lacks CAP_SYS_ADMIN in its bounding set; start it with --cap-add SYS_ADMIN`,
		}, {
			name: "no-bind-of-the-allowlist",
			opts: []testutil.BundleOpt{
				testutil.WithAnnotation(mounterAnnotation, "tmpfs"),
				testutil.WithAddCaps("CAP_SYS_ADMIN"),
			},
			want: `^runc-shared: rewrite .*config.json for rule "tmpfs": no bind mount of the rule's paths \[` + regexp.QuoteMeta(host) + `\]`,
		}, {
			// A config.json that no rule matches goes to runc, whatever is
			// wrong with it (passthrough_test.go); a matched one is refused.
			name: "malformed",
			raw:  `{"ociVersion": "1.0.2", "annotations": {"` + mounterAnnotation + `": "tmpfs"}} {`,
			want: `^runc-shared: container malformed matches mounter rule "tmpfs", but .*config.json: decode runtime spec: invalid character '{' after top-level value: runc-shared rewrites only a config.json that holds one JSON object`,
		}} {
			t.Run(tc.name, func(t *testing.T) {
				r := testutil.Wrapper(t, cfg)
				b := testutil.NewBundle(t, rootfs, tc.opts...)
				if tc.raw != "" {
					if err := os.WriteFile(b.ConfigPath(), []byte(tc.raw), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				before, _ := os.ReadFile(b.ConfigPath())
				_, stderr, err := r.Run(t, "--log", b.LogPath(), "--log-format", "json", "create", "--bundle", b.Dir, tc.name)
				if err == nil {
					t.Fatal("create succeeded, want a refusal")
				}
				e := errorLine(t, b.Log(t))
				msg, _ := e["msg"].(string)
				if !regexp.MustCompile(tc.want).MatchString(msg) {
					t.Errorf("error line msg = %q, want match %q", msg, tc.want)
				}
				if !strings.Contains(stderr, strings.TrimPrefix(msg, "runc-shared: ")) {
					t.Errorf("stderr does not carry the reason: %q", stderr)
				}
				if after, _ := os.ReadFile(b.ConfigPath()); !bytes.Equal(before, after) {
					t.Errorf("config.json changed by a refused create")
				}
				if ms := testutil.MountsUnder(t, host); len(ms) != 1 {
					t.Errorf("host mounts changed: %v", ms)
				}
			})
		}
	})
}

// TestEnsureSharedFalse: with ensure-shared = false the wrapper changes
// nothing on the host. A path that is not shared is refused; a plain
// directory on a shared / (a systemd host) is shared already, so the mounter
// starts and its mounts reach the host although the path is no mount point of
// its own.
func TestEnsureSharedFalse(t *testing.T) {
	testutil.ForEachHost(t, func(t *testing.T, h testutil.Host) {
		for _, tc := range []struct {
			name    string
			dir     func(testing.TB) string
			refused bool
		}{
			{"private mount", testutil.UnsharedDir, true},
			{"plain directory", testutil.PrivateDir, !h.SharedRoot},
		} {
			t.Run(tc.name, func(t *testing.T) {
				host := tc.dir(t)
				cfg := hostRuleConfig(t, h, testutil.TempDir(t), host, "ensure-shared = false")
				r := testutil.Wrapper(t, cfg)
				b := testutil.NewBundle(t, testutil.BusyboxRootfs(t),
					testutil.WithAnnotation(mounterAnnotation, "tmpfs"),
					testutil.WithAddCaps("CAP_SYS_ADMIN"),
					testutil.WithBind(host, "/host", "rbind"))
				before := len(testutil.MountsUnder(t, host))
				err := r.Create(t, b, "noshare")
				if tc.refused {
					if err == nil || !strings.Contains(err.Error(), "host path "+host+" is not a shared mount") {
						t.Fatalf("create error = %v, want one naming %s", err, host)
					}
					if ms := testutil.MountsUnder(t, host); len(ms) != before {
						t.Errorf("the wrapper changed the host although ensure-shared = false: %v", ms)
					}
					return
				}
				if err != nil {
					t.Fatalf("create: %v\n%s", err, b.Log(t))
				}
				if err := r.Start(t, "noshare"); err != nil {
					t.Fatal(err)
				}
				if m := testutil.MountAt(t, host); m != nil || strings.Contains(b.Log(t), "made host path") {
					t.Errorf("the wrapper made %s a mount point although ensure-shared = false: %v\n%s", host, m, b.Log(t))
				}
				mountInside(t, r, "noshare", "/host/sub")
				if m := testutil.MountAt(t, filepath.Join(host, "sub")); m == nil || m.FSType != "tmpfs" {
					t.Fatalf("tmpfs mounted in the mounter at /host/sub is not on the host under %s: %v", host, testutil.MountsUnder(t, host))
				}
			})
		}
	})
}

func TestSeedSyntax(t *testing.T) {
	// The seed rule propagates /var/lib/kubelet; this bundle binds a temp
	// dir instead, so a match shows as the "no bind of the rule's paths"
	// refusal without touching the host's /var/lib/kubelet.
	cfg := writeConfig(t, fmt.Sprintf("state-dir = %q\nmount-container = [\"glusterfs:name=glusterfs-mounter:mounter\"]\n", testutil.TempDir(t)))
	host := testutil.SharedDir(t)
	for _, tc := range []struct {
		name    string
		opt     testutil.BundleOpt
		matched bool
	}{
		{"env", testutil.WithEnv("name", "glusterfs-mounter"), true},
		{"annotation", testutil.WithAnnotation("name", "glusterfs-mounter"), true},
		{"other-value", testutil.WithEnv("name", "other"), false},
		{"k8s-name-differs", func(s *specs.Spec) {
			testutil.WithAnnotation("name", "glusterfs-mounter")(s)
			testutil.WithAnnotation("io.kubernetes.cri.container-name", "not-mounter")(s)
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := testutil.Wrapper(t, cfg)
			b := testutil.NewBundle(t, testutil.BusyboxRootfs(t), tc.opt,
				testutil.WithAddCaps("CAP_SYS_ADMIN"), testutil.WithBind(host, "/var/lib/kubelet", "rbind"))
			err := r.Create(t, b, "seed-"+tc.name)
			if tc.matched {
				if err == nil || !strings.Contains(err.Error(), `rule "glusterfs": no bind mount of the rule's paths [/var/lib/kubelet]`) {
					t.Fatalf("create error = %v, want the seed rule to match", err)
				}
			} else if err != nil {
				t.Fatalf("create of a non-matching container failed: %v", err)
			}
		})
	}
}

func TestVersionAndPassThrough(t *testing.T) {
	host := testutil.SharedDir(t)
	cfg := ruleConfig(t, testutil.TempDir(t), host, "")
	r := testutil.Wrapper(t, cfg)

	out, err := exec.Command(r.Bin, "--runc-shared-config="+cfg, "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	runcOut, err := exec.Command("runc", "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`^runc-shared version \d+\.\d+\.\d+\ncommit: \S+\n`)
	if !re.Match(out) || !bytes.HasSuffix(out, runcOut) {
		t.Errorf("--version printed %q; want our two lines then runc's %q", out, runcOut)
	}

	b := testutil.NewBundle(t, testutil.BusyboxRootfs(t))
	r.Up(t, b, "pt")
	plain := &testutil.Runc{Bin: "runc", Root: r.Root}
	for _, args := range [][]string{{"state", "pt"}, {"list"}, {"list", "--format", "json"}, {"ps", "--format", "json", "pt"}, {"features"}} {
		got, _, err1 := r.Run(t, args...)
		want, _, err2 := plain.Run(t, args...)
		if (err1 == nil) != (err2 == nil) || got != want {
			t.Errorf("%v: wrapper printed %q (%v), runc %q (%v)", args, got, err1, want, err2)
		}
	}
}
