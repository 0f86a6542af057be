# imrelay in a container: a release build on Debian bookworm, run as a
# non-root user on bookworm-slim.
#
#   docker build --build-arg IMRELAY_BUILD_COMMIT=$(git rev-parse --short=9 HEAD) -t imrelay .
#   docker run -p 8080:8080 \
#     -v $PWD/imrelay.toml:/etc/imrelay/imrelay.toml:ro -v imrelay-data:/var/lib/imrelay imrelay
#
# The config must listen on 0.0.0.0:8080 and keep a SQLite store under
# /var/lib/imrelay (the volume), e.g. `url = "sqlite:///var/lib/imrelay/imrelay.db"`.
# Checked statically by crates/imrelay/tests/it/packaging.rs (stages, user,
# health check, paths); CI does not build the image.

FROM rust:1-slim-bookworm AS build
WORKDIR /src
# The build context has no .git (.dockerignore): pass the commit for
# `imrelay --version`, else it prints `unknown`.
ARG IMRELAY_BUILD_COMMIT=unknown
ENV IMRELAY_BUILD_COMMIT=${IMRELAY_BUILD_COMMIT}
COPY . .
RUN cargo build --release --locked -p imrelay \
    && install -D -m 0755 target/release/imrelay /out/imrelay

FROM debian:bookworm-slim
# TLS verification reads the system CA bundle.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 65532 imrelay \
    && useradd --system --uid 65532 --gid imrelay --home-dir /var/lib/imrelay \
         --no-create-home --shell /usr/sbin/nologin imrelay \
    && install -d -o imrelay -g imrelay -m 0750 /var/lib/imrelay \
    && install -d -m 0755 /etc/imrelay
COPY --from=build /out/imrelay /usr/local/bin/imrelay
USER 65532:65532
WORKDIR /var/lib/imrelay
# IMRELAY_CONFIG is where `serve` reads its config; IMRELAY_SERVER is where
# `imrelay health` (and `status`) find the gateway.
ENV IMRELAY_CONFIG=/etc/imrelay/imrelay.toml \
    IMRELAY_SERVER=http://127.0.0.1:8080 \
    IMRELAY_LOG_FORMAT=json \
    RUST_LOG=info
EXPOSE 8080
VOLUME ["/var/lib/imrelay"]
# The binary probes its own /healthz: no curl in the image.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["imrelay", "health"]
ENTRYPOINT ["imrelay", "serve"]
