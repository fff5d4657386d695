#!/usr/bin/env bash
# `just bench-passkeys`: passkey sign-ins per second beside password logins,
# at the same concurrency, against a release api on a fresh database
# (examples/passkey_logins.rs drives both). Writes bench/PASSKEYS.md.
#
# Environment: WORKERS (default 16), DURATION (seconds per kind, default 20).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
workers=${WORKERS:-16}
duration=${DURATION:-20}
admin=${TEST_DATABASE_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
database=portcullis_bench_passkeys
work=$(mktemp -d)
api=
cleanup() {
    [ -n "$api" ] && { kill "$api" 2>/dev/null || true; wait "$api" 2>/dev/null || true; }
    psql "$admin" -q -c "DROP DATABASE IF EXISTS $database WITH (FORCE)" || true
    rm -rf "$work"
}
trap cleanup EXIT

cargo build --release --locked --quiet --bin portcullis --example passkey_logins
psql "$admin" -q -c "DROP DATABASE IF EXISTS $database WITH (FORCE)" -c "CREATE DATABASE $database"
"$root/target/release/portcullis" keys generate --out "$work/signing.pem" > /dev/null
settings=(
    PATH="$PATH" HOME="$HOME"
    DATABASE_URL="${admin%/*}/$database"
    REDIS_URL="${TEST_REDIS_URL:-redis://127.0.0.1:6379}"
    AMQP_URL="${TEST_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}"
    JWT_SECRET="bench-secret-bench-secret-bench-secret-0123"
    JWT_SIGNING_KEYS="$work/signing.pem"
    DATA_ENCRYPTION_KEY="$(head -c 32 /dev/urandom | base64)"
    QUEUE_PREFIX=bench-passkeys. REDIS_KEY_PREFIX="bench-passkeys-$$:"
    API_ADDR=127.0.0.1:8100 ADMIN_ADDR= PUBLIC_URL=http://localhost:8100
    COOKIE_SECURE=false MAIL_TRANSPORT="file:$work/mail"
    LOGIN_MAX_FAILURES_PER_ACCOUNT=1000000 LOGIN_MAX_FAILURES_PER_ADDRESS=1000000
    REGISTER_MAX_PER_ADDRESS=100000000 EMAIL_REQUESTS_MAX_PER_ADDRESS=100000000
)
env -i "${settings[@]}" "$root/target/release/portcullis" api > "$work/api.log" 2>&1 &
api=$!
for _ in $(seq 300); do curl -sf http://127.0.0.1:8100/healthz > /dev/null && break; sleep 0.1; done

table=$(DATABASE_URL="${admin%/*}/$database" \
    "$root/target/release/examples/passkey_logins" http://localhost:8100 "$workers" "$duration")
{
    echo "# Passkey sign-ins beside password logins"
    echo
    echo "\`just bench-passkeys\` on $(nproc) cores, $(date -u +%Y-%m-%d): one release api,"
    echo "the local PostgreSQL and Redis, $workers clients each signing in back to back"
    echo "for $duration s with the password, then with a passkey"
    echo "(examples/passkey_logins.rs; the clients' signatures run on the same machine)."
    echo
    echo "$table"
} > bench/PASSKEYS.md
cat bench/PASSKEYS.md
