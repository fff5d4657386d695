#!/usr/bin/env bash
# A stand-in for autovacuum's ANALYZE on a server that runs without it
# (`autovacuum = off`, as on the bench machines): every INTERVAL seconds
# (default 10), ANALYZE the database at $1, until killed. Without it a
# fresh database never gets statistics and the planner keeps the plans of
# empty tables while the workload fills them: the refresh rotation then
# probed every live session per call and slowed down run after run
# (bench/ANALYSIS.md). With autovacuum on, this does nothing.
#
#   bench/autoanalyze.sh DATABASE_URL &   ...   kill $!
set -euo pipefail
url=$1
interval=${INTERVAL:-10}
[ "$(psql "$url" -Atq -c 'SHOW autovacuum')" = on ] && exit 0
echo "[autoanalyze] the server runs with autovacuum off: ANALYZE every ${interval}s stands in" >&2
while :; do
    sleep "$interval"
    psql "$url" -q -c ANALYZE 2> /dev/null || true
done
