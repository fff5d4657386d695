#!/usr/bin/env bash
# Runs a command against a real `portcullis api` and `worker` (the debug
# binary; build it first) on a fresh database, with the worker writing
# emails into a temporary directory. Used by the TypeScript client's and
# the browser tests (`just ts-client-test`, `just browser-test`).
#
# Usage: tests/support/with-stack.sh NAME COMMAND [ARG...]
#   NAME keeps this suite's queues and Redis keys apart from others'.
# The command gets PORTCULLIS_URL, PORTCULLIS_MAIL_DIR, PORTCULLIS_SIGNING_KEY
# (the api's key), PORTCULLIS_RETIRED_KEY (a key the api does not know), and
# PORTCULLIS_WEBHOOK_PORT and PORTCULLIS_WEBHOOK_SECRET (where the security
# events are delivered, and the secret that signs them). Passkeys are on for
# pages served at http://localhost:PORT (WEBAUTHN_RP_ID=localhost).
# Environment: TEST_DATABASE_ADMIN_URL, TEST_REDIS_URL, TEST_AMQP_URL.
set -euo pipefail

name=$1
shift
binary=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/target/debug/portcullis
[ -x "$binary" ] || { echo "$binary is missing: run 'cargo build' first" >&2; exit 1; }

admin=${TEST_DATABASE_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
database=portcullis_${name//-/_}_$(date +%s)_$$
work=$(mktemp -d)
mkdir "$work/mail"
api=
worker=
cleanup() {
    for pid in $worker $api; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    psql "$admin" -q -c "DROP DATABASE IF EXISTS $database WITH (FORCE)" || true
    rm -rf "$work"
}
trap cleanup EXIT
psql "$admin" -q -c "CREATE DATABASE $database"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
admin_port=$(free_port)
"$binary" keys generate --out "$work/signing.pem" > /dev/null
"$binary" keys generate --out "$work/retired.pem" > /dev/null

# The api and the worker share one configuration; the links in emails point
# at this api, which serves their pages.
settings=(
    PATH="$PATH" HOME="$HOME"
    DATABASE_URL="${admin%/*}/$database"
    REDIS_URL="${TEST_REDIS_URL:-redis://127.0.0.1:6379}"
    AMQP_URL="${TEST_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}"
    JWT_SECRET="$name-test-secret-0123456789abcdef0123"
    JWT_SIGNING_KEYS="$work/signing.pem"
    DATA_ENCRYPTION_KEY="$(head -c 32 /dev/urandom | base64)"
    QUEUE_PREFIX="$name." REDIS_KEY_PREFIX="$name-$$:"
    REGISTER_MAX_PER_ADDRESS=100000 EMAIL_REQUESTS_MAX_PER_ADDRESS=100000
    API_ADDR="127.0.0.1:$port" PUBLIC_URL="http://127.0.0.1:$port" COOKIE_SECURE=false
    ADMIN_ADDR="127.0.0.1:$admin_port"
    MAIL_TRANSPORT="file:$work/mail"
    # Passkeys need a domain: pages at http://localhost:$port run the ceremonies.
    WEBAUTHN_RP_ID=localhost WEBAUTHN_ORIGINS="http://localhost:$port"
)
# Security events go to a webhook receiver the command starts on this port.
webhook_port=$(free_port)
webhook_secret="whsec_$(head -c 32 /dev/urandom | base64)"
settings+=(
    WEBHOOK_URL="http://127.0.0.1:$webhook_port/hook" WEBHOOK_SECRET="$webhook_secret"
    WEBHOOK_RETRY_BASE_SECONDS=1
)

# Waits for `/healthz`; shows the log when the process dies or never answers.
healthy() { # pid port log
    for _ in $(seq 300); do
        curl -sf "http://127.0.0.1:$2/healthz" > /dev/null && return 0
        kill -0 "$1" 2>/dev/null || break
        sleep 0.1
    done
    cat "$3" >&2
    return 1
}

env -i "${settings[@]}" "$binary" api > "$work/api.log" 2>&1 &
api=$!
healthy "$api" "$port" "$work/api.log"
# Started once the api has migrated the database.
worker_port=$(free_port)
env -i "${settings[@]}" WORKER_METRICS_ADDR="127.0.0.1:$worker_port" \
    "$binary" worker > "$work/worker.log" 2>&1 &
worker=$!
healthy "$worker" "$worker_port" "$work/worker.log"
# An admin key for the admin client's tests, made as an operator would.
admin_key=$(env -i "${settings[@]}" "$binary" admin-keys create --name "$name-tests" 2> /dev/null)

PORTCULLIS_URL="http://127.0.0.1:$port" PORTCULLIS_MAIL_DIR="$work/mail" \
    PORTCULLIS_SIGNING_KEY="$work/signing.pem" PORTCULLIS_RETIRED_KEY="$work/retired.pem" \
    PORTCULLIS_WEBHOOK_PORT="$webhook_port" PORTCULLIS_WEBHOOK_SECRET="$webhook_secret" \
    PORTCULLIS_ADMIN_URL="http://127.0.0.1:$admin_port" PORTCULLIS_ADMIN_KEY="$admin_key" \
    "$@"
