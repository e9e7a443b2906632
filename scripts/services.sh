#!/usr/bin/env bash
# Install (when missing) and start the services tests and benchmarks use: PostgreSQL, Redis,
# Chromium and bubblewrap (the code verifier's sandbox) from Debian. Writes var/services.env with
# DATABASE_URL and REDIS_URL.
#   services.sh up | down
set -euo pipefail
cd "$(dirname "$0")/.."
PG_PORT=${PREFSTUDIO_PG_PORT:-54329}
REDIS_PORT=${PREFSTUDIO_REDIS_PORT:-63799}
RUN_DIR=${PREFSTUDIO_RUN_DIR:-/tmp/prefstudio-services}
PG_DATA=$RUN_DIR/pg
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"

as_postgres() {
  # PostgreSQL refuses to run as root.
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

install_missing() {
  local need=()
  [ -n "$(pg_bin)" ] && [ -x "$(pg_bin)/initdb" ] || need+=(postgresql)
  command -v redis-server >/dev/null || need+=(redis-server)
  [ -x /usr/bin/chromium ] || need+=(chromium)
  command -v bwrap >/dev/null || need+=(bubblewrap)
  if [ ${#need[@]} -gt 0 ]; then
    echo "installing: ${need[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
  fi
}

up() {
  install_missing
  local bin; bin=$(pg_bin)
  mkdir -p "$RUN_DIR"; chmod 755 "$RUN_DIR"
  if [ "$(id -u)" = 0 ]; then mkdir -p "$PG_DATA" && chown postgres:postgres "$PG_DATA"; fi
  if [ ! -f "$PG_DATA/PG_VERSION" ]; then
    as_postgres "$bin/initdb" -D "$PG_DATA" -U postgres -A trust --no-instructions >/dev/null
  fi
  if ! as_postgres "$bin/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1; then
    as_postgres "$bin/pg_ctl" -D "$PG_DATA" -l "$PG_DATA/server.log" -w start -o \
      "-p $PG_PORT -k $PG_DATA -c listen_addresses=127.0.0.1 -c max_connections=400 ${PREFSTUDIO_PG_OPTS:-}" >/dev/null
  fi
  "$bin/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres prefstudio 2>/dev/null || true
  if ! redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --daemonize yes --save '' --appendonly no \
      --pidfile "$RUN_DIR/redis.pid" --logfile "$RUN_DIR/redis.log"
    for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
  fi
  mkdir -p var
  cat > var/services.env <<ENV
export DATABASE_URL=postgres://postgres@127.0.0.1:$PG_PORT/prefstudio
export REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0
export PREFSTUDIO_CHROMIUM=/usr/bin/chromium
ENV
  echo "services up: PostgreSQL :$PG_PORT, Redis :$REDIS_PORT"
}

down() {
  local bin; bin=$(pg_bin)
  [ -f "$PG_DATA/PG_VERSION" ] && as_postgres "$bin/pg_ctl" -D "$PG_DATA" -m fast stop >/dev/null 2>&1 || true
  redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
  echo "services down"
}

"${1:-up}"
