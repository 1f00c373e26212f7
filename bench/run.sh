#!/usr/bin/env bash
# shellcheck disable=SC2016,SC2317  # JS in single quotes; cleanup runs from the trap
# kasama benchmarks (see bench/README.md): Synthea ingest, then Patient read throughput against
# an nginx static-file baseline serving the same bytes. Prints medians, a summary table, and
# writes bench/results/latest.json.
#   bench/run.sh [--quick] [--help]
# Knobs (environment): KASAMA_SHARED_DIR, KASAMA_BIN, BENCH_INGEST_CONCURRENCY ("2 4"),
# BENCH_INGEST_RUNS (3), BENCH_READ_RUNS (3), BENCH_WRK ("-t2 -c32 -d15s"), BENCH_WARMUP (5),
# BENCH_READ_IDS (1000), BENCH_SERVER_ENV ("KASAMA_THREADS=32 ..."), BENCH_BUDGET (seconds, 540),
# BENCH_OUT (bench/results/latest.json).
set -euo pipefail

bench=$(cd "$(dirname "$(readlink -f "$0")")" && pwd)
repo=$(cd "$bench/.." && pwd)
harness=$repo/tests/harness/server.sh
bin=${KASAMA_BIN:-$repo/${KASAMA_BUILD_DIR:-build}/server/kasama-server}
shared=${KASAMA_SHARED_DIR:-$repo/../shared}
synthea=$shared/corpora/synthea
out_json=${BENCH_OUT:-$bench/results/latest.json}

ingest_conc=${BENCH_INGEST_CONCURRENCY:-2 4}
ingest_runs=${BENCH_INGEST_RUNS:-3}
read_runs=${BENCH_READ_RUNS:-3}
wrk_args=${BENCH_WRK:--t2 -c32 -d15s}
warmup=${BENCH_WARMUP:-5}
read_ids=${BENCH_READ_IDS:-1000}
budget=${BENCH_BUDGET:-540}
read -r -a server_env <<<"${BENCH_SERVER_ENV:-}"

while (($#)); do
  case "$1" in
    --quick) ingest_runs=1 read_runs=1 wrk_args="-t2 -c32 -d5s" warmup=2; shift ;;
    -h | --help) sed -n '3,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
done

for tool in node wrk nginx curl; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is not installed (./kasama bench installs it)" >&2; exit 1; }
done
[ -x "$bin" ] || { echo "bench: no server binary at $bin (build first: ./kasama build)" >&2; exit 1; }

tmp=$(mktemp -d /tmp/kasama-bench.XXXXXX)
nginx_pid=
failed=0
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$nginx_pid" ] && kill -0 "$nginx_pid" 2>/dev/null; then
    kill -TERM "$nginx_pid" 2>/dev/null || true
    wait "$nginx_pid" 2>/dev/null || true
  fi
  local d
  for d in "$tmp"/srv-*; do
    [ -f "$d/server.pid" ] && { "$harness" stop "$d" >/dev/null 2>&1 || echo "bench: server in $d did not stop cleanly" >&2; }
  done
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
log() { printf '[bench %3ds] %s\n' $((SECONDS - start_s)) "$*"; }
over_budget() { ((SECONDS - start_s > budget)); }

free_port() {
  node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

# ---- CPU accounting from /proc (ticks of 1/CLK_TCK s; 100% = one core) ----
# The client (node or wrk) runs in the foreground as a child of this shell, so its CPU shows up
# in this shell's cutime+cstime once it has been waited for.
hz=$(getconf CLK_TCK)
T=0
ticks_of() { # T = utime+stime of pid $1, all threads (0 if gone)
  local line
  T=0
  read -r line <"/proc/$1/stat" 2>/dev/null || return 0
  line=${line##*) }
  local -a f
  read -r -a f <<<"$line"
  T=$((f[11] + f[12]))
}
children_ticks() {
  local line
  read -r line <"/proc/$$/stat"
  line=${line##*) }
  local -a f
  read -r -a f <<<"$line"
  T=$((f[13] + f[14]))
}
sys_ticks() { # T = busy ticks of the whole machine
  local _cpu u n s _idle _iowait irq si st _rest
  read -r _cpu u n s _idle _iowait irq si st _rest </proc/stat
  T=$((u + n + s + irq + si + st))
}
cpu_names=() cpu_pids=() cpu_t0=() cpu_c0=0 cpu_s0=0 cpu_w0=0
cpu_begin() { # cpu_begin name=pid ...
  cpu_names=() cpu_pids=() cpu_t0=()
  local a
  for a; do
    cpu_names+=("${a%%=*}") cpu_pids+=("${a#*=}")
    ticks_of "${a#*=}"
    cpu_t0+=("$T")
  done
  children_ticks; cpu_c0=$T
  sys_ticks; cpu_s0=$T
  cpu_w0=${EPOCHREALTIME/./}
}
CPU_JSON=
cpu_end() { # CPU_JSON = {"name":percent,...,"client":..,"other":..}
  local wall_us=$((${EPOCHREALTIME/./} - cpu_w0)) i ours=0 json='' d
  pct() { echo $(($1 * 100 * 1000000 / hz / wall_us)); }
  for i in "${!cpu_names[@]}"; do
    ticks_of "${cpu_pids[$i]}"
    d=$((T - cpu_t0[i])); ours=$((ours + d))
    json+="\"${cpu_names[$i]}\":$(pct $d),"
  done
  children_ticks; d=$((T - cpu_c0)); ours=$((ours + d))
  json+="\"client\":$(pct $d),"
  sys_ticks; d=$((T - cpu_s0 - ours)); ((d >= 0)) || d=0
  json+="\"other\":$(pct $d)"
  CPU_JSON="{$json}"
}
cpu_text() { node -e 'console.log(Object.entries(JSON.parse(process.argv[1])).map(([k,v])=>k+" "+v+"%").join(", "))' "$1"; }

runs_file=$tmp/runs.jsonl
: >"$runs_file"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
other_servers=$(pgrep -c -x kasama-server || true)
log "load average $load_before; $other_servers other kasama-server process(es) running on this machine"

srv_dir='' srv_port=''
start_server() { # start_server NAME: fresh data dir, free port
  srv_dir=$tmp/srv-$1
  srv_port=$(free_port)
  "$harness" start "$srv_dir" "$srv_port" "$bin" "${server_env[@]}" >/dev/null
}
stop_server() {
  if ! "$harness" stop "$1" >"$tmp/stop.log" 2>&1; then
    echo "bench: server in $1 did not stop cleanly:" >&2
    cat "$tmp/stop.log" >&2
    failed=1
  fi
  rm -rf "$1"
}
server_pids() { # name=pid pairs for cpu_begin
  echo "kasama-server=$(cat "$1/server.pid")" "mariadbd=$(cat "$1/mariadb/mariadbd.pid")"
}

# ---------------------------------------------------------------- 1. ingest
ingest_skipped=
base=
if [ -d "$synthea/shared" ] && compgen -G "$synthea/*.json" >/dev/null; then
  read -r -a concs <<<"$ingest_conc"
  log "ingest: $synthea, concurrency ${concs[*]}, $ingest_runs run(s) each, fresh server per run"
  for ((r = 1; r <= ingest_runs; r++)); do
    for c in "${concs[@]}"; do
      if over_budget && [ -n "$base" ]; then
        log "ingest: time budget (${budget}s) used up, skipping the remaining runs"
        break 2
      fi
      [ -n "$base" ] && stop_server "$srv_dir"
      start_server "ingest-c$c-r$r"
      base=https://127.0.0.1:$srv_port/fhir
      # shellcheck disable=SC2046
      cpu_begin $(server_pids "$srv_dir")
      rc=0
      timeout 300 node "$bench/ingest.mjs" "$base" "$srv_dir/tls/server.crt" "$srv_dir" "$c" "$synthea" >"$tmp/ingest.json" || rc=$?
      cpu_end
      if [ "$rc" -ne 0 ] || [ ! -s "$tmp/ingest.json" ]; then
        echo "bench: ingest run failed (exit $rc); server log tail:" >&2
        tail -n 20 "$srv_dir/server.log" >&2
        failed=1
        [ -s "$tmp/ingest.json" ] || continue
      fi
      line=$(cat "$tmp/ingest.json")
      body=${line#\{}
      echo "{\"phase\":\"ingest\",\"run\":$r,${body%\}},\"cpu\":$CPU_JSON}" >>"$runs_file"
      log "ingest c=$c run $r: $(node -e 'const j=JSON.parse(process.argv[1]);console.log(`${j.resources} resources in ${j.seconds}s = ${j.resources_per_s} resources/s (bundle p50 ${j.bundle_ms_p50} ms, p99 ${j.bundle_ms_p99} ms, errors ${j.errors})`)' "$line"); CPU $(cpu_text "$CPU_JSON")"
    done
  done
else
  ingest_skipped="no Synthea corpus at $synthea (set KASAMA_SHARED_DIR)"
  log "ingest: SKIPPED, $ingest_skipped; loading 1000 generated Patients for the read benchmark"
  start_server read
  base=https://127.0.0.1:$srv_port/fhir
  timeout 300 node "$bench/ingest.mjs" "$base" "$srv_dir/tls/server.crt" "$srv_dir" 4 synthetic:1000 >/dev/null
fi

# ---------------------------------------------------------------- 2. reads
# The server of the last ingest run (or the generated Patients) serves the reads.
ids_json=$(node "$bench/fetch_patients.mjs" "$base" "$srv_dir/tls/server.crt" "$srv_dir" "$tmp/read" "$read_ids")
n_ids=$(node -e 'console.log(JSON.parse(process.argv[1]).ids)' "$ids_json")
mean_bytes=$(node -e 'console.log(JSON.parse(process.argv[1]).mean_bytes)' "$ids_json")
log "read: $n_ids Patient ids, mean body $mean_bytes bytes"
# The FHIR API needs a bearer token: the system token of the server's demo backend client
# (server.sh starts it with KASAMA_DEMO_DATA=accounts; backend tokens last an hour there). nginx
# gets the same header, so that both servers still get the identical command.
token=$(node "$bench/auth.mjs" "$base" "$srv_dir/tls/server.crt" "$srv_dir")
auth_header="Authorization: Bearer $token"

ngx=$tmp/nginx
mkdir -p "$ngx/tmp"
nginx_port=$(free_port)
user_line=
[ "$(id -u)" -ne 0 ] || user_line="user root;"
sed -e "s|@USER_LINE@|$user_line|" -e "s|@PREFIX@|$ngx|g" -e "s|@PORT@|$nginx_port|" \
  -e "s|@CERT@|$srv_dir/tls/server.crt|" -e "s|@KEY@|$srv_dir/tls/server.key|" \
  -e "s|@ROOT@|$tmp/read/www|" "$bench/nginx.conf.in" >"$ngx/nginx.conf"
nginx -p "$ngx" -c "$ngx/nginx.conf" 2>"$ngx/stderr.log" &
nginx_pid=$!
for _ in $(seq 1 50); do
  curl -skf -o /dev/null "https://127.0.0.1:$nginx_port/fhir/Patient/$(head -n1 "$tmp/read/ids.txt")" && break
  kill -0 "$nginx_pid" 2>/dev/null || { echo "bench: nginx did not start:" >&2; cat "$ngx/stderr.log" "$ngx/error.log" >&2 2>/dev/null; exit 1; }
  sleep 0.1
done
nginx_worker=$(pgrep -P "$nginx_pid" | head -n1)
# Both must serve byte-identical bodies, or the comparison means nothing.
first=$(head -n1 "$tmp/read/ids.txt")
cmp -s <(curl -sk -H "$auth_header" "https://127.0.0.1:$srv_port/fhir/Patient/$first") \
  <(curl -sk -H "$auth_header" "https://127.0.0.1:$nginx_port/fhir/Patient/$first") ||
  { echo "bench: kasama and nginx serve different bodies for Patient/$first" >&2; exit 1; }

run_wrk() { # run_wrk TARGET PORT DURATION_ARGS... -> WRK_LINE
  local target=$1 port=$2
  shift 2
  local out=$tmp/wrk-$target.txt
  timeout 120 wrk "$@" -H "$auth_header" --latency -s "$bench/rotate.lua" "https://127.0.0.1:$port" -- "$tmp/read/ids.txt" >"$out" 2>&1 ||
    { echo "bench: wrk failed against $target:" >&2; cat "$out" >&2; return 1; }
  WRK_LINE=$(sed -n 's/^WRK_JSON //p' "$out")
  [ -n "$WRK_LINE" ] || { echo "bench: no result from wrk:" >&2; cat "$out" >&2; return 1; }
}

# wrk's -d is replaced for the warm-up; the rest of the arguments stay.
read -r -a wrk_argv <<<"$wrk_args"
warm_argv=()
for a in "${wrk_argv[@]}"; do [[ $a == -d* ]] || warm_argv+=("$a"); done
log "read: warm-up ${warmup}s each (not counted)"
run_wrk kasama "$srv_port" "${warm_argv[@]}" "-d${warmup}s"
run_wrk nginx "$nginx_port" "${warm_argv[@]}" "-d${warmup}s"

log "read: wrk $wrk_args, $read_runs run(s) each, alternating kasama and nginx"
for ((r = 1; r <= read_runs; r++)); do
  if ((r > 1)) && over_budget; then
    log "read: time budget (${budget}s) used up, skipping the remaining runs"
    break
  fi
  for target in kasama nginx; do
    if [ "$target" = kasama ]; then
      port=$srv_port
      # shellcheck disable=SC2046
      cpu_begin $(server_pids "$srv_dir")
    else
      port=$nginx_port
      cpu_begin "nginx=$nginx_worker"
    fi
    run_wrk "$target" "$port" "${wrk_argv[@]}" || { failed=1; continue; }
    cpu_end
    body=${WRK_LINE#\{}
    echo "{\"phase\":\"read\",\"target\":\"$target\",\"run\":$r,${body%\}},\"cpu\":$CPU_JSON}" >>"$runs_file"
    log "read $target run $r: $(node -e 'const j=JSON.parse(process.argv[1]);console.log(`${j.rps} req/s, p50 ${j.p50_us/1000} ms, p99 ${j.p99_us/1000} ms, errors ${j.errors+j.non2xx}`)' "$WRK_LINE"); CPU $(cpu_text "$CPU_JSON")"
  done
done

kill -QUIT "$nginx_pid" 2>/dev/null || true
wait "$nginx_pid" 2>/dev/null || true
nginx_pid=
server_errors=$(grep -c -E '^[^ ]+ +(WARN|ERROR|FATAL)' "$srv_dir/server.log" || true)
stop_server "$srv_dir"

# ---------------------------------------------------------------- 3. summary
git_rev=$(git -C "$repo" describe --always --dirty 2>/dev/null || echo "")
BIN="$bin_src" BMT="$(date -r "$bin" -u +%FT%TZ)" GIT="$git_rev" CPUS=$(nproc) LB="$load_before" LA="$(cut -d' ' -f1-3 /proc/loadavg)" OTHERS="$other_servers" \
  SKIP="$ingest_skipped" IDS="$n_ids" BYTES="$mean_bytes" WRK="$wrk_args" SENV="${BENCH_SERVER_ENV:-}" SERR="$server_errors" \
  node -e '
const e = process.env;
console.log(JSON.stringify({
  date: new Date().toISOString(), binary: e.BIN, binary_mtime: e.BMT, git: e.GIT || null, cpus: +e.CPUS,
  load_before: e.LB, load_after: e.LA, other_kasama_servers: +e.OTHERS,
  server_env: e.SENV, server_log_warnings_errors: +e.SERR, ingest_skipped: e.SKIP || null,
  read: { ids: +e.IDS, mean_bytes: +e.BYTES, wrk: e.WRK },
}));' >"$tmp/meta.json"
node "$bench/report.mjs" "$runs_file" "$tmp/meta.json" "$out_json"
log "done in $((SECONDS - start_s))s"
exit "$failed"
