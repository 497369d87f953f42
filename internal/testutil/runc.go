package testutil

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Runc drives an OCI runtime binary (plain runc, or bin/runc-shared in front of it)
// with its own state dir. Every container created through it is killed, deleted and
// checked gone in t.Cleanup.
type Runc struct {
	Bin         string     // runtime binary: "runc" resolved on PATH, or Bin(t, "runc-shared")
	Root        string     // --root state dir, private to this Runc
	ExtraGlobal []string   // more global flags before the command, e.g. --runc-shared-config=PATH
	ExtraFiles  []*os.File // passed as fd 3, 4, ... (for create --preserve-fds N)
}

// runTimeout bounds every runtime command.
const runTimeout = 2 * time.Minute

// State is the JSON that `runc state` prints.
type State struct {
	Pid    int    `json:"pid"`
	Status string `json:"status"`
	Bundle string `json:"bundle"`
}

// NewRunc returns a runtime driver for bin ("" means runc on PATH) with a fresh
// --root dir.
func NewRunc(t testing.TB, bin string) *Runc {
	t.Helper()
	RequireRoot(t)
	if bin == "" {
		bin = "runc"
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		t.Fatalf("runtime %s: %v (install runc: scripts/deps.sh base; build ours: make)", bin, err)
	}
	if path, err = filepath.Abs(path); err != nil {
		t.Fatal(err)
	}
	return &Runc{Bin: path, Root: filepath.Join(TempDir(t), "state")}
}

// Wrapper returns a runtime driver for the wrapper, bin/runc-shared, that
// reads the configuration at config.
func Wrapper(t testing.TB, config string) *Runc {
	t.Helper()
	r := NewRunc(t, Bin(t, "runc-shared"))
	r.ExtraGlobal = []string{"--runc-shared-config=" + config}
	return r
}

// Run runs the runtime with the global flags and args and returns its output. The
// error includes stderr and, for create/run, the error lines of the --log file.
func (r *Runc) Run(t testing.TB, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	return r.run(t, nil, args)
}

// outFiles are where a runtime call writes: files, never pipes (see package doc).
type outFiles struct{ stdout, stderr *os.File }

// run runs the runtime with the global flags and args, writing to out
// (nil: files of its own).
func (r *Runc) run(t testing.TB, out *outFiles, args []string) (stdout, stderr string, err error) {
	t.Helper()
	argv := append(append([]string{"--root", r.Root}, r.ExtraGlobal...), args...)
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	if out == nil {
		o, err1 := os.CreateTemp("", "rstest-out-")
		e, err2 := os.CreateTemp("", "rstest-err-")
		if err := errors.Join(err1, err2); err != nil {
			t.Fatalf("make output files: %v", err)
		}
		defer os.Remove(o.Name())
		defer os.Remove(e.Name())
		out = &outFiles{o, e}
	}
	defer out.stdout.Close()
	defer out.stderr.Close()
	// create appends to the init's output files: read back only what this call wrote.
	outOff, _ := out.stdout.Seek(0, io.SeekEnd)
	errOff, _ := out.stderr.Seek(0, io.SeekEnd)
	cmd := exec.CommandContext(ctx, r.Bin, argv...)
	cmd.Stdout, cmd.Stderr = out.stdout, out.stderr
	cmd.ExtraFiles = r.ExtraFiles
	runErr := cmd.Run()
	stdout, stderr = readFrom(out.stdout, outOff), readFrom(out.stderr, errOff)
	if runErr != nil {
		if ctx.Err() != nil {
			runErr = fmt.Errorf("%w (timed out after %v)", runErr, runTimeout)
		}
		runErr = fmt.Errorf("%s %s: %w\nstderr: %s", r.Bin, strings.Join(argv, " "), runErr, strings.TrimSpace(stderr))
	}
	return stdout, stderr, runErr
}

func readFrom(f *os.File, off int64) string {
	b, _ := os.ReadFile(f.Name())
	return string(b[min(off, int64(len(b))):])
}

// Create runs `create` the way containerd-shim does:
// --log BUNDLE/log.json --log-format json create --bundle B --pid-file P [flags] ID.
// The container's init inherits BUNDLE/init.stdout and init.stderr (see
// Bundle.InitOutput). The container is registered for cleanup before create runs.
func (r *Runc) Create(t testing.TB, b *Bundle, id string, flags ...string) error {
	t.Helper()
	_, _, err := r.bundleCmd(t, b, id, "create", flags...)
	return err
}

// RunBundle runs `run --bundle B ID` in the foreground (the init must exit by
// itself, e.g. WithArgs("true")) and returns what the container printed.
func (r *Runc) RunBundle(t testing.TB, b *Bundle, id string) (stdout, stderr string, err error) {
	t.Helper()
	return r.bundleCmd(t, b, id, "run")
}

// bundleCmd runs `--log BUNDLE/log.json --log-format json CMD --bundle B
// --pid-file P [flags] ID` after checking config.json and registering the
// container for cleanup; the error carries the log's error lines.
func (r *Runc) bundleCmd(t testing.TB, b *Bundle, id, cmd string, flags ...string) (stdout, stderr string, err error) {
	t.Helper()
	if err := checkBundle(b); err != nil {
		t.Fatal(err)
	}
	pidFile := filepath.Join(b.Dir, id+".pid")
	t.Cleanup(func() { r.cleanup(t, id, pidFile) })
	var out *outFiles
	if cmd == "create" {
		out = openInitOutput(t, b)
	}
	args := []string{"--log", b.LogPath(), "--log-format", "json", cmd, "--bundle", b.Dir, "--pid-file", pidFile}
	stdout, stderr, err = r.run(t, out, append(append(args, flags...), id))
	if err != nil {
		err = fmt.Errorf("%w\nlog.json errors: %s", err, logErrors(b.Log(t)))
	}
	return stdout, stderr, err
}

// checkBundle re-checks config.json on disk: a test may have edited the file.
func checkBundle(b *Bundle) error {
	raw, err := os.ReadFile(b.ConfigPath())
	if err != nil {
		return err
	}
	// Decode only the first JSON value, as runc does: what follows it is the
	// runtime's business.
	var spec specs.Spec
	if err := json.NewDecoder(bytes.NewReader(raw)).Decode(&spec); err != nil {
		return fmt.Errorf("decode %s: %w", b.ConfigPath(), err)
	}
	return checkSpec(&spec)
}

func openInitOutput(t testing.TB, b *Bundle) *outFiles {
	t.Helper()
	open := func(name string) *os.File {
		f, err := os.OpenFile(filepath.Join(b.Dir, name), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	return &outFiles{open("init.stdout"), open("init.stderr")}
}

// logErrors returns the msg of the "level":"error" lines of a runc JSON log.
func logErrors(log string) string {
	var msgs []string
	for _, line := range strings.Split(log, "\n") {
		var e struct{ Level, Msg string }
		if json.Unmarshal([]byte(line), &e) == nil && e.Level == "error" {
			msgs = append(msgs, e.Msg)
		}
	}
	if len(msgs) == 0 {
		return "(none)"
	}
	return strings.Join(msgs, "; ")
}

// Start runs `start ID`.
func (r *Runc) Start(t testing.TB, id string) error {
	t.Helper()
	_, _, err := r.Run(t, "start", id)
	return err
}

// Up creates and starts a container from b and returns its init's host PID; any
// error fails the test.
func (r *Runc) Up(t testing.TB, b *Bundle, id string) int {
	t.Helper()
	if err := r.Create(t, b, id); err != nil {
		t.Fatal(err)
	}
	if err := r.Start(t, id); err != nil {
		t.Fatal(err)
	}
	st, err := r.State(t, id)
	if err != nil {
		t.Fatal(err)
	}
	if st.Status != "running" {
		out, errOut := b.InitOutput(t)
		t.Fatalf("container %s is %s after start, want running; init stdout: %q stderr: %q", id, st.Status, out, errOut)
	}
	return st.Pid
}

// State runs `state ID`.
func (r *Runc) State(t testing.TB, id string) (*State, error) {
	t.Helper()
	out, _, err := r.Run(t, "state", id)
	if err != nil {
		return nil, err
	}
	var st State
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return nil, fmt.Errorf("decode state of %s: %w: %q", id, err, out)
	}
	return &st, nil
}

// Exec runs `exec ID args...` and returns its output.
func (r *Runc) Exec(t testing.TB, id string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	return r.Run(t, append([]string{"exec", id}, args...)...)
}

// Kill runs `kill ID SIG` (e.g. "KILL", "TERM").
func (r *Runc) Kill(t testing.TB, id, sig string) error {
	t.Helper()
	_, _, err := r.Run(t, "kill", id, sig)
	return err
}

// Delete runs `delete [--force] ID`.
func (r *Runc) Delete(t testing.TB, id string, force bool) error {
	t.Helper()
	args := []string{"delete", id}
	if force {
		args = []string{"delete", "--force", id}
	}
	_, _, err := r.Run(t, args...)
	return err
}

// cleanup kills and deletes container id through this runtime, falls back to
// plain runc on the same --root if the wrapper left it behind, then checks that its
// init (from the pid file) is gone, killing it by PID as a last resort.
func (r *Runc) cleanup(t testing.TB, id, pidFile string) {
	t.Helper()
	var init proc
	if raw, err := os.ReadFile(pidFile); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(raw))); err == nil {
			init, _ = findProc(pid)
		}
	}
	_ = r.Kill(t, id, "KILL")
	_ = r.Delete(t, id, true)
	if _, err := r.State(t, id); err == nil {
		t.Errorf("container %s still exists after delete --force through %s; deleting with plain runc", id, r.Bin)
		plain := &Runc{Bin: "runc", Root: r.Root}
		_ = plain.Kill(t, id, "KILL")
		_ = plain.Delete(t, id, true)
	}
	if !init.waitGone(10 * time.Second) {
		t.Errorf("init %d of container %s survived kill and delete; killing it by PID", init.pid, id)
		_ = init.signal(syscall.SIGKILL)
		init.waitGone(5 * time.Second)
	}
}
