"""The table of `just bench`: bench.sh's JSON lines from one run, with the
ratios of the performance targets. usage: report.py RESULTS_DIR
[--write RESULTS.md --command CMD] [--smoke]"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

parser = argparse.ArgumentParser()
parser.add_argument("results")
parser.add_argument("--write")
parser.add_argument("--command", default="just bench")
parser.add_argument("--smoke", action="store_true")
args = parser.parse_args()

medians, compares, rss, metas, argon, pgbench, worker = {}, {}, {}, {}, [], [], {}
for path in sorted(Path(args.results).glob("*.jsonl")):
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        o = json.loads(line)
        kind = o.get("type")
        if kind == "median":
            medians[(o["label"], o["scenario"])] = o
        elif kind == "compare":
            compares[o["label"]] = o
        elif kind == "rss":
            rss[o["label"]] = o
        elif kind == "meta":
            metas[o["label"]] = o
        elif kind == "pgbench":
            pgbench.append(o["tps"])
        elif kind == "worker_rss":
            worker[o["label"]] = o
        elif "login_ceiling_rps" in o:
            argon.append(o)


def get(label, scenario, key):
    row = medians.get((label, scenario))
    return None if row is None else row.get(key)


def fmt(value, digits=1):
    return "-" if value is None else f"{value:,.{digits}f}"


lines = []
out = lines.append
out("| scenario | impl | req/s | p50 ms | p99 ms | errors | server CPU ms/req |")
out("|---|---|---|---|---|---|---|")
order = ["plain", "pgredis", "me", "mixed_me", "login", "mixed_login", "register", "refresh"]
for (label, scenario), row in sorted(
    medians.items(), key=lambda kv: (order.index(kv[0][1]) if kv[0][1] in order else 99, kv[0][0])
):
    out(
        f"| {scenario} | {label} | {fmt(row['rps'])} | {fmt(row['p50_ms'], 2)} | {fmt(row['p99_ms'], 2)} "
        f"| {fmt(row.get('errors'), 0)} | {fmt(row.get('server_cpu_ms_per_req'), 3)} |"
    )

if args.smoke:
    print("\n".join(lines))
    failed = [
        f"{label} {scenario}"
        for (label, scenario), row in medians.items()
        if not row["rps"] or row.get("errors")
    ]
    expected = len(os.environ.get("SCENARIOS", "me login refresh").split())
    if len(medians) < expected:
        failed.append(f"{expected - len(medians)} scenario(s) gave no result")
    print(f"bench smoke: {len(medians) - len(failed)} passed, {len(failed)} failed")
    sys.exit(1 if failed else 0)

ceiling = statistics.median(a["login_ceiling_rps"] for a in argon if a["impl"] == "rust-argon2") if argon else None
tps = statistics.median(pgbench) if pgbench else None
me, me_p99 = get("portcullis", "me", "rps"), get("portcullis", "me", "p99_ms")
floor, floor_p99 = get("limit", "pgredis", "rps"), get("limit", "pgredis", "p99_ms")
peer = get("fastapi", "me", "rps")
storm = compares.get("portcullis", {})
mem = rss.get("portcullis", {})


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def target(name, value, goal, ok, unit="x"):
    shown = "-" if value is None else (f"{value:.1%}" if unit == "%" else f"{value:.2f}{unit}")
    verdict = "?" if value is None else ("met" if ok(value) else "**missed**")
    return f"| {name} | {shown} | {goal} | {verdict} |"


out("")
out("| target | measured | goal | |")
out("|---|---|---|---|")
out(target("`/users/me` req/s / floor `/pgredis`", ratio(me, floor), ">= 70%", lambda v: v >= 0.70, "%"))
out(target("`/users/me` p99 / floor p99", ratio(me_p99, floor_p99), "<= 1.5x", lambda v: v <= 1.5))
out(target("`/users/me` req/s / peer", ratio(me, peer), ">= 10x", lambda v: v >= 10))
out(target("storm: `/users/me` p99 / calm p99", storm.get("p99_ratio"), "<= 2x", lambda v: v <= 2))
out(target("storm: `/users/me` req/s / calm", ratio(storm.get("me_rps_under_storm"), storm.get("me_rps_alone")), ">= 50%", lambda v: v >= 0.5, "%"))
out(target("storm: login / Argon2 ceiling", ratio(storm.get("login_rps_during_storm"), ceiling), ">= 85%", lambda v: v >= 0.85, "%"))
out(target("login / Argon2 ceiling", ratio(get("portcullis", "login", "rps"), ceiling), ">= 90%", lambda v: v >= 0.90, "%"))
out(target("refresh / pgbench tps", ratio(get("portcullis", "refresh", "rps"), tps), ">= 80%", lambda v: v >= 0.80, "%"))
mib = lambda kb: None if kb is None else kb / 1024
out(target("api RSS idle (MiB)", mib(mem.get("idle_kb")), "<= 16", lambda v: v <= 16, " MiB"))
out(target("api RSS peak (MiB)", mib(mem.get("peak_sampled_kb")), "<= 64", lambda v: v <= 64, " MiB"))
out(target("worker RSS idle (MiB)", mib(worker.get("portcullis", {}).get("idle_kb")), "<= 16", lambda v: v <= 16, " MiB"))
out("")
out(f"Argon2 ceiling {fmt(ceiling)} logins/s; pgbench -N -M prepared -c 16: {fmt(tps)} tps.")



def chart(rows):
    """A horizontal bar chart, one group per comparison, each bar's length
    its share of the group's largest value, labelled with the value: the
    ratios at a glance, whatever the scale of each scenario."""
    colours = {"portcullis": "#2f6fb3", "fastapi": "#d9822b", "floor": "#7a7a7a"}
    bar, gap, left, width = 18, 14, 190, 430
    rows = [(title, [(name, value) for name, value in bars if value]) for title, bars in rows]
    rows = [(title, bars) for title, bars in rows if bars]
    height = 40 + sum(len(bars) * bar + gap + 20 for _, bars in rows) + 30
    svg = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 140}" height="{height}" '
        'font-family="sans-serif" font-size="12">',
        f'<text x="10" y="22" font-size="14" font-weight="bold">Portcullis, the FastAPI peer and the floor, side by side</text>',
    ]
    y = 40
    for title, bars in rows:
        top = max(value for _, value in bars)
        svg.append(f'<text x="10" y="{y + 13}" font-weight="bold">{title}</text>')
        y += 20
        for name, value in bars:
            kind = "portcullis" if name.startswith("Portcullis") else "fastapi" if name.startswith("FastAPI") else "floor"
            length = max(1, round(width * value / top))
            svg.append(f'<text x="{left - 8}" y="{y + 13}" text-anchor="end">{name}</text>')
            svg.append(f'<rect x="{left}" y="{y}" width="{length}" height="{bar - 4}" fill="{colours[kind]}"/>')
            svg.append(f'<text x="{left + length + 6}" y="{y + 12}">{value:,.0f} ({value / top:.0%})</text>')
            y += bar
        y += gap
    svg.append(f'<text x="10" y="{height - 10}" fill="#555">req/s (logins/s, tps): each bar as a share of the largest in its group</text>')
    svg.append("</svg>")
    return "\n".join(svg) + "\n"


comparisons = [
    ("GET /users/me", [("Portcullis", me), ("FastAPI peer", peer), ("floor: hyper + PG + Redis", floor)]),
    ("POST /auth/login", [("Portcullis", get("portcullis", "login", "rps")), ("FastAPI peer", get("fastapi", "login", "rps")), ("floor: Argon2 ceiling", ceiling)]),
    ("login during the /users/me storm", [("Portcullis", storm.get("login_rps_during_storm")), ("FastAPI peer", compares.get("fastapi", {}).get("login_rps_during_storm")), ("floor: Argon2 ceiling", ceiling)]),
    ("POST /auth/refresh", [("Portcullis", get("portcullis", "refresh", "rps")), ("FastAPI peer", get("fastapi", "refresh", "rps")), ("floor: pgbench tps", tps)]),
    ("POST /auth/register", [("Portcullis", get("portcullis", "register", "rps")), ("FastAPI peer", get("fastapi", "register", "rps")), ("floor: Argon2 ceiling", ceiling)]),
]

table = "\n".join(lines)
print(table)
if args.write:
    svg_path = Path(args.write).with_suffix(".svg")
    svg_path.write_text(chart(comparisons))
    table = f"![Portcullis, the peer and the floor, side by side]({svg_path.name})\n\n" + table
    meta = next(iter(metas.values()), {})
    kernel = platform.release()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    text = f"""# Benchmark results

Measured by `{args.command}` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, commit `{commit}`:
Portcullis (release build), the FastAPI peer (1 uvicorn worker) and the
hyper floor of `../shared/baseline`, one after the other in one run, each
under the baseline's `bench.sh` ({meta.get('duration_s', '?')} s per run,
{meta.get('repeat', '?')} runs per scenario, medians shown).

Machine: {meta.get('nproc', '?')} cores ({meta.get('cpu_model', '?')}), Linux {kernel};
{meta.get('note', '')}.
Absolute numbers drift between machines and runs: compare within one run.

{table}
"""
    # Where the time goes for the targets missed: profiles kept by hand.
    analysis = Path(__file__).with_name("ANALYSIS.md")
    if analysis.exists():
        text += "\n" + analysis.read_text()
    Path(args.write).write_text(text)
    print(f"\nwritten to {args.write}", file=sys.stderr)
