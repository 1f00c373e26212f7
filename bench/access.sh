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
bench_name=access
# shellcheck source=read_setup.sh
source "$bench/read_setup.sh"

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
