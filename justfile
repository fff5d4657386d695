# Portcullis tasks. `just` lists them.

set shell := ["bash", "-euo", "pipefail", "-c"]
set dotenv-load := false

# List the recipes.
default:
    @just --list

# Where the tests find PostgreSQL, Redis and RabbitMQ: the local services by
# default, or the Compose stack's when `just services` had to start them.
compose_running := `docker compose ps --status running --services 2>/dev/null || true`
export TEST_DATABASE_ADMIN_URL := env_var_or_default("TEST_DATABASE_ADMIN_URL", if compose_running =~ '(?m)^postgres$' { "postgres://portcullis:portcullis@127.0.0.1:5432/postgres" } else { "postgres://postgres@127.0.0.1:5432/postgres" })
export TEST_AMQP_URL := env_var_or_default("TEST_AMQP_URL", if compose_running =~ '(?m)^rabbitmq$' { "amqp://portcullis:portcullis@127.0.0.1:5672/%2f" } else { "amqp://guest:guest@127.0.0.1:5672/%2f" })
export TEST_REDIS_URL := env_var_or_default("TEST_REDIS_URL", "redis://127.0.0.1:6379")

# Everything CI checks: formatting, lints, the whole test suite, OpenAPI drift,
# the TypeScript client, the Prometheus configuration and rules, and the
# Kubernetes manifests.
test:
    @just services
    @just checks

# The checks of `just test`, once the services answer.
checks: fmt-check clippy src-shape test-suite test-cluster openapi-check schemathesis ts-client-test browser-test bench-smoke promtool-check k8s-validate

# Makes sure PostgreSQL, Redis and RabbitMQ answer on localhost; with none of
# them running but Docker at hand, starts them from docker-compose.yml.
services:
    #!/usr/bin/env bash
    set -euo pipefail
    answers() { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }
    if answers 5432 && answers 6379 && answers 5672; then
        exit 0
    fi
    if ! docker compose version >/dev/null 2>&1; then
        echo "PostgreSQL (5432), Redis (6379) or RabbitMQ (5672) does not answer on localhost," >&2
        echo "and Docker Compose is not available to start them (see README, Testing)." >&2
        exit 1
    fi
    [ -f .env ] || cp .env.example .env
    echo "starting PostgreSQL, Redis and RabbitMQ from docker-compose.yml"
    docker compose up --detach --wait postgres redis rabbitmq

# Formatting check.
fmt-check:
    cargo fmt --all -- --check

# The shape of src/: no import circle between files; security, repositories
# and domain import nothing above them; no file but config.rs over 500 lines.
src-shape:
    python3 tests/support/src-shape.py

# Lints, warnings as errors.
clippy:
    cargo clippy --all-targets --locked -- -D warnings

# The unit and integration tests against the local PostgreSQL, Redis and RabbitMQ.
# nextest runs each test in its own process, so process-wide metrics stay per test.
test-suite:
    cargo nextest run --locked --no-fail-fast --config-file .ci/nextest.toml

# The api and a worker on three RabbitMQ nodes that tests/support/rabbitmq-cluster.sh
# starts from the installed rabbitmq-server, beside the machine's own node.
# The RabbitMQ cluster test: a queue leader killed mid-stream; a step of `just
# test` after the other tests, so the three nodes do not compete with them.
test-cluster:
    @just services
    cargo nextest run --locked --test rabbitmq_cluster --run-ignored only

# Fails when openapi/openapi.json differs from `portcullis openapi`, or
# openapi/admin.json from `portcullis openapi --admin`.
openapi-check:
    #!/usr/bin/env bash
    set -euo pipefail
    cargo build --quiet --locked
    if ! ./target/debug/portcullis openapi | diff -u openapi/openapi.json - ; then
        echo "openapi/openapi.json is stale: run 'just openapi'" >&2
        exit 1
    fi
    if ! ./target/debug/portcullis openapi --admin | diff -u openapi/admin.json - ; then
        echo "openapi/admin.json is stale: run 'just openapi'" >&2
        exit 1
    fi

# Property-based tests of the API against the committed OpenAPI document
# (schemathesis from PyPI, in target/schemathesis-venv): no 5xx, no
# undocumented status or content type, every response fits its schema.
schemathesis:
    cargo build --quiet --locked
    tests/schemathesis/run.sh

# promtool check config/rules on monitoring/ (skipped, saying so, without promtool).
promtool-check:
    #!/usr/bin/env bash
    set -euo pipefail
    promtool=$(command -v promtool || echo target/tools/promtool)
    if [ ! -x "$promtool" ]; then
        echo "promtool not found: skipping the Prometheus config and rules check"
        exit 0
    fi
    dir=$(mktemp -d)
    trap 'rm -rf "$dir"' EXIT
    cp monitoring/alerts.yml "$dir/alerts.yml"
    sed "s|/etc/prometheus/alerts.yml|$dir/alerts.yml|" monitoring/prometheus.yml > "$dir/prometheus.yml"
    "$promtool" check config "$dir/prometheus.yml"
    "$promtool" check rules monitoring/alerts.yml

# kubernetes-validate --strict (from PyPI, in target/kubernetes-validate-venv),
# the `kubectl kustomize` render when kubectl is at hand, and static checks:
# pinned images, non-root, read-only root filesystem, references that resolve.
# Validates the Kubernetes manifests of deploy/kubernetes offline.
k8s-validate:
    deploy/kubernetes/validate.sh

# Starts Prometheus against a running `just run` (api :8000, worker :9100),
# makes some traffic, and checks that every dashboard query returns data.
monitoring-check:
    #!/usr/bin/env bash
    set -euo pipefail
    prometheus=$(command -v prometheus || echo target/tools/prometheus)
    [ -x "$prometheus" ] || { echo "prometheus not found (bash .ci/fetch-prometheus puts it in target/tools)"; exit 1; }
    dir=$(mktemp -d)
    cp monitoring/alerts.yml "$dir/alerts.yml"
    sed -e "s|/etc/prometheus/alerts.yml|$dir/alerts.yml|" -e "s|api:8000|127.0.0.1:8000|" \
        -e "s|worker:9100|127.0.0.1:9100|" -e "s|scrape_interval: 15s|scrape_interval: 1s|" \
        monitoring/prometheus.yml > "$dir/prometheus.yml"
    "$prometheus" --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/data" \
        --web.listen-address=127.0.0.1:9090 > "$dir/prometheus.log" 2>&1 &
    pid=$!
    trap 'kill $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
    api=http://127.0.0.1:8000/api/v1
    email="monitoring-$RANDOM@example.com"
    for _ in $(seq 60); do
        curl -s -X POST $api/auth/register -H 'content-type: application/json' \
            -d "{\"email\":\"$email\",\"password\":\"correct horse battery staple\"}" > /dev/null
        token=$(curl -s -X POST $api/auth/login -H 'content-type: application/json' \
            -d "{\"email\":\"$email\",\"password\":\"correct horse battery staple\"}" \
            | python3 -c 'import json,sys; print(json.load(sys.stdin).get("access_token",""))')
        curl -s -X POST $api/auth/password-reset/request -H 'content-type: application/json' \
            -d "{\"email\":\"$email\"}" > /dev/null
        curl -s -X POST $api/auth/refresh > /dev/null
        curl -s $api/users/me -H "authorization: Bearer $token" > /dev/null
        sleep 0.5
    done
    python3 monitoring/check.py http://127.0.0.1:9090

# Regenerates the TypeScript client's types from openapi/openapi.json and
# openapi/admin.json.
ts-client:
    cd openapi/client && npm ci --no-audit --no-fund && npm run generate

# The TypeScript client: its types match openapi.json, it compiles, and its
# Node tests run the user journey and the account's lifecycle (the emailed
# links come from a worker writing to a temporary mail directory) against a
# real api on a fresh database.
ts-client-test:
    #!/usr/bin/env bash
    set -euo pipefail
    cargo build --quiet --locked
    cd openapi/client
    npm ci --no-audit --no-fund --loglevel=error
    for document in openapi:schema admin:admin-schema; do
        generated=$(mktemp --suffix=.d.ts)
        npx openapi-typescript "../${document%%:*}.json" --output "$generated" --silent
        if ! diff -q "$generated" "src/${document#*:}.d.ts" > /dev/null; then
            rm -f "$generated"
            echo "openapi/client/src/${document#*:}.d.ts is stale: run 'just ts-client'" >&2
            exit 1
        fi
        rm -f "$generated"
    done
    ../../tests/support/with-stack.sh ts-client npm test

# The reset and verification pages in Debian's headless Chromium (playwright-core
# drives it): a link from a real email, a weak then a good password, the spent
# link, the verification page. Screenshots are kept in target/browser/.
browser-test:
    #!/usr/bin/env bash
    set -euo pipefail
    cargo build --quiet --locked
    chromium=${CHROMIUM:-$(command -v chromium || true)}
    [ -n "$chromium" ] || { echo "chromium is not installed (apt-get install chromium; .ci/run does it)" >&2; exit 1; }
    mkdir -p target/browser
    cd tests/browser
    npm ci --no-audit --no-fund --loglevel=error
    CHROMIUM="$chromium" ARTIFACTS_DIR=../../target/browser ../support/with-stack.sh browser npm test

# Portcullis, the FastAPI peer and the hyper floor of ../shared/baseline under
# its wrk workload, the Argon2 ceiling and pgbench; prints the table with the
# targets' ratios and writes it to bench/RESULTS.md (DURATION, REPEAT, TARGETS).
bench:
    bash bench/run.sh

# A few seconds of the bench against Portcullis alone, so the harness cannot rot.
bench-smoke:
    SMOKE=1 bash bench/run.sh

# Passkey sign-ins per second beside password logins (bench/PASSKEYS.md).
bench-passkeys:
    bash bench/passkeys.sh

# The same requests at 10k and at 1M users (1M sessions, 10M events), the
# plans of the hot queries, and a purge of 1M rows under load (bench/GROWTH.md).
bench-growth:
    bash bench/growth.sh

# Ten minutes of the mixed workload: RSS and descriptors flat, no error
# (bench/SOAK.md; DURATION in seconds).
bench-soak:
    bash bench/soak.sh

# What security events and webhooks cost login and refresh, and the worker's
# webhook delivery throughput (bench/EVENTS.md).
bench-events:
    bash bench/events.sh

# Rewrites openapi/openapi.json and openapi/admin.json from the code (then
# run `just ts-client`).
openapi:
    cargo run --quiet --locked -- openapi > openapi/openapi.json
    cargo run --quiet --locked -- openapi --admin > openapi/admin.json

# A development signing key in keys/ (git-ignored) when there is none.
dev-key:
    #!/usr/bin/env bash
    set -euo pipefail
    [ -f keys/signing.pem ] && exit 0
    mkdir -p keys
    if command -v openssl >/dev/null 2>&1; then
        (umask 077 && openssl genpkey -algorithm ed25519 -out keys/signing.pem)
    else
        cargo run --quiet --locked -- keys generate --out keys/signing.pem > /dev/null
    fi
    # Readable by the containers' user under `just up`; a development key only.
    chmod 644 keys/signing.pem
    echo "created keys/signing.pem (a development signing key)"

# Migrate, then run the api and the worker natively against the services in .env; Ctrl-C stops both.
run: dev-key
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
up: dev-key
    [ -f .env ] || cp .env.example .env
    docker compose up --build --detach
    @echo "API: http://localhost:8000/docs"

# Stops the Compose stack (data volumes are kept).
down:
    docker compose down

# A release build.
build:
    cargo build --release --locked
