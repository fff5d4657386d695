# Portcullis tasks. `just` lists them.

set shell := ["bash", "-euo", "pipefail", "-c"]
set dotenv-load := false

# List the recipes.
default:
    @just --list

# Everything CI checks: formatting, lints, the whole test suite, OpenAPI drift.
test: fmt-check clippy test-suite openapi-check

# Formatting check.
fmt-check:
    cargo fmt --all -- --check

# Lints, warnings as errors.
clippy:
    cargo clippy --all-targets --locked -- -D warnings

# The unit and integration tests against the local PostgreSQL, Redis and RabbitMQ.
# nextest runs each test in its own process, so process-wide metrics stay per test.
test-suite:
    cargo nextest run --locked --no-fail-fast

# Fails when openapi/openapi.json differs from `portcullis openapi`.
openapi-check:
    #!/usr/bin/env bash
    set -euo pipefail
    cargo build --quiet --locked
    if ! ./target/debug/portcullis openapi | diff -u openapi/openapi.json - ; then
        echo "openapi/openapi.json is stale: run 'just openapi'" >&2
        exit 1
    fi

# Rewrites openapi/openapi.json from the code.
openapi:
    cargo run --quiet --locked -- openapi > openapi/openapi.json

# Migrate, then run the api and the worker natively against the services in .env; Ctrl-C stops both.
run:
    #!/usr/bin/env bash
    set -euo pipefail
    [ -f .env ] || { cp .env.example .env; echo "created .env from .env.example"; }
    cargo build --locked
    ./target/debug/portcullis migrate
    export MIGRATE_ON_START=false
    ./target/debug/portcullis worker &
    worker=$!
    trap 'kill -TERM $worker 2>/dev/null || true; wait $worker 2>/dev/null || true' EXIT
    ./target/debug/portcullis api

# The full stack in Docker Compose (creates .env from .env.example when missing).
up:
    [ -f .env ] || cp .env.example .env
    docker compose up --build --detach
    @echo "API: http://localhost:8000/docs"

# Stops the Compose stack (data volumes are kept).
down:
    docker compose down

# A release build.
build:
    cargo build --release --locked
