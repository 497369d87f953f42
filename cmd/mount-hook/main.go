// Command mount-hook is the OCI hook of runc-shared: at createRuntime it
// verifies that a mounter's mounts reach the host and registers the mounter;
// at poststop it unregisters it and detaches the dead FUSE mounts it left.
package main

import (
	"os"

	"github.com/runc-shared/runc-shared/internal/hook"
)

func main() {
	os.Exit(hook.Main(os.Args[1:]))
}
