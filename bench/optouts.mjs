#!/usr/bin/env node
// Opts a share of the residents out for the access bench: for every K-th id of
// IDS_FILE it POSTs a Consent under the city's opt-out policy (every institution), then
// rewrites IDS_FILE with the ids that stay visible, so that wrk reads only those and every
// read still pays for the opt-out check. Uses the demo backend client (auth.mjs).
//   node optouts.mjs BASE_URL CA_FILE DATA_DIR IDS_FILE [EVERY=10]
// Prints one JSON line: {"opted_out":N,"visible":M}.
import fs from 'node:fs';
import https from 'node:https';
import { tokenSource } from './auth.mjs';

const [base, caFile, dataDir, idsFile, everyArg] = process.argv.slice(2);
if (!base || !caFile || !dataDir || !idsFile) {
  console.error('usage: node optouts.mjs BASE_URL CA_FILE DATA_DIR IDS_FILE [EVERY]');
  process.exit(2);
}
const every = Number(everyArg ?? 10);
const ca = fs.readFileSync(caFile);
const agent = new https.Agent({ keepAlive: true, maxSockets: 4, ca });
const bearer = tokenSource({ base, dataDir, ca });
const root = base.replace(/\/$/, '');

async function post(path, body) {
  const token = await bearer();
  return new Promise((resolve, reject) => {
    const req = https.request(`${root}${path}`, {
      method: 'POST', agent,
      headers: { 'content-type': 'application/fhir+json', accept: 'application/fhir+json', authorization: `Bearer ${token}`, prefer: 'return=minimal' },
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => (res.statusCode === 201 ? resolve() : reject(new Error(`POST ${path}: ${res.statusCode} ${Buffer.concat(chunks).toString().slice(0, 300)}`))));
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

const ids = fs.readFileSync(idsFile, 'utf8').split('\n').filter(Boolean);
const visible = [];
let opted = 0;
for (let i = 0; i < ids.length; i++) {
  if (i % every !== 0) {
    visible.push(ids[i]);
    continue;
  }
  await post('/Consent', {
    resourceType: 'Consent', status: 'active',
    scope: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/consentscope', code: 'patient-privacy' }] },
    category: [{ coding: [{ system: 'http://loinc.org', code: '59284-0' }] }],
    patient: { reference: `Patient/${ids[i]}` },
    policy: [{ uri: 'http://kasama-fhir.example/fhir/policy/opt-out' }],
    provision: { type: 'deny' },
  });
  opted++;
}
fs.writeFileSync(idsFile, visible.join('\n') + '\n');
agent.destroy();
console.log(JSON.stringify({ opted_out: opted, visible: visible.length }));
