#!/usr/bin/env python3
"""The `orders` scenario of ../shared/BENCH.md, end to end.

Builds and starts `gpuhour serve` (release) on a scratch database and seeds a
market through the HTTP API: 1,000 tenants each with a deposit, 50 providers
with 4 listings of 512 GPUs over 30 days, and 64 KRW programmes. Every tenant
has a grant from the first programme (the hot-spot layout, the headline) and
one from programme `i mod 64` (the spread layout). The seeded market is written
to two JSON files that the compiled load generator (bench/loadgen) reads.

Then, each for S seconds with C clients:
  1. one service process, every grant from one programme (the headline);
  2. one service process, grants spread over 64 programmes (hot-spot ratio);
  3. two service processes on the same database, the clients split between them;
  4. pgbench's TPC-B with the same clients and duration on the same server.
After each order run, `gpuhour verify` must be clean and no hour may be
oversold. CPU-seconds of the service and of PostgreSQL's backends are read
from /proc before and after runs 1 and 4. Prints one table, writes JSON.

    python3 bench/orders.py [--clients 64] [--seconds 30] [--tenants 1000] [--programmes 64] [--quick]
"""

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone

try:
    import aiohttp
except ImportError:
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", "aiohttp"])
    import aiohttp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PG = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
DB = "gpuhour_bench"
PGBENCH_DB = "gpuhour_pgbench"
PORTS = (18181, 18182)
ADMIN = ("bench-admin@gpuhour.bench", "bench-admin-password")
PASSWORD = "bench-password-123"
LOADGEN_MANIFEST = os.path.join(ROOT, "bench", "loadgen", "Cargo.toml")
LOADGEN = os.path.join(ROOT, "bench", "loadgen", "target", "release", "gpuhour-loadgen")
TICKS = os.sysconf("SC_CLK_TCK")


def url(port):
    return f"http://127.0.0.1:{port}"


def psql(sql, db="postgres"):
    return subprocess.run(["psql", f"{PG}/{db}", "-Atqc", sql], check=True, capture_output=True, text=True).stdout.strip()


# ---------------------------------------------------------------- seeding (HTTP, once; not timed)

async def call(session, method, path, token=None, body=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with session.request(method, url(PORTS[0]) + path, json=body, headers=headers) as r:
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


async def seed(session, tenants_n, providers_n, programmes_n):
    """Seeds the market; returns (hot, spread): the load generator's two market files' contents."""
    admin = await login(session, *ADMIN)
    now = datetime.fromisoformat((await ok(session, "GET", "/v1/sandbox/clock", admin))["now"].replace("Z", "+00:00"))
    start = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)

    async def programme(i):
        p = await ok(session, "POST", "/v1/programmes", admin, {
            "name": f"Bench programme {i}", "sponsor": "Bench", "fiscal_year": 2026, "currency": "KRW",
            "budget": "1000000000000", "starts_at": (start - timedelta(days=1)).isoformat(),
            "ends_at": (start + timedelta(days=400)).isoformat(), "default_rate": "0.7",
            "rates_by_category": {"sme": "0.8", "university": "0.9"}})
        return p["id"]

    programmes = await gather_limited([programme(i) for i in range(programmes_n)], limit=4)

    async def provider(i):
        email = f"p{i}@bench.example"
        await ok(session, "POST", "/v1/auth/signup", body={"org_name": f"Provider {i}", "org_kind": "provider",
                                                           "email": email, "password": PASSWORD})
        token = await login(session, email, PASSWORD)
        listings = []
        for model, price in [("H100-SXM5-80GB", "3800"), ("H200-SXM-141GB", "5200"),
                             ("A100-SXM4-80GB", "2100"), ("L40S-48GB", "1500")]:
            l = await ok(session, "POST", "/v1/listings", token, {
                "gpu_model": model, "gpu_memory_gb": 80, "gpus": 512, "region": f"kr-{i % 5}",
                "price_per_gpu_hour": price, "currency": "KRW", "available_from": start.isoformat(),
                "available_until": (start + timedelta(days=30)).isoformat()})
            listings.append({"id": l["id"], "available_from": l["available_from"],
                             "available_until": l["available_until"]})
        return listings

    listings = [l for ls in await gather_limited([provider(i) for i in range(providers_n)]) for l in ls]

    async def grant(programme_id, org):
        g = await ok(session, "POST", f"/v1/programmes/{programme_id}/grants", admin, {
            "tenant_org_id": org, "amount": "50000000", "valid_from": (start - timedelta(days=1)).isoformat(),
            "valid_until": (start + timedelta(days=60)).isoformat()})
        return g["id"]

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
        hot = await grant(programmes[0], org)
        spread = hot if i % programmes_n == 0 else await grant(programmes[i % programmes_n], org)
        token = await login(session, email, PASSWORD)
        return {"token": token, "grant_id": hot}, {"token": token, "grant_id": spread}

    tenants = await gather_limited([tenant(i) for i in range(tenants_n)])
    return ({"tenants": [h for h, _ in tenants], "listings": listings},
            {"tenants": [s for _, s in tenants], "listings": listings})


# ---------------------------------------------------------------- CPU accounting from /proc

def cpu_ticks(pid):
    """utime + stime of a process (all its threads), in clock ticks; None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return None


def _is_postmaster(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
        return "(postgres)" in text and text.rsplit(")", 1)[1].split()[1] == "1"
    except OSError:
        return False


class CpuMeter:
    """CPU-seconds of some processes plus the PostgreSQL backends connected to one database, over a run.

    A sampler thread lists the postmaster's children every 0.1 s: backends come and go (pgbench's
    exit with it), and a process's counters vanish with it, so the last sample of each is kept.
    Only backends of the named database are counted: other users of the same server (tests run
    against it) are not ours. The server's shared processes (WAL writer, checkpointer) are left
    out for the same reason; backends write and flush their own commits' WAL.
    """

    def __init__(self, database, pids=()):
        self.database = database
        self.pids = list(pids)
        # None when PostgreSQL is not a local process (another host, a container): backends then count 0.
        self.postmaster = next((int(p) for p in os.listdir("/proc") if p.isdigit() and _is_postmaster(int(p))), None)
        if self.postmaster is None:
            print("no local PostgreSQL server process: its CPU is not counted", file=sys.stderr)
        self.first = {}
        self.last = {}
        self.ours = {}
        self.stop = threading.Event()

    def _backends(self):
        if self.postmaster is None:
            return []
        try:
            with open(f"/proc/{self.postmaster}/task/{self.postmaster}/children") as f:
                children = [int(p) for p in f.read().split()]
        except OSError:
            children = []
        found = []
        for pid in children:
            if pid not in self.ours:
                try:
                    with open(f"/proc/{pid}/cmdline") as f:
                        words = f.read().replace("\0", " ").split()
                    # "postgres: 15/main: USER DATABASE HOST(PORT) STATE"
                    self.ours[pid] = len(words) > 3 and words[3] == self.database
                except OSError:
                    self.ours[pid] = False
            if self.ours[pid]:
                found.append(pid)
        return found

    def _sample(self, initial=False):
        for pid in self.pids + self._backends():
            ticks = cpu_ticks(pid)
            if ticks is None:
                continue
            if pid not in self.first:
                # A process seen for the first time after the start did all its work inside the run.
                self.first[pid] = ticks if initial else 0
            self.last[pid] = ticks

    def _loop(self):
        while not self.stop.wait(0.1):
            self._sample()

    def __enter__(self):
        self._sample(initial=True)
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        self._sample()

    def seconds(self, pids=None):
        chosen = self.last.keys() if pids is None else [p for p in self.last if p in pids]
        return sum(self.last[p] - self.first[p] for p in chosen) / TICKS

    def service_seconds(self):
        return self.seconds(set(self.pids))

    def postgres_seconds(self):
        return self.seconds(set(self.last) - set(self.pids))


def rss_peak_sampler(pid, stop, into):
    """Highest VmRSS (KiB) of a process while `stop` is unset: the order phase only, not the seeding."""
    while not stop.wait(0.1):
        try:
            with open(f"/proc/{pid}/status") as f:
                kib = int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))
            into[0] = max(into[0], kib)
        except (OSError, AttributeError):
            pass


# ---------------------------------------------------------------- runs

def start_service(binary, env, port):
    server = subprocess.Popen([binary, "serve"], env=dict(env, GPUHOUR_BIND=f"127.0.0.1:{port}"))
    for _ in range(150):
        try:
            subprocess.run(["curl", "-sf", f"{url(port)}/readyz"], check=True, capture_output=True)
            return server
        except subprocess.CalledProcessError:
            if server.poll() is not None:
                raise RuntimeError(f"gpuhour serve on port {port} exited with {server.returncode}")
            time.sleep(0.2)
    raise RuntimeError(f"gpuhour serve on port {port} is not ready")


def stop_service(server):
    server.send_signal(signal.SIGINT)
    server.wait(timeout=30)


def run_and_rusage(argv):
    """Runs a child to completion; returns (stdout, its own CPU-seconds)."""
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out_holder = {}
    reader = threading.Thread(target=lambda: out_holder.update(out=child.stdout.read(), err=child.stderr.read()))
    reader.start()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    reader.join()
    if child.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited with {child.returncode}: {out_holder.get('err', '')[-2000:]}")
    return out_holder["out"], usage.ru_utime + usage.ru_stime


def load(market_file, ports, clients, seconds, service_pids):
    """One load run; returns the load generator's report with the CPU figures added."""
    argv = [LOADGEN, "--market", market_file, "--clients", str(clients), "--seconds", str(seconds)]
    for port in ports:
        argv += ["--url", url(port)]
    rss = [0]
    before = database_counters()
    stop = threading.Event()
    sampler = threading.Thread(target=rss_peak_sampler, args=(service_pids[0], stop, rss), daemon=True)
    sampler.start()
    with CpuMeter(DB, service_pids) as meter:
        out, loadgen_cpu = run_and_rusage(argv)
    stop.set()
    sampler.join()
    report = json.loads(out)
    report["cpu_seconds"] = {"service": round(meter.service_seconds(), 2),
                             "postgres": round(meter.postgres_seconds(), 2),
                             "load_generator": round(loadgen_cpu, 2)}
    report["service_rss_peak_mib"] = round(rss[0] / 1024, 1)
    time.sleep(1.5)  # PostgreSQL's backends flush their counters at most once a second
    after = database_counters()
    batches = after["order_batches"] - before["order_batches"]
    accepted = after["orders"] - before["orders"]
    report["profile"] = {
        # Every batch's entries share their transaction's recorded_at.
        "order_batches": batches,
        "mean_orders_per_batch": round(accepted / batches, 1) if batches else None,
        # Commits include each request's own principal lookup (autocommit).
        "commits_per_order": round((after["commits"] - before["commits"]) / accepted, 2) if accepted else None,
        "rows_fetched_per_order": round((after["fetched"] - before["fetched"]) / accepted, 1) if accepted else None,
    }
    return report


def database_counters():
    """Orders, order batches (distinct transaction timestamps) and PostgreSQL's own counters for the database."""
    orders, batches = psql("SELECT count(*), count(DISTINCT recorded_at) FROM journal_entries WHERE kind = 'order'",
                           DB).split("|")
    commits, fetched = psql(f"SELECT xact_commit, tup_fetched FROM pg_stat_database WHERE datname = '{DB}'").split("|")
    return {"orders": int(orders), "order_batches": int(batches), "commits": int(commits), "fetched": int(fetched)}


def check_ledger(binary, env):
    """`gpuhour verify` clean and no hour over-reserved: a run that breaks either is a failed run."""
    # The CI server runs without autovacuum: until analysed, the scratch
    # database's statistics are an empty one's, and verify's joins over the
    # run's orders are planned as if over a handful of rows.
    psql("ANALYZE", DB)
    verify = subprocess.run([binary, "verify"], env=env, capture_output=True, text=True)
    oversold = int(psql("SELECT count(*) FROM listing_hours WHERE reserved > capacity", DB))
    return {"verify_clean": verify.returncode == 0, "oversold_hours": oversold,
            "verify_output": (verify.stdout + verify.stderr).strip()[-2000:] if verify.returncode else ""}


def pgbench(clients, seconds):
    psql(f"DROP DATABASE IF EXISTS {PGBENCH_DB}")
    psql(f"CREATE DATABASE {PGBENCH_DB}")
    subprocess.run(["pgbench", "-i", "-s", "10", "-q", f"{PG}/{PGBENCH_DB}"], check=True, capture_output=True)
    with CpuMeter(PGBENCH_DB) as meter:
        out, pgbench_cpu = run_and_rusage(["pgbench", "-c", str(clients), "-j", "2", "-T", str(seconds),
                                           "-M", "prepared", f"{PG}/{PGBENCH_DB}"])
    psql(f"DROP DATABASE {PGBENCH_DB}")
    transactions = int(re.search(r"number of transactions actually processed: (\d+)", out).group(1))
    return {"tps": round(float(re.search(r"tps = ([0-9.]+)", out).group(1)), 1), "transactions": transactions,
            "cpu_seconds": {"postgres": round(meter.postgres_seconds(), 2), "pgbench": round(pgbench_cpu, 2)}}


def print_statements(limit, orders):
    """Where PostgreSQL's time went in a run: per statement, calls and rows
    per 1,000 orders, mean time, and share of all statements' time."""
    rows = psql(
        "SELECT calls, rows, round(mean_exec_time::numeric, 3), round(mean_plan_time::numeric, 3), "
        "round((100 * (total_exec_time + total_plan_time) "
        "/ sum(total_exec_time + total_plan_time) OVER ())::numeric, 1), "
        "shared_blks_hit + shared_blks_read, "
        "regexp_replace(left(query, 110), '\\s+', ' ', 'g') "
        f"FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = '{DB}') "
        f"ORDER BY total_exec_time + total_plan_time DESC LIMIT {int(limit)}", DB)
    k = 1000 / max(orders, 1)
    # Planning time is counted only where pg_stat_statements.track_planning is on.
    print(f"{'calls/1k':>9} {'rows/1k':>8} {'blks/1k':>8} {'exec ms':>8} {'plan ms':>8} {'share':>6}  statement",
          file=sys.stderr)
    for line in rows.splitlines():
        calls, n, mean, plan, share, blocks, query = line.split("|", 6)
        print(f"{int(calls) * k:9.0f} {int(n) * k:8.0f} {int(blocks) * k:8.0f} {float(mean):8.3f} {float(plan):8.3f} "
              f"{share:>5}%  {query}", file=sys.stderr)


def per_thousand(cpu_seconds, count):
    return round(1000 * cpu_seconds / count, 2) if count else None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--tenants", type=int, default=1000)
    ap.add_argument("--providers", type=int, default=50)
    ap.add_argument("--programmes", type=int, default=64, help="programmes the spread layout's grants come from")
    ap.add_argument("--quick", action="store_true",
                    help="a smoke run: 16 clients, 5 s, 64 tenants, 5 providers (figures mean little)")
    ap.add_argument("--json", default=os.path.join(ROOT, "bench-results", "orders.json"))
    ap.add_argument("--statements", type=int, default=0, metavar="N",
                    help="print the N statements that took most of PostgreSQL's time in the headline run "
                         "(needs pg_stat_statements in shared_preload_libraries; point BENCH_PG at such a server)")
    args = ap.parse_args()
    if args.quick:
        args.clients, args.seconds, args.tenants, args.providers = 16, 5, 64, 5

    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    subprocess.run(["cargo", "build", "--release", "--quiet", "--manifest-path", LOADGEN_MANIFEST], check=True)
    binary = os.path.join(ROOT, "target", "release", "gpuhour")
    psql(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    env = dict(os.environ, DATABASE_URL=f"{PG}/{DB}", GPUHOUR_SANDBOX="1",
               GPUHOUR_JWT_SECRET="bench-secret-bench-secret-bench-secret", GPUHOUR_TOKEN_TTL_SECONDS="7200",
               GPUHOUR_ADMIN_EMAIL=ADMIN[0], GPUHOUR_ADMIN_PASSWORD=ADMIN[1], GPUHOUR_DB_POOL_SIZE="32",
               GPUHOUR_SIGNUPS_PER_ADDRESS_PER_HOUR="0", RUST_LOG="warn")
    results_dir = os.path.dirname(args.json)
    os.makedirs(results_dir, exist_ok=True)
    markets = {name: os.path.join(results_dir, f"orders-market-{name}.json") for name in ("hot", "spread")}

    runs, checks = {}, {}
    first = start_service(binary, env, PORTS[0])
    second = None
    try:
        async def seed_market():
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=32)) as s:
                return await seed(s, args.tenants, args.providers, args.programmes)

        t0 = time.time()
        hot, spread = asyncio.run(seed_market())
        print(f"seeded in {time.time() - t0:.0f} s", file=sys.stderr)
        # A deployment analyses as it grows (autovacuum); this server runs
        # without it, as CI does. Unanalysed, the first run's statements were
        # planned on an empty database's statistics while every later run
        # (after check_ledger's ANALYZE) had real ones: run 1 read a third
        # more rows per order, which the hot-spot ratio then charged to the
        # one-programme layout.
        psql("ANALYZE", DB)
        for name, market in (("hot", hot), ("spread", spread)):
            with open(markets[name], "w") as f:
                json.dump(market, f)
        seeding_rss_kib = int(re.search(r"VmHWM:\s+(\d+)", open(f"/proc/{first.pid}/status").read()).group(1))

        plan = [("one_programme", markets["hot"], [PORTS[0]]),
                ("programmes_spread", markets["spread"], [PORTS[0]]),
                ("two_processes", markets["hot"], list(PORTS))]
        for name, market, ports in plan:
            if len(ports) == 2 and second is None:
                second = start_service(binary, env, PORTS[1])
            pids = [first.pid] + ([second.pid] if len(ports) == 2 else [])
            print(f"run {name}: {args.clients} clients, {args.seconds} s", file=sys.stderr)
            profiling = args.statements and name == "one_programme"
            if profiling:
                psql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements; SELECT pg_stat_statements_reset()", DB)
            runs[name] = load(market, ports, args.clients, args.seconds, pids)
            if profiling:
                print_statements(args.statements, runs[name]["accepted"])
            checks[name] = check_ledger(binary, env)
    finally:
        for server in (first, second):
            if server is not None:
                stop_service(server)
    print("pgbench", file=sys.stderr)
    reference = pgbench(args.clients, args.seconds)

    head = runs["one_programme"]
    rate = head["accepted_per_second"]
    service_cpu = head["cpu_seconds"]["service"] + head["cpu_seconds"]["postgres"]
    pgbench_cpu = reference["cpu_seconds"]["postgres"] + reference["cpu_seconds"]["pgbench"]
    figures = {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()} cores, {os.uname().machine}, {os.uname().release}",
        "clients": args.clients, "seconds": args.seconds, "tenants": args.tenants, "programmes": args.programmes,
        "orders_per_second": rate,
        "requests": head["requests"],
        "rejections": head["rejections"],
        "server_errors": sum(r["server_errors"] for r in runs.values()),
        "transport_errors": sum(r["transport_errors"] for r in runs.values()),
        "latency_ms": head["latency_ms"],
        "service_rss_peak_mib_orders": head["service_rss_peak_mib"],
        "service_rss_peak_mib_seeding": round(seeding_rss_kib / 1024, 1),
        "pgbench_tps": reference["tps"],
        "ratio": round(rate / reference["tps"], 3),
        "orders_per_second_spread": runs["programmes_spread"]["accepted_per_second"],
        "hot_spot_ratio": round(rate / runs["programmes_spread"]["accepted_per_second"], 3)
        if runs["programmes_spread"]["accepted_per_second"] else None,
        "orders_per_second_two_processes": runs["two_processes"]["accepted_per_second"],
        "two_processes_ratio": round(runs["two_processes"]["accepted_per_second"] / rate, 3) if rate else None,
        "cpu_seconds_per_1000_orders": per_thousand(service_cpu, head["accepted"]),
        "cpu_seconds_per_1000_pgbench_transactions": per_thousand(pgbench_cpu, reference["transactions"]),
        "load_generator_cpu_seconds": head["cpu_seconds"]["load_generator"],
        "verify_clean": all(c["verify_clean"] for c in checks.values()),
        "oversold_hours": max(c["oversold_hours"] for c in checks.values()),
        "runs": runs, "checks": checks, "pgbench": reference,
    }
    with open(args.json, "w") as f:
        json.dump(figures, f, indent=2)
    print(f"{'figure':<42} value")
    for k in ["clients", "seconds", "requests", "orders_per_second", "rejections", "server_errors", "transport_errors",
              "latency_ms", "service_rss_peak_mib_orders", "service_rss_peak_mib_seeding", "pgbench_tps", "ratio",
              "orders_per_second_spread", "hot_spot_ratio", "orders_per_second_two_processes", "two_processes_ratio",
              "cpu_seconds_per_1000_orders", "cpu_seconds_per_1000_pgbench_transactions",
              "load_generator_cpu_seconds", "verify_clean", "oversold_hours"]:
        print(f"{k:<42} {figures[k]}")
    for name, r in runs.items():
        print(f"  {name:<20} {r['accepted_per_second']:>8} orders/s  p99 {r['latency_ms']['p99']} ms  "
              f"cpu service {r['cpu_seconds']['service']} s, postgres {r['cpu_seconds']['postgres']} s, "
              f"load generator {r['cpu_seconds']['load_generator']} s  profile {r['profile']}")
    if not figures["verify_clean"] or figures["oversold_hours"] or figures["server_errors"]:
        print("FAILED RUN: the ledger or capacity is broken, or the service answered 5xx", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
