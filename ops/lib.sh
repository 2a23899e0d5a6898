# Shared by ops/failover-drill.sh and ops/restore-drill.sh (sourced, not run).
#
# Every process a drill starts runs in its own process group, recorded under
# $WORK/groups; cleanup stops those groups (TERM, then KILL) and any
# postmaster whose data directory lies under $WORK, then removes $WORK. It runs
# on every exit, success or failure. Nothing outside $WORK is touched: the
# machine's own PostgreSQL keeps running on its port.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DRILL_STARTED=$(date +%s)

say() { printf '%s  %s\n' "$(date +%H:%M:%S)" "$*"; }

# Figures for the summary, in the order they were noted.
FIGURES=()
figure() { FIGURES+=("$(printf '  %-44s %s' "$1" "$2")"); }

fail() {
  say "FAIL: $*"
  DRILL_FAILED=1
  exit 1
}

# The PostgreSQL major version to run: the newest installed one.
pg_version() {
  ls /usr/lib/postgresql 2>/dev/null | sort -V | tail -n 1
}

ensure_apt_packages() {
  local missing=()
  for package in "$@"; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# Runs a command as the postgres OS user when we are root (initdb refuses
# root), with pg_autoctl's state kept under $WORK. AS_PG is the same prefix as
# an array, for spawn.
as_pg() { "${AS_PG[@]}" "$@"; }

# Makes the scratch directory and arms the cleanup.
drill_init() {
  WORK=$(mktemp -d "/tmp/gpuhour-$1.XXXXXX")
  mkdir -p "$WORK/groups" "$WORK/logs" "$WORK/xdg/config" "$WORK/xdg/share" "$WORK/xdg/run"
  chmod 0755 "$WORK"
  if [ "$(id -u)" = 0 ]; then
    chown -R postgres: "$WORK"
    chmod 0700 "$WORK/xdg/run"
  fi
  local xdg=(XDG_CONFIG_HOME="$WORK/xdg/config" XDG_DATA_HOME="$WORK/xdg/share" XDG_RUNTIME_DIR="$WORK/xdg/run")
  if [ "$(id -u)" = 0 ]; then
    AS_PG=(runuser -u postgres -- env "${xdg[@]}")
  else
    AS_PG=(env "${xdg[@]}")
  fi
  DRILL_FAILED=1
  set -E
  trap 'say "FAIL: line $LINENO: $BASH_COMMAND"' ERR
  trap drill_cleanup EXIT
  trap 'say "interrupted"; exit 130' INT TERM
}

# Starts a command in the background in its own process group; its output
# goes to $WORK/logs/NAME.log.
spawn() {
  local name=$1
  shift
  setsid "$@" >"$WORK/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$WORK/groups/$name"
  # Its death is the drill's business, not a job for bash to report.
  disown $!
}

# Whether a process has exited (a zombie not yet reaped counts as exited).
process_gone() {
  [ ! -e "/proc/$1" ] || [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = Z ]
}

group_alive() {
  local pgid
  pgid=$(cat "$WORK/groups/$1" 2>/dev/null) || return 1
  kill -0 -- "-$pgid" 2>/dev/null
}

# Stops a process group started by spawn: TERM, then KILL after a grace period.
stop_group() {
  local name=$1 grace=${2:-10} pgid
  pgid=$(cat "$WORK/groups/$name" 2>/dev/null) || return 0
  kill -TERM -- "-$pgid" 2>/dev/null || return 0
  for _ in $(seq 1 $((grace * 10))); do
    kill -0 -- "-$pgid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL -- "-$pgid" 2>/dev/null || true
}

# Kills a postmaster by the pid in its data directory, if it is still that
# directory's postmaster (checked by its command line).
kill_postmaster() {
  local pgdata=$1 signal=${2:-KILL} pid
  [ -f "$pgdata/postmaster.pid" ] || return 0
  pid=$(head -n 1 "$pgdata/postmaster.pid")
  if [ -n "$pid" ] && tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF -- "$pgdata"; then
    kill "-$signal" "$pid" 2>/dev/null || true
  fi
}

drill_cleanup() {
  local status=$?
  trap - EXIT INT TERM
  set +e
  [ -n "${WORK:-}" ] || exit "$status"
  touch "$WORK/stop" 2>/dev/null
  local groups=()
  mapfile -t groups < <(ls -t "$WORK/groups" 2>/dev/null)
  for name in "${groups[@]}"; do
    stop_group "$name" 5
  done
  for pidfile in "$WORK"/*/postmaster.pid; do
    [ -f "$pidfile" ] && kill_postmaster "$(dirname "$pidfile")" KILL
  done
  sleep 0.5
  if [ "$status" != 0 ] || [ "${DRILL_FAILED:-1}" != 0 ]; then
    for log in "$WORK"/logs/*.log; do
      [ -s "$log" ] || continue
      echo "----- last lines of $(basename "$log")"
      tail -n 15 "$log"
    done
  fi
  # What the drill found outlives the scratch directory.
  local artifacts="$ROOT/target/drills/${DRILL_NAME// /-}"
  rm -rf "$artifacts" && mkdir -p "$artifacts" && cp -r "$WORK/logs" "$artifacts/" &&
    cp "$WORK"/*.json "$artifacts/" 2>/dev/null
  if [ "${DRILL_KEEP:-0}" = 1 ]; then
    say "kept $WORK (DRILL_KEEP=1)"
  else
    rm -rf "$WORK"
  fi
  local verdict=PASS
  if [ "$status" != 0 ] || [ "${DRILL_FAILED:-1}" != 0 ]; then verdict=FAIL; fi
  echo
  {
    echo "===== ${DRILL_NAME:-drill}: $verdict ($(($(date +%s) - DRILL_STARTED)) s)"
    for line in "${FIGURES[@]}"; do
      echo "$line"
    done
  } | tee "$artifacts/summary.txt"
  if [ "$verdict" = PASS ]; then exit 0; else exit 1; fi
}

# wait_for DESCRIPTION SECONDS COMMAND...: polls COMMAND until it succeeds.
wait_for() {
  local what=$1 seconds=$2
  shift 2
  local deadline=$(($(date +%s) + seconds))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "timed out after ${seconds}s waiting for $what"
    sleep 0.2
  done
}

port_free() {
  ! ss -ltn "( sport = :$1 )" 2>/dev/null | grep -q LISTEN
}

# Picks N free TCP ports from BASE upwards.
pick_ports() {
  local base=$1 count=$2 port=$1 found=()
  while [ ${#found[@]} -lt "$count" ]; do
    port_free "$port" && found+=("$port")
    port=$((port + 1))
    [ "$port" -lt $((base + 200)) ] || fail "no free ports from $base"
  done
  echo "${found[@]}"
}

# Builds gpuhour and the drill client (debug unless DRILL_PROFILE=release).
build_binaries() {
  local profile=${DRILL_PROFILE:-debug} flags=()
  [ "$profile" = release ] && flags=(--release)
  say "building gpuhour and the drill client ($profile)"
  (cd "$ROOT" && cargo build --quiet "${flags[@]}" --bin gpuhour --example drill_client) ||
    fail "cargo build failed"
  GPUHOUR="$ROOT/target/$profile/gpuhour"
  CLIENT="$ROOT/target/$profile/examples/drill_client"
}

now_ms() { date +%s%3N; }

http_ok() { curl -sf -m 2 -o /dev/null "$1"; }
