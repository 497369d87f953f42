package engines_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/runc-shared/runc-shared/internal/testutil"
)

// cmdTimeout bounds every engine CLI call: a hung daemon must fail the
// test, not the whole run.
const cmdTimeout = 90 * time.Second

// result is one CLI call.
type result struct {
	argv           []string
	stdout, stderr string
	err            error
	took           time.Duration
}

func (r result) String() string {
	return fmt.Sprintf("%s: %v (%v)\nstdout: %s\nstderr: %s", strings.Join(r.argv, " "), r.err,
		r.took.Round(time.Millisecond), strings.TrimSpace(r.stdout), strings.TrimSpace(r.stderr))
}

// run runs a command with extra environment and optional stdin; stdout and
// stderr go to files, not pipes: a daemon or container that inherits them
// must not keep Wait blocked.
func run(t testing.TB, env []string, stdin io.Reader, argv ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = stdin
	outF, errF := tempFile(t), tempFile(t)
	defer outF.Close()
	defer errF.Close()
	cmd.Stdout, cmd.Stderr = outF, errF
	start := time.Now()
	err := cmd.Run()
	r := result{argv: argv, err: err, took: time.Since(start)}
	r.stdout, r.stderr = readAll(outF), readAll(errF)
	if ctx.Err() != nil {
		r.err = fmt.Errorf("timed out after %v: %w", cmdTimeout, err)
	}
	return r
}

func tempFile(t testing.TB) *os.File {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "out-")
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func readAll(f *os.File) string {
	b, _ := os.ReadFile(f.Name())
	return string(b)
}

// must runs a command and fails the test when it fails.
func must(t testing.TB, env []string, stdin io.Reader, argv ...string) result {
	t.Helper()
	r := run(t, env, stdin, argv...)
	if r.err != nil {
		t.Fatal(r)
	}
	return r
}

// daemon is an engine daemon this test started; it is stopped by the PID
// recorded at start, never by name.
type daemon struct {
	name   string
	cmd    *exec.Cmd
	log    string
	exited chan struct{}
}

// startDaemon starts argv with its output in logFile and waits until ready
// answers nil. Cleanup sends SIGTERM (and SIGKILL after grace) to that PID.
func startDaemon(t *testing.T, name string, env []string, logFile string, ready func() error, argv ...string) *daemon {
	t.Helper()
	out, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	d := &daemon{name: name, log: logFile, exited: make(chan struct{})}
	d.cmd = exec.Command(argv[0], argv[1:]...)
	d.cmd.Env = append(os.Environ(), env...)
	d.cmd.Stdout, d.cmd.Stderr = out, out
	// Its own process group: a Ctrl-C of go test must not reach it before
	// the cleanup has removed its containers.
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { _ = d.cmd.Wait(); close(d.exited) }()
	t.Cleanup(func() { d.stop(t, 30*time.Second) })
	testutil.Eventually(t, 30*time.Second, name+" to be ready", func() (bool, string) {
		select {
		case <-d.exited:
			t.Fatalf("%s exited during startup\n%s", name, d.tail())
		default:
		}
		err := ready()
		return err == nil, fmt.Sprintf("%v\n%s", err, d.tail())
	})
	return d
}

func (d *daemon) stop(t *testing.T, grace time.Duration) {
	select {
	case <-d.exited:
		return
	default:
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(grace):
		t.Errorf("%s (pid %d) ignored SIGTERM for %v; killing it\n%s", d.name, d.cmd.Process.Pid, grace, d.tail())
		_ = d.cmd.Process.Kill()
		<-d.exited
	}
}

func (d *daemon) tail() string {
	b, _ := os.ReadFile(d.log)
	if len(b) > 6000 {
		b = b[len(b)-6000:]
	}
	return d.name + " log tail:\n" + string(b)
}

// socketReady answers nil once something accepts on the unix socket.
func socketReady(path string) func() error {
	return func() error {
		c, err := net.Dial("unix", path)
		if err != nil {
			return err
		}
		return c.Close()
	}
}

// cgroupParent returns a cgroup path unique to this test for the engine to
// put its containers below; cleanup removes it from every hierarchy. The
// engines remove their containers' cgroups, not the parents they create
// (dockerd's /docker, Podman's conmon cgroup).
func cgroupParent(t *testing.T, engine string) string {
	name := fmt.Sprintf("rstest-%d-%s", os.Getpid(), engine)
	t.Cleanup(func() {
		roots, _ := filepath.Glob("/sys/fs/cgroup/*")
		for _, r := range roots {
			removeCgroupTree(t, filepath.Join(r, name))
		}
	})
	return "/" + name
}

// removeCgroupTree rmdirs dir and its child cgroups, deepest first. An
// engine's helper may still be on its way out when the test ends (Podman's
// conmon outlives `podman rm` by a few milliseconds, and rmdir fails with
// EBUSY until its exit has been processed), so a busy cgroup is retried for
// a while; one that keeps processes stays and is reported with them. Nothing
// is signalled.
func removeCgroupTree(t *testing.T, dir string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if e.IsDir() {
			removeCgroupTree(t, filepath.Join(dir, e.Name()))
		}
	}
	start, tries := time.Now(), 0
	testutil.Poll(10*time.Second, func() bool {
		tries++
		err = os.Remove(dir)
		return !errors.Is(err, syscall.EBUSY)
	})
	if err == nil || errors.Is(err, fs.ErrNotExist) {
		if tries > 1 {
			t.Logf("cgroup %s was busy for %v", dir, time.Since(start).Round(time.Millisecond))
		}
		return
	}
	procs, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	t.Errorf("remove cgroup %s: %v (processes in it: %q)", dir, err, strings.Fields(string(procs)))
}

// writeRootfsTar writes rootfs as an uncompressed tar owned by root, as
// `tar -C ROOTFS -c .` would, with deterministic order.
func writeRootfsTar(w io.Writer, rootfs string) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(rootfs, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(rootfs, p)
		if err != nil || rel == "." {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if fi.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		} else if !fi.Mode().IsRegular() && !fi.IsDir() {
			return nil // no devices, sockets or fifos in an image layer
		}
		h, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return err
		}
		h.Name = "./" + filepath.ToSlash(rel)
		if fi.IsDir() {
			h.Name += "/"
		}
		h.Uid, h.Gid, h.Uname, h.Gname = 0, 0, "root", "root"
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, f)
			f.Close()
			return err
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("tar %s: %w", rootfs, err)
	}
	return tw.Close()
}

// rootfsTar returns rootfs as tar bytes (the test images are a few MB).
func rootfsTar(t *testing.T, rootfs string) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := writeRootfsTar(&b, rootfs); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// ociArchive writes an OCI image layout tarball (what `ctr images import`
// takes) holding rootfs as one uncompressed layer, with cmd as the default
// command, named ref through the annotation containerd reads.
func ociArchive(t *testing.T, dir, rootfs, ref string, cmd []string) string {
	t.Helper()
	layer := rootfsTar(t, rootfs)
	blobs := map[string][]byte{}
	add := func(b []byte) (string, int) {
		sum := sha256.Sum256(b)
		d := "sha256:" + hex.EncodeToString(sum[:])
		blobs[d] = b
		return d, len(b)
	}
	ld, ls := add(layer)
	config, _ := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux",
		"config": map[string]any{"Env": []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, "Cmd": cmd},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{ld}},
	})
	cd, cs := add(config)
	manifest, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
		"layers": []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": ls}},
	})
	md, ms := add(manifest)
	index, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"manifests": []any{map[string]any{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": ms,
			"annotations": map[string]string{"io.containerd.image.name": ref, "org.opencontainers.image.ref.name": ref}}},
	})
	path := filepath.Join(dir, strings.NewReplacer("/", "_", ":", "_").Replace(ref)+".oci.tar")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	put := func(name string, b []byte) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	put("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`))
	put("index.json", index)
	for _, d := range []string{ld, cd, md} {
		put("blobs/sha256/"+strings.TrimPrefix(d, "sha256:"), blobs[d])
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}
