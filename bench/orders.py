#!/usr/bin/env python3
"""The `orders` scenario of ../shared/BENCH.md, end to end.

Builds and starts `gpuhour serve` (release) on a scratch database, seeds a
market through the HTTP API (one KRW programme, 1,000 tenants each with a
deposit and a grant, 50 providers with 4 listings of 512 GPUs over 30 days),
runs C clients for S seconds placing subsidised orders, runs pgbench's TPC-B
with the same clients and duration on the same server, checks the ledger
(`gpuhour verify`) and capacity, prints one table and writes JSON.

    python3 bench/orders.py [--clients 64] [--seconds 30] [--tenants 1000]
"""

import argparse
import asyncio
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone

try:
    import aiohttp
except ImportError:
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", "aiohttp"])
    import aiohttp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PG = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
DB = "gpuhour_bench"
PORT = 18181
BASE = f"http://127.0.0.1:{PORT}"
ADMIN = ("bench-admin@gpuhour.bench", "bench-admin-password")
PASSWORD = "bench-password-123"


def psql(sql, db="postgres"):
    return subprocess.run(["psql", f"{PG}/{db}", "-Atqc", sql], check=True, capture_output=True, text=True).stdout.strip()


async def call(session, method, path, token=None, body=None, key=None):
    headers = {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if key:
        headers["Idempotency-Key"] = key
    async with session.request(method, BASE + path, json=body, headers=headers) as r:
        text = await r.text()
        return r.status, (json.loads(text) if text else None)


async def ok(session, method, path, token=None, body=None, expect=(200, 201)):
    status, data = await call(session, method, path, token, body)
    if status not in expect:
        raise RuntimeError(f"{method} {path}: {status} {data}")
    return data


async def gather_limited(coros, limit=16):
    sem = asyncio.Semaphore(limit)

    async def run(c):
        async with sem:
            return await c

    return await asyncio.gather(*(run(c) for c in coros))


async def login(session, email, password):
    return (await ok(session, "POST", "/v1/auth/token", body={"email": email, "password": password}))["access_token"]


async def seed(session, tenants_n, providers_n):
    admin = await login(session, *ADMIN)
    now = datetime.fromisoformat((await ok(session, "GET", "/v1/sandbox/clock", admin))["now"].replace("Z", "+00:00"))
    start = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    programme = await ok(session, "POST", "/v1/programmes", admin, {
        "name": "Bench programme", "sponsor": "Bench", "fiscal_year": 2026, "currency": "KRW",
        "budget": "1000000000000", "starts_at": (start - timedelta(days=1)).isoformat(),
        "ends_at": (start + timedelta(days=400)).isoformat(), "default_rate": "0.7",
        "rates_by_category": {"sme": "0.8", "university": "0.9"}})

    async def provider(i):
        email = f"p{i}@bench.example"
        await ok(session, "POST", "/v1/auth/signup", body={"org_name": f"Provider {i}", "org_kind": "provider",
                                                           "email": email, "password": PASSWORD})
        token = await login(session, email, PASSWORD)
        ids = []
        for j, (model, price) in enumerate([("H100-SXM5-80GB", "3800"), ("H200-SXM-141GB", "5200"),
                                            ("A100-SXM4-80GB", "2100"), ("L40S-48GB", "1500")]):
            l = await ok(session, "POST", "/v1/listings", token, {
                "gpu_model": model, "gpu_memory_gb": 80, "gpus": 512, "region": f"kr-{i % 5}",
                "price_per_gpu_hour": price, "currency": "KRW", "available_from": start.isoformat(),
                "available_until": (start + timedelta(days=30)).isoformat()})
            ids.append(l["id"])
        return ids

    listings = [l for ids in await gather_limited([provider(i) for i in range(providers_n)]) for l in ids]

    async def tenant(i):
        email = f"t{i}@bench.example"
        user = await ok(session, "POST", "/v1/auth/signup", body={
            "org_name": f"Tenant {i}", "org_kind": "tenant", "org_category": ["sme", "university", "enterprise"][i % 3],
            "email": email, "password": PASSWORD})
        org = user["org_id"]
        # A declared category sets no rate until finance confirms it.
        await ok(session, "POST", f"/v1/organisations/{org}/category", admin, {"category": user["org_category"]})
        await ok(session, "POST", "/v1/deposits", admin, {"tenant_org_id": org, "amount": "100000000",
                                                          "currency": "KRW", "reference": f"bench-{i}"})
        grant = await ok(session, "POST", f"/v1/programmes/{programme['id']}/grants", admin, {
            "tenant_org_id": org, "amount": "50000000", "valid_from": (start - timedelta(days=1)).isoformat(),
            "valid_until": (start + timedelta(days=60)).isoformat()})
        return {"token": await login(session, email, PASSWORD), "grant": grant["id"]}

    tenants = await gather_limited([tenant(i) for i in range(tenants_n)])
    return start, listings, tenants


async def load(clients, seconds, start, listings, tenants):
    results = []
    deadline = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def worker():
            rng = random.Random()
            while time.monotonic() < deadline:
                t = rng.choice(tenants)
                begin = start + timedelta(hours=rng.randrange(0, 30 * 24 - 24))
                body = {"listing_id": rng.choice(listings), "gpus": rng.randint(1, 8), "start": begin.isoformat(),
                        "end": (begin + timedelta(hours=rng.randint(1, 24))).isoformat(), "grant_id": t["grant"]}
                t0 = time.perf_counter()
                status, data = await call(session, "POST", "/v1/orders", t["token"], body, str(uuid.uuid4()))
                results.append((status, (data or {}).get("code"), time.perf_counter() - t0))

        await asyncio.gather(*(worker() for _ in range(clients)))
    return results


def pgbench(clients, seconds):
    psql("DROP DATABASE IF EXISTS gpuhour_pgbench")
    psql("CREATE DATABASE gpuhour_pgbench")
    subprocess.run(["pgbench", "-i", "-s", "10", "-q", f"{PG}/gpuhour_pgbench"], check=True, capture_output=True)
    out = subprocess.run(["pgbench", "-c", str(clients), "-j", "2", "-T", str(seconds), "-M", "prepared",
                          f"{PG}/gpuhour_pgbench"], check=True, capture_output=True, text=True).stdout
    tps = float(re.search(r"tps = ([0-9.]+)", out).group(1))
    psql("DROP DATABASE gpuhour_pgbench")
    return tps


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--tenants", type=int, default=1000)
    ap.add_argument("--providers", type=int, default=50)
    ap.add_argument("--json", default=os.path.join(ROOT, "bench-results", "orders.json"))
    args = ap.parse_args()

    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    binary = os.path.join(ROOT, "target", "release", "gpuhour")
    psql(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    env = dict(os.environ, DATABASE_URL=f"{PG}/{DB}", GPUHOUR_BIND=f"127.0.0.1:{PORT}", GPUHOUR_SANDBOX="1",
               GPUHOUR_JWT_SECRET="bench-secret-bench-secret-bench-secret", GPUHOUR_TOKEN_TTL_SECONDS="7200",
               GPUHOUR_ADMIN_EMAIL=ADMIN[0], GPUHOUR_ADMIN_PASSWORD=ADMIN[1], GPUHOUR_DB_POOL_SIZE="32", GPUHOUR_SIGNUPS_PER_ADDRESS_PER_HOUR="0",
               RUST_LOG="warn")
    server = subprocess.Popen([binary, "serve"], env=env)
    try:
        for _ in range(100):
            try:
                subprocess.run(["curl", "-sf", f"{BASE}/readyz"], check=True, capture_output=True)
                break
            except subprocess.CalledProcessError:
                time.sleep(0.2)

        async def run():
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=32)) as s:
                t0 = time.time()
                seeded = await seed(s, args.tenants, args.providers)
                print(f"seeded in {time.time() - t0:.0f} s", file=sys.stderr)
            return seeded

        start, listings, tenants = asyncio.run(run())
        results = asyncio.run(load(args.clients, args.seconds, start, listings, tenants))
        rss_kb = int(re.search(r"VmHWM:\s+(\d+)", open(f"/proc/{server.pid}/status").read()).group(1))
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
    tps = pgbench(args.clients, args.seconds)

    verify = subprocess.run([binary, "verify"], env=env, capture_output=True, text=True)
    oversold = int(psql("SELECT count(*) FROM listing_hours WHERE reserved > capacity", DB))
    accepted = [r for r in results if r[0] == 201]
    codes = {}
    for status, code, _ in results:
        if status != 201:
            codes[f"{status} {code}"] = codes.get(f"{status} {code}", 0) + 1
    lat = sorted(r[2] * 1000 for r in results)
    q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))]
    figures = {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()} cores, {os.uname().machine}",
        "clients": args.clients, "seconds": args.seconds,
        "orders_per_second": round(len(accepted) / args.seconds, 1),
        "requests": len(results), "rejections": codes,
        "latency_ms": {"p50": round(q(0.5), 1), "p95": round(q(0.95), 1), "p99": round(q(0.99), 1), "max": round(lat[-1], 1)},
        "peak_rss_mib": round(rss_kb / 1024, 1),
        "pgbench_tps": round(tps, 1),
        "ratio": round(len(accepted) / args.seconds / tps, 3),
        "verify_clean": verify.returncode == 0,
        "oversold_hours": oversold,
    }
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(figures, f, indent=2)
    print(f"{'figure':<22} value")
    for k in ["clients", "seconds", "requests", "orders_per_second", "rejections", "latency_ms", "peak_rss_mib",
              "pgbench_tps", "ratio", "verify_clean", "oversold_hours"]:
        print(f"{k:<22} {figures[k]}")
    if not figures["verify_clean"] or oversold:
        print("FAILED RUN: the ledger or capacity is broken", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
