// a graceful restart loses nothing. This test runs a server of its own (not a shared
// fixture): SIGTERM arrives while a large transaction is in flight; the transaction must
// still be answered and committed, MariaDB must shut down cleanly, and after a restart on
// the same data dir every resource is back and the demo data was not loaded twice. Also: a
// stale search index is rebuilt at startup and by the `kasama-server reindex` CLI (issue 3).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import https from 'node:https';
import { clientAssertion } from './lib/auth.js';

const HARNESS = process.env.KASAMA_TEST_HARNESS;
const BINARY = process.env.KASAMA_TEST_BINARY;
const DIR = process.env.KASAMA_TEST_RESTART_DIR;
const PORT = process.env.KASAMA_TEST_RESTART_PORT;
const BASE = `https://localhost:${PORT}/fhir`;
const ENV = ['KASAMA_DEMO_DATA=1', 'KASAMA_MAX_BODY=16M'];

function harness(action) {
  const args = action === 'stop' ? [action, DIR] : [action, DIR, PORT, BINARY, ...ENV];
  return execFileSync(HARNESS, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

// node:https with the server's own certificate (read after each start: it is generated on
// the first one and reused after). NODE_EXTRA_CA_CERTS cannot name it (node reads that file at
// startup, before the first start made it), so lib/auth.js's fetch-based systemToken() is not
// used here: the token comes from the same demo backend client over this https instead.
function send(method, url, { payload, contentType, authorization, accept = 'application/fhir+json' } = {}, onSent = () => {}) {
  const ca = readFileSync(`${DIR}/tls/server.crt`);
  return new Promise((resolve, reject) => {
    const req = https.request(
      url,
      {
        method,
        ca,
        agent: false,
        headers: {
          accept,
          ...(authorization ? { authorization } : {}),
          ...(payload ? { 'content-type': contentType, 'content-length': payload.length } : {}),
        },
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode, text, json: text ? JSON.parse(text) : undefined });
        });
      },
    );
    req.on('error', reject);
    req.on('finish', onSent);  // the whole request is in the kernel's hands
    if (payload) req.write(payload);
    req.end();
  });
}

// The system token of the demo backend client (KASAMA_DEMO_DATA=1 writes demo-credentials.json
// on the first start). Tokens live in the database: the same one stays valid across restarts.
let token;
async function bearer() {
  if (token) return token;
  const c = JSON.parse(readFileSync(`${DIR}/demo-credentials.json`, 'utf8'))['backend-client'];
  const endpoint = `${new URL(BASE).origin}/auth/token`;
  const form = new URLSearchParams({
    grant_type: 'client_credentials',
    scope: 'system/*.cruds',
    client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
    client_assertion: clientAssertion({ clientId: c.clientId, privateKeyPem: c.privateKeyPem, kid: c.kid, alg: c.alg, aud: endpoint }),
  });
  const r = await send('POST', endpoint, { payload: Buffer.from(form.toString()), contentType: 'application/x-www-form-urlencoded', accept: 'application/json' });
  assert.equal(r.status, 200, `token: ${r.text}`);
  token = r.json.access_token;
  return token;
}

async function call(method, path, body, onSent = () => {}) {
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  return send(method, `${BASE}/${path}`, { payload, contentType: 'application/fhir+json', authorization: `Bearer ${await bearer()}` }, onSent);
}

const SYSTEM = `urn:kasama-e2e:restart:${randomBytes(4).toString('hex')}`;
const DEMO_ORG = 'Organization?identifier=urn:oid:1.2.392.100495.20.3.21|082163';

describe('R-44 graceful restart loses nothing', () => {
  before(() => harness('start'));
  after(() => {
    try {
      harness('stop');
    } catch {
      // already stopped by the test
    }
  });

  it('answers and commits an in-flight transaction across SIGTERM, then restarts with all data', async () => {
    const demo = await call('GET', DEMO_ORG);
    assert.equal(demo.json.total, 1, 'the demo data is loaded into the empty database');

    const single = await call('POST', 'Patient', {
      resourceType: 'Patient',
      identifier: [{ system: SYSTEM, value: 'single' }],
      name: [{ text: '再起動\u3000テスト' }],
    });
    assert.equal(single.status, 201, single.text);

    const N = 3000;
    const bundle = {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: Array.from({ length: N }, (_, i) => ({
        resource: { resourceType: 'Patient', identifier: [{ system: SYSTEM, value: `bulk-${i}` }], active: true },
        request: { method: 'POST', url: 'Patient' },
      })),
    };
    // SIGTERM once the request has been sent and the server is working on it: the drain
    // must let it finish. (Should the transaction be done first, the checks still hold.)
    let sent;
    const wasSent = new Promise((r) => (sent = r));
    const inFlight = call('POST', '', bundle, () => sent());
    await wasSent;
    await new Promise((r) => setTimeout(r, 50));
    const pid = Number(readFileSync(`${DIR}/server.pid`, 'utf8'));
    process.kill(pid, 'SIGTERM');
    const answered = await inFlight;
    assert.equal(answered.status, 200, answered.text.slice(0, 500));
    assert.equal(answered.json.entry.length, N);
    assert.ok(answered.json.entry.every((e) => e.response.status === '201 Created'));

    // The harness checks the drain and MariaDB's clean shutdown in the logs.
    assert.match(harness('stop'), /stopped cleanly/);
    assert.match(harness('resume'), /server up/);

    const back = await call("GET", `Patient/${single.json.id}`);
    assert.equal(back.status, 200);
    assert.equal(back.text, single.text, 'the resource reads back byte for byte');
    const bulk = await call('GET', `Patient?identifier=${encodeURIComponent(SYSTEM + '|')}&_count=0`);
    assert.equal(bulk.json.total, N + 1, 'every resource of the transaction survived the restart');
    const demoAgain = await call('GET', DEMO_ORG);
    assert.equal(demoAgain.json.total, 1, 'demo data is not loaded a second time');
  });

  it('a server killed with SIGKILL takes its MariaDB down cleanly, and restarts with all data', async () => {
    const created = await call('POST', 'Patient', {
      resourceType: 'Patient',
      identifier: [{ system: SYSTEM, value: 'before-kill' }],
    });
    assert.equal(created.status, 201, created.text);
    const mariadb = Number(readFileSync(`${DIR}/mariadb/mariadbd.pid`, 'utf8'));
    process.kill(Number(readFileSync(`${DIR}/server.pid`, 'utf8')), 'SIGKILL');
    let alive = true;
    for (let i = 0; i < 300 && alive; i++) {
      await new Promise((r) => setTimeout(r, 100));
      try {
        process.kill(mariadb, 0);
      } catch {
        alive = false;
      }
    }
    assert.equal(alive, false, 'MariaDB stopped after its server died');
    const log = readFileSync(`${DIR}/mariadb/mariadb.log`, 'utf8');
    assert.match(log.slice(log.lastIndexOf('ready for connections')), /Shutdown complete/);
    assert.match(harness('resume'), /server up/);
    const back = await call('GET', `Patient/${created.json.id}`);
    assert.equal(back.status, 200);
    assert.equal(back.text, created.text);
  });
  it('a stale search index is rebuilt: at startup when the registry fingerprint differs, and by `kasama-server reindex`', async () => {
    const sock = `${DIR}/mariadb/mysqld.sock`;
    const sql = (q) => execFileSync('mariadb', ['--no-defaults', '-S', sock, '-u', 'root', 'kasama', '-N', '-e', q],
      { encoding: 'utf8' });
    const q = `Patient?identifier=${encodeURIComponent(SYSTEM + '|single')}&_summary=count`;
    assert.equal((await call('GET', q)).json.total, 1);
    // Drop the index rows and mark the index as built by another registry.
    sql("DELETE FROM idx_token; UPDATE search_state SET registry_fingerprint='stale'");
    assert.equal((await call('GET', q)).json.total, 0, 'search answers from the index');
    assert.match(harness('stop'), /stopped cleanly/);
    assert.match(harness('resume'), /server up/);
    assert.equal((await call('GET', q)).json.total, 1, 'the restart reindexed');
    assert.notEqual(sql('SELECT registry_fingerprint FROM search_state').trim(), 'stale');
    // The CLI, on a stopped server's data dir.
    sql('DELETE FROM idx_token');
    assert.equal((await call('GET', q)).json.total, 0);
    assert.match(harness('stop'), /stopped cleanly/);
    const out = execFileSync(BINARY, ['reindex', 'Patient'], {
      encoding: 'utf8', env: { ...process.env, KASAMA_DATA_DIR: DIR }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    assert.match(out, /reindexed \d+ resources/);
    assert.match(harness('resume'), /server up/);
    assert.equal((await call('GET', q)).json.total, 1, 'kasama-server reindex Patient rebuilt the rows');
  });
});
