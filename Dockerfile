# syntax=docker/dockerfile:1
# Builds both services in one stage, then copies each binary into a slim runtime image.
#   docker build --target command-service -t orders/command-service .
#   docker build --target query-service   -t orders/query-service .
# The cargo registry and the target directory are BuildKit cache mounts: a change to the code recompiles the
# workspace's crates, not every dependency.
FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p command-service -p query-service \
    && cp target/release/command-service target/release/query-service /usr/local/bin/

FROM debian:bookworm-slim AS runtime
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* && useradd --system --uid 10001 app
USER app

FROM runtime AS command-service
COPY --from=build /usr/local/bin/command-service /usr/local/bin/command-service
ENV HTTP_ADDR=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["command-service"]

FROM runtime AS query-service
COPY --from=build /usr/local/bin/query-service /usr/local/bin/query-service
ENV HTTP_ADDR=0.0.0.0:8081
EXPOSE 8081
ENTRYPOINT ["query-service"]
