package csi

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/runc-shared/runc-shared/internal/testutil"
)

func TestCall(t *testing.T) {
	e := newNodeEnv(t)
	sock := filepath.Join(t.TempDir(), "csi.sock")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, e.S, &Options{Endpoint: "unix://" + sock, Driver: e.S.Driver, NodeID: "node-1"})
	}()
	defer func() { cancel(); <-done }()
	testutil.Eventually(t, 5*time.Second, "the server to answer Probe", func() (bool, string) {
		var out bytes.Buffer
		return Call([]string{"--endpoint", "unix://" + sock, "Probe"}, &out, &out) == 0, out.String()
	})
	tests := []struct {
		args     []string
		code     int
		out, err string
	}{
		{[]string{"GetPluginInfo"}, 0, `"name":"test.runc-shared.io"`, ""},
		{[]string{"NodeGetInfo", `{}`}, 0, `"node_id":"node-1"`, ""},
		{[]string{"NodeStageVolume", `{"staging_target_path": "/x"}`}, 32, "", "InvalidArgument"},
		{[]string{"NodeStageVolume", `{"stagin": 1}`}, 1, "", "request"},
		{[]string{"Nope"}, 1, "", "unknown method"},
		{nil, 1, "", "usage"},
	}
	for _, tt := range tests {
		var out, errOut bytes.Buffer
		code := Call(append([]string{"--endpoint=unix://" + sock}, tt.args...), &out, &errOut)
		if code != tt.code || !strings.Contains(out.String(), tt.out) || !strings.Contains(errOut.String(), tt.err) {
			t.Errorf("call %q: exit %d, stdout %q, stderr %q; want %d, %q, %q", tt.args, code, out.String(), errOut.String(), tt.code, tt.out, tt.err)
		}
	}
}
