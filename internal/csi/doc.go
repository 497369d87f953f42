// Package csi is `mounter csi`: a CSI driver (Identity, Node, Controller)
// served on a unix socket by the mounter, where the mount helpers are.
//
// Kubernetes no longer runs mount helpers for network file systems (the
// in-tree GlusterFS plugin is gone, --experimental-mounter-path is
// deprecated): it hands mounts to CSI drivers. Running this server as the
// main process of a mounter container that runc-shared started makes every
// helper in that image a volume driver: NodeStageVolume runs the helper at
// kubelet's staging path, below /var/lib/kubelet, which runc-shared made an
// rshared bind, so the mount lands on the node; NodePublishVolume binds it
// into the pod's volume directory.
//
// Policy is the rule's, as for the wrapper and the hook: only the rule's
// file system types are mounted, and staging and target paths must resolve
// (symlinks, "..", whole components) below the rule's propagate paths.
//
// CreateVolume makes a directory on a base volume the StorageClass names;
// the volume id carries what DeleteVolume and NodeStageVolume need, and a
// small record on the base volume makes CreateVolume idempotent.
//
// Kubelet finds the driver through its plugin registration socket
// (--registration-dir), or through the node-driver-registrar sidecar.
package csi
