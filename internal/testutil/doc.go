// Package testutil is the end-to-end test harness: root and binary checks, shared and
// private mount points, FUSE mounts, cached rootfs trees, OCI bundles, a runc driver,
// a loopback glusterd, a leak check, and the one way tests wait for something
// (Eventually, Poll, WaitSocket, Exited). Import it from _test.go files only. It
// imports no package of this module, so the tests of every package can use it.
//
// Everything it creates is removed in t.Cleanup, also when the test fails: mounts
// are detached (deepest first), containers are killed and deleted through the runtime
// that made them, processes are stopped by the PID recorded at start (never by name).
// Directories are removed only when nothing is mounted below them any more, so a
// failed unmount can never let os.RemoveAll walk into a host filesystem.
//
// Rules from this machine (see platform-facts.md) that the helpers enforce:
//   - the host / is private: SharedDir makes its own shared mount point;
//   - busybox links are made inside a chroot, or they point at the host path;
//   - root.path must not be a symlink: rootfs paths are resolved;
//   - a config.json never gets CAP_SYS_RESOURCE (missing from the bounding set)
//     nor a mount-namespace path (runc would pivot_root the host): NewBundle and
//     Runc.Create refuse such specs;
//   - glusterd refuses 127.0.0.1, so Glusterd binds 127.0.0.2.
//
// A typical e2e test:
//
//	func TestMounterReachesHost(t *testing.T) {
//		testutil.CheckLeaks(t) // first: its check runs after every other cleanup
//		g := testutil.Glusterd(t)
//		shared := testutil.SharedDir(t)
//		r := testutil.NewRunc(t, testutil.Bin(t, "runc-shared"))
//		b := testutil.NewBundle(t, testutil.HostUsrRootfs(t),
//			testutil.WithHostNetwork(), testutil.WithFuse(), testutil.WithAddCaps("SYS_ADMIN"),
//			testutil.WithBind(shared, shared, "rbind"), testutil.WithAnnotation("name", "glusterfs-mounter"))
//		r.Up(t, b, "mounter") // create + start; killed and deleted in cleanup
//		_, _, err := r.Exec(t, "mounter", "mount", "-t", "glusterfs", g.Server+":/"+g.Volume, shared+"/m")
//		...
//		if testutil.MountAt(t, shared+"/m") == nil { t.Error("not on the host") }
//	}
//
// Process rule for runc create: with process.terminal false the container's init
// inherits the stdio of the `runc create` call. Pipes would keep cmd.Wait blocked
// until the container exits, so every runtime call writes its output to files (an
// *os.File in exec.Cmd is passed as is, without a copying goroutine) and stdin is
// /dev/null.
package testutil
