#!/usr/bin/env node
// Summarises the runs run.sh recorded (one JSON object a line) into medians, prints the summary
// table and writes it as JSON.
//   node report.mjs RUNS_JSONL META_JSON OUT_JSON
import fs from 'node:fs';
import path from 'node:path';

const [runsFile, metaFile, outFile] = process.argv.slice(2);
const runs = fs.readFileSync(runsFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
const meta = JSON.parse(fs.readFileSync(metaFile, 'utf8'));

const median = (xs) => {
  const v = xs.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return null;
  const m = Math.floor(v.length / 2);
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
};
const round = (x, d = 0) => (x == null ? null : Math.round(x * 10 ** d) / 10 ** d);
const cpuMedians = (rs) => {
  const keys = [...new Set(rs.flatMap((r) => Object.keys(r.cpu ?? {})))];
  return Object.fromEntries(keys.map((k) => [k, round(median(rs.map((r) => r.cpu?.[k])))]));
};

// Work per core-second of the server side (kasama-server + mariadbd, or the nginx worker): much
// less sensitive than raw rates to other load on a shared machine, and fair to nginx's single
// worker, which gets a smaller CPU share than kasama's many threads when the machine is contended.
const serverCores = (r) => Object.entries(r.cpu ?? {}).filter(([k]) => k !== 'client' && k !== 'other').reduce((s, [, v]) => s + v, 0) / 100;
const perCore = (rate, r) => (serverCores(r) > 0 ? rate / serverCores(r) : null);

const ingest = [];
for (const c of [...new Set(runs.filter((r) => r.phase === 'ingest').map((r) => r.concurrency))]) {
  const rs = runs.filter((r) => r.phase === 'ingest' && r.concurrency === c);
  ingest.push({
    concurrency: c,
    runs: rs.length,
    resources: rs[0].resources,
    bundles: rs[0].bundles,
    errors: rs.reduce((s, r) => s + r.errors, 0),
    resources_per_s: round(median(rs.map((r) => r.resources_per_s))),
    resources_per_s_each: rs.map((r) => round(r.resources_per_s)),
    resources_per_server_core_s: round(median(rs.map((r) => perCore(r.resources_per_s, r)))),
    seconds: round(median(rs.map((r) => r.seconds)), 2),
    bundle_ms_p50: round(median(rs.map((r) => r.bundle_ms_p50)), 1),
    bundle_ms_p99: round(median(rs.map((r) => r.bundle_ms_p99)), 1),
    cpu_percent: cpuMedians(rs),
  });
}

const read = {};
for (const target of ['kasama', 'nginx']) {
  const rs = runs.filter((r) => r.phase === 'read' && r.target === target);
  if (!rs.length) continue;
  read[target] = {
    runs: rs.length,
    rps: round(median(rs.map((r) => r.rps))),
    rps_each: rs.map((r) => round(r.rps)),
    rps_per_server_core: round(median(rs.map((r) => perCore(r.rps, r)))),
    p50_ms: round(median(rs.map((r) => r.p50_us / 1000)), 2),
    p90_ms: round(median(rs.map((r) => r.p90_us / 1000)), 2),
    p99_ms: round(median(rs.map((r) => r.p99_us / 1000)), 2),
    errors: rs.reduce((s, r) => s + r.errors + r.non2xx, 0),
    cpu_percent: cpuMedians(rs),
  };
}
const ratio = read.kasama && read.nginx ? round(read.kasama.rps / read.nginx.rps, 3) : null;
const ratioPerCore = read.kasama?.rps_per_server_core && read.nginx?.rps_per_server_core
  ? round(read.kasama.rps_per_server_core / read.nginx.rps_per_server_core, 3) : null;

const targets = { ingest_resources_per_s: 1500, read_ratio_vs_nginx: 0.5 };
const summary = { ...meta, ingest, read: { ...meta.read, ...read, ratio_kasama_nginx: ratio, ratio_per_server_core: ratioPerCore }, targets };

// ---- text table ----
const out = [];
const pad = (s, n) => String(s ?? '-').padStart(n);
const padr = (s, n) => String(s ?? '-').padEnd(n);
const cpuText = (c) => Object.entries(c ?? {}).map(([k, v]) => `${k} ${v}%`).join(', ');
out.push('');
out.push('==================== kasama benchmark summary ====================');
out.push(`binary   ${meta.binary} (built ${meta.binary_mtime}, git ${meta.git ?? '-'})${meta.server_env ? '; server env ' + meta.server_env : ''}`);
if (meta.server_log_warnings_errors) out.push(`server   ${meta.server_log_warnings_errors} WARN/ERROR lines in the log of the read server`);
out.push(`machine  ${meta.cpus} CPUs; load average before ${meta.load_before}, after ${meta.load_after}; ` +
  `other kasama-server processes at start: ${meta.other_kasama_servers}`);
if (meta.ingest_skipped) out.push(`ingest   skipped: ${meta.ingest_skipped}`);
if (ingest.length) {
  out.push('');
  out.push(`Synthea ingest (${ingest[0].bundles} transaction Bundles, ${ingest[0].resources} resources, fresh server each run)`);
  out.push(`  ${padr('in flight', 10)}${pad('runs', 5)}${pad('resources/s', 13)}${pad('/core-s', 9)}${pad('total s', 9)}${pad('bundle p50', 12)}${pad('p99 ms', 8)}  per-run resources/s; CPU (median, 100% = 1 core)`);
  for (const r of ingest) {
    out.push(`  ${padr(r.concurrency, 10)}${pad(r.runs, 5)}${pad(r.resources_per_s, 13)}${pad(r.resources_per_server_core_s, 9)}${pad(r.seconds, 9)}${pad(r.bundle_ms_p50, 12)}${pad(r.bundle_ms_p99, 8)}  [${r.resources_per_s_each.join(', ')}]; ${cpuText(r.cpu_percent)}${r.errors ? `  ERRORS ${r.errors}` : ''}`);
  }
}
if (read.kasama || read.nginx) {
  out.push('');
  out.push(`Read GET /fhir/Patient/{id} over TLS keep-alive, ${meta.read.ids} ids (mean ${meta.read.mean_bytes} B), wrk ${meta.read.wrk}`);
  out.push(`  ${padr('server', 8)}${pad('runs', 5)}${pad('req/s', 10)}${pad('/core-s', 9)}${pad('p50 ms', 8)}${pad('p90 ms', 8)}${pad('p99 ms', 8)}  per-run req/s; CPU (median, 100% = 1 core)`);
  for (const [t, r] of Object.entries(read)) {
    out.push(`  ${padr(t, 8)}${pad(r.runs, 5)}${pad(r.rps, 10)}${pad(r.rps_per_server_core, 9)}${pad(r.p50_ms, 8)}${pad(r.p90_ms, 8)}${pad(r.p99_ms, 8)}  [${r.rps_each.join(', ')}]; ${cpuText(r.cpu_percent)}${r.errors ? `  ERRORS ${r.errors}` : ''}`);
  }
  out.push(`  ratio kasama/nginx: ${ratio ?? '-'} (req/s), ${ratioPerCore ?? '-'} (req per server core-second)`);
}
out.push('/core-s = rate per core-second of server CPU (kasama-server + mariadbd, or the nginx worker).');
out.push('"other" = CPU used by the rest of the machine during the run: well above ~20% means a disturbed run.');
out.push('');
const verdict = [];
for (const r of ingest) verdict.push(`ingest@${r.concurrency} ${r.resources_per_s} res/s ${r.resources_per_s >= targets.ingest_resources_per_s ? '>=' : '<'} ${targets.ingest_resources_per_s}`);
if (ratio != null) verdict.push(`read ratio ${ratio} ${ratio >= targets.read_ratio_vs_nginx ? '>=' : '<'} ${targets.read_ratio_vs_nginx}`);
if (verdict.length) out.push(`targets: ${verdict.join('; ')}`);
out.push(`written to ${outFile}`);
console.log(out.join('\n'));

fs.mkdirSync(path.dirname(outFile), { recursive: true });
fs.writeFileSync(outFile, JSON.stringify({ ...summary, runs }, null, 2) + '\n');
