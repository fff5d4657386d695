#!/usr/bin/env bash
# `just bench-growth`: how the cost of the requests that read the data
# grows with it. Seeds two databases in bulk (INSERT ... SELECT on the
# server, not the API): SMALL users and USERS users, each with one session
# and EVENTS_PER_USER events. Then, ROUNDS times, measures login, refresh,
# /users/me, /users/me/events and the admin search (examples/growth_probe.rs)
# on an api over each, back to back (small first in odd rounds, large first
# in even ones). Keeps the plans of the hot queries at full size
# (EXPLAIN (ANALYZE, BUFFERS)), then times a retention purge of every seeded
# session (expired on purpose) while /users/me runs. Writes bench/GROWTH.md.
#
# Environment: USERS (default 1000000), SMALL (10000), EVENTS_PER_USER
# (10), WORKERS (16), SECONDS_PER_KIND (10), ROUNDS (3).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
users=${USERS:-1000000}
small=${SMALL:-10000}
per_user=${EVENTS_PER_USER:-10}
workers=${WORKERS:-16}
seconds=${SECONDS_PER_KIND:-10}
rounds=${ROUNDS:-3}
admin=${TEST_DATABASE_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
database=portcullis_bench_growth
small_url="${admin%/*}/${database}_small"
db_url="${admin%/*}/$database"
work=$(mktemp -d)
api=
log() { printf '[growth %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
cleanup() {
    [ -n "$api" ] && { kill "$api" 2>/dev/null || true; wait "$api" 2>/dev/null || true; }
    psql "$admin" -q -c "DROP DATABASE IF EXISTS $database WITH (FORCE)" \
        -c "DROP DATABASE IF EXISTS ${database}_small WITH (FORCE)" || true
    rm -rf "$work"
}
trap cleanup EXIT

cargo build --release --locked --quiet --bin portcullis --example growth_probe
binary=$root/target/release/portcullis
probe=$root/target/release/examples/growth_probe
for name in "$database" "${database}_small"; do
    psql "$admin" -q -c "DROP DATABASE IF EXISTS $name WITH (FORCE)" -c "CREATE DATABASE $name"
done
"$binary" keys generate --out "$work/signing.pem" > /dev/null
settings=(
    PATH="$PATH" HOME="$HOME"
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
start_api() { # database URL
    env -i "${settings[@]}" DATABASE_URL="$1" "$binary" api > "$work/api.log" 2>&1 &
    api=$!
    for _ in $(seq 300); do curl -sf http://127.0.0.1:8100/healthz > /dev/null && break; sleep 0.1; done
}
stop_api() {
    kill "$api"
    wait "$api" 2>/dev/null || true
    api=
}

# Every seeded user has the password of this one (its hash, copied).
start_api "$db_url"
curl -sf -o /dev/null -X POST http://127.0.0.1:8100/api/v1/auth/register -H 'content-type: application/json' \
    -d '{"email":"template@example.com","password":"correct horse battery staple"}'
stop_api
hash=$(psql "$db_url" -Atq -c "SELECT password_hash FROM users WHERE email = 'template@example.com'")
env -i "${settings[@]}" DATABASE_URL="$small_url" "$binary" migrate > /dev/null
for url in "$db_url" "$small_url"; do
    env -i "${settings[@]}" DATABASE_URL="$url" "$binary" admin-keys create --name growth 2> /dev/null \
        > "$work/key-${url##*/}"
done

# Users from $2 to $3 (exclusive) in the database $1, each with a live
# session and its refresh token, and $per_user events, in chunks of 100k.
seed() {
    local url=$1 from=$2 to=$3 start end
    for ((start = from; start < to; start += 100000)); do
        end=$((start + 100000 < to ? start + 100000 : to))
        psql "$url" -q -v ON_ERROR_STOP=1 -v hash="$hash" <<SQL
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
    psql "$url" -q -c "VACUUM ANALYZE"
}

measure() { # size round database-url
    start_api "$3"
    log "round $2: measuring at $1 users"
    "$probe" http://127.0.0.1:8100 http://127.0.0.1:8101 "$(cat "$work/key-${3##*/}")" "$1" "$workers" "$seconds" \
        > "$work/probe-$1-$2.jsonl"
    stop_api
}

log "seeding $small users"
seed "$small_url" 0 "$small"
log "seeding $users users"
seed "$db_url" 0 "$users"
# ABBA: odd rounds measure the small database first, even rounds the large
# one, so whatever the order costs falls on both sides.
for round in $(seq "$rounds"); do
    if [ $((round % 2)) = 1 ]; then
        measure "$small" "$round" "$small_url"
        measure "$users" "$round" "$db_url"
    else
        measure "$users" "$round" "$db_url"
        measure "$small" "$round" "$small_url"
    fi
done
start_api "$db_url"
key=$(cat "$work/key-$database")

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
# The app's statement (src/repositories/retention.rs), with 30 days'
# retention: the next 1,000 expired refresh tokens and the expired sessions
# they belong to (sql/V12); a full batch of tokens means there may be more.
cutoff="now() - interval '30 days'"
select_sql="SELECT token_hash, session_id FROM refresh_tokens WHERE expires_at < $cutoff ORDER BY expires_at LIMIT 1000"
explain "retention: one batch of the purge (the tokens it takes)" "$select_sql"
batch_sql="WITH batch AS MATERIALIZED ($select_sql),
    ended AS (DELETE FROM sessions s WHERE s.id IN (SELECT session_id FROM batch)
        AND s.revoked_at IS NULL AND s.expires_at < $cutoff)
    DELETE FROM refresh_tokens WHERE token_hash IN (SELECT token_hash FROM batch)"
log "purging while /users/me runs"
purge_started=$(date +%s.%N)
(
    while :; do
        # Not -q: the count is in the command tag (DELETE n).
        deleted=$(psql "$db_url" -At -c "$batch_sql" | awk '/^DELETE/ {print $2}')
        [ "${deleted:-0}" -lt 1000 ] && break
    done
    echo "$(date +%s.%N) - $purge_started" | bc > "$work/purge-seconds"
) &
purger=$!
"$probe" http://127.0.0.1:8100 http://127.0.0.1:8101 "$key" "$users" "$workers" "$seconds" me \
    > "$work/during.jsonl"
wait "$purger"
purge_seconds=$(cat "$work/purge-seconds")
left=$(psql "$db_url" -Atq -c "SELECT count(*) FROM sessions s JOIN users u ON u.id = s.user_id WHERE u.email LIKE 'grow-%'")
"$probe" http://127.0.0.1:8100 http://127.0.0.1:8101 "$key" "$users" "$workers" "$seconds" me \
    > "$work/after.jsonl"

python3 - "$work" "$small" "$users" "$per_user" "$workers" "$seconds" "$purge_seconds" "$rounds" "$left" > bench/GROWTH.md <<'PY'
import json, statistics, sys
from pathlib import Path
work, small, users, per_user, workers, seconds, purge, rounds, left = sys.argv[1:]
def load(name):
    lines = Path(work, name).read_text().splitlines()
    return {o["kind"]: o for o in (json.loads(line) for line in lines if line.strip())}
rounds = int(rounds)
a = [load(f"probe-{small}-{r}.jsonl") for r in range(1, rounds + 1)]
b = [load(f"probe-{users}-{r}.jsonl") for r in range(1, rounds + 1)]
during, after = load("during.jsonl")["me"], load("after.jsonl")["me"]
med = statistics.median
print("# Growth: the same requests at two sizes\n")
print(f"`just bench-growth`: a release api on this machine, {workers} clients back to back for {seconds} s per request kind,")
print(f"{rounds} rounds, each measuring both databases back to back (the small one first in odd rounds,")
print("the large one first in even rounds); medians over the rounds,")
print("and the p99 ratio of each round (large / small) with its range.")
print(f"Seeded in bulk on the server: users with one live session and {per_user} security events each.\n")
print(f"| request | {int(small):,} users: req/s | p99 ms | {int(users):,} users: req/s | p99 ms | p99 ratio (range) | goal <= 1.10x |")
print("|---|---|---|---|---|---|---|")
for kind in ["login", "refresh", "me", "events", "admin_search"]:
    ratios = [y[kind]["p99_ms"] / x[kind]["p99_ms"] for x, y in zip(a, b)]
    ratio = med(ratios)
    verdict = "met" if ratio <= 1.10 else "**missed**"
    print(f"| {kind} | {med(x[kind]['rps'] for x in a):,.0f} | {med(x[kind]['p99_ms'] for x in a):.1f} "
          f"| {med(y[kind]['rps'] for y in b):,.0f} | {med(y[kind]['p99_ms'] for y in b):.1f} "
          f"| {ratio:.2f}x ({min(ratios):.2f} to {max(ratios):.2f}) | {verdict} |")
print(f"\nRetention: purging {int(users):,} expired sessions with their refresh tokens, in batches of 1,000 tokens, took {float(purge):.0f} s "
      f"({int(left):,} of them left after it);")
print(f"`/users/me` meanwhile: {during['rps']:,.0f} req/s, p99 {during['p99_ms']:.1f} ms; after it: {after['rps']:,.0f} req/s, p99 {after['p99_ms']:.1f} ms "
      f"(p99 during / after: {during['p99_ms'] / after['p99_ms']:.2f}x).\n")
print("## Plans at full size\n")
print(Path(work, "plans.md").read_text())
PY
log "written to bench/GROWTH.md"
cat bench/GROWTH.md
