"""bench/EVENTS.md from bench/events.sh's JSON lines.
usage: events_report.py MODES_JSONL ROUNDS"""
import json
import statistics
import subprocess
import sys
from collections import defaultdict
from datetime import datetime, timezone

path, rounds = sys.argv[1], int(sys.argv[2])
runs = defaultdict(dict)  # (round, mode) -> scenario -> rps
p99 = defaultdict(dict)
webhooks = None
for line in open(path):
    o = json.loads(line)
    if o.get("type") == "median":
        runs[(o["round"], o["label"])][o["scenario"]] = o["rps"]
        p99[(o["round"], o["label"])][o["scenario"]] = o["p99_ms"]
    elif o.get("type") == "webhooks":
        webhooks = o


def spread(values, pct=False):
    med = statistics.median(values)
    if pct:
        return f"{med:.1%} ({min(values):.1%} to {max(values):.1%})"
    return f"{med:,.1f} ({min(values):,.1f} to {max(values):,.1f})"


commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
out = print
out("# What security events cost, and webhook delivery")
out()
out(f"`just bench-events` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, commit `{commit}`,")
out(f"{rounds} rounds, each running the three modes back to back, in an order that rotates (the baseline's")
out("`login` and `refresh` scenarios, one run each); medians over the rounds, range in brackets.")
out()
out("- `none`: the event insert still runs but stores nothing (a `DO INSTEAD NOTHING` rule),")
out("- `events`: as shipped,")
out("- `webhooks`: as shipped with `WEBHOOK_URL` set, every login's event also written to")
out("  the outbox, published and POSTed by the worker, on the same two cores.")
out()
out("| mode | login req/s | login p99 ms | refresh req/s | refresh p99 ms |")
out("|---|---|---|---|---|")
modes = ["none", "events", "webhooks"]
for mode in modes:
    cells = []
    for scenario in ["login", "refresh"]:
        cells.append(spread([runs[(r, mode)][scenario] for r in range(1, rounds + 1)]))
        cells.append(spread([p99[(r, mode)][scenario] for r in range(1, rounds + 1)]))
    out(f"| {mode} | " + " | ".join(cells) + " |")
out()
out("Cost against `none`, per round (the modes of a round ran back to back), goal: at most 5%:")
out()
out("| | login | refresh |")
out("|---|---|---|")
for mode in ["events", "webhooks"]:
    cells = []
    for scenario in ["login", "refresh"]:
        costs = [1 - runs[(r, mode)][scenario] / runs[(r, "none")][scenario] for r in range(1, rounds + 1)]
        med = statistics.median(costs)
        verdict = "met" if med <= 0.05 else "**missed**"
        cells.append(f"{spread(costs, pct=True)} {verdict}")
    out(f"| {mode} | " + " | ".join(cells) + " |")
out()
if webhooks:
    rate = webhooks["deliveries"] / webhooks["seconds"]
    out("## Webhook delivery throughput")
    out()
    out(f"{webhooks['deliveries']:,} deliveries written to the outbox at once, all accepted by a local")
    out(f"receiver that checks every signature ({webhooks['forged']} forged): **{rate:,.0f} per second**")
    out(f"({webhooks['seconds']:.1f} s; the worker used {webhooks['worker_cpu_s']:.1f} s of CPU,")
    out(f"{1000 * webhooks['worker_cpu_s'] / webhooks['deliveries']:.3f} ms per delivery), with the default")
    out("`WORKER_CONCURRENCY=8` and `WORKER_PREFETCH=4`; the relay, RabbitMQ, PostgreSQL and the")
    out("receiver share the two cores.")
