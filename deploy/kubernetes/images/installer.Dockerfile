# The node installer image: a POSIX shell (install.sh comes from the
# runc-shared-installer ConfigMap) and the binaries in /opt/runc-shared/bin.
# Build from the repository root after `make`:
#   docker build -f deploy/kubernetes/images/installer.Dockerfile -t registry.example.com/runc-shared/installer:0.1.0 .
FROM busybox:1.36
COPY bin/runc-shared bin/mount-hook bin/mounter bin/libhostmount.so /opt/runc-shared/bin/
