# One image for every component: `meshwork gateway|users|products|orders`,
# and `meshwork healthcheck` for the HEALTHCHECK (the image has no shell
# and no curl). Built with etcd discovery, which needs protoc.
#
# Dependencies are compiled in a layer of their own (cargo-chef), from the
# lock file and manifests only: a change to our sources rebuilds our crates,
# not the ~400 dependencies.

FROM rust:1.95-bookworm AS chef
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /src

FROM chef AS plan
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS build
# Debian's protobuf-compiler of the pinned base image: pinning its version
# too (hadolint's DL3008) would break the build at each Debian security update.
# hadolint ignore=DL3008
RUN apt-get update && apt-get install -y --no-install-recommends protobuf-compiler \
    && rm -rf /var/lib/apt/lists/*
ENV CARGO_PROFILE_RELEASE_STRIP=symbols
COPY --from=plan /src/recipe.json recipe.json
# The patched h2 ([patch.crates-io] in Cargo.toml) is a dependency to cook,
# and the recipe names it without holding it.
COPY third_party/h2 third_party/h2
RUN cargo chef cook --release --locked --features etcd -p meshwork --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked --features etcd -p meshwork \
    && cp target/release/meshwork /usr/local/bin/meshwork \
    && mkdir -m 0700 /keys

# glibc and libgcc, nothing else: no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="meshwork" \
      org.opencontainers.image.description="A gRPC-first microservices platform: API gateway, users, products and orders services" \
      org.opencontainers.image.source="https://github.com/meshwork/meshwork" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /usr/local/bin/meshwork /usr/local/bin/meshwork
# Where docker-compose keeps the token signing key: a fresh volume mounted
# here takes this directory's owner, so `keygen --out` can write into it.
COPY --from=build --chown=10001:10001 /keys /keys
# Numeric, so that Kubernetes can check runAsNonRoot (k8s/base/hardening.yaml).
USER 10001:10001
# No transparent huge pages for mimalloc, even where the host's THP is
# `always`: they more than doubled the gateway's RSS (crates/meshwork/src/main.rs).
ENV MESHWORK_LOG_FORMAT=json MIMALLOC_ALLOW_THP=0
# gateway, users, products, orders
EXPOSE 8000 8001 8002 8003
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/meshwork", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/meshwork"]
CMD ["--help"]
