package main

import (
	"bytes"
	"os"
	"testing"

	"github.com/runc-shared/runc-shared/internal/testutil"
)

// TestBinaryLeavesOutRPCTracing checks that the built `mounter` links gRPC
// without its request tracing: every routed mount starts this binary, and
// golang.org/x/net/trace brings net/http's debug pages and html/template
// with it, whose package initialisation each start would pay. The package
// paths stay in the binary's function table even when it is stripped.
func TestBinaryLeavesOutRPCTracing(t *testing.T) {
	bin, err := os.ReadFile(testutil.Bin(t, "mounter"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		pkg    string
		linked bool
	}{
		{"google.golang.org/grpc.", true}, // `mounter csi` serves gRPC
		{"golang.org/x/net/trace.", false},
		{"html/template.", false},
	} {
		if got := bytes.Contains(bin, []byte(tc.pkg)); got != tc.linked {
			t.Errorf("package %s linked into bin/mounter: %v, want %v (build with `make`, which sets -tags grpcnotrace)", tc.pkg, got, tc.linked)
		}
	}
}
