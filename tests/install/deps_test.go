// Package install_test runs the install step as on a machine that never had the
// Debian packages: scripts/deps.sh against stand-in dpkg-query, dpkg and apt-get
// that know no package and record what they are asked, in a throwaway mount
// namespace where empty tmpfs mounts cover /usr/sbin and /usr/local/sbin (so that
// neither the real commands there nor the real /usr/sbin/policy-rc.d are seen
// or touched).
package install_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/runc-shared/runc-shared/internal/testutil"
)

// bookworm maps every package the install step may ask for to the commands it
// (with its dependencies) installs on Debian 12. A package missing here is one
// the stand-in apt-get cannot locate, as apt-get on Debian would fail for a
// misspelt name.
var bookworm = map[string][]string{
	"runc":             {"runc"},
	"busybox-static":   {"busybox"},
	"jq":               {"jq"},
	"bindfs":           {"bindfs"},
	"fuse3":            {"fusermount3"},
	"util-linux":       {"nsenter"},
	"glusterfs-server": {"glusterd", "gluster", "glusterfsd"},
	"glusterfs-client": {"mount.glusterfs"},
	"docker.io":        {"dockerd"},
	"containerd":       {"containerd", "containerd-shim-runc-v2", "ctr"},
	"podman":           {"podman"},
	"umoci":            {"umoci"},
	"hyperfine":        {"hyperfine"},
	"fio":              {"fio"},
}

// essential are the commands of Debian's required packages (mount,
// util-linux), there on every Debian machine before anything is installed.
var essential = []string{"mount", "umount"}

// tools are the programs deps.sh runs besides the package tools; the
// sandbox's PATH holds links to these and nothing else of the host.
var tools = []string{"bash", "env", "id", "sed", "tr", "chmod", "rm"}

// The stand-ins log one line per call: "<name> <args>" into $RSTEST_LOG.
// apt-get install also runs /usr/sbin/policy-rc.d as invoke-rc.d would and
// logs its exit code, then "installs" the commands of each package as stub
// executables in $RSTEST_INSTALLED (leaving out $RSTEST_APT_SKIP) and records
// the package for dpkg-query.
const dpkgQuery = `#!/bin/sh
echo "dpkg-query $*" >>"$RSTEST_LOG"
rc=0
for a in "$@"; do
	case "$a" in -*) continue ;; esac
	if /usr/bin/grep -qx "$a" "$RSTEST_DB" 2>/dev/null; then
		echo "$a=install ok installed"
	else
		echo "dpkg-query: no packages found matching $a" >&2
		rc=1
	fi
done
exit $rc
`

const dpkg = `#!/bin/sh
echo "dpkg $*" >>"$RSTEST_LOG"
echo "dpkg: stand-in, not expected to be called" >&2
exit 2
`

const aptGet = `#!/bin/sh
echo "apt-get $*" >>"$RSTEST_LOG"
for a in "$@"; do
	case "$a" in
	update) exit 0 ;;
	install) break ;;
	esac
done
if [ -e /usr/sbin/policy-rc.d ]; then
	/usr/sbin/policy-rc.d docker start
	echo "policy-rc.d exit $?" >>"$RSTEST_LOG"
else
	echo "policy-rc.d missing" >>"$RSTEST_LOG"
fi
for a in "$@"; do
	case "$a" in install | -*) continue ;; esac
	cmds=$(/usr/bin/sed -n "s/^$a: //p" "$RSTEST_PACKAGES")
	if [ -z "$cmds" ]; then
		echo "E: Unable to locate package $a" >&2
		exit 100
	fi
	for c in $cmds; do
		[ "$c" = "$RSTEST_APT_SKIP" ] && continue
		printf '#!/bin/sh\nexit 0\n' >"$RSTEST_INSTALLED/$c"
		/usr/bin/chmod 0755 "$RSTEST_INSTALLED/$c"
	done
	echo "$a" >>"$RSTEST_DB"
done
`

// sandbox is one run of deps.sh on a bare machine.
type sandbox struct {
	dir, log, db, installed string
	stdout, stderr          string
	exit                    int
	sbinAfter               map[string]string // /usr/sbin in the namespace after deps.sh: name -> content
}

// groupsOfMakefile returns the groups that the Makefile passes to deps.sh.
func groupsOfMakefile(t *testing.T) []string {
	t.Helper()
	mk, err := os.ReadFile(filepath.Join(testutil.RepoRoot(t), "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	var groups []string
	for _, m := range regexp.MustCompile(`(?m)^\t+scripts/deps\.sh((?: [a-z]+)+)\s*$`).FindAllStringSubmatch(string(mk), -1) {
		for _, g := range strings.Fields(m[1]) {
			if !slices.Contains(groups, g) {
				groups = append(groups, g)
			}
		}
	}
	if len(groups) == 0 {
		t.Fatal("the Makefile runs no scripts/deps.sh GROUP...")
	}
	return groups
}

// newSandbox makes the stand-ins and a machine on which only the essential
// commands exist and dpkg-query knows no package.
func newSandbox(t *testing.T) *sandbox {
	t.Helper()
	s := &sandbox{dir: t.TempDir()}
	s.log = filepath.Join(s.dir, "log")
	s.db = filepath.Join(s.dir, "dpkg-db")
	s.installed = filepath.Join(s.dir, "installed")
	fake, toolDir := filepath.Join(s.dir, "fake"), filepath.Join(s.dir, "tools")
	for _, d := range []string{fake, toolDir, s.installed} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write(t, filepath.Join(fake, "dpkg-query"), dpkgQuery, 0o755)
	write(t, filepath.Join(fake, "dpkg"), dpkg, 0o755)
	write(t, filepath.Join(fake, "apt-get"), aptGet, 0o755)
	var pk strings.Builder
	for p, cmds := range bookworm {
		fmt.Fprintf(&pk, "%s: %s\n", p, strings.Join(cmds, " "))
	}
	write(t, filepath.Join(s.dir, "packages"), pk.String(), 0o644)
	write(t, s.db, "", 0o644)
	for _, c := range essential {
		write(t, filepath.Join(s.installed, c), "#!/bin/sh\nexit 0\n", 0o755)
	}
	for _, tool := range tools {
		p, err := exec.LookPath(tool)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(p, filepath.Join(toolDir, tool)); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func write(t *testing.T, p, body string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(p, []byte(body), mode); err != nil {
		t.Fatal(err)
	}
}

// run runs deps.sh with groups in a new mount namespace and records what
// happened. policyRC, when set, is an operator's /usr/sbin/policy-rc.d
// already there; skip is a command apt-get fails to install. The log starts
// empty; what earlier runs installed stays.
func (s *sandbox) run(t *testing.T, groups []string, policyRC string, skip string) {
	t.Helper()
	fake, toolDir := filepath.Join(s.dir, "fake"), filepath.Join(s.dir, "tools")
	write(t, s.log, "", 0o644)
	sbinAfter, err := os.MkdirTemp(s.dir, "sbin-after-")
	if err != nil {
		t.Fatal(err)
	}
	seed := ""
	if policyRC != "" {
		write(t, filepath.Join(s.dir, "policy-rc.d"), policyRC, 0o755)
		seed = `/usr/bin/cp -p "$RSTEST_DIR/policy-rc.d" /usr/sbin/policy-rc.d || exit 90`
	}
	// In the namespace: empty /usr/sbin and /usr/local/sbin (/sbin is a link
	// to usr/sbin on bookworm), deps.sh with a PATH of stand-ins, tools and
	// what the stand-in apt-get installed, then a copy of /usr/sbin for the
	// test to look at. The tmpfs mounts go with the namespace.
	script := fmt.Sprintf(`set -u
/usr/bin/mount -t tmpfs -o mode=0755 rstest-sbin /usr/sbin || exit 91
/usr/bin/mount -t tmpfs -o mode=0755 rstest-lsbin /usr/local/sbin || exit 92
%s
/usr/bin/env -i PATH=%s:%s:%s RSTEST_LOG="$RSTEST_LOG" RSTEST_DB="$RSTEST_DB" RSTEST_INSTALLED="$RSTEST_INSTALLED" \
	RSTEST_PACKAGES="$RSTEST_PACKAGES" RSTEST_APT_SKIP="$RSTEST_APT_SKIP" %s "$@"
rc=$?
/usr/bin/cp -a /usr/sbin/. %s/ || exit 93
exit $rc
`, seed, fake, toolDir, s.installed, filepath.Join(testutil.RepoRoot(t), "scripts", "deps.sh"), sbinAfter)
	cmd := exec.Command("unshare", append([]string{"--mount", "--propagation", "private", "/bin/sh", "-c", script, "sh"}, groups...)...)
	cmd.Env = append(os.Environ(), "RSTEST_DIR="+s.dir, "RSTEST_LOG="+s.log, "RSTEST_DB="+s.db, "RSTEST_INSTALLED="+s.installed,
		"RSTEST_PACKAGES="+filepath.Join(s.dir, "packages"), "RSTEST_APT_SKIP="+skip)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	s.stdout, s.stderr, s.exit = stdout.String(), stderr.String(), 0
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		s.exit = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("unshare: %v", err)
	}
	if s.exit >= 90 && s.exit <= 93 {
		t.Fatalf("sandbox set-up failed (exit %d): %s", s.exit, s.stderr)
	}
	s.sbinAfter = map[string]string{}
	ents, _ := os.ReadDir(sbinAfter)
	for _, e := range ents {
		b, _ := os.ReadFile(filepath.Join(sbinAfter, e.Name()))
		s.sbinAfter[e.Name()] = string(b)
	}
	t.Logf("deps.sh %v: exit %d\nstdout: %s\nstderr: %s\ncalls:\n%s", groups, s.exit, s.stdout, s.stderr, s.calls(t))
}

func (s *sandbox) calls(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(s.log)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// allPackages returns every package of the table, sorted.
func allPackages() []string {
	var ps []string
	for p := range bookworm {
		ps = append(ps, p)
	}
	sort.Strings(ps)
	return ps
}

// TestDepsBareMachine: on a machine that has none of the packages, the
// install step asks `apt-get update`, then `apt-get install` for every package
// of every group the Makefile uses, with a policy-rc.d that denies service
// starts in place during the install (and gone afterwards), says what it
// installs, and exits 0. Run again, with everything installed, it asks apt-get
// nothing.
func TestDepsBareMachine(t *testing.T) {
	testutil.RequireRoot(t)
	groups := groupsOfMakefile(t)
	s := newSandbox(t)
	s.run(t, groups, "", "")
	if s.exit != 0 {
		t.Fatalf("deps.sh %v on a bare machine: exit %d, want 0\n%s", groups, s.exit, s.stderr)
	}
	var apt []string
	for _, l := range strings.Split(strings.TrimSpace(s.calls(t)), "\n") {
		if strings.HasPrefix(l, "apt-get ") || strings.HasPrefix(l, "policy-rc.d ") || strings.HasPrefix(l, "dpkg ") {
			apt = append(apt, l)
		}
	}
	if len(apt) != 3 || !regexp.MustCompile(`^apt-get( -\S+)* update( -\S+)*$`).MatchString(apt[0]) ||
		!strings.HasPrefix(apt[1], "apt-get ") || !strings.Contains(apt[1], " install") || apt[2] != "policy-rc.d exit 101" {
		t.Fatalf("want apt-get update, then one apt-get install run under a policy-rc.d that exits 101; calls:\n%s", strings.Join(apt, "\n"))
	}
	var asked []string
	for _, a := range strings.Fields(apt[1])[1:] {
		if a != "install" && !strings.HasPrefix(a, "-") {
			asked = append(asked, a)
		}
	}
	sort.Strings(asked)
	if want := allPackages(); !slices.Equal(asked, want) {
		t.Errorf("apt-get install %v\nwant every package of %v: %v", asked, groups, want)
	}
	if !strings.Contains(s.stderr, "installing") || !strings.Contains(s.stderr, "glusterfs-server") {
		t.Errorf("deps.sh does not say what it installs:\n%s", s.stderr)
	}
	if len(s.sbinAfter) != 0 {
		t.Errorf("/usr/sbin after deps.sh holds %v, want nothing (its policy-rc.d must go)", s.sbinAfter)
	}

	s.run(t, groups, "", "")
	if s.exit != 0 || strings.Contains(s.calls(t), "apt-get") {
		t.Errorf("deps.sh run again with every package installed: exit %d, calls:\n%s", s.exit, s.calls(t))
	}
}

// TestDepsKeepsPolicyRC: an operator's own policy-rc.d stays in force during
// the install and is left as it was.
func TestDepsKeepsPolicyRC(t *testing.T) {
	testutil.RequireRoot(t)
	const own = "#!/bin/sh\n# the operator's\nexit 0\n"
	s := newSandbox(t)
	s.run(t, []string{"base"}, own, "")
	if s.exit != 0 {
		t.Fatalf("exit %d\n%s", s.exit, s.stderr)
	}
	if !strings.Contains(s.calls(t), "policy-rc.d exit 0\n") {
		t.Errorf("apt-get did not run under the operator's policy-rc.d:\n%s", s.calls(t))
	}
	if got := s.sbinAfter["policy-rc.d"]; got != own || len(s.sbinAfter) != 1 {
		t.Errorf("/usr/sbin after deps.sh: %q, want only the operator's policy-rc.d unchanged", s.sbinAfter)
	}
}

// TestDepsNamesMissingCommands: when a package installs but a command the
// tests need is still not there, deps.sh fails and names the command.
func TestDepsNamesMissingCommands(t *testing.T) {
	testutil.RequireRoot(t)
	s := newSandbox(t)
	s.run(t, []string{"base", "gluster"}, "", "mount.glusterfs")
	if s.exit == 0 {
		t.Fatalf("deps.sh passed with mount.glusterfs missing")
	}
	if !strings.Contains(s.stderr, "mount.glusterfs") || !strings.Contains(s.stderr, "missing") {
		t.Errorf("deps.sh does not name the missing command:\n%s", s.stderr)
	}
	if len(s.sbinAfter) != 0 {
		t.Errorf("/usr/sbin after a failed deps.sh holds %v", s.sbinAfter)
	}
}
