#!/usr/bin/env bash
# Read throughput with the audit trail on and off (issue 5, R-30): one data dir with generated
# residents; the server is resumed on it in turn with the audit trail off, on with each read's
# record fdatasync'ed before the answer (KASAMA_AUDIT_SYNC=fdatasync, the default), and on
# with the record only written to the kernel (KASAMA_AUDIT_SYNC=write); wrk reads
# GET /fhir/Patient/{id} with a bearer token after a warm-up. Prints each run, the medians and
# their ratios to "off".
#   bench/audit.sh
# Knobs (environment): KASAMA_BIN, BENCH_RUNS (3), BENCH_WRK ("-t2 -c32 -d15s"), BENCH_WARMUP (5),
# BENCH_PATIENTS (300).
set -euo pipefail

bench=$(cd "$(dirname "$(readlink -f "$0")")" && pwd)
repo=$(cd "$bench/.." && pwd)
harness=$repo/tests/harness/server.sh
bin_src=${KASAMA_BIN:-$repo/build/server/kasama-server}
runs=${BENCH_RUNS:-3}
read -r -a wrk_argv <<<"${BENCH_WRK:--t2 -c32 -d15s}"
warmup=${BENCH_WARMUP:-5}
patients=${BENCH_PATIENTS:-300}
for tool in node wrk curl; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is not installed (./kasama bench installs it)" >&2; exit 1; }
done

tmp=$(mktemp -d /tmp/kasama-bench-audit.XXXXXX)
dir=$tmp/srv
cleanup() {
  [ -f "$dir/server.pid" ] && "$harness" stop "$dir" >/dev/null 2>&1
  rm -rf "$tmp"
}
trap cleanup EXIT
cp -p "$bin_src" "$tmp/kasama-server"  # another build may replace the binary meanwhile
bin=$tmp/kasama-server
port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
base=https://localhost:$port/fhir

"$harness" start "$dir" "$port" "$bin" >/dev/null
node "$bench/population.mjs" "$base" --patients "$patients" --data-dir "$dir" --ca "$dir/tls/server.crt" \
  --no-verify --out "$tmp/population.json" >/dev/null
node "$bench/fetch_patients.mjs" "$base" "$dir/tls/server.crt" "$dir" "$tmp/read" 1000 >/dev/null
token=$(node "$bench/auth.mjs" "$base" "$dir/tls/server.crt" "$dir")
echo "audit bench: $(wc -l <"$tmp/read/ids.txt") Patient ids; wrk ${wrk_argv[*]}; $runs run(s) each, alternating"

wrk_rps() { # wrk_rps DURATION_ARGS... -> requests/s
  timeout 120 wrk "$@" -H "Authorization: Bearer $token" --latency -s "$bench/rotate.lua" "https://127.0.0.1:$port" \
    -- "$tmp/read/ids.txt" >"$tmp/wrk.txt" 2>&1 || { cat "$tmp/wrk.txt" >&2; return 1; }
  node -e 'const j=JSON.parse(process.argv[1]); if (j.errors + j.non2xx) { console.error("errors", j); process.exit(1) } console.log(j.rps)' \
    "$(sed -n 's/^WRK_JSON //p' "$tmp/wrk.txt")"
}
warm_argv=()
for a in "${wrk_argv[@]}"; do [[ $a == -d* ]] || warm_argv+=("$a"); done

declare -A results=([off]="" [fdatasync]="" [write]="")
declare -A env_of=([off]="KASAMA_AUDIT=off" [fdatasync]="KASAMA_AUDIT_SYNC=fdatasync" [write]="KASAMA_AUDIT_SYNC=write")
for ((r = 1; r <= runs; r++)); do
  for mode in off fdatasync write; do
    "$harness" stop "$dir" >/dev/null
    "$harness" resume "$dir" "$port" "$bin" "${env_of[$mode]}" >/dev/null
    wrk_rps "${warm_argv[@]}" "-d${warmup}s" >/dev/null
    rps=$(wrk_rps "${wrk_argv[@]}")
    results[$mode]+="$rps "
    echo "run $r audit $mode: $rps req/s"
  done
done
node -e '
  const med = (s) => { const a = s.trim().split(/\s+/).map(Number).sort((x, y) => x - y); return a[Math.floor(a.length / 2)]; };
  const [off, fsync, write] = process.argv.slice(1).map(med);
  console.log(`median req/s: audit off ${off.toFixed(0)}, on (fdatasync) ${fsync.toFixed(0)}, on (write) ${write.toFixed(0)}`);
  console.log(`ratio to off: fdatasync ${(fsync / off).toFixed(3)}, write ${(write / off).toFixed(3)}`);
' "${results[off]}" "${results[fdatasync]}" "${results[write]}"
audited=$(mariadb --no-defaults -S "$dir/mariadb/mysqld.sock" -u root -N -B kasama -e "SELECT COUNT(*) FROM audit_event")
echo "audit records written during the bench: $audited"
