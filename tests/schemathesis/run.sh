#!/usr/bin/env bash
# Property-based API tests: schemathesis drives the committed OpenAPI document
# (openapi/openapi.json) against a real `portcullis api` on a fresh database,
# and fails on any 5xx, undocumented status code or content type, or response
# that does not match its schema.
#
# Usage: tests/schemathesis/run.sh [extra `schemathesis run` options]
#   from anywhere; needs ./target/debug/portcullis (it does not build it).
# Environment: TEST_DATABASE_ADMIN_URL, TEST_REDIS_URL, TEST_AMQP_URL as for the
# other test recipes; SCHEMATHESIS_MAX_EXAMPLES (schemathesis --max-examples,
# default 50) and SCHEMATHESIS_SEED (default 20260101) tune the run.
#
# Every check runs except positive_data_acceptance: the schema cannot express
# the password-strength estimator, so "valid" generated passwords get 422.
# Credentials come from hooks.py (see there).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"

binary=$root/target/debug/portcullis
schema=$root/openapi/openapi.json
venv=$root/target/schemathesis-venv
requirements=$here/requirements.txt
max_examples=${SCHEMATHESIS_MAX_EXAMPLES:-50}
seed=${SCHEMATHESIS_SEED:-20260101}

[ -x "$binary" ] || { echo "$binary is missing: run 'cargo build' first" >&2; exit 1; }

# --- schemathesis in its own venv, installed only when the pin changed -------
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
stamp=$venv/.requirements.sha256
wanted=$(sha256sum "$requirements" | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$wanted" ] || [ ! -x "$venv/bin/schemathesis" ]; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
    echo "$wanted" > "$stamp"
fi

# --- a fresh database and an api on a free port ------------------------------
admin=${TEST_DATABASE_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
redis_url=${TEST_REDIS_URL:-redis://127.0.0.1:6379}
run_id=$(date +%s)_$$
database=portcullis_schemathesis_$run_id
redis_prefix=schemathesis-$run_id:
queue_prefix=schemathesis.
work=$(mktemp -d)
log=$work/api.log
api=
stage=setup

cleanup() {
    status=$?
    if [ -n "$api" ]; then
        kill "$api" 2>/dev/null || true
        wait "$api" 2>/dev/null || true
    fi
    if [ "$status" -ne 0 ] && [ "$stage" = setup ] && [ -s "$log" ]; then
        echo "--- last lines of the api log ---" >&2
        tail -n 20 "$log" >&2
    fi
    psql "$admin" -q -c "DROP DATABASE IF EXISTS $database WITH (FORCE)" || true
    # Best effort: the rate-limit counters and denylist entries of this run,
    # and the jobs no worker consumed (queues as in the ts-client-test recipe,
    # shared by every run; purged where rabbitmqctl reaches the broker).
    if command -v redis-cli > /dev/null; then
        redis-cli -u "$redis_url" --scan --pattern "portcullis:${redis_prefix}*" 2>/dev/null \
            | xargs -r redis-cli -u "$redis_url" del > /dev/null 2>&1 || true
    fi
    if command -v rabbitmqctl > /dev/null; then
        for queue in email.password_reset email.verification email.security_notice; do
            timeout 10 rabbitmqctl -q purge_queue "$queue_prefix$queue" > /dev/null 2>&1 || true
        done
    fi
    if [ "$status" -eq 0 ]; then
        rm -rf "$work"
    else
        echo "the api log is kept in $log" >&2
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

psql "$admin" -q -c "CREATE DATABASE $database"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
base=http://127.0.0.1:$port
admin_port=$(free_port)
admin_base=http://127.0.0.1:$admin_port

"$binary" keys generate --out "$work/signing.pem" > /dev/null
settings=(PATH="$PATH" HOME="$HOME" \
    DATABASE_URL="${admin%/*}/$database" \
    JWT_SIGNING_KEYS="$work/signing.pem" \
    DATA_ENCRYPTION_KEY="$(head -c 32 /dev/urandom | base64)" \
    REDIS_URL="$redis_url" \
    AMQP_URL="${TEST_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}" \
    JWT_SECRET="schemathesis-test-secret-0123456789abcdef" \
    QUEUE_PREFIX="$queue_prefix" REDIS_KEY_PREFIX="$redis_prefix" \
    API_ADDR="127.0.0.1:$port" ADMIN_ADDR="127.0.0.1:$admin_port" \
    COOKIE_SECURE=false APP_ENV=development \
    LOGIN_MAX_FAILURES_PER_ACCOUNT=1000000 LOGIN_MAX_FAILURES_PER_ADDRESS=1000000 \
    RESET_MAX_REQUESTS_PER_EMAIL=1000000 REGISTER_MAX_PER_ADDRESS=1000000 \
    EMAIL_REQUESTS_MAX_PER_ADDRESS=1000000)
env -i "${settings[@]}" "$binary" api > "$log" 2>&1 &
api=$!

for _ in $(seq 150); do
    curl -sf "$base/healthz" > /dev/null && break
    kill -0 "$api" 2>/dev/null || { echo "the api exited at start" >&2; exit 1; }
    sleep 0.2
done
curl -sf "$base/healthz" > /dev/null || { echo "the api did not answer /healthz" >&2; exit 1; }

# Two users, logged in with curl: the first one's bearer token and the second
# one's refresh cookie reach schemathesis through hooks.py, which logs in
# again whenever a generated request has ended them (logout, logout-all,
# deleting the own session, refresh-token reuse, ...). The password is no
# example value from the schema, so no generated request can change it.
password="schemathesis $run_id violet umbrella"
# POSTs JSON $2 to $base$1 and checks the status is $3; the body lands in $work/body.
post() {
    local got
    got=$(curl -s -o "$work/body" -D "$work/headers" -w '%{http_code}' -X POST "$base$1" \
        -H 'content-type: application/json' -d "$2")
    if [ "$got" != "$3" ]; then
        echo "setup: POST $1 answered $got instead of $3: $(cat "$work/body")" >&2
        exit 1
    fi
}
register() {
    post /api/v1/auth/register "{\"email\":\"$1\",\"password\":\"$password\",\"full_name\":\"Schemathesis\"}" 201
}
login() {
    post /api/v1/auth/login "{\"email\":\"$1\",\"password\":\"$password\"}" 200
}
email=schemathesis-$run_id@example.com
register "$email"
login "$email"
token=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["access_token"])' "$work/body")
refresh_email=schemathesis-refresh-$run_id@example.com
register "$refresh_email"
login "$refresh_email"
refresh_token=$(sed -n 's/^set-cookie: *refresh_token=\([^;]*\).*/\1/Ip' "$work/headers" | tr -d '\r')
[ -n "$refresh_token" ] || { echo "setup: login set no refresh_token cookie" >&2; exit 1; }

# schemathesis and Hypothesis keep caches in the working directory: give them
# the throw-away one.
cd "$work"
stage=schemathesis
SCHEMATHESIS_HOOKS=$here/hooks.py \
PORTCULLIS_URL=$base PORTCULLIS_PASSWORD=$password \
PORTCULLIS_EMAIL=$email PORTCULLIS_TOKEN=$token \
PORTCULLIS_REFRESH_EMAIL=$refresh_email PORTCULLIS_REFRESH_TOKEN=$refresh_token \
    "$venv/bin/schemathesis" --config-file "$here/schemathesis.toml" run "$schema" \
        --url "$base" \
        --checks all \
        --exclude-checks positive_data_acceptance \
        --max-examples "$max_examples" \
        --seed "$seed" \
        --workers 1 \
        --request-timeout 30 \
        --no-color \
        "$@"

# The admin API, from openapi/admin.json, with a read-write key: every
# operation, its refusals without a key included (schemathesis's
# `ignored_auth` check sends each without it).
admin_key=$(env -i "${settings[@]}" "$binary" admin-keys create --name schemathesis 2> /dev/null)
"$venv/bin/schemathesis" --config-file "$here/schemathesis.toml" run "$root/openapi/admin.json" \
    --url "$admin_base" \
    --header "Authorization: Bearer $admin_key" \
    --checks all \
    --exclude-checks positive_data_acceptance \
    --max-examples "$max_examples" \
    --seed "$seed" \
    --workers 1 \
    --request-timeout 30 \
    --no-color \
    "$@"
