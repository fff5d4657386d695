#!/usr/bin/env bash
# `just bench-events`: what the security events cost login and refresh, and
# how fast the worker delivers webhooks. Writes bench/EVENTS.md.
#
# 1. Login and refresh (the baseline's bench.sh scenarios) in rotated
#    rounds of three modes on one release build and one database:
#    `none`   the event insert runs but stores nothing (a DO INSTEAD NOTHING
#             rule on security_events, so the row, its indexes and its WAL
#             are gone and the round trip stays),
#    `events` as shipped,
#    `webhooks` as shipped with WEBHOOK_URL set: each login's event is also
#             written to the outbox, published, and POSTed by the worker to
#             a local receiver on the same two cores.
# 2. Webhook delivery throughput: DELIVERIES deliveries written to the
#    outbox at once, timed until the receiver (examples/webhook_sink.rs,
#    which checks every signature) has accepted them all.
#
# Environment: ROUNDS (default 3), DURATION (s per run, default 10),
# DELIVERIES (default 20000), BASELINE as for `just bench`.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
rounds=${ROUNDS:-3}
export DURATION=${DURATION:-10} REPEAT=1
deliveries=${DELIVERIES:-20000}
baseline=${BASELINE:-$root/../shared/baseline}
[ -f "$baseline/bench.sh" ] || baseline=$(git remote get-url origin)/../shared/baseline
admin=${TEST_DATABASE_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
database=portcullis_bench_events
db="${admin%/*}/$database"
work=$(mktemp -d)
results=$root/target/bench/events-$(date +%Y%m%d-%H%M%S)
mkdir -p "$results"
pids=()
stop_all() {
    for pid in "${pids[@]:-}"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]:-}"; do [ -n "$pid" ] && wait "$pid" 2>/dev/null || true; done
    pids=()
}
cleanup() {
    stop_all
    [ -n "${sink:-}" ] && { kill "$sink" 2>/dev/null || true; }
    [ -n "${analyze:-}" ] && { kill "$analyze" 2>/dev/null || true; }
    psql "$admin" -q -c "DROP DATABASE IF EXISTS $database WITH (FORCE)" || true
    rm -rf "$work"
}
trap cleanup EXIT
log() { printf '[bench-events %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

cargo build --release --locked --quiet --bin portcullis --example webhook_sink
psql "$admin" -q -c "DROP DATABASE IF EXISTS $database WITH (FORCE)" -c "CREATE DATABASE $database"
"$root/target/release/portcullis" keys generate --out "$work/signing.pem" > /dev/null
secret="whsec_$(head -c 32 /dev/urandom | base64)"
"$root/target/release/examples/webhook_sink" 127.0.0.1:8190 "$secret" &
sink=$!
settings=(
    PATH="$PATH" HOME="$HOME"
    DATABASE_URL="$db"
    REDIS_URL="${TEST_REDIS_URL:-redis://127.0.0.1:6379}"
    AMQP_URL="${TEST_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}"
    JWT_SECRET="bench-secret-bench-secret-bench-secret-0123"
    JWT_SIGNING_KEYS="$work/signing.pem"
    QUEUE_PREFIX="bench-events-$$." REDIS_KEY_PREFIX="bench-events-$$:"
    API_ADDR=127.0.0.1:8100 ADMIN_ADDR= WORKER_METRICS_ADDR=127.0.0.1:9110
    COOKIE_SECURE=false MAIL_TRANSPORT="file:$work/mail"
    LOGIN_MAX_FAILURES_PER_ACCOUNT=1000000 LOGIN_MAX_FAILURES_PER_ADDRESS=1000000
    REGISTER_MAX_PER_ADDRESS=100000000 EMAIL_REQUESTS_MAX_PER_ADDRESS=100000000
)
env -i "${settings[@]}" "$root/target/release/portcullis" migrate > /dev/null
webhooks=(WEBHOOK_URL=http://127.0.0.1:8190/hook WEBHOOK_SECRET="$secret")

# Starts the api and the worker, with the webhook settings when $1 is webhooks.
start() {
    local extra=()
    [ "$1" = webhooks ] && extra=("${webhooks[@]}")
    env -i "${settings[@]}" "${extra[@]}" "$root/target/release/portcullis" api >> "$work/api.log" 2>&1 &
    api=$!
    pids+=("$api")
    for _ in $(seq 300); do curl -sf http://127.0.0.1:8100/readyz > /dev/null && break; sleep 0.1; done
    env -i "${settings[@]}" "${extra[@]}" MIGRATE_ON_START=false \
        "$root/target/release/portcullis" worker >> "$work/worker.log" 2>&1 &
    pids+=("$!")
    sleep 1
}

bash bench/autoanalyze.sh "$db" &
analyze=$!
# The order rotates from round to round, so no mode always runs last on a
# database the rounds before have filled.
modes=(none events webhooks)
for round in $(seq "$rounds"); do
    for step in 0 1 2; do
        mode=${modes[$(((round - 1 + step) % 3))]}
        if [ "$mode" = none ]; then
            psql "$db" -q -c "CREATE OR REPLACE RULE bench_no_events AS ON INSERT TO security_events DO INSTEAD NOTHING"
        else
            psql "$db" -q -c "DROP RULE IF EXISTS bench_no_events ON security_events"
        fi
        start "$mode"
        log "round $round: $mode"
        LABEL="$mode" SERVER_PID="${pids[*]}" BASE_URL=http://127.0.0.1:8100 SCENARIOS="login refresh" \
            OUT_DIR="$results/wrk-$round-$mode" "$baseline/bench.sh" 2>> "$work/bench.log" \
            | sed "s/^{/{\"round\": $round, /" >> "$results/modes.jsonl"
        stop_all
    done
done

log "webhook delivery: $deliveries deliveries"
start webhooks
before=$(curl -sf http://127.0.0.1:8190/count | python3 -c 'import json,sys; print(json.load(sys.stdin)["accepted"])')
started=$(date +%s.%N)
psql "$db" -q -c "INSERT INTO outbox (id, queue, payload, correlation_id)
    SELECT gen_random_uuid(), 'webhooks.delivery',
           jsonb_build_object('type', 'session.login_succeeded', 'timestamp', now()::text,
                              'data', jsonb_build_object('id', n, 'type', 'session.login_succeeded')),
           'bench-' || n
    FROM generate_series(1, $deliveries) AS n"
while :; do
    count=$(curl -sf http://127.0.0.1:8190/count | python3 -c 'import json,sys; print(json.load(sys.stdin)["accepted"])')
    [ $((count - before)) -ge "$deliveries" ] && break
    sleep 0.2
done
ended=$(date +%s.%N)
forged=$(curl -sf http://127.0.0.1:8190/count | python3 -c 'import json,sys; print(json.load(sys.stdin)["forged"])')
worker_cpu=$(awk '{print ($14 + $15) / 100}' "/proc/${pids[1]}/stat")
printf '{"type": "webhooks", "deliveries": %s, "seconds": %s, "forged": %s, "worker_cpu_s": %s}\n' \
    "$deliveries" "$(echo "$ended - $started" | bc -l)" "$forged" "$worker_cpu" >> "$results/modes.jsonl"
stop_all

python3 bench/events_report.py "$results/modes.jsonl" "$rounds" > bench/EVENTS.md
cat bench/EVENTS.md
