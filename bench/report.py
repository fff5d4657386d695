"""The table of `just bench`: bench.sh's JSON lines from one run, with the
ratios of the performance targets. usage: report.py RESULTS_DIR
[--write RESULTS.md --command CMD [--commit SHA]] [--smoke]"""
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
parser.add_argument("--commit", help="the commit measured (default: HEAD)")
args = parser.parse_args()

class Round:
    """What one round (one directory of JSON lines) measured."""

    def __init__(self, folder):
        self.medians, self.compares, self.rss, self.worker = {}, {}, {}, {}
        self.argon, self.pgbench = [], []
        for path in sorted(Path(folder).glob("*.jsonl")):
            for line in path.read_text().splitlines():
                if line.strip():
                    self.take(json.loads(line))

    def take(self, o):
        kind = o.get("type")
        if kind == "median":
            self.medians[(o["label"], o["scenario"])] = o
        elif kind == "compare":
            self.compares[o["label"]] = o
        elif kind == "rss":
            self.rss[o["label"]] = o
        elif kind == "meta":
            metas[o["label"]] = o
        elif kind == "pgbench":
            self.pgbench.append(o["tps"])
        elif kind == "worker_rss":
            self.worker[o["label"]] = o
        elif "login_ceiling_rps" in o:
            self.argon.append(o)

    def get(self, label, scenario, key):
        row = self.medians.get((label, scenario))
        return None if row is None else row.get(key)

    def ceiling(self):
        values = [a["login_ceiling_rps"] for a in self.argon if a["impl"] == "rust-argon2"]
        return statistics.median(values) if values else None

    def tps(self):
        return statistics.median(self.pgbench) if self.pgbench else None


metas = {}
folders = sorted(Path(args.results).glob("round-*"), key=lambda p: int(p.name.split("-")[1]))
rounds = [Round(folder) for folder in folders] or [Round(args.results)]


def median_of(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def get(label, scenario, key):
    """The median over the rounds that ran it."""
    return median_of(r.get(label, scenario, key) for r in rounds)


def fmt(value, digits=1):
    return "-" if value is None else f"{value:,.{digits}f}"


lines = []
out = lines.append
out("| scenario | impl | req/s (median) | req/s range | p50 ms | p99 ms | errors | server CPU ms/req |")
out("|---|---|---|---|---|---|---|---|")
order = ["plain", "pgredis", "me", "mixed_me", "login", "mixed_login", "register", "refresh"]
keys = sorted({key for r in rounds for key in r.medians}, key=lambda k: (order.index(k[1]) if k[1] in order else 99, k[0]))
for label, scenario in keys:
    rps = [r.get(label, scenario, "rps") for r in rounds if r.get(label, scenario, "rps") is not None]
    spread = f"{min(rps):,.1f} to {max(rps):,.1f}" if len(rps) > 1 else "-"
    out(
        f"| {scenario} | {label} | {fmt(get(label, scenario, 'rps'))} | {spread} | {fmt(get(label, scenario, 'p50_ms'), 2)} "
        f"| {fmt(get(label, scenario, 'p99_ms'), 2)} | {fmt(get(label, scenario, 'errors'), 0)} "
        f"| {fmt(get(label, scenario, 'server_cpu_ms_per_req'), 3)} |"
    )

if args.smoke:
    print("\n".join(lines))
    medians = rounds[0].medians
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

def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


peer = get("fastapi", "me", "rps")
peer_storm_login = median_of(r.compares.get("fastapi", {}).get("login_rps_during_storm") for r in rounds)
mib = lambda kb: None if kb is None else kb / 1024


def storm(r, key):
    return r.compares.get("portcullis", {}).get(key)


# Each target's value in each round: a ratio within the round's pair.
per_round = {
    "me_floor": lambda r: ratio(r.get("portcullis", "me", "rps"), r.get("limit", "pgredis", "rps")),
    "me_floor_p99": lambda r: ratio(r.get("portcullis", "me", "p99_ms"), r.get("limit", "pgredis", "p99_ms")),
    "me_peer": lambda r: ratio(r.get("portcullis", "me", "rps"), peer),
    "storm_p99": lambda r: storm(r, "p99_ratio"),
    "storm_shares": lambda r: None
    if ratio(storm(r, "me_rps_under_storm"), storm(r, "me_rps_alone")) is None or ratio(storm(r, "login_rps_during_storm"), r.ceiling()) is None
    else ratio(storm(r, "me_rps_under_storm"), storm(r, "me_rps_alone")) + ratio(storm(r, "login_rps_during_storm"), r.ceiling()),
    "storm_login_p99": lambda r: r.get("portcullis", "mixed_login", "p99_ms"),
    "storm_login_peer": lambda r: ratio(storm(r, "login_rps_during_storm"), peer_storm_login),
    "login_ceiling": lambda r: ratio(r.get("portcullis", "login", "rps"), r.ceiling()),
    "refresh_pgbench": lambda r: ratio(r.get("portcullis", "refresh", "rps"), r.tps()),
    "rss_idle": lambda r: mib(r.rss.get("portcullis", {}).get("idle_kb")),
    "rss_peak": lambda r: mib(r.rss.get("portcullis", {}).get("peak_sampled_kb")),
    "worker_idle": lambda r: mib(r.worker.get("portcullis", {}).get("idle_kb")),
}


def target(name, key, goal, ok, unit="x"):
    values = [v for v in (per_round[key](r) for r in rounds) if v is not None]
    show = lambda v: f"{v:.1%}" if unit == "%" else f"{v:,.2f}{unit}"
    if not values:
        return f"| {name} | - | - | {goal} | ? |"
    value = statistics.median(values)
    spread = f"{show(min(values))} to {show(max(values))}" if len(values) > 1 else "-"
    verdict = "met" if ok(value) else "**missed**"
    return f"| {name} | {show(value)} | {spread} | {goal} | {verdict} |"


out("")
out(f"Each target's value is taken within each of the {len(rounds)} rounds (Portcullis and the floor,")
out("the ceiling or pgbench back to back); the median over the rounds is judged, the range beside it.")
out("")
out("| target | median | range over the rounds | goal | |")
out("|---|---|---|---|---|")
out(target("`/users/me` req/s / floor `/pgredis`", "me_floor", ">= 80%", lambda v: v >= 0.80, "%"))
out(target("`/users/me` p99 / floor p99", "me_floor_p99", "<= 1.3x", lambda v: v <= 1.3))
out(target("`/users/me` req/s / peer", "me_peer", ">= 10x", lambda v: v >= 10))
out(target("login / Argon2 ceiling", "login_ceiling", ">= 90%", lambda v: v >= 0.90, "%"))
out(target("storm: `/users/me` p99 / calm p99", "storm_p99", "<= 2x", lambda v: v <= 2))
out(target("storm: `/users/me` share + login share", "storm_shares", ">= 1.0", lambda v: v >= 1.0))
out(target("storm: login p99 (ms)", "storm_login_p99", "<= 600", lambda v: v <= 600, " ms"))
out(target("storm: logins / the peer's", "storm_login_peer", ">= 1.0x", lambda v: v >= 1.0))
out(target("refresh / pgbench tps", "refresh_pgbench", ">= 80%", lambda v: v >= 0.80, "%"))
out(target("api RSS idle", "rss_idle", "<= 16 MiB", lambda v: v <= 16, " MiB"))
out(target("api RSS peak", "rss_peak", "<= 64 MiB", lambda v: v <= 64, " MiB"))
out(target("worker RSS idle", "worker_idle", "<= 16 MiB", lambda v: v <= 16, " MiB"))
ceiling = median_of(r.ceiling() for r in rounds)
tps = median_of(r.tps() for r in rounds)
me, floor = get("portcullis", "me", "rps"), get("limit", "pgredis", "rps")
out("")
out(f"Argon2 ceiling {fmt(ceiling)} logins/s; pgbench -N -M prepared -c 16: {fmt(tps)} tps (medians over the rounds).")


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
    ("login during the /users/me storm", [("Portcullis", median_of(storm(r, "login_rps_during_storm") for r in rounds)), ("FastAPI peer", peer_storm_login), ("floor: Argon2 ceiling", ceiling)]),
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
    commit = args.commit or subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    text = f"""# Benchmark results

Measured by `{args.command}` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, commit `{commit}`:
Portcullis (release build), the FastAPI peer (1 uvicorn worker) and the
hyper floor of `../shared/baseline`, one after the other in one run, each
under the baseline's `bench.sh` ({meta.get('duration_s', '?')} s per run), in
{len(rounds)} rounds: each round runs Portcullis, the floor, the Argon2 ceiling and
pgbench back to back (the peer in the first round only).

Machine: {meta.get('nproc', '?')} cores ({meta.get('cpu_model', '?')}), Linux {kernel};
{meta.get('note', '')}.
Absolute numbers drift between machines and runs: compare within one run.

{table}
"""
    # The other benches' last results, each from its own file.
    for name, title in [("GROWTH.md", "Growth"), ("PASSKEYS.md", "Passkey sign-ins"), ("EVENTS.md", "Events and webhooks")]:
        other = Path(__file__).with_name(name)
        if other.exists():
            body = other.read_text().split("\n## ")[0].split("\n", 1)[1].strip()
            text += f"\n## {title} (from [`{name}`]({name}))\n\n{body}\n"
    # Where the time goes for the targets missed: profiles kept by hand.
    analysis = Path(__file__).with_name("ANALYSIS.md")
    if analysis.exists():
        text += "\n" + analysis.read_text()
    Path(args.write).write_text(text)
    print(f"\nwritten to {args.write}", file=sys.stderr)
