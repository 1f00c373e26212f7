#!/usr/bin/env bash
# Read throughput with access control and the audit trail (issue 5, R-20, R-21, R-30): one data
# dir with generated residents, read as GET /fhir/Patient/{id} by the demo institution's
# backend client (institution-scoped: its category range is checked on every read). Phase 1,
# no resident opted out: "off" (KASAMA_AUDIT=off) and "audit" (the default fdatasync trail)
# alternate. Then every 10th resident opts out (bench/optouts.mjs; wrk reads only the others,
# so every read pays for the opt-out check of its subjects). Phase 2: "policy" (audit off) and
# "policy+audit" alternate. Prints each run, the medians and their ratios to "off" — the
# target of issue 5 is policy+audit / off >= 0.7.
#   bench/access.sh
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

tmp=$(mktemp -d /tmp/kasama-bench-access.XXXXXX)
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
echo "access bench: $(wc -l <"$tmp/read/ids.txt") Patient ids; wrk ${wrk_argv[*]}; $runs run(s) each, alternating"

wrk_rps() { # wrk_rps DURATION_ARGS... -> requests/s
  timeout 120 wrk "$@" -H "Authorization: Bearer $token" --latency -s "$bench/rotate.lua" "https://127.0.0.1:$port" \
    -- "$tmp/read/ids.txt" >"$tmp/wrk.txt" 2>&1 || { cat "$tmp/wrk.txt" >&2; return 1; }
  node -e 'const j=JSON.parse(process.argv[1]); if (j.errors + j.non2xx) { console.error("errors", j); process.exit(1) } console.log(j.rps)' \
    "$(sed -n 's/^WRK_JSON //p' "$tmp/wrk.txt")"
}
warm_argv=()
for a in "${wrk_argv[@]}"; do [[ $a == -d* ]] || warm_argv+=("$a"); done

declare -A results=([off]="" [audit]="" [policy]="" [policy+audit]="")
declare -A env_of=([off]="KASAMA_AUDIT=off" [audit]="KASAMA_AUDIT_SYNC=fdatasync" [policy]="KASAMA_AUDIT=off"
                   [policy+audit]="KASAMA_AUDIT_SYNC=fdatasync")
phase() { # phase MODE MODE
  for ((r = 1; r <= runs; r++)); do
    for mode in "$@"; do
      "$harness" stop "$dir" >/dev/null
      "$harness" resume "$dir" "$port" "$bin" "${env_of[$mode]}" >/dev/null
      wrk_rps "${warm_argv[@]}" "-d${warmup}s" >/dev/null
      rps=$(wrk_rps "${wrk_argv[@]}")
      results[$mode]+="$rps "
      echo "run $r $mode: $rps req/s"
    done
  done
}
phase off audit
echo "opt-outs: $(node "$bench/optouts.mjs" "$base" "$dir/tls/server.crt" "$dir" "$tmp/read/ids.txt" 10)"
phase policy policy+audit
node -e '
  const med = (s) => { const a = s.trim().split(/\s+/).map(Number).sort((x, y) => x - y); return a[Math.floor(a.length / 2)]; };
  const [off, audit, policy, both] = process.argv.slice(1).map(med);
  console.log(`median req/s: off ${off.toFixed(0)}, audit ${audit.toFixed(0)}, policy ${policy.toFixed(0)}, policy+audit ${both.toFixed(0)}`);
  console.log(`ratio to off: audit ${(audit / off).toFixed(3)}, policy ${(policy / off).toFixed(3)}, policy+audit ${(both / off).toFixed(3)} (target >= 0.7)`);
' "${results[off]}" "${results[audit]}" "${results[policy]}" "${results[policy+audit]}"
