#!/usr/bin/env bash
# Backup and point-in-time restore drill (docs/operations.md, "Restore drill").
#
#   bash ops/restore-drill.sh
#
# On this machine, under a scratch directory and on ports of its own (the
# machine's PostgreSQL is left alone): a PostgreSQL cluster archiving its WAL
# to a directory, `gpuhour serve` on it with orders and settlements going on,
# a base backup (pg_basebackup) taken midway. At a recorded instant T, with
# the writers paused, the drill takes the trial balance and the journal
# export; the writers then go on. It restores the base backup into a new
# cluster, replaying the archived WAL up to T (recovery_target_time), and
# checks that `gpuhour verify` is clean there, that its trial balance (from a
# service started on the restored cluster) and export equal those taken at T,
# and that the writes after T are not in it. Prints PASS or FAIL with the
# figures; cleans up on every exit.
#
# Knobs: DRILL_PROFILE=release (default debug), DRILL_WORKERS (4),
# DRILL_PHASE_SECONDS (5), DRILL_PORT_BASE (25451), DRILL_KEEP=1.
set -euo pipefail
DRILL_NAME="restore drill"
source "$(dirname "$0")/lib.sh"

WORKERS=${DRILL_WORKERS:-4}
PHASE=${DRILL_PHASE_SECONDS:-5}

[ "$(id -u)" = 0 ] && ensure_apt_packages jq curl
PGBIN=/usr/lib/postgresql/$(pg_version)/bin
[ -x "$PGBIN/pg_basebackup" ] || fail "no PostgreSQL server binaries under /usr/lib/postgresql"
export PATH="$PGBIN:$PATH"

build_binaries
drill_init restore
read -r PRIMARY_PORT RESTORED_PORT SERVICE_PORT RESTORED_SERVICE_PORT <<<"$(pick_ports "${DRILL_PORT_BASE:-25451}" 4)"
ARCHIVE="$WORK/wal-archive"
as_pg mkdir -p "$ARCHIVE" "$WORK/sockets"
PRIMARY_URL="postgres://postgres@127.0.0.1:$PRIMARY_PORT/gpuhour"
RESTORED_URL="postgres://postgres@127.0.0.1:$RESTORED_PORT/gpuhour"
ADMIN_EMAIL=drill-admin@drill.example
ADMIN_PASSWORD=drill-admin-password

sql() { psql -X "$1" -v ON_ERROR_STOP=1 -Atqc "$2"; }

# `gpuhour serve` on DATABASE_URL $2, listening on port $3, as group $1.
start_service() {
  spawn "$1" env DATABASE_URL="$2" GPUHOUR_BIND="127.0.0.1:$3" GPUHOUR_SANDBOX=1 \
    GPUHOUR_JWT_SECRET=drill-secret-drill-secret-drill-secret GPUHOUR_TOKEN_TTL_SECONDS=3600 \
    GPUHOUR_ADMIN_EMAIL="$ADMIN_EMAIL" GPUHOUR_ADMIN_PASSWORD="$ADMIN_PASSWORD" \
    GPUHOUR_SETTLE_INTERVAL_SECONDS=0 RUST_LOG=warn "$GPUHOUR" serve
  wait_for "$1 to be ready" 60 http_ok "http://127.0.0.1:$3/readyz"
}

client() { timeout 120 "$CLIENT" --base "http://127.0.0.1:$SERVICE_PORT" "$@"; }

# A burst of orders, then the clock moved on and the elapsed hours settled.
activity() {
  client load --seed "$WORK/seed.json" --workers "$WORKERS" --max-seconds "$PHASE" \
    --events "$WORK/events-$1.jsonl" 2>>"$WORK/logs/client.log" || fail "the load ($1) failed"
  client settle --seed "$WORK/seed.json" --hours 2 2>>"$WORK/logs/client.log" || fail "settlement ($1) failed"
}

# ---- a cluster that archives its WAL
say "primary cluster on 127.0.0.1:$PRIMARY_PORT, archiving WAL to $ARCHIVE"
as_pg initdb -D "$WORK/primary" -A trust -U postgres >"$WORK/logs/initdb.log" 2>&1 || fail "initdb failed"
cat >>"$WORK/primary/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PRIMARY_PORT
unix_socket_directories = '$WORK/sockets'
wal_level = replica
archive_mode = on
archive_command = 'test ! -f $ARCHIVE/%f && cp %p $ARCHIVE/%f'
CONF
spawn primary "${AS_PG[@]}" postgres -D "$WORK/primary"
wait_for "the primary" 30 pg_isready -h 127.0.0.1 -p "$PRIMARY_PORT"

say "gpuhour serve on port $SERVICE_PORT"
start_service service "$PRIMARY_URL" "$SERVICE_PORT"
client seed --admin-email "$ADMIN_EMAIL" --admin-password "$ADMIN_PASSWORD" --out "$WORK/seed.json" ||
  fail "seeding the market failed"
activity before-backup

say "base backup (pg_basebackup) while orders are being placed"
ORDERS_AT_BACKUP=$(sql "$PRIMARY_URL" "SELECT count(*) FROM orders")
spawn backup-load "$CLIENT" --base "http://127.0.0.1:$SERVICE_PORT" load --seed "$WORK/seed.json" \
  --workers "$WORKERS" --stop-file "$WORK/stop-backup-load" --max-seconds 120 --events "$WORK/events-backup.jsonl"
sleep 1
BACKUP_STARTED=$(now_ms)
as_pg pg_basebackup -h 127.0.0.1 -p "$PRIMARY_PORT" -U postgres -D "$WORK/base" -X stream -c fast \
  >"$WORK/logs/basebackup.log" 2>&1 || fail "pg_basebackup failed"
figure "base backup (online, under load)" "$(du -sh "$WORK/base" | cut -f1) in $(($(now_ms) - BACKUP_STARTED)) ms"
sleep 1
touch "$WORK/stop-backup-load"
wait_for "the load during the backup to finish" 60 bash -c "! kill -0 -- -$(cat "$WORK/groups/backup-load") 2>/dev/null"
activity after-backup

# ---- the instant T. The writers are paused: the trial balance is read through
# the API, in a snapshot of its own, and only with nothing committing between
# T and that snapshot is it the state at T.
TARGET=$(sql "$PRIMARY_URL" "SELECT clock_timestamp()")
say "T = $TARGET: trial balance and export"
client trial-balance --seed "$WORK/seed.json" --out "$WORK/trial-balance-at-target.json" ||
  fail "the trial balance at T failed"
DATABASE_URL="$PRIMARY_URL" timeout 120 "$GPUHOUR" export --format hledger >"$WORK/export-at-target.journal" ||
  fail "the export at T failed"
ORDERS_AT_TARGET=$(sql "$PRIMARY_URL" "SELECT count(*) FROM orders")
ENTRIES_AT_TARGET=$(sql "$PRIMARY_URL" "SELECT count(*) FROM journal_entries")
sleep 1
activity after-target
client trial-balance --seed "$WORK/seed.json" --out "$WORK/trial-balance-final.json" ||
  fail "the final trial balance failed"
ORDERS_FINAL=$(sql "$PRIMARY_URL" "SELECT count(*) FROM orders")
ENTRIES_FINAL=$(sql "$PRIMARY_URL" "SELECT count(*) FROM journal_entries")
[ "$ORDERS_FINAL" -gt "$ORDERS_AT_TARGET" ] || fail "no order was written after T; the drill would prove nothing"

# Everything up to here reaches the archive before the primary goes away.
LAST_WAL=$(sql "$PRIMARY_URL" "SELECT pg_walfile_name(pg_switch_wal())")
wait_for "WAL $LAST_WAL to be archived" 60 test -f "$ARCHIVE/$LAST_WAL"
stop_group service
as_pg pg_ctl -D "$WORK/primary" stop -m fast -w >/dev/null || fail "stopping the primary failed"
figure "WAL segments archived" "$(find "$ARCHIVE" -type f | wc -l)"

# ---- restore into a new cluster, to T
say "restoring the base backup to T on 127.0.0.1:$RESTORED_PORT"
as_pg cp -a "$WORK/base" "$WORK/restored"
cat >>"$WORK/restored/postgresql.conf" <<CONF
port = $RESTORED_PORT
archive_mode = off
restore_command = 'cp $ARCHIVE/%f %p'
recovery_target_time = '$TARGET'
recovery_target_action = 'promote'
CONF
as_pg touch "$WORK/restored/recovery.signal"
RESTORE_STARTED=$(date +%s%3N)
spawn restored "${AS_PG[@]}" postgres -D "$WORK/restored"
restored_open() { [ "$(sql "postgres://postgres@127.0.0.1:$RESTORED_PORT/postgres" "SELECT pg_is_in_recovery()")" = f ]; }
wait_for "the restored cluster to reach T and open" 120 restored_open
figure "recovery to T, then open" "$(($(date +%s%3N) - RESTORE_STARTED)) ms"
STOPPED=$(sed -n 's/.*LOG: *\(recovery stopping before .*\)/\1/p' "$WORK/logs/restored.log" | head -n 1)
[ -n "$STOPPED" ] || fail "the restored cluster did not stop at a recovery target"
figure "recovery" "${STOPPED#recovery }"

ORDERS_RESTORED=$(sql "$RESTORED_URL" "SELECT count(*) FROM orders")
ENTRIES_RESTORED=$(sql "$RESTORED_URL" "SELECT count(*) FROM journal_entries")
VERIFY_OK=1
DATABASE_URL="$RESTORED_URL" timeout 120 "$GPUHOUR" verify >"$WORK/verify.json" 2>"$WORK/logs/verify.log" || VERIFY_OK=0
DATABASE_URL="$RESTORED_URL" timeout 120 "$GPUHOUR" export --format hledger >"$WORK/export-restored.journal" ||
  fail "the export of the restored database failed"
start_service restored-service "$RESTORED_URL" "$RESTORED_SERVICE_PORT"
timeout 60 "$CLIENT" --base "http://127.0.0.1:$RESTORED_SERVICE_PORT" trial-balance --seed "$WORK/seed.json" \
  --out "$WORK/trial-balance-restored.json" || fail "the restored trial balance failed"

same_json() { [ "$(jq -S . "$1")" = "$(jq -S . "$2")" ]; }
TB_EQUAL=0 && same_json "$WORK/trial-balance-at-target.json" "$WORK/trial-balance-restored.json" && TB_EQUAL=1
TB_MOVED=0 && ! same_json "$WORK/trial-balance-at-target.json" "$WORK/trial-balance-final.json" && TB_MOVED=1
EXPORT_EQUAL=0 && cmp -s "$WORK/export-at-target.journal" "$WORK/export-restored.journal" && EXPORT_EQUAL=1
totals() {
  jq -r '[.totals[] | select((.debits_posted | tonumber) != 0 or (.debits_pending | tonumber) != 0)
          | "\(.currency) debits posted \(.debits_posted), pending \(.debits_pending)"] | join("; ")' "$1"
}

figure "T (recovery_target_time)" "$TARGET"
figure "orders at backup start / T / end / restored" "$ORDERS_AT_BACKUP / $ORDERS_AT_TARGET / $ORDERS_FINAL / $ORDERS_RESTORED"
figure "journal entries at T / end / restored" "$ENTRIES_AT_TARGET / $ENTRIES_FINAL / $ENTRIES_RESTORED"
figure "trial balance at T" "$(totals "$WORK/trial-balance-at-target.json")"
figure "trial balance restored" "$(totals "$WORK/trial-balance-restored.json")"
figure "trial balance at the end" "$(totals "$WORK/trial-balance-final.json")"
figure "restored trial balance = the one at T" "$([ $TB_EQUAL = 1 ] && echo "yes ($(jq '.data | length' "$WORK/trial-balance-restored.json") accounts, every figure)" || echo NO)"
figure "restored export = the one at T" "$([ $EXPORT_EQUAL = 1 ] && echo "yes ($(wc -l <"$WORK/export-restored.journal") lines)" || echo NO)"
figure "gpuhour verify (restored)" "$([ $VERIFY_OK = 1 ] && echo clean || echo "DIFFERENCES (see verify.json)")"

[ "$VERIFY_OK" = 1 ] || { cat "$WORK/verify.json"; fail "gpuhour verify found differences in the restored database"; }
[ "$ORDERS_RESTORED" = "$ORDERS_AT_TARGET" ] || fail "the restored database has $ORDERS_RESTORED orders, $ORDERS_AT_TARGET at T"
[ "$ENTRIES_RESTORED" = "$ENTRIES_AT_TARGET" ] || fail "the restored journal has $ENTRIES_RESTORED entries, $ENTRIES_AT_TARGET at T"
[ "$TB_MOVED" = 1 ] || fail "the trial balance did not change after T; the drill would prove nothing"
[ "$TB_EQUAL" = 1 ] || { diff <(jq -S . "$WORK/trial-balance-at-target.json") <(jq -S . "$WORK/trial-balance-restored.json") | head -20; fail "the restored trial balance differs from the one at T"; }
[ "$EXPORT_EQUAL" = 1 ] || { diff "$WORK/export-at-target.journal" "$WORK/export-restored.journal" | head -20; fail "the restored export differs from the one at T"; }
DRILL_FAILED=0
