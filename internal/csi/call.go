package csi

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// CallUsage is the help of `mounter csi call`.
const CallUsage = `usage: mounter csi call --endpoint unix:///PATH METHOD [REQUEST-JSON]

Calls one CSI method on a running driver and prints the response as JSON: what
kubelet or the external-provisioner would send, for trying a driver by hand.
REQUEST-JSON is the request in protobuf's JSON form (field names as in the CSI
spec, e.g. {"volume_id": "v", "staging_target_path": "/var/lib/kubelet/..."}).
`

// callMethods are the methods `mounter csi call` knows: the service's full
// method name and the request and response messages.
var callMethods = map[string]struct {
	full      string
	req, resp func() proto.Message
}{
	"GetPluginInfo":              {"/csi.v1.Identity/GetPluginInfo", func() proto.Message { return &csipb.GetPluginInfoRequest{} }, func() proto.Message { return &csipb.GetPluginInfoResponse{} }},
	"Probe":                      {"/csi.v1.Identity/Probe", func() proto.Message { return &csipb.ProbeRequest{} }, func() proto.Message { return &csipb.ProbeResponse{} }},
	"CreateVolume":               {"/csi.v1.Controller/CreateVolume", func() proto.Message { return &csipb.CreateVolumeRequest{} }, func() proto.Message { return &csipb.CreateVolumeResponse{} }},
	"DeleteVolume":               {"/csi.v1.Controller/DeleteVolume", func() proto.Message { return &csipb.DeleteVolumeRequest{} }, func() proto.Message { return &csipb.DeleteVolumeResponse{} }},
	"ValidateVolumeCapabilities": {"/csi.v1.Controller/ValidateVolumeCapabilities", func() proto.Message { return &csipb.ValidateVolumeCapabilitiesRequest{} }, func() proto.Message { return &csipb.ValidateVolumeCapabilitiesResponse{} }},
	"NodeGetInfo":                {"/csi.v1.Node/NodeGetInfo", func() proto.Message { return &csipb.NodeGetInfoRequest{} }, func() proto.Message { return &csipb.NodeGetInfoResponse{} }},
	"NodeStageVolume":            {"/csi.v1.Node/NodeStageVolume", func() proto.Message { return &csipb.NodeStageVolumeRequest{} }, func() proto.Message { return &csipb.NodeStageVolumeResponse{} }},
	"NodeUnstageVolume":          {"/csi.v1.Node/NodeUnstageVolume", func() proto.Message { return &csipb.NodeUnstageVolumeRequest{} }, func() proto.Message { return &csipb.NodeUnstageVolumeResponse{} }},
	"NodePublishVolume":          {"/csi.v1.Node/NodePublishVolume", func() proto.Message { return &csipb.NodePublishVolumeRequest{} }, func() proto.Message { return &csipb.NodePublishVolumeResponse{} }},
	"NodeUnpublishVolume":        {"/csi.v1.Node/NodeUnpublishVolume", func() proto.Message { return &csipb.NodeUnpublishVolumeRequest{} }, func() proto.Message { return &csipb.NodeUnpublishVolumeResponse{} }},
	"NodeGetVolumeStats":         {"/csi.v1.Node/NodeGetVolumeStats", func() proto.Message { return &csipb.NodeGetVolumeStatsRequest{} }, func() proto.Message { return &csipb.NodeGetVolumeStatsResponse{} }},
	"NodeGetVolumeHealth":        {"/csi.v1.Node/NodeGetVolumeHealth", func() proto.Message { return &csipb.NodeGetVolumeHealthRequest{} }, func() proto.Message { return &csipb.NodeGetVolumeHealthResponse{} }},
}

// Call runs `mounter csi call` with args (after "call") and returns the
// exit code: 0, 1 for a usage error, 32 when the driver answered an error.
func Call(args []string, stdout, stderr io.Writer) int {
	endpoint := ""
	var rest []string
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "--endpoint" && i+1 < len(args):
			endpoint = args[i+1]
			i++
		case strings.HasPrefix(a, "--endpoint="):
			endpoint = strings.TrimPrefix(a, "--endpoint=")
		case a == "-h" || a == "--help":
			fmt.Fprint(stdout, CallUsage)
			return 0
		default:
			rest = append(rest, a)
		}
	}
	sock, err := socketPath(endpoint)
	if err != nil || len(rest) < 1 || len(rest) > 2 {
		names := slices.Sorted(maps.Keys(callMethods))
		fmt.Fprintf(stderr, "mounter csi call: %v\n%smethods: %s\n", err, CallUsage, strings.Join(names, ", "))
		return exitUsage
	}
	m, ok := callMethods[rest[0]]
	if !ok {
		fmt.Fprintf(stderr, "mounter csi call: unknown method %q (mounter csi call --help)\n", rest[0])
		return exitUsage
	}
	req := m.req()
	if len(rest) == 2 {
		if err := protojson.Unmarshal([]byte(rest[1]), req); err != nil {
			fmt.Fprintf(stderr, "mounter csi call: %s request: %v\n", rest[0], err)
			return exitUsage
		}
	}
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Fprintf(stderr, "mounter csi call: %v\n", err)
		return exitSystem
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	resp := m.resp()
	if err := conn.Invoke(ctx, m.full, req, resp); err != nil {
		fmt.Fprintf(stderr, "mounter csi call: %s: %v\n", rest[0], err)
		return 32
	}
	out, err := protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: false}.Marshal(resp)
	if err != nil {
		fmt.Fprintf(stderr, "mounter csi call: %v\n", err)
		return exitSystem
	}
	fmt.Fprintf(stdout, "%s\n", out)
	return 0
}
