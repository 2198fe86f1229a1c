# ebconnect in a small runtime image. Build: `docker build -t ebconnect .`
# Not built on the machine this repository is developed on (it has no Docker engine); see README "Containers".

FROM rust:1.95.0-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The REST API's key definitions are read from the README's configuration reference.
COPY Cargo.toml Cargo.lock rustfmt.toml README.md Makefile ./
COPY src src
# Cargo reads the bench targets' files when it loads the manifest.
COPY benches benches
COPY deploy/symbol-order.txt deploy/
# The `dist` profile: the whole program optimised as one unit, the code a worker runs linked first (about 20 minutes;
# README "Performance").
RUN make dist

FROM debian:bookworm-slim
# librdkafka links OpenSSL; AWS and TLS to Kafka need the CA bundle.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin ebconnect \
 && mkdir -p /etc/ebconnect/connectors \
 && chown ebconnect /etc/ebconnect/connectors
COPY --from=build /src/target/dist/ebconnect /usr/local/bin/ebconnect
USER 10001
# 8083: the REST API (status, metrics, health). 8082: the example rest-produce-receiver.
EXPOSE 8083 8082
ENTRYPOINT ["ebconnect"]
CMD ["run", "--worker", "/etc/ebconnect/worker.yaml", "--connectors", "/etc/ebconnect/connectors"]
