#!/usr/bin/env bash
# Failover with zero loss, with real processes (docs/operations.md, "Failover drill").
#
#   bash ops/failover-drill.sh
#
# On this machine, under a scratch directory and on ports of their own (the
# machine's PostgreSQL is left alone): a pg_auto_failover monitor, a primary
# and a synchronous standby; `gpuhour serve` connected to both through one
# multi-host DATABASE_URL with target_session_attrs=read-write; a client placing
# orders. The drill kills the primary (kill -9 of its keeper and postmaster)
# under that load, waits for the standby's promotion, lets the load run on, and
# then checks that every order a client saw accepted exists exactly once, no
# hour is oversold, `gpuhour verify` is clean, and the service reconnected by
# itself. Prints PASS or FAIL with the figures; cleans up on every exit.
#
# DRILL_MODE=switchover runs a planned `pg_autoctl perform switchover` instead
# of the kill, DRILL_MODE=postmaster kills the postmaster alone (its keeper
# restarts it: a crash without failover), DRILL_MODE=standby kills the standby
# (the primary goes on alone); the checks are the same.
#
# Knobs: DRILL_DEFAULT_TIMINGS=1 keeps pg_auto_failover's own (slower) failure
# detection, DRILL_PROFILE=release (default debug), DRILL_WORKERS (8),
# DRILL_WARMUP_SECONDS (8), DRILL_AFTER_SECONDS (8), DRILL_PORT_BASE (25431),
# DRILL_KEEP=1 keeps the scratch directory.
set -euo pipefail
DRILL_NAME="failover drill"
source "$(dirname "$0")/lib.sh"

WORKERS=${DRILL_WORKERS:-8}
WARMUP=${DRILL_WARMUP_SECONDS:-8}
AFTER=${DRILL_AFTER_SECONDS:-8}

[ "$(id -u)" = 0 ] && ensure_apt_packages "postgresql-$(pg_version)-auto-failover" pg-auto-failover-cli jq curl
command -v pg_autoctl >/dev/null || fail "pg_autoctl is not installed (apt-get install pg-auto-failover-cli)"
PGBIN=/usr/lib/postgresql/$(pg_version)/bin
export PATH="$PGBIN:$PATH"

build_binaries
drill_init failover
read -r MONITOR_PORT NODE1_PORT NODE2_PORT SERVICE_PORT <<<"$(pick_ports "${DRILL_PORT_BASE:-25431}" 4)"
BASE="http://127.0.0.1:$SERVICE_PORT"
MONITOR_URL="postgres://autoctl_node@127.0.0.1:$MONITOR_PORT/pg_auto_failover?sslmode=disable"
# Both nodes, in order; libpq and tokio-postgres try each and keep the one that takes writes.
DATABASE_URL="postgres://postgres@127.0.0.1:$NODE1_PORT,127.0.0.1:$NODE2_PORT/gpuhour?target_session_attrs=read-write&connect_timeout=2"

monitor_sql() { psql -X -h 127.0.0.1 -p "$MONITOR_PORT" -U postgres -d pg_auto_failover -Atqc "$1"; }
node_state() { monitor_sql "SELECT reportedstate FROM pgautofailover.node WHERE nodename = '$1'"; }
node_is() { [ "$(node_state "$1")" = "$2" ]; }
node_is_one_of() { local s; s=$(node_state "$1"); for want in "${@:2}"; do [ "$s" = "$want" ] && return 0; done; return 1; }
db_sql() { psql -X "$DATABASE_URL" -v ON_ERROR_STOP=1 -Atqc "$1"; }

# ---- the cluster
say "monitor on 127.0.0.1:$MONITOR_PORT"
as_pg pg_autoctl create monitor --pgdata "$WORK/monitor" --pgport "$MONITOR_PORT" --hostname 127.0.0.1 \
  --auth trust --no-ssl --pgctl "$PGBIN/pg_ctl" >"$WORK/logs/monitor-create.log" 2>&1 ||
  fail "pg_autoctl create monitor failed"
as_pg pg_autoctl config set --pgdata "$WORK/monitor" postgresql.listen_addresses 127.0.0.1 >/dev/null
spawn monitor "${AS_PG[@]}" pg_autoctl run --pgdata "$WORK/monitor"
wait_for "the monitor" 30 pg_isready -h 127.0.0.1 -p "$MONITOR_PORT"
wait_for "the monitor's extension" 30 monitor_sql "SELECT 1 FROM pgautofailover.formation"
# Drill timings (production keeps the defaults, see docs/operations.md): a
# node silent for 3 s is unhealthy, and a primary that does not confirm its
# demotion is written off after 6 s — longer than the 3 s after which an
# isolated primary demotes itself (network_partition_timeout below).
if [ "${DRILL_DEFAULT_TIMINGS:-0}" != 1 ]; then
  for setting in health_check_period=1000 health_check_timeout=1000 health_check_max_retries=1 \
    health_check_retry_delay=500 node_considered_unhealthy_timeout=3000 primary_demote_timeout=6000; do
    monitor_sql "ALTER SYSTEM SET pgautofailover.${setting%%=*} = ${setting#*=}"
  done
  monitor_sql "SELECT pg_reload_conf()" >/dev/null
  PARTITION_TIMEOUT=3
else
  PARTITION_TIMEOUT=20
fi

start_node() {
  local name=$1 port=$2
  as_pg pg_autoctl create postgres --pgdata "$WORK/$name" --pgport "$port" --hostname 127.0.0.1 \
    --listen 127.0.0.1 --name "$name" --auth trust --no-ssl --monitor "$MONITOR_URL" \
    --pgctl "$PGBIN/pg_ctl" >"$WORK/logs/$name-create.log" 2>&1 || fail "pg_autoctl create postgres $name failed"
  as_pg pg_autoctl config set --pgdata "$WORK/$name" timeout.network_partition_timeout "$PARTITION_TIMEOUT" >/dev/null
  spawn "$name" "${AS_PG[@]}" pg_autoctl run --pgdata "$WORK/$name"
}
say "primary node1 on 127.0.0.1:$NODE1_PORT"
start_node node1 "$NODE1_PORT"
wait_for "node1 to be single" 60 node_is node1 single
say "standby node2 on 127.0.0.1:$NODE2_PORT"
start_node node2 "$NODE2_PORT"
wait_for "node2 to be a secondary" 120 node_is node2 secondary
wait_for "node1 to be primary" 30 node_is node1 primary
SYNC=$(psql -X -h 127.0.0.1 -p "$NODE1_PORT" -U postgres -Atqc \
  "SELECT current_setting('synchronous_standby_names') || ' / ' || string_agg(sync_state, ',') FROM pg_stat_replication")
say "replication: $SYNC"
case "$SYNC" in *quorum* | *sync*) ;; *) fail "the standby is not synchronous: $SYNC" ;; esac
figure "synchronous replication" "$SYNC"

# ---- the service and its market
say "gpuhour serve on $BASE"
export DATABASE_URL
spawn service env GPUHOUR_BIND="127.0.0.1:$SERVICE_PORT" GPUHOUR_SANDBOX=1 \
  GPUHOUR_JWT_SECRET=drill-secret-drill-secret-drill-secret GPUHOUR_TOKEN_TTL_SECONDS=3600 \
  GPUHOUR_ADMIN_EMAIL=drill-admin@drill.example GPUHOUR_ADMIN_PASSWORD=drill-admin-password \
  GPUHOUR_SETTLE_INTERVAL_SECONDS=5 RUST_LOG=warn "$GPUHOUR" serve
wait_for "the service to be ready" 60 http_ok "$BASE/readyz"
SERVICE_PID=$(cat "$WORK/groups/service")
timeout 60 "$CLIENT" --base "$BASE" seed --admin-email drill-admin@drill.example \
  --admin-password drill-admin-password --out "$WORK/seed.json" || fail "seeding the market failed"

# ---- load, kill, failover
say "placing orders with $WORKERS clients"
spawn load "$CLIENT" --base "$BASE" load --seed "$WORK/seed.json" --workers "$WORKERS" \
  --stop-file "$WORK/stop" --max-seconds 240 --events "$WORK/events.jsonl"
sleep "$WARMUP"
group_alive load || fail "the load client stopped early"
ORDERS_BEFORE=$(db_sql "SELECT count(*) FROM orders")
EVENT=${DRILL_MODE:-kill}
case "$EVENT" in postmaster) EVENT_LABEL="postmaster kill" ;; standby) EVENT_LABEL="standby kill" ;; *) EVENT_LABEL=$EVENT ;; esac
KILL_AT=$(now_ms)
case "$EVENT" in
  kill)
    say "kill -9 of node1 (keeper and postmaster) with $ORDERS_BEFORE orders in the database"
    POSTMASTER=$(head -n 1 "$WORK/node1/postmaster.pid")
    kill -KILL -- "-$(cat "$WORK/groups/node1")"
    kill_postmaster "$WORK/node1" KILL
    wait_for "node1's postmaster to die" 5 process_gone "$POSTMASTER"
    EXPECTED_PRIMARY=node2
    ;;
  postmaster)
    # The keeper lives on and restarts PostgreSQL: a crash, not a failover.
    say "kill -9 of node1's postmaster alone with $ORDERS_BEFORE orders in the database"
    POSTMASTER=$(head -n 1 "$WORK/node1/postmaster.pid")
    kill_postmaster "$WORK/node1" KILL
    wait_for "node1's postmaster to die" 5 process_gone "$POSTMASTER"
    EXPECTED_PRIMARY=
    ;;
  standby)
    # The primary stays; commits wait for the synchronous standby until the
    # monitor gives up on it and lets the primary go on alone.
    say "kill -9 of the standby node2 (keeper and postmaster) with $ORDERS_BEFORE orders in the database"
    POSTMASTER=$(head -n 1 "$WORK/node2/postmaster.pid")
    kill -KILL -- "-$(cat "$WORK/groups/node2")"
    kill_postmaster "$WORK/node2" KILL
    wait_for "node2's postmaster to die" 5 process_gone "$POSTMASTER"
    EXPECTED_PRIMARY=node1
    ;;
  switchover)
    say "planned switchover with $ORDERS_BEFORE orders in the database"
    timeout 120 "${AS_PG[@]}" pg_autoctl perform switchover --pgdata "$WORK/monitor" \
      >"$WORK/logs/switchover.log" 2>&1 || fail "pg_autoctl perform switchover failed"
    EXPECTED_PRIMARY=node2
    ;;
  *) fail "DRILL_MODE is kill, postmaster, standby or switchover, not $EVENT" ;;
esac

takes_writes() { [ "$(db_sql "SELECT pg_is_in_recovery()")" = f ]; }
wait_for "a primary that takes writes" 90 takes_writes
PROMOTED_AT=$(now_ms)
# The node the multi-host URL lands on (a dead node's last report in the monitor would still say primary).
case "$(db_sql "SELECT inet_server_port()")" in
  "$NODE1_PORT") PRIMARY_NOW=node1 ;;
  "$NODE2_PORT") PRIMARY_NOW=node2 ;;
  *) PRIMARY_NOW=unknown ;;
esac
say "$PRIMARY_NOW takes writes after $((PROMOTED_AT - KILL_AT)) ms"
[ -z "$EXPECTED_PRIMARY" ] || [ "$PRIMARY_NOW" = "$EXPECTED_PRIMARY" ] ||
  fail "expected $EXPECTED_PRIMARY to be the primary, the monitor says $PRIMARY_NOW"
wait_for "the service to be ready again" 60 http_ok "$BASE/readyz"
READY_AT=$(now_ms)
say "the service is ready again after $((READY_AT - KILL_AT)) ms; load continues ${AFTER}s"
sleep "$AFTER"
touch "$WORK/stop"
wait_for "the load client to finish" 60 bash -c "! kill -0 -- -$(cat "$WORK/groups/load") 2>/dev/null"
[ -s "$WORK/events.jsonl" ] || fail "the load client wrote no events"

# ---- checks
say "checking: resolving unanswered attempts and replaying every accepted key"
CHECK_OK=1
timeout 300 "$CLIENT" --base "$BASE" check --seed "$WORK/seed.json" --events "$WORK/events.jsonl" \
  --kill-at-ms "$KILL_AT" --report "$WORK/report.json" --accepted-csv "$WORK/accepted.csv" || CHECK_OK=0
[ -s "$WORK/report.json" ] || fail "the check wrote no report"
r() { jq -r "$1" "$WORK/report.json"; }

# Each accepted order once: none missing, none the clients do not know of (a
# key that made two orders would leave one unknown), one order per key.
psql -X "$DATABASE_URL" -v ON_ERROR_STOP=1 -Atq >"$WORK/sql-checks.txt" 2>"$WORK/logs/sql-checks.log" <<SQL ||
CREATE TEMP TABLE drill_accepted (order_id uuid, idempotency_key text);
\copy drill_accepted FROM '$WORK/accepted.csv' WITH (FORMAT csv)
SELECT 'accepted_keys=' || count(DISTINCT idempotency_key) FROM drill_accepted;
SELECT 'accepted_ids=' || count(DISTINCT order_id) FROM drill_accepted;
SELECT 'missing=' || count(*) FROM drill_accepted a WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.id = a.order_id);
SELECT 'unknown=' || count(*) FROM orders o WHERE NOT EXISTS (SELECT 1 FROM drill_accepted a WHERE a.order_id = o.id);
SELECT 'orders=' || count(*) FROM orders;
SELECT 'over_capacity=' || count(*) FROM listing_hours WHERE reserved > capacity;
WITH sold AS (
  SELECT o.listing_id, h AS hour, sum(o.gpus) AS gpus
  FROM orders o, generate_series(o.start_at, o.end_at - interval '1 hour', interval '1 hour') h
  WHERE o.status <> 'cancelled' GROUP BY 1, 2)
SELECT 'reserved_mismatch=' || count(*) FROM listing_hours l FULL JOIN sold s USING (listing_id, hour)
WHERE coalesce(l.reserved, 0) <> coalesce(s.gpus, 0);
SQL
  fail "the SQL checks failed"
sql_figure() { sed -n "s/^$1=//p" "$WORK/sql-checks.txt"; }
ACCEPTED_KEYS=$(sql_figure accepted_keys)
ACCEPTED_IDS=$(sql_figure accepted_ids)
MISSING=$(sql_figure missing)
UNKNOWN=$(sql_figure unknown)
ORDERS_AFTER=$(sql_figure orders)
OVER_CAPACITY=$(sql_figure over_capacity)
RESERVED_MISMATCH=$(sql_figure reserved_mismatch)
VERIFY_OK=1
timeout 120 "$GPUHOUR" verify >"$WORK/verify.json" 2>"$WORK/logs/verify.log" || VERIFY_OK=0
SERVICE_SAME=0
group_alive service && [ "$(cat "$WORK/groups/service")" = "$SERVICE_PID" ] && SERVICE_SAME=1

figure "orders accepted before the $EVENT_LABEL" "$(r .accepted_before_kill)"
figure "orders accepted after the $EVENT_LABEL" "$(r .accepted_after_kill)"
figure "attempts / accepted" "$(r .attempts) / $(r .accepted)"
figure "failed attempts by status" "$(r '.failed_by_status | to_entries | map("\(.key|rtrimstr(" ")) x\(.value)") | join(", ") | if . == "" then "none" else . end')"
figure "unanswered/5xx, retried with their key" "$(r .unsure) (accepted on retry: $(r .unsure_accepted), unresolved: $(r .unresolved))"
figure "refused (4xx)" "$(r .refused)"
figure "primary taking writes again" "$PRIMARY_NOW, after $((PROMOTED_AT - KILL_AT)) ms"
figure "/readyz 200 again after" "$((READY_AT - KILL_AT)) ms"
figure "downtime seen by clients" "$(r '.downtime_ms // "n/a"') ms ($EVENT_LABEL to the first 201 of a request sent after it)"
figure "client error window" "$(r '.error_window_ms // 0') ms"
figure "accepted keys replayed: same order" "$(r .replayed_same) / $(r .accepted)"
figure "lost (accepted, then gone)" "$(($(r '.replay_mismatches | length') + MISSING))"
figure "orders no client was told of" "$UNKNOWN"
figure "orders in the database / accepted keys" "$ORDERS_AFTER / $ACCEPTED_KEYS"
figure "hours over capacity" "$OVER_CAPACITY"
figure "hours whose reserved != their orders" "$RESERVED_MISMATCH"
figure "gpuhour verify" "$([ $VERIFY_OK = 1 ] && echo clean || echo "DIFFERENCES (see verify.json)")"
figure "service reconnected without restart" "$([ $SERVICE_SAME = 1 ] && echo "yes (pid $SERVICE_PID)" || echo no)"

[ "$CHECK_OK" = 1 ] || fail "the client's check failed: $(r '.replay_mismatches[:3]')"
[ "$MISSING" = 0 ] || fail "$MISSING accepted orders are missing"
[ "$UNKNOWN" = 0 ] || fail "$UNKNOWN orders exist that no client was told of"
[ "$ACCEPTED_IDS" = "$ACCEPTED_KEYS" ] || fail "$ACCEPTED_KEYS accepted keys name $ACCEPTED_IDS orders"
[ "$ORDERS_AFTER" = "$ACCEPTED_KEYS" ] || fail "the database holds $ORDERS_AFTER orders for $ACCEPTED_KEYS accepted keys"
[ "$OVER_CAPACITY" = 0 ] || fail "$OVER_CAPACITY hours oversold"
[ "$RESERVED_MISMATCH" = 0 ] || fail "$RESERVED_MISMATCH hours' reserved differ from their orders"
[ "$VERIFY_OK" = 1 ] || { cat "$WORK/verify.json"; fail "gpuhour verify found differences"; }
[ "$SERVICE_SAME" = 1 ] || fail "the service did not survive the failover"
[ "$(r .accepted_after_kill)" -gt 0 ] || fail "no order was accepted after the $EVENT_LABEL"
[ "$(r .accepted_before_kill)" -gt 0 ] || fail "no order was accepted before the $EVENT_LABEL"
[ "$(jq -r '[.failed_by_status | keys[] | select(startswith("500"))] | length' "$WORK/report.json")" = 0 ] ||
  fail "clients got 500s during the failover"
DRILL_FAILED=0
