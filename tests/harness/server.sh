#!/usr/bin/env bash
# Test fixture: a real kasama-server with its own private MariaDB on a fresh data dir.
#   server.sh start DIR PORT BINARY [VAR=VALUE ...]   start on a fresh DIR, wait for /health (fails if it dies)
#   server.sh resume DIR PORT BINARY [VAR=VALUE ...]  the same on the data DIR already has (a restart)
#   server.sh stop DIR                                 SIGTERM, and check the shutdown was clean
set -uo pipefail
action=$1 dir=$2

case "$action" in
  start|resume)
    port=$3 binary=$4
    shift 4
    if [ "$action" = start ]; then
      if [ -f "$dir/server.pid" ]; then "$0" stop "$dir" >/dev/null 2>&1 || true; fi
      # A MariaDB left by an earlier run that died must not live on under a wiped dir.
      if [ -f "$dir/mariadb/mariadbd.pid" ]; then
        old=$(cat "$dir/mariadb/mariadbd.pid")
        kill -TERM "$old" 2>/dev/null && for _ in $(seq 1 300); do kill -0 "$old" 2>/dev/null || break; sleep 0.2; done
      fi
      rm -rf "$dir"
    fi
    mkdir -p "$dir"
    # Demo accounts and clients only (no demo records): the tests take their system token from
    # the demo backend client in $dir/demo-credentials.json. Backend tokens last an hour here
    # so that hand-written HTTP heads can carry one token through a whole suite.
    env KASAMA_DATA_DIR="$dir" KASAMA_PORT="$port" KASAMA_DEMO_DATA=accounts KASAMA_BACKEND_TOKEN_LIFETIME=3600 "$@" \
      setsid "$binary" >>"$dir/server.log" 2>&1 &
    echo $! >"$dir/server.pid"
    for _ in $(seq 1 600); do
      if curl -sf --cacert "$dir/tls/server.crt" "https://localhost:$port/health" >/dev/null 2>&1; then
        # Without demo accounts (KASAMA_DB): the first owner, as a deployment would create it;
        # tests/e2e/lib/auth.js goes on from there over the account API.
        if [ "$action" = start ] && [ ! -f "$dir/demo-credentials.json" ]; then
          env KASAMA_DATA_DIR="$dir" KASAMA_PORT="$port" "$@" "$binary" bootstrap-owner "Test Owner" \
            >"$dir/bootstrap.json" 2>>"$dir/server.log" || { echo "bootstrap-owner failed" >&2; exit 1; }
        fi
        echo "server up on https://localhost:$port/fhir (data $dir)"
        exit 0
      fi
      if ! kill -0 "$(cat "$dir/server.pid")" 2>/dev/null; then
        echo "server died during start:" >&2
        cat "$dir/server.log" >&2
        exit 1
      fi
      sleep 0.2
    done
    echo "server did not become healthy in 120 s:" >&2
    cat "$dir/server.log" >&2
    exit 1
    ;;
  stop)
    [ -f "$dir/server.pid" ] || { echo "no server.pid in $dir" >&2; exit 1; }
    pid=$(cat "$dir/server.pid")
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 600); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    rm -f "$dir/server.pid"
    if kill -0 "$pid" 2>/dev/null; then
      echo "server $pid did not stop within 120 s of SIGTERM" >&2
      kill -KILL "$pid"
      exit 1
    fi
    # A clean stop drains requests, then shuts MariaDB down (R-44: restart loses nothing).
    # Only this run's part of the logs counts (a resumed server appends to them).
    since_last() { awk -v pat="$2" '{ lines[NR] = $0 } $0 ~ pat { start = NR } END { for (i = start; i <= NR; i++) print lines[i] }' "$1"; }
    if ! since_last "$dir/server.log" "ready$" | grep -q "INFO  stopped"; then
      echo "server did not log a clean stop:" >&2
      tail -n 30 "$dir/server.log" >&2
      exit 1
    fi
    if [ -d "$dir/mariadb" ]; then  # the embedded default: its private MariaDB must be down
      if [ -f "$dir/mariadb/mariadbd.pid" ] && kill -0 "$(cat "$dir/mariadb/mariadbd.pid")" 2>/dev/null; then
        echo "the private MariaDB is still running after the server stopped" >&2
        exit 1
      fi
      since_last "$dir/mariadb/mariadb.log" "ready for connections" | grep -q "Shutdown complete" ||
        { echo "MariaDB did not shut down cleanly" >&2; exit 1; }
    fi
    echo "server stopped cleanly"
    ;;
  *)
    echo "usage: server.sh start|resume DIR PORT BINARY [VAR=VALUE...] | stop DIR" >&2
    exit 2
    ;;
esac
