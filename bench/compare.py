#!/usr/bin/env python3
"""A/B comparison of two builds (or settings) of `gpuhour serve` on the `orders` load.

One run of bench/orders.py is one sample on a host whose speed drifts by
±10 % between runs, so a change worth 5 % cannot be seen in it. This seeds the
market once, then runs the headline load (every order on one programme) with
each variant in turn, in the order A B B A A B …, restarting the service for
each run, and prints each variant's orders/s and CPU per 1,000 orders per
round, their medians, and the median of the per-round B ÷ A ratios (a ratio
of two runs a few seconds apart, which the host's drift hardly moves).

    python3 bench/compare.py --a target/release/gpuhour --b /tmp/other/gpuhour [--b-env KEY=VALUE ...]
                             [--rounds 3] [--seconds 15] [--clients 64]

`--b` defaults to `--a`, so `--b-env` alone compares two settings of one
build. `gpuhour verify` must be clean at the end.
"""

import argparse
import asyncio
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import aiohttp  # noqa: E402  (orders.py installs it when missing)

from orders import (ADMIN, DB, LOADGEN, LOADGEN_MANIFEST, PG, PORTS, ROOT, check_ledger, load, per_thousand,  # noqa: E402
                    psql, seed, start_service, stop_service)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", default=os.path.join(ROOT, "target", "release", "gpuhour"))
    ap.add_argument("--b")
    ap.add_argument("--a-env", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--b-env", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--tenants", type=int, default=1000)
    ap.add_argument("--providers", type=int, default=50)
    args = ap.parse_args()
    args.b = args.b or args.a

    import subprocess
    subprocess.run(["cargo", "build", "--release", "--quiet", "--manifest-path", LOADGEN_MANIFEST], check=True)
    psql(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    env = dict(os.environ, DATABASE_URL=f"{PG}/{DB}", GPUHOUR_SANDBOX="1",
               GPUHOUR_JWT_SECRET="bench-secret-bench-secret-bench-secret", GPUHOUR_TOKEN_TTL_SECONDS="7200",
               GPUHOUR_ADMIN_EMAIL=ADMIN[0], GPUHOUR_ADMIN_PASSWORD=ADMIN[1], GPUHOUR_DB_POOL_SIZE="32",
               GPUHOUR_SIGNUPS_PER_ADDRESS_PER_HOUR="0", RUST_LOG="warn")
    variants = {
        "A": (args.a, dict(env, **dict(kv.split("=", 1) for kv in args.a_env))),
        "B": (args.b, dict(env, **dict(kv.split("=", 1) for kv in args.b_env))),
    }
    market_file = os.path.join(ROOT, "bench-results", "compare-market.json")
    os.makedirs(os.path.dirname(market_file), exist_ok=True)

    server = start_service(variants["A"][0], variants["A"][1], PORTS[0])
    try:
        async def seed_market():
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=32)) as s:
                return await seed(s, args.tenants, args.providers, 1)

        hot, _ = asyncio.run(seed_market())
        psql("ANALYZE", DB)
        with open(market_file, "w") as f:
            json.dump(hot, f)
    finally:
        stop_service(server)

    results = {"A": [], "B": []}
    order = ["A", "B", "B", "A"]
    for r in range(args.rounds):
        for name in (order[2 * (r % 2):] + order[:2 * (r % 2)])[:2]:
            binary, variant_env = variants[name]
            server = start_service(binary, variant_env, PORTS[0])
            try:
                run = load(market_file, [PORTS[0]], args.clients, args.seconds, [server.pid])
            finally:
                stop_service(server)
            cpu = run["cpu_seconds"]["service"] + run["cpu_seconds"]["postgres"]
            row = {"orders_per_second": run["accepted_per_second"], "p99_ms": run["latency_ms"]["p99"],
                   "cpu_per_1000": per_thousand(cpu, run["accepted"]),
                   "service_cpu_per_1000": per_thousand(run["cpu_seconds"]["service"], run["accepted"]),
                   "server_errors": run["server_errors"], "rejections": run["rejections"],
                   "orders_per_batch": run["profile"]["mean_orders_per_batch"]}
            results[name].append(row)
            print(f"round {r + 1} {name}: {row}", file=sys.stderr, flush=True)
    check = check_ledger(variants["A"][0], variants["A"][1])

    ratios = [b["orders_per_second"] / a["orders_per_second"] for a, b in zip(results["A"], results["B"])]
    print(f"{'':<4} {'orders/s (median)':>18} {'CPU-s/1k orders':>16} {'service CPU-s/1k':>17} {'p99 ms':>8}")
    for name in ("A", "B"):
        rows = results[name]
        print(f"{name:<4} {statistics.median(r['orders_per_second'] for r in rows):>18.1f} "
              f"{statistics.median(r['cpu_per_1000'] for r in rows):>16.3f} "
              f"{statistics.median(r['service_cpu_per_1000'] for r in rows):>17.3f} "
              f"{statistics.median(r['p99_ms'] for r in rows):>8.1f}")
    print(f"B ÷ A per round: {', '.join(f'{x:.3f}' for x in ratios)}; median {statistics.median(ratios):.3f}")
    print(f"verify clean: {check['verify_clean']}, oversold hours: {check['oversold_hours']}, "
          f"5xx: {sum(r['server_errors'] for rows in results.values() for r in rows)}")
    if not check["verify_clean"] or check["oversold_hours"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
