// Command mounter routes mounts of the file system types that a [[mounter]]
// rule names into the live mounter container, and every other mount to
// mount(8). Installed as mount.TYPE it is also a mount(8) helper.
// `mounter configure` registers runc-shared with a container engine;
// `mounter csi` serves a CSI driver.
package main

import (
	"os"

	"github.com/runc-shared/runc-shared/internal/configure"
	"github.com/runc-shared/runc-shared/internal/csi"
	"github.com/runc-shared/runc-shared/internal/mounter"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "configure" {
		os.Exit(configure.Run(os.Args[2:], os.Stdout, os.Stderr))
	}
	if len(os.Args) > 1 && os.Args[1] == "csi" {
		os.Exit(csi.Main(os.Args[2:], os.Stdout, os.Stderr))
	}
	os.Exit(mounter.Main(os.Args))
}
