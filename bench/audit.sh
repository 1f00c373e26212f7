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
bench_name=audit
# shellcheck source=read_setup.sh
source "$bench/read_setup.sh"

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
