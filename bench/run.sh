#!/usr/bin/env bash
# `just bench`: Portcullis, the FastAPI peer and the hyper floor of
# ../shared/baseline under the baseline's own wrk workload (bench.sh), in one
# run on this machine, plus the Argon2 ceiling and pgbench's bound for
# refresh; then the table with the ratios of the performance targets,
# written with the machine facts to bench/RESULTS.md.
#
# A ratio moves with the machine's mood, so the run is PAIRS rounds (default
# 5): each runs Portcullis (every scenario once), then the floor, the Argon2
# ceiling and pgbench, back to back; a ratio is taken within each round, and
# the report shows the median over the rounds with the range beside it. The
# peer runs in the first round only (it is ten times slower, not close).
#
# Environment: DURATION (bench.sh's, default 10), PAIRS,
# TARGETS (default "portcullis fastapi limit argon2 pgbench"), PORTCULLIS_BINARY
# (a build to measure instead of this tree's, for an A/B),
# BASELINE (default ../shared/baseline, or beside the origin), SMOKE=1 for the few-second check of
# `just test` (Portcullis only, debug build, RESULTS.md left alone).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
# The baseline sits beside the project; a clone made elsewhere (CI's) finds
# it beside the repository it was cloned from.
find_baseline() {
    [ -n "${BASELINE:-}" ] && { echo "$BASELINE"; return; }
    [ -d ../shared/baseline ] && { echo ../shared/baseline; return; }
    local origin
    origin=$(git remote get-url origin 2>/dev/null || true)
    if [ -n "$origin" ] && [ -d "$origin/../shared/baseline" ]; then
        echo "$origin/../shared/baseline"
        return
    fi
    echo "no baseline: set BASELINE to the folder holding bench.sh (../shared/baseline)" >&2
    return 1
}
baseline=$(cd "$(find_baseline)" && pwd)
# One run per scenario per round: the rounds are the repeats. bench.sh adds
# a run only when that one was noisy.
export DURATION=${DURATION:-10} REPEAT=1 MIN_CLEAN=1 EXTRA_MAX=1
pairs=${PAIRS:-5}
smoke=${SMOKE:-0}
if [ "$smoke" = 1 ]; then
    targets=${TARGETS:-portcullis}
    profile=debug
    export DURATION=${DURATION_SMOKE:-2}
    pairs=1
    scenarios=${SCENARIOS:-"me login refresh"}
else
    targets=${TARGETS:-portcullis fastapi limit argon2 pgbench}
    profile=release
    scenarios=${SCENARIOS:-"me login mixed register refresh"}
fi
results=$root/target/bench/$(date +%Y%m%d-%H%M%S)
mkdir -p "$results"
log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
command -v wrk > /dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }

started=()
cleanup() {
    for pid in "${started[@]:-}"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; done
    for pid in "${started[@]:-}"; do [ -n "$pid" ] && wait "$pid" 2>/dev/null || true; done
    [ -n "${fastapi_started:-}" ] && "$baseline/fastapi/run.sh" stop > /dev/null 2>&1 || true
}
trap cleanup EXIT

"$baseline/services.sh" start > /dev/null
admin=${TEST_DATABASE_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}

# Everything is built before the first round, so no build runs between
# the members of a pair.
for target in $targets; do
    case $target in
    portcullis)
        if [ -n "${PORTCULLIS_BINARY:-}" ]; then
            :
        elif [ "$profile" = release ]; then
            cargo build --release --locked --quiet
        else
            cargo build --locked --quiet
        fi
        ;;
    limit | argon2)
        cargo build --release --quiet --manifest-path "$baseline/limit/Cargo.toml" \
            --target-dir "$root/target/baseline-limit"
        ;;
    fastapi)
        eval "$("$baseline/setup_venv.sh")"
        export VENV
        ;;
    pgbench) ;;
    *)
        echo "unknown target $target" >&2
        exit 2
        ;;
    esac
done
binary=${PORTCULLIS_BINARY:-$root/target/$profile/portcullis}

# Portcullis on a fresh database, then its idle worker's RSS and the workload.
run_portcullis() { # out-dir
    local out=$1 database=portcullis_bench work api worker
    psql "$admin" -q -c "DROP DATABASE IF EXISTS $database WITH (FORCE)" -c "CREATE DATABASE $database"
    work=$(mktemp -d)
    "$binary" keys generate --out "$work/signing.pem" > /dev/null
    local settings=(
        PATH="$PATH" HOME="$HOME"
        DATABASE_URL="${admin%/*}/$database"
        REDIS_URL="${TEST_REDIS_URL:-redis://127.0.0.1:6379}"
        AMQP_URL="${TEST_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}"
        JWT_SECRET="bench-secret-bench-secret-bench-secret-0123"
        JWT_SIGNING_KEYS="$work/signing.pem"
        QUEUE_PREFIX=bench. REDIS_KEY_PREFIX="bench-$$-$RANDOM:"
        API_ADDR=127.0.0.1:8100 ADMIN_ADDR=127.0.0.1:8101 WORKER_METRICS_ADDR=127.0.0.1:9110
        COOKIE_SECURE=false MAIL_TRANSPORT="file:$work/mail"
        # The workload logs in and registers far past the abuse limits.
        LOGIN_MAX_FAILURES_PER_ACCOUNT=1000000 LOGIN_MAX_FAILURES_PER_ADDRESS=1000000
        REGISTER_MAX_PER_ADDRESS=100000000 EMAIL_REQUESTS_MAX_PER_ADDRESS=100000000
        RESET_MAX_REQUESTS_PER_EMAIL=1000000
    )
    env -i "${settings[@]}" "$binary" api > "$work/api.log" 2>&1 &
    api=$!
    started+=("$api")
    for _ in $(seq 300); do curl -sf http://127.0.0.1:8100/healthz > /dev/null && break; sleep 0.1; done
    env -i "${settings[@]}" MIGRATE_ON_START=false "$binary" worker > "$work/worker.log" 2>&1 &
    worker=$!
    started+=("$worker")
    sleep 2
    printf '{"type": "worker_rss", "label": "portcullis", "idle_kb": %s}\n' \
        "$(awk '/^VmRSS/ {print $2}' "/proc/$worker/status")" > "$out/worker.jsonl"
    bash bench/autoanalyze.sh "${admin%/*}/$database" &
    local analyze=$!
    LABEL=portcullis SERVER_PID=$api BASE_URL=http://127.0.0.1:8100 SCENARIOS="$scenarios" \
        OUT_DIR="$out/wrk-portcullis" "$baseline/bench.sh" > "$out/portcullis.jsonl"
    kill "$api" "$worker" "$analyze" 2> /dev/null || true
    wait "$api" "$worker" "$analyze" 2>/dev/null || true
}

for pair in $(seq "$pairs"); do
    out=$results/round-$pair
    mkdir -p "$out"
    for target in $targets; do
        case $target in
        portcullis)
            log "round $pair: Portcullis ($profile): $scenarios"
            run_portcullis "$out"
            ;;
        fastapi)
            # Once: the peer is far from every goal, and slow to start.
            [ "$pair" = 1 ] || continue
            pid=$(WORKERS=1 "$baseline/fastapi/run.sh" start | sed -n 's/^API_PID=//p')
            fastapi_started=1
            sleep 2
            log "round $pair: FastAPI peer: $scenarios"
            LABEL=fastapi SERVER_PID=$pid BASE_URL=http://127.0.0.1:8000 SCENARIOS="$scenarios" \
                OUT_DIR="$out/wrk-fastapi" "$baseline/bench.sh" > "$out/fastapi.jsonl"
            "$baseline/fastapi/run.sh" stop > /dev/null
            fastapi_started=
            ;;
        argon2)
            log "round $pair: Argon2 ceiling"
            for _ in 1 2; do "$root/target/baseline-limit/release/argon2bench" 40; sleep 1; done \
                > "$out/argon2.jsonl"
            ;;
        limit)
            LIMIT_ADDR=127.0.0.1:8090 "$root/target/baseline-limit/release/limit" 2> "$out/limit.log" &
            limit=$!
            started+=("$limit")
            sleep 1
            log "round $pair: hyper floor"
            LABEL=limit SERVER_PID=$limit BASE_URL=http://127.0.0.1:8090 SCENARIOS="plain pgredis" \
                OUT_DIR="$out/wrk-limit" "$baseline/bench.sh" > "$out/limit.jsonl"
            kill "$limit"
            wait "$limit" 2>/dev/null || true
            ;;
        pgbench)
            log "round $pair: pgbench -N -M prepared -c 16 (the database's bound for refresh)"
            url=postgresql://bench:bench@127.0.0.1:5432/bench
            pgbench -q -i -s 1 "$url" > /dev/null 2>&1
            pgbench -N -M prepared -c 16 -j 2 -T "$DURATION" "$url" 2> /dev/null \
                | sed -n 's/^tps = \([0-9.]*\).*/{"type": "pgbench", "tps": \1}/p' | head -1 > "$out/pgbench.jsonl"
            ;;
        esac
    done
done

if [ "$smoke" = 1 ]; then
    python3 bench/report.py "$results" --smoke
else
    python3 bench/report.py "$results" --write bench/RESULTS.md \
        --command "DURATION=$DURATION PAIRS=$pairs just bench"
fi
