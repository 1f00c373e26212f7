#!/usr/bin/env bash
# shellcheck disable=SC2016,SC2317  # JS in single quotes; cleanup runs from the trap
# kasama search benchmark (see bench/README.md, "Search benchmark"): start a fresh server, load a
# Kasama-like population with population.mjs to a target size, run search_bench.mjs, print the
# summary and write bench/results/search-latest.json.
#   bench/search.sh [--resources N] [--reps N] [--clients N] [--concurrency K] [--seed S]
#                   [--keep DIR | --reuse DIR [--top-up]] [--quick] [--help]
#   --resources N   target size (default 1000000); --quick: 20000 resources, 50 reps
#   --keep DIR      load into DIR (wiped first) and keep it afterwards, for later --reuse
#   --reuse DIR     benchmark the data dir DIR as it is (no load); --top-up: load up to --resources
# Knobs (environment): KASAMA_BIN, KASAMA_DB_BUFFER_POOL (4G), BENCH_SERVER_ENV ("VAR=VALUE ..."),
# BENCH_SLICE (resources per ingest slice), BENCH_OUT (bench/results/search-latest.json).
set -euo pipefail

bench=$(cd "$(dirname "$(readlink -f "$0")")" && pwd)
repo=$(cd "$bench/.." && pwd)
harness=$repo/tests/harness/server.sh
bin=${KASAMA_BIN:-$repo/${KASAMA_BUILD_DIR:-build}/server/kasama-server}
out_json=${BENCH_OUT:-$bench/results/search-latest.json}
buffer_pool=${KASAMA_DB_BUFFER_POOL:-4G}
read -r -a server_env <<<"${BENCH_SERVER_ENV:-}"

resources=1000000 reps=200 warmup=20 clients=1 concurrency=4 seed=20260401
keep_dir='' reuse_dir='' top_up=0
need() { if [ $# -lt 2 ] || [ -z "$2" ]; then echo "search: $1 needs a value" >&2; exit 2; fi; }
while (($#)); do
  case "$1" in
    --resources) need "$@"; resources=$2; shift 2 ;;
    --reps) need "$@"; reps=$2; shift 2 ;;
    --warmup) need "$@"; warmup=$2; shift 2 ;;
    --clients) need "$@"; clients=$2; shift 2 ;;
    --concurrency) need "$@"; concurrency=$2; shift 2 ;;
    --seed) need "$@"; seed=$2; shift 2 ;;
    --keep) need "$@"; keep_dir=$2; shift 2 ;;
    --reuse) need "$@"; reuse_dir=$2; shift 2 ;;
    --top-up) top_up=1; shift ;;
    --quick) resources=20000 reps=50 warmup=5; shift ;;
    -h | --help) sed -n '3,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "search: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
done
resources=${resources//_/}
[ -n "$keep_dir" ] && [ -n "$reuse_dir" ] && { echo "search: --keep and --reuse exclude each other" >&2; exit 2; }
[ "$top_up" = 1 ] && [ -z "$reuse_dir" ] && { echo "search: --top-up goes with --reuse" >&2; exit 2; }

for tool in node curl; do
  command -v "$tool" >/dev/null || { echo "search: $tool is not installed" >&2; exit 1; }
done
[ -x "$bin" ] || { echo "search: no server binary at $bin (build first: ./kasama build)" >&2; exit 1; }

if [ -n "$reuse_dir" ]; then
  reuse_dir=$(readlink -f "$reuse_dir")
  [ -d "$reuse_dir/mariadb" ] || { echo "search: $reuse_dir is not a kasama data dir (no mariadb/)" >&2; exit 1; }
  if [ -f "$reuse_dir/server.pid" ] && kill -0 "$(cat "$reuse_dir/server.pid")" 2>/dev/null; then
    echo "search: a server is running on $reuse_dir (pid $(cat "$reuse_dir/server.pid")); stop it first" >&2
    exit 1
  fi
fi
if [ -n "$keep_dir" ]; then
  keep_dir=$(readlink -m "$keep_dir")
  # server.sh start wipes the dir: only an absent or empty dir, or an earlier data dir.
  if [ -e "$keep_dir" ] && [ -n "$(ls -A "$keep_dir")" ] && [ ! -d "$keep_dir/mariadb" ]; then
    echo "search: $keep_dir exists and is not a kasama data dir; refusing to wipe it" >&2
    exit 1
  fi
fi

tmp=$(mktemp -d /tmp/kasama-search.XXXXXX)
srv_dir=${reuse_dir:-${keep_dir:-$tmp/srv}}
started=0
failed=0
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ "$started" = 1 ] && [ -f "$srv_dir/server.pid" ]; then
    if ! "$harness" stop "$srv_dir" >"$tmp/stop.log" 2>&1; then
      echo "search: server in $srv_dir did not stop cleanly:" >&2
      cat "$tmp/stop.log" >&2
      [ "$rc" -ne 0 ] || rc=1
    fi
  fi
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Run a private copy: another build may replace the binary while the benchmark runs.
cp -p "$bin" "$tmp/kasama-server"
bin_src=$bin
bin=$tmp/kasama-server

start_s=$SECONDS
log() { printf '[search %4ds] %s\n' $((SECONDS - start_s)) "$*"; }
free_port() {
  node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
other_servers=$(pgrep -c -x kasama-server || true)
log "load average $load_before; $other_servers other kasama-server process(es) running on this machine"

port=$(free_port)
base=https://localhost:$port/fhir
if [ -n "$reuse_dir" ]; then
  log "resuming the server on $srv_dir (port $port, buffer pool $buffer_pool)"
  if ! "$harness" resume "$srv_dir" "$port" "$bin" KASAMA_DB_BUFFER_POOL="$buffer_pool" "${server_env[@]}" >/dev/null; then
    started=1 # server.sh may have left a pid file; cleanup stops whatever is left
    echo "search: the server did not start on $srv_dir. If its log says a migration was changed, the dir was" \
      "built by an older schema: load it again (bench/search.sh --keep $srv_dir)." >&2
    exit 1
  fi
else
  log "starting a fresh server on $srv_dir (port $port, buffer pool $buffer_pool)"
  "$harness" start "$srv_dir" "$port" "$bin" KASAMA_DB_BUFFER_POOL="$buffer_pool" "${server_env[@]}" >/dev/null
fi
started=1
export NODE_EXTRA_CA_CERTS=$srv_dir/tls/server.crt
# The FHIR API needs a bearer token: curl gets the system token of the server's demo backend client
# (server.sh starts it with KASAMA_DEMO_DATA=accounts); population.mjs and search_bench.mjs take
# theirs from the same $srv_dir/demo-credentials.json (--data-dir).
token=$(node "$bench/auth.mjs" "$base" "$NODE_EXTRA_CA_CERTS" "$srv_dir")

# ---------------------------------------------------------------- 1. load
ingest_json=$tmp/population.json
count_of() { # total of a search, e.g. count_of "Patient?_summary=count"
  curl -sf --cacert "$NODE_EXTRA_CA_CERTS" -H "Authorization: Bearer $token" "$base/$1" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).total))'
}
to_load=$resources start_index=0
if [ -n "$reuse_dir" ]; then
  have=$(count_of "?_summary=count")
  patients=$(count_of "Patient?_summary=count")
  log "data dir holds $have resources ($patients Patients)"
  to_load=0
  if [ "$top_up" = 1 ] && ((have < resources)); then
    to_load=$((resources - have)) start_index=$patients
  fi
  # The figures of the load that built the dir (search.sh --keep leaves them there).
  if [ -f "$srv_dir/bench-population.json" ]; then cp "$srv_dir/bench-population.json" "$ingest_json"; fi
fi
if ((to_load > 0)); then
  slice=${BENCH_SLICE:-$((to_load >= 500000 ? 50000 : (to_load / 10 > 1000 ? to_load / 10 : 1000)))}
  log "loading $to_load resources (population.mjs, seed $seed, from patient index $start_index, $concurrency bundles in flight, slices of $slice)"
  rc=0
  node "$bench/population.mjs" "$base" --resources "$to_load" --seed "$seed" --start-index "$start_index" \
    --concurrency "$concurrency" --slice "$slice" --data-dir "$srv_dir" --out "$ingest_json" || rc=$?
  if [ "$rc" -ne 0 ]; then
    echo "search: the load failed (exit $rc); server log tail:" >&2
    tail -n 20 "$srv_dir/server.log" >&2
    exit 1
  fi
  if [ -n "$keep_dir$reuse_dir" ]; then cp "$ingest_json" "$srv_dir/bench-population.json"; fi
fi

# ---------------------------------------------------------------- 2. queries
warnings() { grep -c -E '^[^ ]+ +(WARN|ERROR|FATAL)' "$srv_dir/server.log" || true; }
git_rev=$(git -C "$repo" describe --always --dirty 2>/dev/null || echo "")
BIN="$bin_src" BMT="$(date -r "$bin" -u +%FT%TZ)" GIT="$git_rev" POOL="$buffer_pool" SENV="${BENCH_SERVER_ENV:-}" \
  DIR="$srv_dir" REUSED="${reuse_dir:+1}" LB="$load_before" OTHERS="$other_servers" SERR="$(warnings)" node -e '
const e = process.env;
console.log(JSON.stringify({
  binary: e.BIN, binary_mtime: e.BMT, git: e.GIT || null, buffer_pool: e.POOL, server_env: e.SENV,
  data_dir: e.DIR, reused: !!e.REUSED, load_before: e.LB, other_kasama_servers: +e.OTHERS,
  server_log_warnings_errors: +e.SERR,
}));' >"$tmp/meta.json"
log "queries: $reps measured + $warmup warm-up requests per shape, $clients client(s)"
ingest_arg=()
if [ -f "$ingest_json" ]; then ingest_arg=(--ingest "$ingest_json"); fi
node "$bench/search_bench.mjs" "$base" --reps "$reps" --warmup "$warmup" --clients "$clients" --data-dir "$srv_dir" \
  --meta "$tmp/meta.json" "${ingest_arg[@]}" --out "$out_json" || failed=1

serr=$(warnings)
if [ "$serr" != "0" ]; then
  log "server log: $serr WARN/ERROR lines ($srv_dir/server.log):"
  grep -E '^[^ ]+ +(WARN|ERROR|FATAL)' "$srv_dir/server.log" | tail -n 5 >&2
fi
log "done in $((SECONDS - start_s))s${keep_dir:+; data kept in $keep_dir (bench/search.sh --reuse $keep_dir)}"
exit "$failed"
