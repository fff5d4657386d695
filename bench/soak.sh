#!/usr/bin/env bash
# `just bench-soak`: the baseline's mixed workload (/users/me at 64
# connections under a 16-connection login storm) for DURATION seconds
# (default 600) against a release api and worker, sampling their resident
# memory and open file descriptors every 10 s. Passes when no request
# failed, RSS after the warm-up (the first minute) stays within 10%, and
# the descriptors stay flat. Writes bench/SOAK.md.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
duration=${DURATION:-600}
baseline=$(cd "${BASELINE:-../shared/baseline}" && pwd)
admin=${TEST_DATABASE_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
database=portcullis_bench_soak
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]:-}"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]:-}"; do [ -n "$pid" ] && wait "$pid" 2>/dev/null || true; done
    psql "$admin" -q -c "DROP DATABASE IF EXISTS $database WITH (FORCE)" || true
    rm -rf "$work"
}
trap cleanup EXIT

cargo build --release --locked --quiet --bin portcullis
binary=$root/target/release/portcullis
psql "$admin" -q -c "DROP DATABASE IF EXISTS $database WITH (FORCE)" -c "CREATE DATABASE $database"
"$binary" keys generate --out "$work/signing.pem" > /dev/null
settings=(
    PATH="$PATH" HOME="$HOME"
    DATABASE_URL="${admin%/*}/$database"
    REDIS_URL="${TEST_REDIS_URL:-redis://127.0.0.1:6379}"
    AMQP_URL="${TEST_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}"
    JWT_SECRET="bench-secret-bench-secret-bench-secret-0123"
    JWT_SIGNING_KEYS="$work/signing.pem"
    QUEUE_PREFIX=bench-soak. REDIS_KEY_PREFIX="bench-soak-$$:"
    API_ADDR=127.0.0.1:8100 ADMIN_ADDR= WORKER_METRICS_ADDR=127.0.0.1:9110
    COOKIE_SECURE=false MAIL_TRANSPORT="file:$work/mail"
    LOGIN_MAX_FAILURES_PER_ACCOUNT=1000000 LOGIN_MAX_FAILURES_PER_ADDRESS=1000000
    REGISTER_MAX_PER_ADDRESS=100000000 EMAIL_REQUESTS_MAX_PER_ADDRESS=100000000
)
env -i "${settings[@]}" "$binary" api > "$work/api.log" 2>&1 &
api=$!
pids+=("$api")
for _ in $(seq 300); do curl -sf http://127.0.0.1:8100/healthz > /dev/null && break; sleep 0.1; done
env -i "${settings[@]}" MIGRATE_ON_START=false "$binary" worker > "$work/worker.log" 2>&1 &
worker=$!
pids+=("$worker")
sleep 2

# Every 10 s: seconds since the start, then RSS (KiB) and open descriptors
# of the api and the worker.
(
    start=$(date +%s)
    while kill -0 "$api" 2>/dev/null; do
        printf '%s %s %s %s %s\n' "$(($(date +%s) - start))" \
            "$(awk '/^VmRSS/ {print $2}' "/proc/$api/status")" "$(ls "/proc/$api/fd" | wc -l)" \
            "$(awk '/^VmRSS/ {print $2}' "/proc/$worker/status")" "$(ls "/proc/$worker/fd" | wc -l)"
        sleep 10
    done
) > "$work/samples.txt" &
sampler=$!
pids+=("$sampler")
bash bench/autoanalyze.sh "${admin%/*}/$database" &
pids+=("$!")

# One run, however noisy the machine (bench.sh would add runs to get two
# clean ones).
LABEL=portcullis SERVER_PID=$api BASE_URL=http://127.0.0.1:8100 SCENARIOS=mixed \
    DURATION="$duration" REPEAT=1 MIN_CLEAN=1 EXTRA_MAX=0 OUT_DIR="$work/wrk" \
    "$baseline/bench.sh" > "$work/soak.jsonl"
kill "$sampler" 2>/dev/null || true

python3 - "$work" "$duration" > bench/SOAK.md <<'PY'
import json, sys
from pathlib import Path
work, duration = sys.argv[1], int(sys.argv[2])
samples = [list(map(int, line.split())) for line in Path(work, "samples.txt").read_text().splitlines() if line.strip()]
rows = [json.loads(line) for line in Path(work, "soak.jsonl").read_text().splitlines() if line.strip()]
medians = {r["scenario"]: r for r in rows if r.get("type") == "median"}
# After the warm-up (the first minute) and before the load ends.
warm = [s for s in samples if 60 <= s[0] <= duration] or samples
def spread(values):
    return (max(values) - min(values)) / min(values) if min(values) else 0.0
api_rss, worker_rss = [s[1] for s in warm], [s[3] for s in warm]
api_fd, worker_fd = [s[2] for s in warm], [s[4] for s in warm]
errors = sum(r.get("errors") or 0 for r in medians.values())
ok = errors == 0 and spread(api_rss) <= 0.10 and spread(worker_rss) <= 0.10 and max(api_fd) - min(api_fd) <= 8
print("# Soak: the mixed workload for", duration // 60, "minutes\n")
print("`just bench-soak`: the baseline's mixed workload (`/users/me` at 64 connections under a")
print("16-connection login storm) against a release api and worker, RSS and open descriptors sampled every 10 s.\n")
print("| figure | value | goal |")
print("|---|---|---|")
for name, r in medians.items():
    print(f"| {name}: req/s, p99 | {r['rps']:,.1f}, {r['p99_ms']:.1f} ms | |")
print(f"| failed requests | {errors} | 0 |")
print(f"| api RSS after the first minute | {min(api_rss) / 1024:.1f} to {max(api_rss) / 1024:.1f} MiB ({spread(api_rss):.1%}) | within 10% |")
print(f"| worker RSS after the first minute | {min(worker_rss) / 1024:.1f} to {max(worker_rss) / 1024:.1f} MiB ({spread(worker_rss):.1%}) | within 10% |")
print(f"| api open descriptors | {min(api_fd)} to {max(api_fd)} | flat |")
print(f"| worker open descriptors | {min(worker_fd)} to {max(worker_fd)} | flat |")
print(f"\n{'Passed' if ok else 'Failed'}.\n")
print("Samples (seconds, api RSS KiB, api fds, worker RSS KiB, worker fds):\n")
print("```")
print("\n".join(" ".join(map(str, s)) for s in samples))
print("```")
sys.exit(0 if ok else 1)
PY
cat bench/SOAK.md
