# The GlusterFS mounter image: mount(8), mount.glusterfs and the FUSE
# client. Build:
#   docker build -f deploy/kubernetes/images/glusterfs-mounter.Dockerfile -t registry.example.com/runc-shared/glusterfs-mounter:10.3 .
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends glusterfs-client \
 && rm -rf /var/lib/apt/lists/*
CMD ["sleep", "infinity"]
