package testutil

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// treeState describes every entry below dir (dir included): type, mode, owner,
// size, modification time, and a file's content hash or a link's target. A
// file created and removed again still changes its directory's mtime.
func treeState(t *testing.T, dir string) map[string]string {
	t.Helper()
	st := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && p == dir {
			st[p] = "absent"
			return nil
		}
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		s := fi.Sys().(*syscall.Stat_t)
		desc := fmt.Sprintf("%v uid %d gid %d size %d mtime %d.%09d", fi.Mode(), s.Uid, s.Gid, fi.Size(), s.Mtim.Sec, s.Mtim.Nsec)
		switch {
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			desc += fmt.Sprintf(" sha256 %x", sha256.Sum256(b))
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			desc += " -> " + target
		}
		st[p] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestGlusterdLeavesHostDirs: a Glusterd with a volume, CLI calls and a native
// mount, once cleaned up, leaves the host's /var/lib/glusterd, /var/log/glusterfs
// and /var/run/gluster exactly as they were: no cmd_history line, no brick socket
// or log, no first-start set-up, not even a file made and removed again.
func TestGlusterdLeavesHostDirs(t *testing.T) {
	CheckLeaks(t)
	RequireRoot(t)
	before := map[string]map[string]string{}
	for _, d := range HostGlusterDirs {
		before[d] = treeState(t, d)
	}
	t.Run("Glusterd", func(t *testing.T) {
		g := Glusterd(t)
		if _, err := g.CLI(t, "volume", "info", g.Volume); err != nil {
			t.Fatal(err)
		}
		mnt := filepath.Join(TempDir(t), "mnt")
		if err := os.Mkdir(mnt, 0o755); err != nil {
			t.Fatal(err)
		}
		NativeMount(t, g, mnt)
	})
	for _, d := range HostGlusterDirs {
		after := treeState(t, d)
		for p, was := range before[d] {
			if now, ok := after[p]; !ok {
				t.Errorf("%s: gone (was %s)", p, was)
			} else if now != was {
				t.Errorf("%s changed:\n  was %s\n  now %s", p, was, now)
			}
		}
		for p, now := range after {
			if _, ok := before[d][p]; !ok {
				t.Errorf("%s: new (%s)", p, now)
			}
		}
	}
}

// TestHideHostDirs: in a namespace of its own, what is written below the hidden
// directories stays out of the host's file system, also for a directory the
// host does not have (glusterd would create it there otherwise).
func TestHideHostDirs(t *testing.T) {
	RequireRoot(t)
	base := TempDir(t)
	have, missing := filepath.Join(base, "have"), filepath.Join(base, "parent", "missing")
	if err := os.MkdirAll(filepath.Dir(missing), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(have, 0o755); err != nil {
		t.Fatal(err)
	}
	script := hideHostDirs([]string{have, missing}) + "touch " + have + "/x " + missing + "/y && mkdir -p " + missing + "/z"
	if out, err := exec.Command("unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", script, err, out)
	}
	for _, p := range []string{filepath.Join(have, "x"), missing} {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s reached the host: %v", p, err)
		}
	}
	if ms := MountsUnder(t, base); len(ms) != 0 {
		t.Errorf("mounts left on the host: %s", mountpoints(ms))
	}
}

var mountSeq atomic.Int64

// NativeMount mounts the volume on the host at target (mount -t glusterfs
// 127.0.0.2:/v0 TARGET). Cleanup unmounts it and checks that its FUSE client
// process, found by our unique target on its command line, has exited.
func NativeMount(t testing.TB, g *Gluster, target string) {
	t.Helper()
	var client proc
	t.Cleanup(func() {
		if !client.waitGone(10 * time.Second) {
			t.Errorf("glusterfs client %d for %s still runs after unmount; stopping it", client.pid, target)
			client.stop(5 * time.Second)
		}
	})
	UnmountLater(t, target) // runs first
	log := filepath.Join(g.Dir, "log", fmt.Sprintf("client-%d.log", mountSeq.Add(1)))
	src := g.Server + ":/" + g.Volume
	if out, err := exec.Command("mount", "-t", "glusterfs", "-o", "log-file="+log, src, target).CombinedOutput(); err != nil {
		t.Fatalf("mount -t glusterfs %s %s: %v: %s", src, target, err, out)
	}
	clean := filepath.Clean(target)
	ps := findProcs(func(argv []string) bool {
		return filepath.Base(argv[0]) == "glusterfs" && filepath.Clean(argv[len(argv)-1]) == clean
	})
	if len(ps) != 1 {
		t.Fatalf("want one glusterfs client for %s, found %d", target, len(ps))
	}
	client = ps[0]
}
