// the audit trail. Every FHIR request — allowed, denied, failing — yields exactly
// one AuditEvent with who (account or client, terminal ID, address), what (interaction,
// action, path), whose data (patients) and the outcome; only auditors (and the sysadmin) may
// read it; the server's DB user cannot change it; a change or deletion made directly in
// MariaDB is found by AuditEvent/$verify, which names the first broken record.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { request, get, post, uid, BASE } from './lib/client.js';
import { staff, api, authorizeCode, postForm, TOKEN_ENDPOINT, demoCredentials } from './lib/auth.js';

const DATA_DIR = process.env.KASAMA_TEST_DATA_DIR;
const SOCKET = path.join(DATA_DIR, 'mariadb', 'mysqld.sock');
const REDIRECT = 'https://localhost/audit-console-callback';

// SQL straight into the fixture's MariaDB, as root (the tamperer) or as the server's own user.
function sql(statement, { user = 'root', password } = {}) {
  const args = ['--no-defaults', '-S', SOCKET, '-u', user, '-N', '-B', 'kasama', '-e', statement];
  if (password) args.splice(5, 0, `-p${password}`);
  return execFileSync('mariadb', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

let auditorToken;
let practitionerToken;

// A user token through the authorization-code flow on a public terminal of the city.
async function userToken(session, clientId, scope) {
  const a = await authorizeCode({ session, clientId, redirectUri: REDIRECT, scope });
  assert.equal(a.status, 302, a.html);
  assert.ok(a.params.code, a.location);
  const t = await postForm(TOKEN_ENDPOINT, { grant_type: 'authorization_code', code: a.params.code, redirect_uri: REDIRECT, code_verifier: a.verifier, client_id: clientId });
  assert.equal(t.status, 200, t.text);
  return t.json.access_token;
}

const asAuditor = (p, opts = {}) => request(opts.method ?? 'GET', p, { ...opts, headers: { authorization: `Bearer ${auditorToken}`, ...(opts.headers ?? {}) } });

async function recordsFor(requestId) {
  const r = await asAuditor(`/AuditEvent?request-id=${encodeURIComponent(requestId)}`);
  assert.equal(r.status, 200, r.text);
  return (r.json.entry ?? []).map((e) => e.resource);
}

async function verify() {
  const r = await asAuditor('/AuditEvent/$verify', { method: 'POST' });
  assert.equal(r.status, 200, r.text);
  const p = Object.fromEntries(r.json.parameter.map((x) => [x.name, x.valueBoolean ?? x.valueInteger ?? x.valueString ?? x.valueReference]));
  return p;
}

before(async () => {
  const s = await staff();
  const app = await api('POST', '/admin/clients', { session: s.secretariat.session, body: { name: '監査コンソール (audit console)', kind: 'public', redirectUris: [REDIRECT] } });
  assert.equal(app.status, 201, app.text);
  auditorToken = await userToken(s.auditor.session, app.json.clientId, 'openid fhirUser user/AuditEvent.rs');
});

describe('R-30: every request yields exactly one audit record', () => {
  it('a scripted mix of allowed, denied and failing requests → one record each, with the right fields', async () => {
    const prefix = uid('audit');
    const creds = demoCredentials();
    const backend = creds['backend-client'];
    const created = await post('/Patient', { resourceType: 'Patient', name: [{ family: '監査', given: ['太郎'] }] });
    assert.equal(created.status, 201);
    const pid = created.json.id;
    const obs = { resourceType: 'Observation', status: 'final', code: { text: 'weight' }, subject: { reference: `Patient/${pid}` } };
    // [method, path, options, expected status, expected outcome, denied, action, subtype]
    const script = [
      ['GET', `/Patient/${pid}`, {}, 200, '0', false, 'R', 'read'],
      ['GET', `/Patient?_id=${pid}`, {}, 200, '0', false, 'R', 'search-type'],
      ['POST', '/Observation', { body: obs }, 201, '0', false, 'C', 'create'],
      ['GET', '/Patient/no-such-patient-here', {}, 404, '4', false, 'R', 'read'],
      ['GET', '/Observation?no-such-param=1', {}, 400, '4', false, 'R', 'search-type'],
      ['PUT', `/Patient/${pid}`, { body: { resourceType: 'Patient', id: 'other-id' } }, 400, '4', false, 'U', 'update'],
      ['GET', `/Patient/${pid}`, { headers: { authorization: null } }, 401, '4', true, 'R', 'read'],
      ['GET', `/Patient/${pid}`, { headers: { authorization: 'Bearer not-a-token' } }, 401, '4', true, 'R', 'read'],
      ['GET', '/AuditEvent', {}, 403, '4', true, 'R', 'search-type'],
      ['POST', '/AuditEvent', { body: { resourceType: 'AuditEvent' } }, 403, '4', true, 'C', 'create'],
      ['GET', '/NotAType/1', {}, 404, '4', false, 'R', 'unknown'],
      ['POST', '', { body: { resourceType: 'Bundle', type: 'transaction', entry: [{ request: { method: 'POST', url: 'Observation' }, resource: obs }] } }, 200, '0', false, 'E', 'transaction'],
      ['POST', '', { body: { resourceType: 'Bundle', type: 'batch', entry: [{ request: { method: 'GET', url: `Patient/${pid}` } }] } }, 200, '0', false, 'E', 'batch'],
      ['GET', '/metadata', {}, 200, '0', false, 'R', 'capabilities'],
      ['DELETE', `/Observation/${'x'.repeat(65)}`, {}, 400, '4', false, 'D', 'unknown'],
      // A batch answers 200 even when an entry is refused: its record says denied.
      ['POST', '', { body: { resourceType: 'Bundle', type: 'batch', entry: [{ request: { method: 'GET', url: 'AuditEvent/1' } }] } }, 200, '0', true, 'E', 'batch'],
    ];
    for (let i = 0; i < script.length; i++) {
      const [method, p, opts, status] = script[i];
      const r = await request(method, p, { ...opts, headers: { ...(opts.headers ?? {}), 'x-request-id': `${prefix}-${i}` } });
      assert.equal(r.status, status, `${method} ${p}: ${r.text.slice(0, 300)}`);
    }
    for (let i = 0; i < script.length; i++) {
      const [method, p, , status, outcome, denied, action, subtype] = script[i];
      const recs = await recordsFor(`${prefix}-${i}`);
      assert.equal(recs.length, 1, `${method} ${p}: exactly one record, got ${recs.length}`);
      const ev = recs[0];
      assert.equal(ev.type.code, 'rest');
      assert.equal(ev.outcome, outcome, `${method} ${p}: outcome`);
      assert.equal(ev.action, action, `${method} ${p}: action`);
      if (subtype !== 'unknown') assert.equal(ev.subtype[0].code, subtype, `${method} ${p}: subtype`);
      assert.ok(ev.outcomeDesc.startsWith(String(status)), `${method} ${p}: ${ev.outcomeDesc}`);
      assert.equal(ev.outcomeDesc.includes('(denied)'), denied, `${method} ${p}: denied flag in ${ev.outcomeDesc}`);
      assert.ok(Date.now() - Date.parse(ev.recorded) < 5 * 60_000, 'recorded now');
      const client = ev.agent.find((a) => a.who?.identifier?.system === 'urn:kasama:client');
      if (status === 401) {
        assert.equal(client, undefined, 'no client for an unauthenticated request');
        assert.equal(ev.agent[0].who.identifier.value, 'anonymous');
        assert.ok(ev.agent[0].network.address, 'the network address of an unauthenticated caller');
      } else {
        assert.equal(client.who.identifier.value, backend.clientId, `${method} ${p}: the client`);
        assert.equal(client.altId, backend.terminalId, `${method} ${p}: the terminal ID (R-18)`);
        assert.ok(client.network.address, 'the network address');
      }
      const req = ev.entity.find((e) => e.type.code === 'XrequestId');
      assert.equal(req.what.identifier.value, `${prefix}-${i}`);
    }
    // Whose data: the patient is named by the read, the search, the Observation written for
    // them, and the transaction and batch that touched them; not by the refused or failed ones.
    const patientOf = async (i) => (await recordsFor(`${prefix}-${i}`))[0].entity.filter((e) => e.role?.code === '1').map((e) => e.what.reference);
    for (const i of [0, 1, 2, 11, 12]) assert.deepEqual(await patientOf(i), [`Patient/${pid}`], `request ${i} names the patient`);
    for (const i of [5, 6, 7, 8]) assert.deepEqual(await patientOf(i), [], `request ${i} touched no one's data`);
    // By patient: every record that touched them.
    const byPatient = await asAuditor(`/AuditEvent?patient=Patient/${pid}&_summary=count`);
    assert.equal(byPatient.status, 200);
    assert.ok(byPatient.json.total >= 6, `records naming the patient: ${byPatient.json.total}`);
  });

  it('records are searched newest first and paged; read by id; unknown parameters are refused', async () => {
    const page = await asAuditor('/AuditEvent?_count=2&_total=accurate');
    assert.equal(page.status, 200);
    assert.equal(page.json.entry.length, 2);
    assert.ok(page.json.total >= 2);
    const [a, b] = page.json.entry.map((e) => Number(e.resource.id));
    assert.ok(a > b, 'newest first');
    const next = page.json.link.find((l) => l.relation === 'next');
    assert.ok(next, 'a next link');
    const second = await asAuditor(next.url);
    assert.equal(second.status, 200);
    assert.ok(Number(second.json.entry[0].resource.id) < b, 'the next page continues below');
    // The same search as a POST: its next link keeps the body's parameters.
    const posted = await asAuditor('/AuditEvent/_search', { method: 'POST', body: '_count=2&denied=false', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    assert.equal(posted.status, 200, posted.text);
    const postedNext = posted.json.link.find((l) => l.relation === 'next');
    assert.match(postedNext.url, /denied=false/);
    assert.match(postedNext.url, /_count=2/);
    const one = await asAuditor(`/AuditEvent/${a}`);
    assert.equal(one.status, 200);
    assert.equal(one.json.id, String(a));
    assert.equal((await asAuditor('/AuditEvent/999999999999')).status, 404);
    const badParam = await asAuditor('/AuditEvent?colour=blue');
    assert.equal(badParam.status, 400);
    assert.equal(badParam.json.issue[0].expression[0], 'colour');
    const badDate = await asAuditor('/AuditEvent?date=yesterday');
    assert.equal(badDate.status, 400);
    const today = new Date().toISOString().slice(0, 10);
    const dated = await asAuditor(`/AuditEvent?date=ge${today}&_summary=count`);
    assert.ok(dated.json.total > 0);
    const future = await asAuditor('/AuditEvent?date=gt2999-01-01&_summary=count');
    assert.equal(future.json.total, 0);
    const denied = await asAuditor('/AuditEvent?denied=true&_count=5');
    assert.ok(denied.json.entry.every((e) => e.resource.outcomeDesc.includes('(denied)')));
  });

  it('only auditors read the trail: system scopes and practitioners get 403; nobody writes it', async () => {
    assert.equal((await get('/AuditEvent')).status, 403, 'a backend client with system/*.cruds');
    assert.equal((await get('/AuditEvent/1')).status, 403);
    assert.equal((await get('/AuditEvent/$verify')).status, 403);
    const w = await asAuditor('/AuditEvent', { method: 'POST', body: { resourceType: 'AuditEvent' } });
    assert.ok([403, 405].includes(w.status), `auditor write: ${w.status}`);
    const d = await asAuditor('/AuditEvent/1', { method: 'DELETE' });
    assert.ok([403, 405].includes(d.status), `auditor delete: ${d.status}`);
    const t = await post('', { resourceType: 'Bundle', type: 'transaction', entry: [{ request: { method: 'POST', url: 'AuditEvent' }, resource: { resourceType: 'AuditEvent' } }] });
    assert.equal(t.status, 403, 'not through a transaction either');
    // The CapabilityStatement says so.
    const cs = (await get('/metadata')).json;
    const ae = cs.rest[0].resource.find((r) => r.type === 'AuditEvent');
    assert.deepEqual(ae.interaction.map((i) => i.code).sort(), ['read', 'search-type']);
    assert.ok(ae.operation.some((o) => o.name === 'verify'));
    assert.ok(ae.searchParam.some((p) => p.name === 'patient'));
  });
});

describe('R-31: tamper evidence', () => {
  it('the server\'s DB user may insert audit rows but neither update nor delete them', () => {
    const password = readFileSync(path.join(DATA_DIR, 'mariadb', 'app-user.secret'), 'utf8').trim();
    for (const statement of ['UPDATE audit_event SET status = 200 WHERE id = 1', 'DELETE FROM audit_event WHERE id = 1', 'DELETE FROM audit_seal WHERE last_id = 1', 'UPDATE audit_seal SET hash = hash', 'DELETE FROM audit_loaded', 'TRUNCATE TABLE audit_event', 'DROP TABLE audit_seal', 'ALTER TABLE audit_event ADD COLUMN x INT']) {
      assert.throws(() => sql(statement, { user: 'kasama_app', password }), /ERROR 1142/, statement);
    }
    // …while it can still change resources (the grants are per table).
    assert.equal(sql('SELECT COUNT(*) > 0 FROM resource', { user: 'kasama_app', password }), '1');
  });

  it('a server whose DB user could change audit rows refuses to start', (t) => {
    const binary = process.env.KASAMA_TEST_BINARY;
    if (!binary) return t.skip('KASAMA_TEST_BINARY is not set');
    const dir = mkdtempSync(path.join(os.tmpdir(), 'kasama-grants-'));
    try {
      // root may do anything: exactly what the server must not run as.
      const r = spawnSync(binary, [], {
        env: { ...process.env, KASAMA_DB: `mariadb://root@localhost/kasama?socket=${SOCKET}`, KASAMA_DATA_DIR: dir, KASAMA_PORT: '18459' },
        encoding: 'utf8', timeout: 120_000,
      });
      assert.equal(r.status, 1, r.stdout + r.stderr);
      assert.match(r.stdout + r.stderr, /R-31/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a changed, deleted or unsealed row is named by $verify; restoring it makes the chain hold again', async () => {
    const ok = await verify();
    assert.equal(ok.result, true, JSON.stringify(ok));
    assert.ok(ok.checked > 10);
    const ids = sql('SELECT id FROM audit_event WHERE id <= (SELECT MAX(last_id) FROM audit_seal) ORDER BY id DESC LIMIT 30').split('\n').map(Number);
    const [changed, deleted] = [ids[20], ids[10]];

    sql(`UPDATE audit_event SET recorded = recorded + 1 WHERE id = ${changed}`);
    const v1 = await verify();
    assert.equal(v1.result, false);
    assert.equal(v1.firstBrokenId, String(changed));
    assert.match(v1.problem, /altered/);
    sql(`UPDATE audit_event SET recorded = recorded - 1 WHERE id = ${changed}`);
    assert.equal((await verify()).result, true);

    sql(`CREATE TABLE audit_backup_t AS SELECT * FROM audit_event WHERE id = ${deleted}`);
    try {
      sql(`DELETE FROM audit_event WHERE id = ${deleted}`);
      const v2 = await verify();
      assert.equal(v2.result, false);
      assert.equal(v2.firstBrokenId, String(deleted));
      assert.match(v2.problem, /deleted/);
      sql(`INSERT INTO audit_event SELECT * FROM audit_backup_t`);
    } finally {
      sql('DROP TABLE audit_backup_t');
    }
    assert.equal((await verify()).result, true);

    // A whole seal block removed: the chain names the block's first event.
    const [first, last] = sql(`SELECT first_id, last_id FROM audit_seal WHERE last_id >= ${deleted} ORDER BY last_id LIMIT 1`).split('\t').map(Number);
    const hasNext = sql(`SELECT COUNT(*) FROM audit_seal WHERE last_id > ${last}`) !== '0';
    if (!hasNext) await request('GET', '/metadata');  // a later block, so that the removed one is inside the chain
    await verify();
    sql(`CREATE TABLE audit_backup_s AS SELECT * FROM audit_seal WHERE last_id = ${last}`);
    try {
      sql(`DELETE FROM audit_seal WHERE last_id = ${last}`);
      const v3 = await verify();
      assert.equal(v3.result, false);
      assert.equal(v3.firstBrokenId, String(first));
      sql(`INSERT INTO audit_seal SELECT * FROM audit_backup_s`);
    } finally {
      sql('DROP TABLE audit_backup_s');
    }
    // A seal's digest list changed (to match a forged event): the block's hash no longer holds.
    sql(`CREATE TABLE audit_backup_d AS SELECT last_id, digests FROM audit_seal WHERE last_id = ${last}`);
    try {
      sql(`UPDATE audit_seal SET digests = CONCAT(LEFT(digests, 16), REPEAT('0', 64), SUBSTRING(digests, 81)) WHERE last_id = ${last}`);
      const v4 = await verify();
      assert.equal(v4.result, false);
      assert.equal(v4.firstBrokenId, String(first));
      assert.match(v4.problem, /seal/);
      sql(`UPDATE audit_seal s JOIN audit_backup_d d ON d.last_id = s.last_id SET s.digests = d.digests`);
    } finally {
      sql('DROP TABLE audit_backup_d');
    }
    const back = await verify();
    assert.equal(back.result, true, JSON.stringify(back));
    assert.equal(back.headHash.length, 64);
  });
});

describe('R-30: logins and account administration are audited too', () => {
  it('a failed login and an /admin call each leave a record naming who', async () => {
    const s = await staff();
    const prefix = uid('authaudit');
    const bad = await api('POST', '/auth/login', { body: { id: `nobody-${prefix}`, password: 'Wrong-password-123!' }, headers: { 'x-request-id': `${prefix}-bad` } });
    assert.equal(bad.status, 401, bad.text);
    const me = await api('GET', '/admin/me', { session: s.secretariat.session, headers: { 'x-request-id': `${prefix}-me` } });
    assert.equal(me.status, 200, me.text);
    const [rb] = await recordsFor(`${prefix}-bad`);
    assert.equal(rb.type.code, '110114', 'User Authentication');
    assert.equal(rb.outcome, '4');
    assert.ok(rb.outcomeDesc.includes(`nobody-${prefix}`), `the attempted ID is recorded: ${rb.outcomeDesc}`);
    assert.ok(!JSON.stringify(rb).includes('Wrong-password-123!'), 'never the password');
    // A secret in a query string never reaches the trail.
    const page = await fetch(`${BASE.replace(/\/fhir$/, '')}/auth/login?next=%2Fadmin&password=Query-secret-42`, { headers: { 'x-request-id': `${prefix}-q` } });
    assert.equal(page.status, 200);
    const [rq] = await recordsFor(`${prefix}-q`);
    assert.ok(!JSON.stringify(rq).includes('Query-secret-42'), JSON.stringify(rq.entity));
    assert.ok(JSON.stringify(rq).includes('next=/admin'), 'harmless parameters are kept');
    const [rm] = await recordsFor(`${prefix}-me`);
    assert.equal(rm.type.code, '110100');
    assert.equal(rm.outcome, '0');
    assert.equal(rm.agent[0].who.identifier.value, s.secretariat.id);
  });
});
