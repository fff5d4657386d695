#!/usr/bin/env bash
# `just bench-growth`: how the cost of the requests that read the data
# grows with it. Seeds SMALL users (one session each, EVENTS_PER_USER
# events each) in bulk (INSERT ... SELECT on the server, not the API),
# measures login, refresh, /users/me, /users/me/events and the admin search
# (examples/growth_probe.rs), grows the data to USERS users, measures again,
# keeps the plans of the hot queries at full size (EXPLAIN (ANALYZE,
# BUFFERS)), then times a retention purge of every seeded session (expired
# on purpose) while /users/me runs. Writes bench/GROWTH.md.
#
# Environment: USERS (default 1000000), SMALL (10000), EVENTS_PER_USER
# (10), WORKERS (16), SECONDS (10 per request kind).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
users=${USERS:-1000000}
small=${SMALL:-10000}
per_user=${EVENTS_PER_USER:-10}
workers=${WORKERS:-16}
seconds=${SECONDS_PER_KIND:-10}
admin=${TEST_DATABASE_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
database=portcullis_bench_growth
db_url="${admin%/*}/$database"
work=$(mktemp -d)
api=
log() { printf '[growth %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
cleanup() {
    [ -n "$api" ] && { kill "$api" 2>/dev/null || true; wait "$api" 2>/dev/null || true; }
    psql "$admin" -q -c "DROP DATABASE IF EXISTS $database WITH (FORCE)" || true
    rm -rf "$work"
}
trap cleanup EXIT

cargo build --release --locked --quiet --bin portcullis --example growth_probe
binary=$root/target/release/portcullis
probe=$root/target/release/examples/growth_probe
psql "$admin" -q -c "DROP DATABASE IF EXISTS $database WITH (FORCE)" -c "CREATE DATABASE $database"
"$binary" keys generate --out "$work/signing.pem" > /dev/null
settings=(
    PATH="$PATH" HOME="$HOME"
    DATABASE_URL="$db_url"
    REDIS_URL="${TEST_REDIS_URL:-redis://127.0.0.1:6379}"
    AMQP_URL="${TEST_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}"
    JWT_SECRET="bench-secret-bench-secret-bench-secret-0123"
    JWT_SIGNING_KEYS="$work/signing.pem"
    QUEUE_PREFIX=bench-growth. REDIS_KEY_PREFIX="bench-growth-$$:"
    API_ADDR=127.0.0.1:8100 ADMIN_ADDR=127.0.0.1:8101
    COOKIE_SECURE=false MAIL_TRANSPORT="file:$work/mail"
    LOGIN_MAX_FAILURES_PER_ACCOUNT=1000000 LOGIN_MAX_FAILURES_PER_ADDRESS=1000000
    REGISTER_MAX_PER_ADDRESS=100000000 EMAIL_REQUESTS_MAX_PER_ADDRESS=100000000
)
env -i "${settings[@]}" "$binary" api > "$work/api.log" 2>&1 &
api=$!
for _ in $(seq 300); do curl -sf http://127.0.0.1:8100/healthz > /dev/null && break; sleep 0.1; done

# Every seeded user has the password of this one (its hash, copied).
curl -sf -o /dev/null -X POST http://127.0.0.1:8100/api/v1/auth/register -H 'content-type: application/json' \
    -d '{"email":"template@example.com","password":"correct horse battery staple"}'
hash=$(psql "$db_url" -Atq -c "SELECT password_hash FROM users WHERE email = 'template@example.com'")
key=$(env -i "${settings[@]}" "$binary" admin-keys create --name growth 2> /dev/null)

# Users from $1 to $2 (exclusive), each with a live session and its refresh
# token, and $per_user events, in chunks of 100k users.
seed() {
    local from=$1 to=$2 start end
    for ((start = from; start < to; start += 100000)); do
        end=$((start + 100000 < to ? start + 100000 : to))
        psql "$db_url" -q -v ON_ERROR_STOP=1 -v hash="$hash" <<SQL
WITH u AS (
    INSERT INTO users (id, email, password_hash, email_verified, created_at)
    SELECT gen_random_uuid(), 'grow-' || n || '@example.com', :'hash', true,
           now() - interval '400 days' + n * interval '1 second'
    FROM generate_series($start, $end - 1) n
    RETURNING id
), s AS (
    INSERT INTO sessions (id, user_id, expires_at, max_expires_at)
    SELECT gen_random_uuid(), id, now() + interval '14 days', now() + interval '30 days' FROM u
    RETURNING id, user_id, expires_at
), t AS (
    INSERT INTO refresh_tokens (token_hash, session_id, user_id, expires_at)
    SELECT sha256(gen_random_uuid()::text::bytea), id, user_id, expires_at FROM s
)
INSERT INTO security_events (id, type, occurred_at, user_id, outcome, correlation_id, actor_kind)
SELECT gen_random_uuid(), 'session.login_succeeded', now() - g * interval '1 hour', u.id,
       'success', 'seed', 'user'
FROM u CROSS JOIN generate_series(1, $per_user) g;
SQL
    done
    psql "$db_url" -q -c "VACUUM ANALYZE"
}

measure() { # label
    log "measuring at $1"
    "$probe" http://127.0.0.1:8100 http://127.0.0.1:8101 "$key" "$1" "$workers" "$seconds" \
        > "$work/probe-$1.jsonl"
}

log "seeding $small users"
seed 0 "$small"
measure "$small"
log "seeding up to $users users"
seed "$small" "$users"
measure "$users"

# The plans of the hot queries at full size.
someone=$(psql "$db_url" -Atq -c "SELECT id FROM users WHERE email = 'grow-$((users / 2))@example.com'")
token=$(psql "$db_url" -Atq -c "SELECT encode(token_hash, 'hex') FROM refresh_tokens WHERE user_id = '$someone' LIMIT 1")
explain() { # title sql
    {
        echo "### $1"
        echo
        echo '```'
        psql "$db_url" -Atq -c "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) $2"
        echo '```'
        echo
    } >> "$work/plans.md"
}
explain "login: the account by address" \
    "SELECT id, password_hash FROM users WHERE email = 'grow-$((users / 2))@example.com' AND is_active"
explain "/users/me: the account by id" \
    "SELECT id, email FROM users WHERE id = '$someone' AND is_active"
explain "refresh: the token's state" \
    "SELECT t.session_id, s.revoked_at FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id JOIN users u ON u.id = t.user_id WHERE t.token_hash = decode('$token', 'hex')"
explain "/users/me/events: a page" \
    "SELECT id, type, occurred_at FROM security_events WHERE user_id = '$someone' ORDER BY occurred_at DESC, id DESC LIMIT 21"
explain "admin search: an address prefix" \
    "SELECT u.id, u.email FROM users u WHERE u.is_active AND u.email ~<~ 'grow-5001' AND u.email ~>=~ 'grow-5000' ORDER BY u.created_at DESC, u.id DESC LIMIT 21"
explain "sessions: the live ones of a user" \
    "SELECT id FROM sessions WHERE user_id = '$someone' AND revoked_at IS NULL AND expires_at > now()"

# A purge of every seeded session (expired on purpose), in the app's
# batches, while /users/me runs; then /users/me alone again.
log "expiring $users sessions"
# The session's sliding expiry and its newest token's are one (each rotation
# sets both); the absolute end stays ahead, so the sliding one ends them.
psql "$db_url" -q -c "UPDATE sessions SET expires_at = now() - interval '60 days' WHERE user_id IN (SELECT id FROM users WHERE email LIKE 'grow-%')" \
    -c "UPDATE refresh_tokens SET created_at = now() - interval '61 days', expires_at = now() - interval '60 days' WHERE user_id IN (SELECT id FROM users WHERE email LIKE 'grow-%')"
psql "$db_url" -q -c "VACUUM ANALYZE sessions" -c "VACUUM ANALYZE refresh_tokens"
explain "retention, as it was: one batch of coalesce(revoked_at, expires_at)" \
    "SELECT id FROM sessions WHERE coalesce(revoked_at, expires_at) < now() - interval '30 days' LIMIT 1000"
# The app's statement (src/repositories/retention.rs), with 30 days' retention:
# expired sessions found through their refresh tokens (sql/V12).
select_sql="SELECT t.session_id FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id WHERE t.expires_at < now() - interval '30 days' AND s.revoked_at IS NULL AND s.expires_at < now() - interval '30 days' LIMIT 1000"
explain "retention: one batch of the purge" "$select_sql"
batch_sql="DELETE FROM sessions WHERE id IN ($select_sql)"
log "purging while /users/me runs"
purge_started=$(date +%s.%N)
(
    while :; do
        deleted=$(psql "$db_url" -Atq -c "$batch_sql" | awk '{print $2}')
        [ "${deleted:-0}" -lt 1000 ] && break
    done
) &
purger=$!
"$probe" http://127.0.0.1:8100 http://127.0.0.1:8101 "$key" "$users" "$workers" "$seconds" me \
    > "$work/during.jsonl"
wait "$purger"
purge_seconds=$(echo "$(date +%s.%N) - $purge_started" | bc)
"$probe" http://127.0.0.1:8100 http://127.0.0.1:8101 "$key" "$users" "$workers" "$seconds" me \
    > "$work/after.jsonl"

python3 - "$work" "$small" "$users" "$per_user" "$workers" "$seconds" "$purge_seconds" > bench/GROWTH.md <<'PY'
import json, sys
from pathlib import Path
work, small, users, per_user, workers, seconds, purge = sys.argv[1:]
def load(name):
    lines = Path(work, name).read_text().splitlines()
    return {o["kind"]: o for o in (json.loads(line) for line in lines if line.strip())}
a, b = load(f"probe-{small}.jsonl"), load(f"probe-{users}.jsonl")
during, after = load("during.jsonl")["me"], load("after.jsonl")["me"]
print("# Growth: the same requests at two sizes\n")
print(f"`just bench-growth`: a release api on this machine, {workers} clients back to back for {seconds} s per request kind.")
print(f"Seeded in bulk on the server: users with one live session and {per_user} security events each.\n")
print(f"| request | {int(small):,} users: req/s | p99 ms | {int(users):,} users: req/s | p99 ms | p99 ratio |")
print("|---|---|---|---|---|---|")
for kind in ["login", "refresh", "me", "events", "admin_search"]:
    x, y = a[kind], b[kind]
    print(f"| {kind} | {x['rps']:,.0f} | {x['p99_ms']:.1f} | {y['rps']:,.0f} | {y['p99_ms']:.1f} | {y['p99_ms'] / x['p99_ms']:.2f}x |")
print(f"\nRetention: purging {int(users):,} expired sessions (with their refresh tokens) in batches of 1,000 took {float(purge):.0f} s;")
print(f"`/users/me` meanwhile: {during['rps']:,.0f} req/s, p99 {during['p99_ms']:.1f} ms; after it: {after['rps']:,.0f} req/s, p99 {after['p99_ms']:.1f} ms "
      f"(p99 during / after: {during['p99_ms'] / after['p99_ms']:.2f}x).\n")
print("## Plans at full size\n")
print(Path(work, "plans.md").read_text())
PY
log "written to bench/GROWTH.md"
cat bench/GROWTH.md
