#!/usr/bin/env node
// Collects up to LIMIT Patient ids from a kasama server (searchset paging via the "next" link)
// and fetches each Patient once with GET /fhir/Patient/{id}, writing the exact bytes served to
// OUT_DIR/www/fhir/Patient/{id} (for nginx) and the ids to OUT_DIR/ids.txt (for wrk).
//   node fetch_patients.mjs BASE_URL CA_FILE DATA_DIR OUT_DIR [LIMIT=1000]
// DATA_DIR is the server's data dir: its demo-credentials.json gives the bearer token (auth.mjs).
// Prints one JSON line: {"ids":N,"mean_bytes":B}.
import fs from 'node:fs';
import path from 'node:path';
import https from 'node:https';
import { tokenSource } from './auth.mjs';

const [base, caFile, dataDir, out, limitArg] = process.argv.slice(2);
if (!base || !caFile || !dataDir || !out) {
  console.error('usage: node fetch_patients.mjs BASE_URL CA_FILE DATA_DIR OUT_DIR [LIMIT]');
  process.exit(2);
}
const limit = Number(limitArg ?? 1000);
const ca = fs.readFileSync(caFile);
const agent = new https.Agent({ keepAlive: true, maxSockets: 4, ca });
const root = base.replace(/\/$/, '');
const bearer = tokenSource({ base, dataDir, ca });

async function get(url) {
  const token = await bearer();
  return new Promise((resolve, reject) => {
    https.get(url, { agent, headers: { Accept: 'application/fhir+json', Authorization: `Bearer ${token}` } }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        if (res.statusCode !== 200) reject(new Error(`GET ${url}: HTTP ${res.statusCode} ${body.toString().slice(0, 300)}`));
        else resolve(body);
      });
    }).on('error', reject);
  });
}

const ids = [];
let next = `${root}/Patient?_count=${Math.min(limit, 1000)}`;
while (next && ids.length < limit) {
  const b = JSON.parse((await get(next)).toString('utf8'));
  for (const e of b.entry ?? []) if (ids.length < limit) ids.push(e.resource.id);
  next = (b.link ?? []).find((l) => l.relation === 'next')?.url;
}
if (ids.length === 0) {
  console.error('fetch_patients: the server has no Patient');
  process.exit(1);
}

const dir = path.join(out, 'www', 'fhir', 'Patient');
fs.mkdirSync(dir, { recursive: true });
let bytes = 0;
for (let i = 0; i < ids.length; i += 8) {
  await Promise.all(ids.slice(i, i + 8).map(async (id) => {
    const body = await get(`${root}/Patient/${encodeURIComponent(id)}`);
    bytes += body.length;
    fs.writeFileSync(path.join(dir, id), body);
  }));
}
fs.writeFileSync(path.join(out, 'ids.txt'), ids.join('\n') + '\n');
agent.destroy();
console.log(JSON.stringify({ ids: ids.length, mean_bytes: Math.round(bytes / ids.length) }));
