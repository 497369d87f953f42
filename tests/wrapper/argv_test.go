package wrapper_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runc-shared/runc-shared/internal/runtime"
	"github.com/runc-shared/runc-shared/internal/testutil"
)

// TestArgvLikeRunc runs create command lines through the real runc and
// checks that runc-shared's parser reads the bundle and container ID runc
// used, or no rewrite where runc refused the command line. The unit tests
// and FuzzParse compare the parser with urfave/cli, runc's parser; this
// anchors that comparison to the installed runc.
func TestArgvLikeRunc(t *testing.T) {
	rootfs := testutil.BusyboxRootfs(t)
	a, b, cwd := testutil.NewBundle(t, rootfs), testutil.NewBundle(t, rootfs), testutil.NewBundle(t, rootfs)
	root := filepath.Join(testutil.TempDir(t), "state")
	list := func() map[string]string {
		out, err := exec.Command("runc", "--root", root, "list", "--format", "json").Output()
		if err != nil {
			t.Fatalf("runc list: %v", err)
		}
		var cs []struct{ ID, Bundle string }
		if err := json.Unmarshal(out, &cs); err != nil {
			t.Fatalf("runc list: %v: %q", err, out)
		}
		m := map[string]string{}
		for _, c := range cs {
			m[c.ID] = c.Bundle
		}
		return m
	}
	cleanup := func() {
		for id := range list() {
			if out, err := exec.Command("runc", "--root", root, "delete", "--force", id).CombinedOutput(); err != nil {
				t.Errorf("delete %s: %v: %s", id, err, out)
			}
		}
	}
	t.Cleanup(cleanup)

	for _, line := range []string{
		"create --bundle A id1", "create id1 --bundle A", "create -b A id1", "create --bundle=A id1",
		"create -bundle A id1", "create --b=A id1", "create id1",
		"create --no-pivot id1 --bundle A", "create --no-pivot A --bundle B id1",
		"create id1 --no-pivot --bundle A", "create -- --bundle A id1", "create id1 -- --bundle A",
		"create --pid-file --bundle A id1", "create --bundle A -b B id1", "create -b A -b B id1",
		"create --bundle A --bundle B id1", "create --bundle A id1 id2", "create --bundle A",
		"create --bundle A --no-pivot=true id1", "create --bundle A --no-pivot=maybe id1",
		"create --bundle A --preserve-fds 0x0 id1", "create --bundle A --preserve-fds x id1",
		"create --bundle A --bogus id1", "create --help --bundle A id1", "create --bundle A -h=false id1",
		"--root R create --bundle A id1", "--debug=false create --bundle A id1", "-- create --bundle A id1",
		"create --console-socket --bundle A id1",
	} {
		t.Run(line, func(t *testing.T) {
			defer cleanup()
			argv := strings.Fields(strings.NewReplacer("A", a.Dir, "B", b.Dir, "R", root).Replace(line))
			if argv[0] != "--root" {
				argv = append([]string{"--root", root}, argv...)
			}
			// Output to a file, not a pipe: the created container's init
			// inherits it and holds a pipe open.
			outFile, err := os.CreateTemp(testutil.TempDir(t), "out-")
			if err != nil {
				t.Fatal(err)
			}
			defer outFile.Close()
			cmd := exec.Command("runc", argv...)
			cmd.Dir, cmd.Stdout, cmd.Stderr = cwd.Dir, outFile, outFile
			runErr := cmd.Run()
			out, _ := os.ReadFile(outFile.Name())
			created := list()

			p, _ := runtime.Parse(argv)
			switch {
			case len(created) > 1:
				t.Fatalf("runc created %v", created)
			case len(created) == 0:
				if p.MayRewrite() {
					t.Errorf("runc refused (%v: %.200s), but runc-shared would rewrite bundle %q for %q", runErr, out, p.Bundle, p.ContainerID)
				}
			default:
				bundle := p.Bundle
				if !filepath.IsAbs(bundle) {
					bundle = filepath.Join(cwd.Dir, bundle)
				}
				for id, got := range created {
					if !p.MayRewrite() || id != p.ContainerID || got != filepath.Clean(bundle) {
						t.Errorf("runc created %s from %s; runc-shared reads ID %q, bundle %q, rewrite %v",
							id, got, p.ContainerID, bundle, p.MayRewrite())
					}
				}
			}
		})
	}
}
