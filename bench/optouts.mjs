#!/usr/bin/env node
// Opts a share of the residents out for the access bench: for every K-th id of
// IDS_FILE the secretariat records an opt-out of every institution (POST /admin/opt-outs:
// only the secretariat may), then IDS_FILE is rewritten with the ids that stay visible, so
// that wrk reads only those and every read still pays for the opt-out check. The demo
// secretariat's initial password (DATA_DIR/demo-credentials.json) is changed at its first
// login, as the server requires.
//   node optouts.mjs BASE_URL CA_FILE DATA_DIR IDS_FILE [EVERY=10]
// Prints one JSON line: {"opted_out":N,"visible":M}.
import fs from 'node:fs';
import https from 'node:https';

const [base, caFile, dataDir, idsFile, everyArg] = process.argv.slice(2);
if (!base || !caFile || !dataDir || !idsFile) {
  console.error('usage: node optouts.mjs BASE_URL CA_FILE DATA_DIR IDS_FILE [EVERY]');
  process.exit(2);
}
const every = Number(everyArg ?? 10);
const agent = new https.Agent({ keepAlive: true, maxSockets: 4, ca: fs.readFileSync(caFile) });
const origin = new URL(base).origin;

function call(method, path, body, session) {
  return new Promise((resolve, reject) => {
    const headers = { 'content-type': 'application/json', accept: 'application/json' };
    if (session) headers.authorization = `Bearer ${session}`;
    const req = https.request(`${origin}${path}`, { method, agent, headers }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        let json;
        try { json = JSON.parse(text); } catch { json = undefined; }
        resolve({ status: res.statusCode, json, text });
      });
    });
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

const creds = JSON.parse(fs.readFileSync(`${dataDir}/demo-credentials.json`, 'utf8')).secretariat;
const login = await call('POST', '/auth/login', { id: creds.id, password: creds.password });
if (login.status !== 200) throw new Error(`secretariat login: ${login.status} ${login.text}`);
const session = login.json.session_token;
if (login.json.mustChangePassword) {
  const c = await call('POST', '/auth/password', { current: creds.password, new: `Bench-${Date.now()}-Pw!x9` }, session);
  if (c.status !== 200) throw new Error(`password change: ${c.status} ${c.text}`);
}

const ids = fs.readFileSync(idsFile, 'utf8').split('\n').filter(Boolean);
const visible = [];
let opted = 0;
for (let i = 0; i < ids.length; i++) {
  if (i % every !== 0) {
    visible.push(ids[i]);
    continue;
  }
  const r = await call('POST', '/admin/opt-outs', { patient: ids[i] }, session);
  if (r.status !== 201) throw new Error(`opt-out of Patient/${ids[i]}: ${r.status} ${r.text}`);
  opted++;
}
fs.writeFileSync(idsFile, visible.join('\n') + '\n');
agent.destroy();
console.log(JSON.stringify({ opted_out: opted, visible: visible.length }));
