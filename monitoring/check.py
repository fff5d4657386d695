#!/usr/bin/env python3
"""Asks a running Prometheus for every query of the Grafana dashboard and
every alert expression, and fails unless each one returns data.

    python3 monitoring/check.py http://127.0.0.1:9090

`just monitoring-check` starts Prometheus against a native `just run`
(api on :8000, worker on :9100), makes some traffic and runs this.
"""
import json
import pathlib
import sys
import urllib.parse
import urllib.request

HERE = pathlib.Path(__file__).resolve().parent


def expressions():
    dashboard = json.loads((HERE / "grafana/dashboards/portcullis.json").read_text())
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"].replace("$__rate_interval", "5m")


def query(base, expr):
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.load(response)
    if body.get("status") != "success":
        raise RuntimeError(f"{expr}: {body}")
    return body["data"]["result"]


def main():
    base = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:9090"
    empty = []
    for title, expr in expressions():
        if not query(base, expr):
            empty.append(f"{title}: {expr}")
    if empty:
        print("queries without data:\n  " + "\n  ".join(empty))
        sys.exit(1)
    print("every dashboard query returns data")


if __name__ == "__main__":
    main()
