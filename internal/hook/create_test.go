package hook

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/runc-shared/runc-shared/internal/hostmount"
	"github.com/runc-shared/runc-shared/internal/registry"
	"github.com/runc-shared/runc-shared/pkg/spec"
)

// runWith runs the hook as run does, with the host's and the container's
// mount tables parsed from mountinfo text (nil ctr: TableOf(-1), a process
// whose table cannot be read).
func (f *fixture) runWith(t *testing.T, host, ctr string, stdin string, argv ...string) (string, error) {
	t.Helper()
	tables := func(pid int) mountTables {
		mt := mountTables{host: parseTable(t, host).MountOf, ctr: hostmount.TableOf(-1).MountOf, ctrRoot: prefixVFS("/proc/" + strconv.Itoa(pid) + "/root")}
		if ctr != "" {
			mt.ctr = parseTable(t, ctr).MountOf
		}
		return mt
	}
	var stdout, stderr bytes.Buffer
	h := &Hook{Stdin: strings.NewReader(stdin), Stdout: &stdout, Stderr: &stderr, tablesOf: tables,
		Now: func() time.Time { return time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC) }}
	err := h.Run(append([]string{"--config", f.config}, argv...))
	if stdout.Len() > 0 {
		t.Errorf("the hook wrote to stdout: %q", stdout.String())
	}
	return stderr.String(), err
}

func parseTable(t *testing.T, text string) *hostmount.Table {
	t.Helper()
	table, err := hostmount.ParseTable(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	return table
}

// stage rewrites the bundle's bind of the allowlisted path as the wrapper
// does: runc binds a staging path, and the annotation names its source.
func (f *fixture) stage(t *testing.T, id string) string {
	t.Helper()
	staged := filepath.Join(f.stateDir, "staging", id, "0")
	if err := os.MkdirAll(staged, 0o700); err != nil {
		t.Fatal(err)
	}
	doc, err := spec.Load(filepath.Join(f.bundle, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := (spec.StagedBinds{f.allow: staged}).Modify(doc.Spec); err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(doc.Spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.bundle, "config.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	return staged
}

// TestCreateRuntimePropagate drives createRuntime of a propagate-mode rule
// through mount tables given as mountinfo text: the container's, as runc
// leaves it before pivot_root, and the host's. A container whose bind of
// the allowlisted path is not in the host's peer group is refused with one
// line on stderr and not registered.
func TestCreateRuntimePropagate(t *testing.T) {
	for _, tc := range []struct {
		name     string
		hostOpt  string // optional fields of the host's mount of the source
		ctrOpt   string // of the container's mount at /var/lib/kubelet
		ctrRoot  string // its root within the file system; "" is the source
		staged   bool   // the wrapper staged the source
		noCtr    bool   // the container's table cannot be read
		wantLine string // the stderr line; "" registers the mounter
	}{
		{name: "in the host's peer group", hostOpt: "shared:7", ctrOpt: "shared:7"},
		{name: "staged source", hostOpt: "shared:7", ctrOpt: "shared:7", staged: true},
		{name: "runc's default rslave", hostOpt: "shared:7", ctrOpt: "shared:8 master:7",
			wantLine: "mount-hook: propagation does not reach the host: the container's mount of host path SRC at /var/lib/kubelet is a slave in a peer group of its own (shared:8 master:7), not in the host's peer group shared:7; start the container through runc-shared, or make SRC a mount point of its own and bind it rshared with rshared root propagation (-v SRC:/var/lib/kubelet:rshared): runc makes the rootfs's parent mount private, which cuts a plain directory on that mount out of the host's peer group"},
		{name: "host path private", hostOpt: "", ctrOpt: "shared:7",
			wantLine: "mount-hook: propagation does not reach the host: host path SRC is not a shared mount (its mount SRC is private); make it shared (mount --bind SRC SRC && mount --make-rshared SRC), or start the container through runc-shared"},
		{name: "another directory bound", hostOpt: "shared:7", ctrOpt: "shared:7", ctrRoot: "/etc",
			wantLine: "mount-hook: the container's bind mount is not of the allowlisted source: /var/lib/kubelet in the container is /etc of device 8:1, want SRC of device 8:1; a path component of SRC changed while the container was created (a symlink swapped in?): refusing it"},
		{name: "the container's table unreadable", hostOpt: "shared:7", noCtr: true,
			wantLine: "mount-hook: read the container's mount table: open /proc/-1/mountinfo: no such file or directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, "propagate")
			f.writeSpec(t, true, true)
			rootfs := filepath.Join(f.bundle, "rootfs")
			if err := os.Mkdir(rootfs, 0o755); err != nil {
				t.Fatal(err)
			}
			rootfs, src := realPath(t, rootfs), realPath(t, f.allow)
			hostMP := src
			if tc.staged {
				hostMP = f.stage(t, "m1")
			}
			root := src
			if tc.ctrRoot != "" {
				root = tc.ctrRoot
			}
			host := "1 0 8:1 / / rw - ext4 /dev/vda rw\n" +
				"50 1 8:1 " + src + " " + hostMP + " rw " + tc.hostOpt + " - ext4 /dev/vda rw\n"
			ctr := ""
			if !tc.noCtr {
				ctr = "100 99 8:1 / / rw - ext4 /dev/vda rw\n" +
					"101 100 8:1 " + rootfs + " " + rootfs + " rw - ext4 /dev/vda rw\n" +
					"102 101 8:1 " + root + " " + rootfs + "/var/lib/kubelet rw " + tc.ctrOpt + " - ext4 /dev/vda rw\n"
			}
			stderr, err := f.runWith(t, host, ctr, f.state("m1", os.Getpid()), "createRuntime")
			_, readErr := registry.New(f.stateDir).Read("m1")
			if tc.wantLine == "" {
				if err != nil || stderr != "" || readErr != nil {
					t.Fatalf("createRuntime: %v, stderr %q; record: %v", err, stderr, readErr)
				}
				if log := f.logText(t); !strings.Contains(log, `registered mounter of rule \"gluster\"`) {
					t.Errorf("log file:\n%s", log)
				}
				if tc.staged {
					if _, err := os.Stat(hostMP); !errors.Is(err, os.ErrNotExist) {
						t.Errorf("staging path %s after createRuntime: %v, want it removed", hostMP, err)
					}
				}
				return
			}
			if want := strings.ReplaceAll(tc.wantLine, "SRC", src) + "\n"; err == nil || stderr != want {
				t.Errorf("createRuntime = %v, stderr\n%q\nwant\n%q", err, stderr, want)
			}
			if !errors.Is(readErr, registry.ErrNotFound) {
				t.Errorf("a refused container was registered: %v", readErr)
			}
		})
	}
}

func realPath(t *testing.T, p string) string {
	t.Helper()
	r, err := filepath.EvalSymlinks(p)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestCreateRuntimeIDNamesNoStagingDir: a container ID that names no
// directory below the staging root is refused before anything there is
// detached or removed: ".." would name the state directory itself. runc
// refuses such IDs; another runtime, or a hand-written state, may not.
func TestCreateRuntimeIDNamesNoStagingDir(t *testing.T) {
	f := newFixture(t, "preload")
	f.writeSpec(t, true, true)
	keep := filepath.Join(f.stateDir, "keep")
	if err := os.MkdirAll(f.stateDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keep, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	stderr, err := f.run(t, f.state("..", os.Getpid()), "createRuntime")
	if err == nil || !strings.Contains(stderr, `container ID ".." cannot name a staging directory`) {
		t.Errorf("createRuntime of container \"..\": %v, stderr %q; want it refused for its ID", err, stderr)
	}
	if _, err := os.Stat(keep); err != nil {
		t.Errorf("%s after createRuntime of container \"..\": %v, want it left alone", keep, err)
	}
}
