# Shared by bench/audit.sh and bench/access.sh (sourced; $bench_name names the bench): a
# server on a data dir of its own with generated residents, the ids to read, a bearer token,
# and wrk_rps, which runs wrk over GET /fhir/Patient/{id} and prints the requests/s (failing
# on any error or non-2xx answer). Everything started is stopped on exit.
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

tmp=$(mktemp -d /tmp/kasama-bench-$bench_name.XXXXXX)
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
echo "$bench_name bench: $(wc -l <"$tmp/read/ids.txt") Patient ids; wrk ${wrk_argv[*]}; $runs run(s) each, alternating"

wrk_rps() { # wrk_rps DURATION_ARGS... -> requests/s
  timeout 120 wrk "$@" -H "Authorization: Bearer $token" --latency -s "$bench/rotate.lua" "https://127.0.0.1:$port" \
    -- "$tmp/read/ids.txt" >"$tmp/wrk.txt" 2>&1 || { cat "$tmp/wrk.txt" >&2; return 1; }
  node -e 'const j=JSON.parse(process.argv[1]); if (j.errors + j.non2xx) { console.error("errors", j); process.exit(1) } console.log(j.rps)' \
    "$(sed -n 's/^WRK_JSON //p' "$tmp/wrk.txt")"
}
warm_argv=()
for a in "${wrk_argv[@]}"; do [[ $a == -d* ]] || warm_argv+=("$a"); done

