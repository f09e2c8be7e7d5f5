# DistKV image: our own static binaries on an empty base (FROM scratch), so it builds without
# pulling anything. Build it with `make docker-build`, which compiles the static binaries and
# assembles the build context in build/docker:
#
#   rootfs/usr/local/bin/distkv-server, distkv-client   static (glibc, +crt-static) binaries
#   rootfs/etc/passwd, etc/group                         the non-root user distkv (10001)
#   rootfs/etc/ssl/certs/ca-certificates.crt             CA roots (for clients of other services)
#   data/                                                the data directory, owned by distkv
#
# Host names (compose services, Kubernetes DNS) resolve through the /etc/hosts and
# /etc/resolv.conf the container runtime provides.
FROM scratch

COPY rootfs/ /
COPY --chown=10001:10001 data/ /data/

USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
# gRPC and HTTP (/metrics, /health, /ready, /status, the status page) on one port.
EXPOSE 8080

# Settings as DISTKV_* variables; flags given to the container override them.
ENV DISTKV_ADDRESS=0.0.0.0:8080 \
    DISTKV_DATA_DIR=/data \
    DISTKV_LOG_FORMAT=json

HEALTHCHECK --interval=5s --timeout=3s --start-period=20s --retries=3 \
    CMD ["/usr/local/bin/distkv-client", "-server=127.0.0.1:8080", "-timeout=2s", "health"]

ENTRYPOINT ["/usr/local/bin/distkv-server"]
