#!/usr/bin/env node
// Ingest benchmark client: POSTs the Synthea transaction Bundles to a kasama server and prints
// one JSON line with the counts and timings.
//   node ingest.mjs BASE_URL CA_FILE DATA_DIR CONCURRENCY SYNTHEA_DIR
// DATA_DIR is the server's data dir: its demo-credentials.json gives the bearer token (auth.mjs).
// The shared Organization/Practitioner bundles (SYNTHEA_DIR/shared/*.json) go first, one at a
// time (patient bundles refer to them); then every SYNTHEA_DIR/*.json patient bundle with at most
// CONCURRENCY requests in flight over keep-alive connections. All files are read into memory
// before the clock starts, so the figure is the server's, not the disk's. A bundle that does not
// come back 200 with a transaction-response of the same length counts as an error; the script
// exits 1 if there was any.
// SYNTHEA_DIR may instead be "synthetic:N": N small generated Patients in transaction Bundles of
// 100 (used by run.sh when the Synthea corpus is absent, so the read benchmark still has data).
import fs from 'node:fs';
import path from 'node:path';
import https from 'node:https';
import { tokenSource } from './auth.mjs';

const [base, caFile, dataDir, concArg, dir] = process.argv.slice(2);
if (!base || !caFile || !dataDir || !concArg || !dir) {
  console.error('usage: node ingest.mjs BASE_URL CA_FILE DATA_DIR CONCURRENCY SYNTHEA_DIR');
  process.exit(2);
}
const concurrency = Math.max(1, Number(concArg));
const url = new URL(base.replace(/\/$/, '') + '/');
const ca = fs.readFileSync(caFile);
const agent = new https.Agent({ keepAlive: true, maxSockets: concurrency, ca });
const bearer = tokenSource({ base, dataDir, ca });

function load(d) {
  return fs.readdirSync(d)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => {
      const body = fs.readFileSync(path.join(d, f));
      const entries = JSON.parse(body).entry?.length ?? 0;
      return { name: f, body, entries };
    });
}
function synthetic(n) {
  const out = [];
  for (let i = 0; i < n; i += 100) {
    const entry = [];
    for (let j = i; j < Math.min(n, i + 100); j++) {
      entry.push({
        fullUrl: `urn:uuid:00000000-0000-4000-8000-${String(j).padStart(12, '0')}`,
        resource: {
          resourceType: 'Patient',
          identifier: [{ system: 'urn:kasama:bench', value: `p${j}` }],
          name: [{ family: `Bench${j}`, given: ['Synthetic', `No${j}`] }],
          gender: j % 2 ? 'female' : 'male',
          birthDate: `19${String(30 + (j % 70)).padStart(2, '0')}-0${1 + (j % 9)}-1${j % 10}`,
          address: [{ line: [`${j} Bench Street`], city: 'Kasama', state: 'Ibaraki', country: 'JP' }],
        },
        request: { method: 'POST', url: 'Patient' },
      });
    }
    const body = Buffer.from(JSON.stringify({ resourceType: 'Bundle', type: 'transaction', entry }));
    out.push({ name: `synthetic-${i}`, body, entries: entry.length });
  }
  return out;
}
const syntheticN = /^synthetic:(\d+)$/.exec(dir);
const shared = syntheticN ? [] : load(path.join(dir, 'shared'));
const patients = syntheticN ? synthetic(Number(syntheticN[1])) : load(dir);

function post(b, token) {
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    const req = https.request(url, {
      method: 'POST',
      agent,
      headers: {
        Authorization: `Bearer ${token}`,
        'Content-Type': 'application/fhir+json',
        Accept: 'application/fhir+json',
        Prefer: 'return=minimal',
        'Content-Length': b.body.length,
      },
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const ms = Number(process.hrtime.bigint() - t0) / 1e6;
        let ok = res.statusCode === 200;
        let why = `HTTP ${res.statusCode}`;
        if (ok) {
          try {
            const r = JSON.parse(Buffer.concat(chunks).toString('utf8'));
            ok = r.resourceType === 'Bundle' && r.type === 'transaction-response' && (r.entry?.length ?? 0) === b.entries;
            why = `unexpected response (${r.resourceType}/${r.type}, ${r.entry?.length} entries)`;
          } catch (e) {
            ok = false;
            why = `unparsable response: ${e.message}`;
          }
        } else {
          why += ': ' + Buffer.concat(chunks).toString('utf8').slice(0, 300);
        }
        resolve({ ok, ms, why });
      });
    });
    req.on('error', (e) => resolve({ ok: false, ms: 0, why: e.message }));
    req.end(b.body);
  });
}

const lat = [];
let resources = 0, bundles = 0, errors = 0;
async function run(b) {
  const r = await post(b, await bearer()); // cached (fetched before the clock started)
  lat.push(r.ms);
  if (r.ok) {
    resources += b.entries;
    bundles++;
  } else {
    errors++;
    if (errors <= 5) console.error(`ingest: ${b.name}: ${r.why}`);
  }
}

await bearer(); // before the clock starts
const t0 = process.hrtime.bigint();
for (const b of shared) await run(b);
const tShared = process.hrtime.bigint();
let next = 0;
await Promise.all(Array.from({ length: concurrency }, async () => {
  while (next < patients.length) await run(patients[next++]);
}));
const t1 = process.hrtime.bigint();
agent.destroy();

const seconds = Number(t1 - t0) / 1e9;
const patientSeconds = Number(t1 - tShared) / 1e9;
const patientResources = patients.reduce((s, b) => s + b.entries, 0);
lat.sort((a, b) => a - b);
const q = (p) => lat.length ? lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] : 0;
console.log(JSON.stringify({
  concurrency,
  bundles,
  resources,
  errors,
  seconds: +seconds.toFixed(3),
  resources_per_s: +(resources / seconds).toFixed(1),
  patient_phase_resources_per_s: +(patientResources / patientSeconds).toFixed(1),
  bundle_ms_p50: +q(0.5).toFixed(1),
  bundle_ms_p99: +q(0.99).toFixed(1),
}));
process.exit(errors ? 1 : 0);
