// a real SMART App Launch (standalone, PKCE S256) in Debian's
// Chromium, driven by playwright-core: the fhirclient library's own browser build runs in a
// page served from a local app origin; the resident logs in, changes the initial password,
// chooses whose record to use, authorizes; the app exchanges the code and reads the Patient.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { BASE, request } from './lib/client.js';
import { api, staff, postForm, TOKEN_ENDPOINT } from './lib/auth.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const CHROMIUM = process.env.KASAMA_CHROMIUM ?? '/usr/bin/chromium';
const APP_PORT = Number(process.env.KASAMA_TEST_APP_PORT ?? 18470);
const APP = `http://localhost:${APP_PORT}`;

// The app's origin: launch.html, callback.html and fhirclient's browser bundle.
function startAppServer() {
  const files = {
    '/launch.html': path.join(HERE, 'smart-app', 'launch.html'),
    '/callback.html': path.join(HERE, 'smart-app', 'callback.html'),
    '/fhir-client.js': path.join(HERE, 'node_modules', 'fhirclient', 'build', 'fhir-client.js'),
  };
  const server = http.createServer((req, res) => {
    const file = files[new URL(req.url, APP).pathname];
    if (!file) { res.writeHead(404); res.end(); return; }
    res.writeHead(200, { 'content-type': file.endsWith('.js') ? 'text/javascript' : 'text/html; charset=utf-8' });
    fs.createReadStream(file).pipe(res);
  });
  return new Promise((resolve) => server.listen(APP_PORT, '127.0.0.1', () => resolve(server)));
}

describe('SMART standalone launch in Chromium (fhirclient, PKCE)', () => {
  let appServer, browser, resident, patientId, proxyPatientId, clientId;

  before(async () => {
    const s = await staff();
    // Two residents' records: the citizen's own and their mother's, for whom they are proxy.
    const own = await request('POST', 'Patient', { body: { resourceType: 'Patient', name: [{ family: '笠間', given: ['花子'] }], birthDate: '1950-04-01' } });
    const mother = await request('POST', 'Patient', { body: { resourceType: 'Patient', name: [{ family: '笠間', given: ['トメ'] }], birthDate: '1925-01-01' } });
    assert.equal(own.status, 201, own.text);
    patientId = own.json.id;
    proxyPatientId = mother.json.id;
    // the resident applies; the ops-manager issues the ID and initial password.
    const app = await api('POST', '/admin/applications/citizen', { body: { name: '笠間 花子 (browser test)', kind: 'resident', patient: patientId } });
    assert.equal(app.status, 201, app.text);
    const issued = await api('POST', `/admin/accounts/${app.json.id}/issue`, { session: s['ops-manager'].session, body: {} });
    assert.equal(issued.status, 200, issued.text);
    resident = { id: app.json.id, password: issued.json.initialPassword };
    // the secretariat records the proxy relation.
    const proxy = await api('POST', `/admin/accounts/${app.json.id}/proxies`, { session: s.secretariat.session, body: { patient: proxyPatientId, relationship: '母 / mother' } });
    assert.equal(proxy.status, 200, proxy.text);
    // the app is a registered terminal (public client, PKCE only).
    const client = await api('POST', '/admin/clients', { session: s.secretariat.session, body: { name: '健康記録アプリ (test app)', kind: 'public', redirectUris: [`${APP}/callback.html`] } });
    assert.equal(client.status, 201, client.text);
    clientId = client.json.clientId;
    appServer = await startAppServer();
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync'],
    });
  });

  after(async () => {
    await browser?.close();
    await new Promise((r) => (appServer ? appServer.close(r) : r()));
  });

  it('logs in, changes the initial password (R-13), picks the proxied resident, authorizes, reads the Patient', async () => {
    // The server's certificate is the fixture's self-signed one; the TLS itself is real.
    const context = await browser.newContext({ ignoreHTTPSErrors: true, locale: 'ja-JP' });
    const page = await context.newPage();
    const scope = 'launch/patient openid fhirUser patient/Patient.rs patient/Observation.rs offline_access';
    await page.goto(`${APP}/launch.html?iss=${encodeURIComponent(BASE)}&client_id=${clientId}&scope=${encodeURIComponent(scope)}`);
    // fhirclient discovered the endpoints and sent the browser to /auth/authorize: log in.
    await page.waitForSelector('#login', { timeout: 30_000 });
    assert.match(await page.title(), /ログイン/);
    await page.fill('#id', resident.id);
    await page.fill('#password', resident.password);
    await page.click('#login');
    // nothing but the password change until it is done.
    await page.waitForSelector('#change').catch(async (e) => { throw new Error(`${e.message}\n${page.url()}\n${await page.content()}`); });
    await page.fill('#current', resident.password);
    await page.fill('#new', 'short1!');
    await page.click('#change');
    await page.waitForSelector('.error');
    assert.match(await page.textContent('.error'), /13/);
    resident.newPassword = 'Kasama-garden-2026!';
    await page.fill('#current', resident.password);
    await page.fill('#new', resident.newPassword);
    await page.click('#change');
    // Consent: the scopes and the residents this account may act for.
    await page.waitForSelector('#approve');
    const choices = await page.$$eval('input[name=patient]', (els) => els.map((e) => e.value));
    assert.deepEqual(choices.sort(), [patientId, proxyPatientId].sort());
    await page.check(`input[name=patient][value="${proxyPatientId}"]`);
    await page.click('#approve');
    await page.waitForFunction(() => document.getElementById('result')?.textContent.startsWith('{'), null, { timeout: 30_000 });
    const result = JSON.parse(await page.textContent('#result'));
    assert.equal(result.ok, true, result.error);
    assert.equal(result.contextPatient, proxyPatientId);
    assert.equal(result.patientId, proxyPatientId);
    assert.equal(result.patientName[0].given[0], 'トメ');
    assert.ok(result.hasIdToken, 'openid fhirUser gives an id_token');
    assert.ok(result.hasRefresh, 'offline_access gives a refresh token');
    assert.equal(result.fhirUser, `Patient/${patientId}`, 'fhirUser is the resident themself, also when acting as a proxy');
    assert.match(result.scope, /patient\/Patient\.rs/);
    assert.doesNotMatch(result.scope, /user\/|system\//, 'a citizen is never granted user/ or system/ scopes');

    // The token is held to the chosen resident's compartment: the other record is invisible.
    const other = await request('GET', `Patient/${patientId}`, { headers: { authorization: `Bearer ${result.accessToken}` } });
    assert.equal(other.status, 404);
    const mine = await request('GET', `Patient/${proxyPatientId}`, { headers: { authorization: `Bearer ${result.accessToken}` } });
    assert.equal(mine.status, 200);
    // Refresh rotates: the new refresh token works, the old one is refused and ends the family.
    const r1 = await postForm(TOKEN_ENDPOINT, { grant_type: 'refresh_token', refresh_token: result.refreshToken, client_id: clientId });
    assert.equal(r1.status, 200, r1.text);
    assert.equal(r1.json.patient, proxyPatientId);
    assert.equal(r1.headers.get('cache-control'), 'no-store');
    const again = await postForm(TOKEN_ENDPOINT, { grant_type: 'refresh_token', refresh_token: result.refreshToken, client_id: clientId });
    assert.equal(again.status, 400);
    assert.equal(again.json.error, 'invalid_grant');
    const afterReuse = await request('GET', `Patient/${proxyPatientId}`, { headers: { authorization: `Bearer ${r1.json.access_token}` } });
    assert.equal(afterReuse.status, 401, 'reuse of a rotated refresh token revokes the whole family');
    await context.close();
  });

  it('R-22: once the proxy relation ends, a token for that resident stops working', async () => {
    const s = await staff();
    // A fresh authorization for the proxied resident, over the API (the browser flow is above).
    const login = await api('POST', '/auth/login', { body: { id: resident.id, password: resident.newPassword } });
    assert.equal(login.status, 200, login.text);
    const token = await authorizeByForm(login.json.session_token, clientId, proxyPatientId);
    const ok = await request('GET', `Patient/${proxyPatientId}`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(ok.status, 200);
    // A patient/ token sees its patient's compartment only: a type search is held to it.
    const mineObs = await request('POST', 'Observation', { body: { resourceType: 'Observation', status: 'final', code: { text: 'BMI' }, subject: { reference: `Patient/${proxyPatientId}` } } });
    const otherObs = await request('POST', 'Observation', { body: { resourceType: 'Observation', status: 'final', code: { text: 'BMI' }, subject: { reference: `Patient/${patientId}` } } });
    const seen = await request('GET', 'Observation?_count=100', { headers: { authorization: `Bearer ${token}` } });
    assert.equal(seen.status, 200);
    const ids = (seen.json.entry ?? []).map((e) => e.resource.id);
    assert.ok(ids.includes(mineObs.json.id), 'the chosen resident\'s observation is found');
    assert.ok(!ids.includes(otherObs.json.id), 'another resident\'s observation is not');
    assert.equal((await request('GET', `Observation/${otherObs.json.id}`, { headers: { authorization: `Bearer ${token}` } })).status, 404);
    // Versions: one that was the resident's stays readable; one that was someone else's is not.
    const moved = await request('PUT', `Observation/${mineObs.json.id}`, { body: { ...mineObs.json, subject: { reference: `Patient/${patientId}` } } });
    assert.equal(moved.status, 200, moved.text);
    const v1 = await request('GET', `Observation/${mineObs.json.id}/_history/1`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(v1.status, 200, 'version 1 was the chosen resident\'s');
    assert.equal((await request('GET', `Observation/${mineObs.json.id}/_history/2`, { headers: { authorization: `Bearer ${token}` } })).status, 404);
    assert.equal((await request('GET', `Observation/${otherObs.json.id}/_history/1`, { headers: { authorization: `Bearer ${token}` } })).status, 404);
    assert.equal((await request('GET', `Observation/${mineObs.json.id}`, { headers: { authorization: `Bearer ${token}` } })).status, 404, 'now another resident\'s');
    assert.equal((await request('GET', `Observation/${mineObs.json.id}/_history`, { headers: { authorization: `Bearer ${token}` } })).status, 403);
    for (const q of ['Observation?_revinclude=Provenance:target', 'Observation?_include:iterate=Observation:subject', 'Observation?_include=Observation:has-member', 'Observation?_include=*', 'Patient?_include:recurse=Patient:link', '_history', 'Observation', '?_type=Observation', 'Bundle', 'Binary?_count=1', `Patient/${proxyPatientId}/$everything`]) {
      const r = await request(q === 'Observation' ? 'POST' : 'GET', q, { headers: { authorization: `Bearer ${token}` }, body: q === 'Observation' ? { resourceType: 'Observation', status: 'final', code: { text: 'x' } } : undefined });
      assert.equal(r.status, 403, q);
    }
    for (const q of ['Organization?_has:Encounter:service-provider:patient=Patient/x', 'Observation?performer:Practitioner.name=x', 'Practitioner?_has:Observation:performer:code=x']) {
      assert.equal((await request('GET', q, { headers: { authorization: `Bearer ${token}` } })).status, 403, q);
    }
    const viaBody = await request('POST', 'Observation/_search', { headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-www-form-urlencoded' }, body: '_include=Observation:has-member' });
    assert.equal(viaBody.status, 403, 'includes in a POST _search body are refused too');
    assert.equal((await request('GET', 'Organization?_count=1', { headers: { authorization: `Bearer ${token}` } })).status, 200, 'the shared directory types stay readable');
    const ended = await api('POST', `/admin/accounts/${resident.id}/proxies`, { session: s.secretariat.session, body: { patient: proxyPatientId, active: false } });
    assert.equal(ended.status, 200, ended.text);
    const gone = await request('GET', `Patient/${proxyPatientId}`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(gone.status, 401, 'the next request after the relation ended is refused');
    const again = await api('POST', `/admin/accounts/${resident.id}/proxies`, { session: s.secretariat.session, body: { patient: proxyPatientId, relationship: '母 / mother' } });
    assert.equal(again.status, 200);
    assert.equal((await request('GET', `Patient/${proxyPatientId}`, { headers: { authorization: `Bearer ${token}` } })).status, 401, 'recording the relation again does not revive old tokens');
  });
});

// The consent form posted directly (what the page does), then the code exchange with PKCE.
async function authorizeByForm(session, clientId, patient) {
  const { createHash, randomBytes } = await import('node:crypto');
  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  const redirect = `${APP}/callback.html`;
  const params = { response_type: 'code', client_id: clientId, redirect_uri: redirect, scope: 'launch/patient patient/*.rs', state: 's1', aud: BASE, code_challenge: challenge, code_challenge_method: 'S256' };
  const cookie = `kasama_session=${session}`;
  const page = await fetch(`${new URL(BASE).origin}/auth/authorize?${new URLSearchParams(params)}`, { headers: { cookie } });
  const html = await page.text();
  const csrf = /name="csrf" value="([^"]+)"/.exec(html)?.[1];
  assert.ok(csrf, `consent page: ${html.slice(0, 300)}`);
  const res = await fetch(`${new URL(BASE).origin}/auth/authorize`, {
    method: 'POST', redirect: 'manual',
    headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ ...params, csrf, decision: 'approve', patient }).toString(),
  });
  assert.equal(res.status, 302);
  const code = new URL(res.headers.get('location')).searchParams.get('code');
  const t = await postForm(TOKEN_ENDPOINT, { grant_type: 'authorization_code', code, redirect_uri: redirect, code_verifier: verifier, client_id: clientId });
  assert.equal(t.status, 200, t.text);
  return t.json.access_token;
}
