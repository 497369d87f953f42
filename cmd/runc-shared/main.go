// Command runc-shared is an OCI runtime wrapper: it rewrites the spec of
// matching mounter containers so their allowlisted host paths propagate
// mounts back to the host, then executes the real runtime (runc).
package main

import (
	"os"

	"github.com/runc-shared/runc-shared/internal/wrapper"
)

func main() {
	os.Exit(wrapper.Main(os.Args[1:]))
}
