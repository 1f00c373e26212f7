#!/usr/bin/env node
// Search benchmark client (bench/README.md, "Search benchmark"): query latency per query shape
// and counting throughput against a server loaded by population.mjs.
//
//   node search_bench.mjs BASE_URL [options]
//     --reps N         measured requests per shape (default 200)
//     --warmup N       unmeasured requests per shape first (default 20)
//     --clients N      concurrent clients, each one keep-alive TLS connection sending its requests
//                      one after the other (default 1; 2 measures under light concurrency)
//     --shape-seconds T  stop measuring a shape after T seconds (default 300), so that a very slow
//                      shape cannot stall a 1M run; the number of measured requests is reported
//     --sample N       residents sampled (reservoir, over all Patients) for the parameters (default 500)
//     --seed S         PRNG seed for the sample and the parameters (default 1)
//     --shapes LIST    comma-separated shape names to run (default all; see the table below)
//     --count-code C   LOINC code of the counting shape (default 4548-4, ~5 % of Observations)
//     --ca FILE        CA certificate (default: NODE_EXTRA_CA_CERTS)
//     --data-dir DIR   server data dir: demo-credentials.json for the bearer token (auth.mjs;
//                      required), server.pid and mariadb/mariadbd.pid for the CPU split per shape
//     --ingest FILE    population.mjs result to include in the JSON and summary
//     --meta FILE      JSON object merged into the result (search.sh: binary, git, server settings)
//     --out FILE       JSON result (default bench/results/search-latest.json)
//
// Parameters are real: patient ids, names and encounter ids come from the data (the Patients are
// paged through once with _elements=name, the encounters are those of the first 100 sampled
// residents). Latency = request written to last byte of the response, in ms; p50/p95/p99 are
// nearest-rank over the measured requests. Exits 1 if any request did not return 200.
import fs from 'node:fs';
import path from 'node:path';
import https from 'node:https';
import { execSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { cliArgs } from './cli.mjs';
import { cpuMeter } from './cpu.mjs';
import { benchBearer } from './auth.mjs';
import { rng } from '../tests/e2e/lib/random.js';

const here = path.dirname(fileURLToPath(import.meta.url));

const args = cliArgs(import.meta.url);
const base = args.positional[0].replace(/\/+$/, '');
const reps = Number(args.reps ?? 200);
const warmup = Number(args.warmup ?? 20);
const clients = Math.max(1, Number(args.clients ?? 1));
const sampleSize = Number(args.sample ?? 500);
const shapeSeconds = Number(args['shape-seconds'] ?? 300);
const countCode = args['count-code'] ?? '4548-4';
const outFile = args.out ?? path.join(here, 'results', 'search-latest.json');
const LOINC = 'http://loinc.org';
// The Observation codes population.mjs generates (share of Observations in the default mix).
const CODES = ['8480-6', '8462-4', '29463-7', '8302-2', '39156-5', '8280-0', '2571-8', '2085-9', '13457-7', '1920-8',
  '1742-6', '2324-2', '25428-4', '20454-5', '4548-4', '2345-7', '2093-3', '3084-1', '718-7', '2160-0', '33914-3'];

// ------------------------------------------------------------------------------ PRNG
const rand = rng(Number(args.seed ?? 1) >>> 0);
const pick = (xs) => xs[Math.floor(rand() * xs.length)];

// ------------------------------------------------------------------------------ CPU from /proc
const cpu = cpuMeter(args['data-dir']);
const cpuPids = cpu.pids;
const cpuMark = cpu.mark;
const cpuSince = cpu.since;

// ------------------------------------------------------------------------------ HTTP
const agentOpts = { keepAlive: true, maxSockets: clients };
if (args.ca) agentOpts.ca = fs.readFileSync(args.ca);
const agent = new https.Agent(agentOpts);
const bearer = await benchBearer('search_bench', { base, dataDir: args['data-dir'], ca: agentOpts.ca });

async function get(rel) {
  const token = await bearer(); // cached; renewed before it expires, outside the timing
  return new Promise((resolve) => {
    const url = /^https?:/.test(rel) ? rel : `${base}/${rel}`;
    const t0 = process.hrtime.bigint();
    https.get(url, { agent, headers: { Accept: 'application/fhir+json', Authorization: `Bearer ${token}` } }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks), ms: Number(process.hrtime.bigint() - t0) / 1e6 }));
    }).on('error', (e) => resolve({ status: 0, body: Buffer.from(e.message), ms: Number(process.hrtime.bigint() - t0) / 1e6 }));
  });
}
async function getJson(rel) { // set-up requests: any failure ends the run
  const r = await get(rel);
  if (r.status !== 200) {
    console.error(`search_bench: GET ${rel}: HTTP ${r.status} ${r.body.toString('utf8').slice(0, 300)}`);
    process.exit(1);
  }
  return JSON.parse(r.body.toString('utf8'));
}
const q = (s) => encodeURIComponent(s);

// ------------------------------------------------------------------------------ sample
const log = (m) => console.log(`[search] ${m}`);
const tSample = process.hrtime.bigint();
const sample = [];
let seen = 0;
// Reservoir sample over all Patients (default order is pk order, so taking the first page would
// favour the residents loaded first).
for (let next = 'Patient?_count=1000&_elements=name'; next;) {
  const b = await getJson(next);
  for (const e of b.entry ?? []) {
    const r = e.resource;
    const ide = r.name?.find((n) => n.extension?.some((x) => x.valueCode === 'IDE')) ?? r.name?.[0];
    const syl = r.name?.find((n) => n.extension?.some((x) => x.valueCode === 'SYL'));
    const p = { id: r.id, kanji: ide?.family, kana: syl?.family };
    seen++;
    if (sample.length < sampleSize) sample.push(p);
    else {
      const j = Math.floor(rand() * seen);
      if (j < sampleSize) sample[j] = p;
    }
  }
  next = (b.link ?? []).find((l) => l.relation === 'next')?.url;
}
if (!sample.length) {
  console.error('search_bench: the server has no Patient (load it with population.mjs first)');
  process.exit(1);
}
const encounters = [];
for (const p of sample.slice(0, 100)) {
  const b = await getJson(`Encounter?patient=${q(p.id)}&_elements=id&_count=100`);
  for (const e of b.entry ?? []) encounters.push(e.resource.id);
}
const totals = {};
for (const t of ['Patient', 'Encounter', 'Observation', 'Condition']) totals[t] = (await getJson(`${t}?_summary=count`)).total;
const allResources = (await getJson('?_summary=count')).total;
log(`${allResources} resources (${Object.entries(totals).map(([k, v]) => `${k} ${v}`).join(', ')}); sampled ${sample.length} of ${seen} Patients, ` +
  `${encounters.length} Encounters, in ${(Number(process.hrtime.bigint() - tSample) / 1e9).toFixed(1)} s`);
const withKanji = sample.filter((p) => p.kanji);
const withKana = sample.filter((p) => p.kana);
const firstChars = (s, n) => [...s].slice(0, n).join('');

// ------------------------------------------------------------------------------ shapes
// scoped: a patient-scoped query (target p95 < 10 ms); counting: matches per second reported.
let alternate = 0;
const SHAPES = [
  { name: 'obs_patient_code', scoped: true, query: 'Observation?patient=X&code=http://loinc.org|Y',
    make: () => `Observation?patient=${q(pick(sample).id)}&code=${q(`${LOINC}|${pick(CODES)}`)}` },
  { name: 'obs_code_date', query: 'Observation?code=http://loinc.org|C&date=ge2024-01-01 (C: any of the 21 codes)',
    make: () => `Observation?code=${q(`${LOINC}|${pick(CODES)}`)}&date=ge2024-01-01` },
  { name: 'patient_name_prefix', query: 'Patient?name=P (first kanji of a family name, or first 2 kana)',
    make: () => (alternate++ % 2 && withKana.length
      ? `Patient?name=${q(firstChars(pick(withKana).kana, 2))}`
      : `Patient?name=${q(firstChars(pick(withKanji).kanji, 1))}`), needs: () => withKanji.length > 0 },
  { name: 'patient_family', query: 'Patient?family=F (full family name, kanji or kana)',
    make: () => (alternate++ % 2 && withKana.length ? `Patient?family=${q(pick(withKana).kana)}` : `Patient?family=${q(pick(withKanji).kanji)}`),
    needs: () => withKanji.length > 0 },
  { name: 'enc_patient_revinclude', scoped: true, query: 'Encounter?patient=X&_revinclude=Observation:encounter',
    make: () => `Encounter?patient=${q(pick(sample).id)}&_revinclude=${q('Observation:encounter')}` },
  { name: 'obs_count_code', counting: true, query: `Observation?code=http://loinc.org|${countCode}&_summary=count`,
    make: () => `Observation?code=${q(`${LOINC}|${countCode}`)}&_summary=count` },
  { name: 'patient_birthdate_year', query: 'Patient?birthdate=geY-01-01&birthdate=lt(Y+1)-01-01&_count=50 (Y 1930-2005)',
    make: () => {
      const y = 1930 + Math.floor(rand() * 76);
      return `Patient?birthdate=ge${y}-01-01&birthdate=lt${y + 1}-01-01&_count=50`;
    } },
  { name: 'obs_patient_sort_date', scoped: true, query: 'Observation?patient=X&_sort=-date&_count=10',
    make: () => `Observation?patient=${q(pick(sample).id)}&_sort=-date&_count=10` },
  { name: 'patient_everything', scoped: true, query: 'Patient/X/$everything',
    make: () => `Patient/${q(pick(sample).id)}/$everything` },
  { name: 'obs_encounter', scoped: true, query: 'Observation?encounter=E',
    make: () => `Observation?encounter=${q(pick(encounters))}`, needs: () => encounters.length > 0 },
];
const wanted = args.shapes ? new Set(args.shapes.split(',').map((s) => s.trim())) : null;
if (wanted) {
  for (const w of wanted) if (!SHAPES.some((s) => s.name === w)) {
    console.error(`search_bench: unknown shape ${w} (known: ${SHAPES.map((s) => s.name).join(', ')})`);
    process.exit(2);
  }
}

// ------------------------------------------------------------------------------ measure
const rank = (sorted, p) => (sorted.length ? sorted[Math.max(0, Math.ceil(p * sorted.length) - 1)] : null);
const median = (xs) => {
  const v = xs.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return null;
  const m = Math.floor(v.length / 2);
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
};
const r1 = (x, d = 1) => (x == null ? null : Math.round(x * 10 ** d) / 10 ** d);

function describe(r) {
  let b = null;
  try { b = JSON.parse(r.body.toString('utf8')); } catch { /* counted below */ }
  const entry = b?.entry ?? [];
  return {
    total: typeof b?.total === 'number' ? b.total : null,
    matches: entry.filter((e) => e.search?.mode !== 'include').length,
    included: entry.filter((e) => e.search?.mode === 'include').length,
    bytes: r.body.length,
  };
}

async function runShape(shape) {
  let errors = 0, firstError = null;
  let stopAt = Infinity, cut = false;
  const run = async (n, record) => {
    let left = n;
    await Promise.all(Array.from({ length: clients }, async () => {
      while (left > 0) {
        if (process.hrtime.bigint() > stopAt) {
          cut = true;
          break;
        }
        left--;
        const rel = shape.make();
        const r = await get(rel);
        if (r.status !== 200) {
          errors++;
          firstError ??= `GET ${rel}: HTTP ${r.status} ${r.body.toString('utf8').slice(0, 300)}`;
          continue;
        }
        if (record) record.push({ rel, ms: r.ms, ...describe(r) });
      }
    }));
  };
  await run(warmup, null);
  const rows = [];
  const m0 = cpuMark();
  const t0 = process.hrtime.bigint();
  stopAt = t0 + BigInt(Math.round(shapeSeconds * 1e9));
  await run(reps, rows);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = cpuSince(m0);
  const lat = rows.map((x) => x.ms).sort((a, b) => a - b);
  const slowest = rows.reduce((a, b) => (b.ms > (a?.ms ?? -1) ? b : a), null);
  const totalsSeen = rows.map((x) => x.total).filter((x) => x != null);
  const out = {
    name: shape.name,
    query: shape.query,
    patient_scoped: !!shape.scoped,
    requests: rows.length,
    cut_short: cut,
    errors,
    first_error: firstError,
    requests_per_s: r1(rows.length / seconds),
    p50_ms: r1(rank(lat, 0.5), 2),
    p95_ms: r1(rank(lat, 0.95), 2),
    p99_ms: r1(rank(lat, 0.99), 2),
    max_ms: r1(lat[lat.length - 1], 2),
    total_p50: median(totalsSeen),
    total_min: totalsSeen.length ? Math.min(...totalsSeen) : null,
    total_max: totalsSeen.length ? Math.max(...totalsSeen) : null,
    entries_p50: median(rows.map((x) => x.matches)),
    included_p50: median(rows.map((x) => x.included)),
    bytes_p50: r1(median(rows.map((x) => x.bytes)), 0),
    slowest: slowest ? { ms: r1(slowest.ms, 2), query: slowest.rel, total: slowest.total } : null,
    cpu_percent: cpu,
  };
  if (shape.counting) {
    out.matches_per_s_p50 = Math.round(median(rows.filter((x) => x.total != null).map((x) => x.total / (x.ms / 1000))));
  }
  return out;
}

const results = [];
for (const shape of SHAPES) {
  if (wanted && !wanted.has(shape.name)) continue;
  if (shape.needs && !shape.needs()) {
    log(`${shape.name}: skipped (no sample)`);
    continue;
  }
  const r = await runShape(shape);
  results.push(r);
  log(`${r.name.padEnd(24)} p50 ${r.p50_ms} ms, p95 ${r.p95_ms} ms, p99 ${r.p99_ms} ms; total p50 ${r.total_p50 ?? '-'}, ` +
    `entries p50 ${r.entries_p50}${r.included_p50 ? ` (+${r.included_p50} included)` : ''}` +
    `${r.matches_per_s_p50 ? `; ${r.matches_per_s_p50} matches/s` : ''}; CPU ${Object.entries(r.cpu_percent).map(([k, v]) => `${k} ${v}%`).join(', ')}` +
    `${r.cut_short ? `; only ${r.requests} requests (--shape-seconds ${shapeSeconds})` : ''}` +
    `${r.errors ? `; ERRORS ${r.errors}: ${r.first_error}` : ''}`);
}
agent.destroy();

// ------------------------------------------------------------------------------ report
const ingest = args.ingest && fs.existsSync(args.ingest) ? JSON.parse(fs.readFileSync(args.ingest, 'utf8')) : null;
const targets = {
  patient_scoped_p95_ms: 10, counting_matches_per_s: 1_000_000,
  ingest_resources_per_s: 1500, ingest_last_vs_first_slowdown: 0.2,
};
const verdict = [];
for (const r of results.filter((x) => x.patient_scoped)) {
  verdict.push(`${r.name} p95 ${r.p95_ms} ms ${r.p95_ms < targets.patient_scoped_p95_ms ? '<' : '>='} ${targets.patient_scoped_p95_ms}`);
}
for (const r of results.filter((x) => x.matches_per_s_p50 != null)) {
  verdict.push(`counting ${r.matches_per_s_p50} matches/s ${r.matches_per_s_p50 >= targets.counting_matches_per_s ? '>=' : '<'} ${targets.counting_matches_per_s}`);
}
if (ingest) {
  verdict.push(`ingest ${ingest.resources_per_s} res/s ${ingest.resources_per_s >= targets.ingest_resources_per_s ? '>=' : '<'} ${targets.ingest_resources_per_s}`);
  if (ingest.last_vs_first_slowdown != null) {
    const s = ingest.last_vs_first_slowdown;
    verdict.push(`ingest last slice ${Math.abs(s * 100).toFixed(1)} % ${s >= 0 ? 'slower' : 'faster'} than the first ` +
      `(${s < targets.ingest_last_vs_first_slowdown ? 'within' : 'NOT within'} 20 %)`);
  }
}
const meta = args.meta && fs.existsSync(args.meta) ? JSON.parse(fs.readFileSync(args.meta, 'utf8')) : {};
const summary = {
  date: new Date().toISOString(),
  ...meta,
  base,
  clients,
  client_mode: `${clients} client(s), each one keep-alive TLS connection, requests one after the other`,
  reps,
  warmup,
  seed: Number(args.seed ?? 1),
  data: { resources: allResources, ...totals, count_code: `${LOINC}|${countCode}` },
  sample: { patients: sample.length, of_patients: seen, encounters: encounters.length },
  load_average: fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' '),
  cpus: (() => { try { return Number(execSync('nproc').toString().trim()); } catch { return null; } })(),
  shapes: results,
  targets,
  verdict,
  ingest,
};
fs.mkdirSync(path.dirname(outFile), { recursive: true });
fs.writeFileSync(outFile, JSON.stringify(summary, null, 2) + '\n');

const P = (s, n) => String(s ?? '-').padStart(n);
const out = [];
out.push('');
out.push('======================== kasama search benchmark ========================');
if (meta.binary) out.push(`binary   ${meta.binary} (built ${meta.binary_mtime}, git ${meta.git ?? '-'}); buffer pool ${meta.buffer_pool}${meta.server_env ? '; server env ' + meta.server_env : ''}`);
if (meta.data_dir) out.push(`server   data ${meta.data_dir}${meta.reused ? ' (reused)' : ''}; ${meta.server_log_warnings_errors ?? 0} WARN/ERROR lines in its log`);
out.push(`machine  ${summary.cpus} CPUs; load average ${meta.load_before ? `before ${meta.load_before}, ` : ''}now ${summary.load_average}` +
  `${meta.other_kasama_servers != null ? `; other kasama-server processes at start: ${meta.other_kasama_servers}` : ''}`);
out.push(`data     ${allResources} resources: ${Object.entries(totals).map(([k, v]) => `${k} ${v}`).join(', ')}`);
out.push(`client   ${summary.client_mode}; ${warmup} warm-up + ${reps} measured requests per shape; parameters from ${sample.length} sampled residents`);
if (ingest) {
  out.push(`ingest   ${ingest.resources} resources in ${ingest.seconds} s = ${ingest.resources_per_s} res/s (${ingest.concurrency} in flight); ` +
    `first slice ${ingest.first_slice_resources_per_s}, last ${ingest.last_slice_resources_per_s} res/s; CPU ` +
    Object.entries(ingest.cpu_percent ?? {}).map(([k, v]) => `${k} ${v}%`).join(', '));
}
out.push('');
out.push(`  ${'shape'.padEnd(24)}${P('p50 ms', 8)}${P('p95 ms', 8)}${P('p99 ms', 8)}${P('total', 8)}${P('entries', 8)}${P('bytes', 8)}  CPU (100% = 1 core)`);
for (const r of results) {
  const entries = r.included_p50 ? `${r.entries_p50}+${r.included_p50}` : r.entries_p50;
  out.push(`  ${r.name.padEnd(24)}${P(r.p50_ms, 8)}${P(r.p95_ms, 8)}${P(r.p99_ms, 8)}${P(r.total_p50, 8)}${P(entries, 8)}${P(r.bytes_p50, 8)}  ` +
    Object.entries(r.cpu_percent).map(([k, v]) => `${k} ${v}%`).join(', ') +
    (r.cut_short ? `  (${r.requests} requests only)` : '') + (r.errors ? `  ERRORS ${r.errors}` : ''));
}
out.push('');
for (const r of results) out.push(`  ${r.name.padEnd(24)}${r.query}`);
out.push('total = Bundle.total (median); entries = matches on the first page (+ included); sizes are medians.');
out.push('"other" = CPU used by the rest of the machine: well above ~20% means a disturbed run.');
out.push('');
for (const r of results.filter((x) => x.matches_per_s_p50 != null)) {
  out.push(`counting: ${r.total_p50} matches in p50 ${r.p50_ms} ms = ${r.matches_per_s_p50} matches/s (median of total/latency)`);
}
out.push(`targets: ${verdict.join('; ')}`);
out.push(`written to ${outFile}`);
console.log(out.join('\n'));
process.exit(results.some((r) => r.errors) ? 1 : 0);
