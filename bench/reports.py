#!/usr/bin/env python3
"""The `reports` scenario of ../shared/BENCH.md, end to end.

Builds the release binary, seeds a scratch database (`gpuhour_reports`) with
`gpuhour seed-ledger --orders N` — in-process, through the service's own
posting code: 1,000 tenants with deposits and grants, 50 providers with 4
listings each, one KRW programme and N orders placed over 30 days of the
sandbox clock, a thousand per transaction — then starts `gpuhour serve` on it
and times, median of 10 calls each over HTTP (keep-alive, one client):

  * the trial balance             GET /v1/reports/trial-balance
  * the programme report by tenant GET /v1/reports/programmes/{id}?group_by=tenant
  * a tenant's month statement     GET /v1/reports/statements/{org}?from=&to=

and pgbench's TPS on the same server in the same run (the usual reference).
Prints one table, writes bench-results/reports.json.

    python3 bench/reports.py [--orders 1000000] [--quick]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from datetime import datetime, timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from orders import PG, ROOT, psql, start_service, stop_service, url, pgbench  # noqa: E402

DB = "gpuhour_reports"
PORT = 18191
ADMIN = ("reports-admin@gpuhour.bench", "reports-admin-password")
TARGETS_MS = {"trial_balance": 200, "programme_report_by_tenant": 500, "tenant_month_statement": 100}


def call(path, token=None, body=None):
    request = urllib.request.Request(url(PORT) + path, method="POST" if body is not None else "GET")
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    data = json.dumps(body).encode() if body is not None else None
    with urllib.request.urlopen(request, data=data, timeout=120) as response:
        return json.loads(response.read())


def median_ms(path, token, calls=10):
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        call(path, token)
        times.append((time.perf_counter() - t0) * 1000)
    return round(statistics.median(times), 1), [round(t, 1) for t in times]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orders", type=int, default=1_000_000)
    ap.add_argument("--tenants", type=int, default=1_000)
    ap.add_argument("--quick", action="store_true", help="a smoke run: 20,000 orders, 100 tenants")
    ap.add_argument("--reuse", action="store_true", help="keep a database seeded by an earlier run")
    ap.add_argument("--json", default=os.path.join(ROOT, "bench-results", "reports.json"))
    args = ap.parse_args()
    if args.quick:
        args.orders, args.tenants = 20_000, 100

    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    binary = os.path.join(ROOT, "target", "release", "gpuhour")
    env = dict(os.environ, DATABASE_URL=f"{PG}/{DB}", GPUHOUR_SANDBOX="1",
               GPUHOUR_JWT_SECRET="bench-secret-bench-secret-bench-secret", GPUHOUR_TOKEN_TTL_SECONDS="7200",
               GPUHOUR_ADMIN_EMAIL=ADMIN[0], GPUHOUR_ADMIN_PASSWORD=ADMIN[1],
               # The clock moved a month: the settler would settle it all while the reports are timed.
               GPUHOUR_SETTLE_INTERVAL_SECONDS="0", GPUHOUR_STATEMENT_TIMEOUT_MS="0", RUST_LOG="warn")
    seeded_file = os.path.join(ROOT, "bench-results", "reports-seeded.json")
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    os.makedirs(os.path.dirname(seeded_file), exist_ok=True)
    if not (args.reuse and os.path.exists(seeded_file)):
        psql(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        print(f"seeding {args.orders} orders", file=sys.stderr)
        out = subprocess.run([binary, "seed-ledger", "--orders", str(args.orders), "--tenants", str(args.tenants)],
                             env=env, check=True, capture_output=True, text=True).stdout
        with open(seeded_file, "w") as f:
            f.write(out)
    with open(seeded_file) as f:
        seeded = json.load(f)
    psql("VACUUM ANALYZE", DB)
    postings = int(psql("SELECT count(*) FROM postings", DB))
    orders = int(psql("SELECT count(*) FROM orders", DB))

    server = start_service(binary, env, PORT)
    try:
        token = call("/v1/auth/token", body={"email": ADMIN[0], "password": ADMIN[1]})["access_token"]
        window = urllib.parse.urlencode({"from": seeded["month_from"], "to": seeded["month_to"]})
        paths = {
            "trial_balance": "/v1/reports/trial-balance",
            "programme_report_by_tenant": f"/v1/reports/programmes/{seeded['programme_id']}?group_by=tenant",
            "tenant_month_statement": f"/v1/reports/statements/{seeded['tenant_org_id']}?{window}",
        }
        timings = {name: median_ms(path, token) for name, path in paths.items()}
        statement = call(paths["tenant_month_statement"], token)
        statement_lines = sum(len(s["lines"]) for s in statement["sections"])
    finally:
        stop_service(server)
    print("pgbench", file=sys.stderr)
    reference = pgbench(16, 10)

    figures = {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()} cores, {os.uname().machine}, {os.uname().release}",
        "orders": orders, "postings": postings, "orders_refused_while_seeding": seeded["orders_refused"],
        "seeding_seconds": round(seeded["seconds"], 1),
        "statement_lines": statement_lines,
        "median_ms": {name: t[0] for name, t in timings.items()},
        "targets_ms": TARGETS_MS,
        "calls_ms": {name: t[1] for name, t in timings.items()},
        "pgbench_tps_16_clients": reference["tps"],
    }
    with open(args.json, "w") as f:
        json.dump(figures, f, indent=2)
    print(f"{'figure':<40} value")
    for k in ["orders", "postings", "seeding_seconds", "statement_lines", "pgbench_tps_16_clients"]:
        print(f"{k:<40} {figures[k]}")
    for name, ms in figures["median_ms"].items():
        verdict = "ok" if ms <= TARGETS_MS[name] else "over target"
        print(f"{name:<40} {ms} ms median of 10 (target {TARGETS_MS[name]} ms: {verdict})")


if __name__ == "__main__":
    main()
