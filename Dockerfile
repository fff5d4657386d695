# One image for `portcullis api`, `worker` and `migrate`.

# --- build ---------------------------------------------------------------
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# webauthn-rs (passkeys) links OpenSSL.
RUN apt-get update \
    && apt-get install -y --no-install-recommends pkg-config libssl-dev \
    && rm -rf /var/lib/apt/lists/*

# Dependencies first, in their own layer: a change to src/ does not rebuild them.
COPY Cargo.toml Cargo.lock build.rs ./
RUN mkdir -p src sql \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src sql target/release/.fingerprint/portcullis-*

# The sources; migrations are embedded from sql/ at build time.
COPY sql sql
COPY openapi openapi
COPY src src
RUN cargo build --release --locked

# --- runtime -------------------------------------------------------------
FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl libssl3 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --no-create-home portcullis \
    && mkdir -p /var/lib/portcullis/mail \
    && chown portcullis:portcullis /var/lib/portcullis/mail
COPY --from=build /src/target/release/portcullis /usr/local/bin/portcullis
USER 10001:10001
# ADMIN_ADDR: the admin API's own listener. Publish 8001 only where operators
# alone reach it (docker-compose.yml: the host's loopback), never where 8000 goes.
ENV API_ADDR=0.0.0.0:8000 \
    ADMIN_ADDR=0.0.0.0:8001 \
    WORKER_METRICS_ADDR=0.0.0.0:9100 \
    MAIL_TRANSPORT=file:/var/lib/portcullis/mail \
    LOG_FORMAT=json
EXPOSE 8000 8001 9100
# The api answers on 8000; the worker's compose service overrides this check for 9100.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8000/healthz || exit 1
ENTRYPOINT ["portcullis"]
CMD ["api"]
