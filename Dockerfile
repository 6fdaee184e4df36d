# Builds both services in one stage, then copies each binary into a slim runtime image.
#   docker build --target command-service -t orders/command-service .
#   docker build --target query-service   -t orders/query-service .
FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p command-service -p query-service

FROM debian:bookworm-slim AS runtime
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* && useradd --system --uid 10001 app
USER app

FROM runtime AS command-service
COPY --from=build /src/target/release/command-service /usr/local/bin/command-service
ENV HTTP_ADDR=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["command-service"]

FROM runtime AS query-service
COPY --from=build /src/target/release/query-service /usr/local/bin/query-service
ENV HTTP_ADDR=0.0.0.0:8081
EXPOSE 8081
ENTRYPOINT ["query-service"]
