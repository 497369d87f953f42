package csi

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/runc-shared/runc-shared/internal/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

func dial(t *testing.T, sock string) *grpc.ClientConn {
	t.Helper()
	c, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestKubeletRegistration acts as kubelet's plugin watcher: it waits for a
// socket in the registration directory, asks it GetInfo, checks the answer
// as kubelet does (type CSIPlugin, a supported version, an endpoint that
// serves CSI), reports the registration, and stops the server.
func TestKubeletRegistration(t *testing.T) {
	e := newNodeEnv(t)
	var logs testutil.SyncBuffer
	e.S.Log = NewLogger(&logs, "info")
	dir := t.TempDir()
	regDir := filepath.Join(dir, "plugins_registry")
	endpoint := filepath.Join(dir, "plugins", e.S.Driver, "csi.sock")
	o := &Options{Endpoint: "unix://" + endpoint, Driver: e.S.Driver, NodeID: "node-1", RegistrationDir: regDir, KubeletEndpoint: endpoint}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, e.S, o) }()
	t.Cleanup(cancel)

	// The plugin watcher: a new socket file in the registration directory.
	var sock string
	testutil.Eventually(t, 10*time.Second, "a socket in "+regDir, func() (bool, string) {
		ents, _ := os.ReadDir(regDir)
		for _, de := range ents {
			if de.Type()&os.ModeSocket != 0 && !strings.HasPrefix(de.Name(), ".") {
				sock = filepath.Join(regDir, de.Name())
			}
		}
		return sock != "", "none there"
	})
	if want := RegistrationSocket(regDir, e.S.Driver); sock != want {
		t.Errorf("registration socket %s, want %s", sock, want)
	}
	reg := registerapi.NewRegistrationClient(dial(t, sock))
	info, err := reg.GetInfo(ctx, &registerapi.InfoRequest{})
	if err != nil {
		t.Fatalf("GetInfo: %v", err)
	}
	if info.GetType() != registerapi.CSIPlugin || info.GetName() != e.S.Driver || info.GetEndpoint() != endpoint {
		t.Fatalf("GetInfo = %+v, want type %s, name %s, endpoint %s", info, registerapi.CSIPlugin, e.S.Driver, endpoint)
	}
	// kubelet's CSI plugin handler accepts versions it can parse with a 1.x major.
	if len(info.GetSupportedVersions()) == 0 || !strings.HasPrefix(info.GetSupportedVersions()[0], "1.") {
		t.Fatalf("supported versions %q, want a 1.x version", info.GetSupportedVersions())
	}
	// kubelet then calls the driver at the endpoint it was given.
	pi, err := csipb.NewIdentityClient(dial(t, info.GetEndpoint())).GetPluginInfo(ctx, &csipb.GetPluginInfoRequest{})
	if err != nil || pi.GetName() != e.S.Driver {
		t.Fatalf("GetPluginInfo at the registered endpoint: %+v, %v", pi, err)
	}
	if _, err := reg.NotifyRegistrationStatus(ctx, &registerapi.RegistrationStatus{PluginRegistered: true}); err != nil {
		t.Fatalf("NotifyRegistrationStatus: %v", err)
	}
	if _, err := reg.NotifyRegistrationStatus(ctx, &registerapi.RegistrationStatus{Error: "version 9 unsupported"}); err != nil {
		t.Fatalf("NotifyRegistrationStatus: %v", err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(stopTimeout + 5*time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
	for _, p := range []string{sock, endpoint} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("socket %s left after stop: %v", p, err)
		}
	}
	out := logs.String()
	for _, want := range []string{"kubelet registered CSI driver " + e.S.Driver, "kubelet refused to register", "version 9 unsupported", "msg=GetPluginInfo", "msg=stopped"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

// TestServeReturnsSocketRemovalError: a socket that cannot be removed when
// Serve stops (its directory is immutable, which stops root too) makes
// Serve's error, for the CSI socket and kubelet's registration socket alike.
func TestServeReturnsSocketRemovalError(t *testing.T) {
	for _, tc := range []struct {
		name string
		sock func(endpoint, regSock string) string
	}{
		{"csi", func(endpoint, _ string) string { return endpoint }},
		{"reg", func(_, regSock string) string { return regSock }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newNodeEnv(t)
			dir := t.TempDir()
			regDir := filepath.Join(dir, "plugins_registry")
			endpoint := filepath.Join(dir, "plugins", e.S.Driver, "csi.sock")
			o := &Options{Endpoint: "unix://" + endpoint, Driver: e.S.Driver, NodeID: "node-1", RegistrationDir: regDir, KubeletEndpoint: endpoint}
			ctx, cancel := context.WithCancel(context.Background())
			t.Cleanup(cancel)
			done := make(chan error, 1)
			go func() { done <- Serve(ctx, e.S, o) }()
			sock := tc.sock(endpoint, RegistrationSocket(regDir, e.S.Driver))
			testutil.Eventually(t, 10*time.Second, "socket "+sock, func() (bool, string) {
				select {
				case err := <-done:
					t.Fatalf("Serve returned early: %v", err)
				default:
				}
				fi, err := os.Lstat(sock)
				return err == nil && fi.Mode()&os.ModeSocket != 0, fmt.Sprint(err)
			})
			chattr(t, "+i", filepath.Dir(sock))
			t.Cleanup(func() { chattr(t, "-i", filepath.Dir(sock)) })

			cancel()
			select {
			case err := <-done:
				if want := "remove the socket " + sock; err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("Serve = %v, want an error with %q", err, want)
				}
			case <-time.After(stopTimeout + 5*time.Second):
				t.Fatal("Serve did not return after its context ended")
			}
		})
	}
}

func chattr(t *testing.T, flag, path string) {
	t.Helper()
	if out, err := exec.Command("chattr", flag, path).CombinedOutput(); err != nil {
		t.Fatalf("chattr %s %s: %v: %s", flag, path, err, out)
	}
}
