package csi

import (
	"context"
	"path/filepath"

	"github.com/sirupsen/logrus"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

// supportedVersions are the CSI versions the driver speaks, as kubelet's
// plugin registration asks.
var supportedVersions = []string{"1.0.0"}

// RegistrationSocket is where kubelet's plugin watcher finds the driver:
// DIR/<driver>-reg.sock, the name node-driver-registrar uses too.
func RegistrationSocket(dir, driver string) string {
	return filepath.Join(dir, driver+"-reg.sock")
}

// Registration is kubelet's plugin registration service
// (k8s.io/kubelet/pkg/apis/pluginregistration/v1): kubelet watches
// /var/lib/kubelet/plugins_registry, calls GetInfo on each new socket and
// reports the outcome with NotifyRegistrationStatus. Serving it makes the
// node-driver-registrar sidecar optional.
type Registration struct {
	Driver string
	// Endpoint is the CSI socket's path as kubelet sees it.
	Endpoint string
	Log      *logrus.Logger

	registerapi.UnimplementedRegistrationServer
}

// GetInfo tells kubelet what the plugin is and where its CSI socket is.
func (r *Registration) GetInfo(context.Context, *registerapi.InfoRequest) (*registerapi.PluginInfo, error) {
	return &registerapi.PluginInfo{
		Type:              registerapi.CSIPlugin,
		Name:              r.Driver,
		Endpoint:          r.Endpoint,
		SupportedVersions: supportedVersions,
	}, nil
}

// NotifyRegistrationStatus logs kubelet's verdict: kubelet calls no CSI
// method of a driver it did not register.
func (r *Registration) NotifyRegistrationStatus(_ context.Context, st *registerapi.RegistrationStatus) (*registerapi.RegistrationStatusResponse, error) {
	if st.GetPluginRegistered() {
		r.Log.WithField("endpoint", r.Endpoint).Infof("kubelet registered CSI driver %s", r.Driver)
	} else {
		r.Log.WithField("endpoint", r.Endpoint).Errorf("kubelet refused to register CSI driver %s: %s (check --kubelet-endpoint and the driver name)", r.Driver, st.GetError())
	}
	return &registerapi.RegistrationStatusResponse{}, nil
}
