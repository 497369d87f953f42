// Command mounter routes mounts of the file system types that a [[mounter]]
// rule names into the live mounter container, and every other mount to
// mount(8). Installed as mount.TYPE it is also a mount(8) helper.
package main

import (
	"os"

	"github.com/runc-shared/runc-shared/internal/mounter"
)

func main() {
	os.Exit(mounter.Main(os.Args))
}
