package runtime

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Environment variables that turn the test binary into an exec test's
// helper or its fake delegate.
const (
	envExecChild    = "RUNC_SHARED_TEST_EXEC_CHILD"
	envFakeDelegate = "RUNC_SHARED_TEST_FAKE_DELEGATE"
	envExecCalled   = "RUNC_SHARED_TEST_EXEC_CALLED"
)

func TestMain(m *testing.M) {
	if os.Getenv(envFakeDelegate) == "1" {
		// The fake delegate prints exactly its argv, one word a line, so
		// the test sees argv[0] and anything else written on stdout.
		for _, a := range os.Args {
			os.Stdout.WriteString(a + "\n")
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// writeExe writes an executable file.
func writeExe(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestFindRuntime(t *testing.T) {
	root := t.TempDir()
	self := filepath.Join(root, "self", "runc-shared")
	writeExe(t, self, "#!/bin/sh\n# runc-shared stand-in\n")
	real := filepath.Join(root, "real", "runc")
	writeExe(t, real, "#!/bin/sh\n# real runc stand-in\n")
	sym, hard, cp, plain, noexec := filepath.Join(root, "sym"), filepath.Join(root, "hard"),
		filepath.Join(root, "copy"), filepath.Join(root, "plain"), filepath.Join(root, "noexec")
	for _, d := range []string{sym, hard, cp, plain, noexec} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(self, filepath.Join(sym, "runc")); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(self, filepath.Join(hard, "runc")); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	writeExe(t, filepath.Join(cp, "runc"), string(data))
	if err := os.WriteFile(filepath.Join(noexec, "runc"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(plain, "runc"), 0o755); err != nil { // a directory
		t.Fatal(err)
	}
	// A relative PATH entry with a runc in it, relative to the working
	// directory: it must be ignored.
	t.Chdir(root)
	writeExe(t, filepath.Join(root, "rel", "runc"), "#!/bin/sh\n")

	join := func(dirs ...string) string { return strings.Join(dirs, ":") }
	realDir := filepath.Dir(real)
	tests := []struct {
		name, path, runtime string
		want                string
		errMsg              string
	}{
		{name: "default name", path: realDir, want: real},
		{name: "symlink to self earlier in PATH", path: join(sym, realDir), runtime: "runc", want: real},
		{name: "hard link to self earlier in PATH", path: join(hard, realDir), want: real},
		{name: "copy of self earlier in PATH", path: join(cp, realDir), want: real},
		{name: "not executable and directory skipped", path: join(noexec, plain, realDir), want: real},
		{name: "relative and empty entries ignored", path: join("rel", "", realDir), want: real},
		{name: "only self in PATH", path: join(sym, hard), errMsg: "runc-shared itself"},
		{name: "not found", path: join(plain, noexec), errMsg: "not found"},
		{name: "absolute", path: "", runtime: real, want: real},
		{name: "absolute symlink to self", runtime: filepath.Join(sym, "runc"), errMsg: "runc-shared itself"},
		{name: "absolute is self", runtime: self, errMsg: "runc-shared itself"},
		{name: "absolute missing", runtime: filepath.Join(root, "nope"), errMsg: "no such file"},
		{name: "absolute not executable", runtime: filepath.Join(noexec, "runc"), errMsg: "not executable"},
		{name: "absolute directory", runtime: filepath.Join(plain, "runc"), errMsg: "not a regular file"},
		{name: "relative path", runtime: "./real/runc", errMsg: "must be absolute"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("PATH", tt.path)
			got, err := FindRuntime(tt.runtime, self)
			if tt.errMsg != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errMsg) {
					t.Fatalf("FindRuntime(%q) = %q, %v; want error containing %q", tt.runtime, got, err, tt.errMsg)
				}
				if !strings.Contains(err.Error(), "`runtime`") {
					t.Errorf("error %q does not tell the user to set `runtime`", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("FindRuntime(%q) = %q, %v; want %q", tt.runtime, got, err, tt.want)
			}
		})
	}

	t.Run("missing absolute wraps ErrNotExist", func(t *testing.T) {
		_, err := FindRuntime(filepath.Join(root, "nope"), self)
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("error %v does not wrap fs.ErrNotExist", err)
		}
	})
}

func TestFindRuntimeFallbackPath(t *testing.T) {
	for _, set := range []bool{true, false} {
		if set {
			t.Setenv("PATH", "")
		} else {
			t.Setenv("PATH", "x") // restored after the test
			os.Unsetenv("PATH")
		}
		got, err := FindRuntime("sh", "")
		if err != nil {
			t.Fatalf("FindRuntime(sh) with PATH set=%v but empty: %v", set, err)
		}
		if filepath.Base(got) != "sh" || !strings.Contains(":"+FallbackPath+":", ":"+filepath.Dir(got)+":") {
			t.Errorf("FindRuntime(sh) = %q, want sh from %s", got, FallbackPath)
		}
	}
}

// TestExec runs Exec in a child process: the delegate must get the program
// name its caller would have used for it, and the argv unchanged.
func TestExec(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The delegate is this test binary, named runc through a symlink: in
	// fake-delegate mode it prints its argv.
	runc := filepath.Join(t.TempDir(), "runc")
	if err := os.Symlink(self, runc); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ called, argv0 string }{
		{"/usr/local/bin/runc-shared", runc}, // an engine: by path
		{"../bin/runc-shared", runc},
		{"runc-shared", "runc"}, // a shell: by name
		{"runc", "runc"},
	} {
		cmd := exec.Command(self, "-test.run=^TestExecChild$")
		cmd.Env = append(os.Environ(), envExecChild+"="+runc, envExecCalled+"="+tc.called)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("exec child: %v; stderr: %s", err, stderr.String())
		}
		want := tc.argv0 + "\n--root\n/r\nstate\nid\n"
		if string(out) != want {
			t.Errorf("called as %q: delegate stdout = %q, want exactly %q", tc.called, out, want)
		}
	}
}

// TestExecChild is the process that calls Exec for TestExec; run directly
// it has nothing to do.
func TestExecChild(t *testing.T) {
	path := os.Getenv(envExecChild)
	if path == "" {
		return
	}
	env := append(os.Environ(), envFakeDelegate+"=1")
	err := ExecAs(os.Getenv(envExecCalled))(path, []string{"--root", "/r", "state", "id"}, env)
	t.Fatalf("Exec returned: %v", err)
}

func TestExecError(t *testing.T) {
	err := ExecAs("runc")("/nonexistent/runc", []string{"state", "id"}, os.Environ())
	if !errors.Is(err, unix.ENOENT) || !strings.Contains(err.Error(), "/nonexistent/runc") {
		t.Errorf("Exec(missing) = %v, want a wrapped ENOENT naming the path", err)
	}
}
