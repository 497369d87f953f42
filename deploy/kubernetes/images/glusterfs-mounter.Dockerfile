# The GlusterFS mounter image: mount(8), mount.glusterfs and the FUSE
# client. Build:
#   docker build -f deploy/kubernetes/images/glusterfs-mounter.Dockerfile -t registry.example.com/runc-shared/glusterfs-mounter:10.3 .
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends glusterfs-client tini \
 && rm -rf /var/lib/apt/lists/*
# An init as PID 1: `sleep` as PID 1 ignores SIGTERM, so every stop would wait
# out the engine's grace period before it kills the container.
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["sleep", "infinity"]
