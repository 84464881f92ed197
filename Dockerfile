# One image for every component: `meshwork gateway|users|products|orders`.
# Built with etcd discovery, which needs protoc at build time.
FROM rust:1.95-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends protobuf-compiler && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --features etcd -p meshwork \
    && cp target/release/meshwork /usr/local/bin/meshwork

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 meshwork
COPY --from=build /usr/local/bin/meshwork /usr/local/bin/meshwork
USER meshwork
ENV MESHWORK_LOG_FORMAT=json
ENTRYPOINT ["meshwork"]
CMD ["--help"]
