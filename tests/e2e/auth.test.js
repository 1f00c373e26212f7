// Identity, accounts and SMART on FHIR (issue 4): R-10 … R-19 over HTTPS, and negative
// tests modeled on the Inferno SMART test kit (plain PKCE, wrong verifier, reused code, wrong
// aud, replayed jti, scope escalation on refresh, revoked user, deregistered client, third
// admin). The browser launch is in smart_browser.test.js; timeouts in auth_timeouts.test.js.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import { createPublicKey, verify as verifySig, randomUUID } from 'node:crypto';
import { BASE, request, uid, sleep } from './lib/client.js';
import { rng } from './lib/random.js';
import {
  ORIGIN, TOKEN_ENDPOINT, api, staff, firstLogin, login, loginRequest, postForm, newKeyPair, clientAssertion, authorizeCode, totp,
} from './lib/auth.js';

const REDIRECT = 'https://app.example/cb';
const bearer = (t) => ({ headers: { authorization: `Bearer ${t}` } });

// An approved institution with its manager and one practitioner, and its terminals.
async function institution(s, name = `テスト介護施設 ${uid('i')}`) {
  const app = await api('POST', '/admin/institutions', { body: { name, kind: 'care', manager: { name: '管理 責任者' } } });
  assert.equal(app.status, 201, app.text);
  const approved = await api('POST', `/admin/institutions/${app.json.id}/approve`, { session: s.owner.session, body: {} });
  assert.equal(approved.status, 200, approved.text);
  const mgr = await api('POST', `/admin/accounts/${approved.json.managerAccountRequest}/issue`, { session: s['ops-manager'].session, body: {} });
  assert.equal(mgr.status, 200, mgr.text);
  const manager = { id: mgr.json.account.id, ...(await firstLogin(mgr.json.account.id, mgr.json.initialPassword)) };
  const req = await api('POST', '/admin/accounts/requests', { session: manager.session, body: { name: '介護 職員' } });
  assert.equal(req.status, 201, req.text);
  const iss = await api('POST', `/admin/accounts/${req.json.id}/issue`, { session: s['ops-manager'].session, body: {} });
  const practitioner = { id: req.json.id, ...(await firstLogin(req.json.id, iss.json.initialPassword)) };
  const conf = await api('POST', '/admin/clients', {
    session: s.secretariat.session,
    body: { name: '施設端末', kind: 'confidential', institution: app.json.id, redirectUris: [REDIRECT], scope: 'user/*.cruds system/*.rs' },
  });
  assert.equal(conf.status, 201, conf.text);
  const es = newKeyPair('ES384');
  const rs = newKeyPair('RS384');
  const backend = await api('POST', '/admin/clients', {
    session: s.secretariat.session,
    body: { name: '施設システム', kind: 'backend', institution: app.json.id, scope: 'system/*.rs', jwks: { keys: [es.jwk, rs.jwk] } },
  });
  assert.equal(backend.status, 201, backend.text);
  return { id: app.json.id, manager, practitioner, conf: conf.json, backend: backend.json, es, rs };
}

const assertion = (inst, key, over = {}) => clientAssertion({ clientId: inst.backend.clientId, privateKeyPem: key.privateKeyPem, kid: key.kid, alg: key.alg, ...over });
const backendGrant = (inst, key, over = {}, scope = 'system/*.rs') => postForm(TOKEN_ENDPOINT, {
  grant_type: 'client_credentials', scope,
  client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
  client_assertion: assertion(inst, key, over),
});

// A user token through the authorization-code flow on the institution's confidential terminal.
async function userToken(inst, user, scope = 'openid fhirUser user/*.rs online_access') {
  const a = await authorizeCode({ session: user.session, clientId: inst.conf.clientId, redirectUri: REDIRECT, scope });
  assert.equal(a.status, 302, a.html);
  assert.ok(a.params.code, a.location);
  const t = await postForm(TOKEN_ENDPOINT, { grant_type: 'authorization_code', code: a.params.code, redirect_uri: REDIRECT, code_verifier: a.verifier },
    { basic: [inst.conf.clientId, inst.conf.clientSecret] });
  assert.equal(t.status, 200, t.text);
  return t.json;
}

describe('SMART discovery and public endpoints (R-19)', () => {
  it('.well-known/smart-configuration has every required field; S256 only', async () => {
    const r = await fetch(`${BASE}/.well-known/smart-configuration`);
    assert.equal(r.status, 200);
    const c = await r.json();
    for (const k of ['issuer', 'jwks_uri', 'authorization_endpoint', 'token_endpoint', 'grant_types_supported', 'capabilities', 'code_challenge_methods_supported', 'token_endpoint_auth_methods_supported', 'scopes_supported', 'response_types_supported']) {
      assert.ok(c[k], `${k} is present`);
    }
    assert.deepEqual(c.code_challenge_methods_supported, ['S256']);
    assert.equal(c.token_endpoint, TOKEN_ENDPOINT);
    for (const cap of ['launch-standalone', 'client-public', 'client-confidential-symmetric', 'client-confidential-asymmetric', 'context-standalone-patient', 'permission-v2', 'sso-openid-connect']) {
      assert.ok(c.capabilities.includes(cap), cap);
    }
    assert.deepEqual(c.token_endpoint_auth_signing_alg_values_supported.sort(), ['ES384', 'RS384']);
    const jwks = await (await fetch(c.jwks_uri)).json();
    assert.equal(jwks.keys[0].kty, 'RSA');
    assert.equal(jwks.keys[0].alg, 'RS256');
  });

  it('only /metadata, /health and discovery answer without a token; all else 401 with WWW-Authenticate', async () => {
    const cs = await request('GET', 'metadata', { headers: { authorization: null } });
    assert.equal(cs.status, 200);
    const security = cs.json.rest[0].security;
    assert.equal(security.service[0].coding[0].code, 'SMART-on-FHIR');
    const uris = Object.fromEntries(security.extension[0].extension.map((e) => [e.url, e.valueUri]));
    assert.equal(uris.token, TOKEN_ENDPOINT);
    assert.equal(uris.authorize, `${ORIGIN}/auth/authorize`);
    assert.equal((await fetch(`${ORIGIN}/health`)).status, 200);
    for (const [method, path] of [['GET', 'Patient'], ['GET', 'Patient/x'], ['POST', 'Patient'], ['GET', '_history'], ['GET', '?_type=Patient'], ['POST', ''], ['GET', 'Patient/x/$everything']]) {
      const r = await request(method, path, { headers: { authorization: null }, body: method === 'POST' ? { resourceType: path ? 'Patient' : 'Bundle', type: 'batch' } : undefined });
      assert.equal(r.status, 401, `${method} ${path}`);
      assert.match(r.headers.get('www-authenticate'), /^Bearer /);
      assert.equal(r.json.resourceType, 'OperationOutcome');
    }
    const garbage = await request('GET', 'Patient', { headers: { authorization: 'Bearer not-a-token' } });
    assert.equal(garbage.status, 401);
    assert.match(garbage.headers.get('www-authenticate'), /invalid_token/);
  });

  it('CORS: a browser app on another origin may call the FHIR API and the token endpoint, not the login pages', async () => {
    const pre = await fetch(`${BASE}/Patient`, { method: 'OPTIONS', headers: { origin: 'http://app.example', 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization' } });
    assert.equal(pre.status, 204);
    assert.equal(pre.headers.get('access-control-allow-origin'), '*');
    assert.match(pre.headers.get('access-control-allow-headers'), /Authorization/);
    const login = await fetch(`${ORIGIN}/auth/login`, { headers: { origin: 'http://app.example' } });
    assert.equal(login.headers.get('access-control-allow-origin'), null);
  });
});

describe('accounts and institutions (R-10 … R-16)', () => {
  let s, inst;
  before(async () => {
    s = await staff();
    inst = await institution(s);
  });

  it('R-10: login IDs are individual; shared or default names such as admin are refused', async () => {
    for (const loginId of ['admin', 'root', 'guest', 'test']) {
      const r = await api('POST', '/admin/accounts', { session: s.owner.session, body: { role: 'auditor', name: 'x', loginId } });
      assert.equal(r.status, 400, loginId);
      assert.equal(r.json.field, 'loginId');
    }
    const a = await api('POST', '/admin/accounts', { session: s.owner.session, body: { role: 'auditor', name: '監査 太郎' } });
    const b = await api('POST', '/admin/accounts', { session: s.owner.session, body: { role: 'auditor', name: '監査 太郎' } });
    assert.notEqual(a.json.account.id, b.json.account.id, 'the same name gets two individual IDs');
    const dup = await api('POST', '/admin/accounts', { session: s.owner.session, body: { role: 'auditor', name: 'y', loginId: a.json.account.id } });
    assert.equal(dup.status, 409);
  });

  it('R-11: application → owner approval → active → deregistered; only the owner decides', async () => {
    const app = await api('POST', '/admin/institutions', { body: { name: '申請中の施設', manager: { name: '申請 者' } } });
    assert.equal(app.json.state, 'applied');
    // Not approved yet: no terminal may be registered for it.
    const early = await api('POST', '/admin/clients', { session: s.secretariat.session, body: { name: 't', kind: 'confidential', institution: app.json.id, redirectUris: [REDIRECT] } });
    assert.equal(early.status, 409);
    const byOps = await api('POST', `/admin/institutions/${app.json.id}/approve`, { session: s['ops-manager'].session, body: {} });
    assert.equal(byOps.status, 403);
    const ok = await api('POST', `/admin/institutions/${app.json.id}/approve`, { session: s.owner.session, body: {} });
    assert.equal(ok.json.state, 'active');
    assert.ok(ok.json.managerAccountRequest, 'the named manager becomes an account request');
    const twice = await api('POST', `/admin/institutions/${app.json.id}/approve`, { session: s.owner.session, body: {} });
    assert.equal(twice.status, 409);
    // The institution is an Organization resource, active while approved.
    const org = await request('GET', `Organization/${app.json.id}`);
    assert.equal(org.status, 200);
    assert.equal(org.json.active, true);
    const gone = await api('POST', `/admin/institutions/${app.json.id}/deregister`, { session: s.owner.session, body: { reason: '廃止' } });
    assert.equal(gone.json.state, 'deregistered');
    assert.equal((await request('GET', `Organization/${app.json.id}`)).json.active, false);
  });

  it('R-11: staff are requested by the org-manager and issued by the ops-manager, with a one-time certificate', async () => {
    const req = await api('POST', '/admin/accounts/requests', { session: inst.manager.session, body: { name: '訪問 看護師', loginId: `nurse-${randomUUID().slice(0, 8)}` } });
    assert.equal(req.status, 201, req.text);
    assert.equal(req.json.state, 'requested');
    assert.equal(req.json.institution, inst.id);
    const bySecretariat = await api('POST', `/admin/accounts/${req.json.id}/issue`, { session: s.secretariat.session, body: {} });
    assert.equal(bySecretariat.status, 403, 'only the ops-manager issues IDs');
    const selfIssue = await api('POST', '/admin/accounts/requests', { session: inst.practitioner.session, body: { name: 'x' } });
    assert.equal(selfIssue.status, 403, 'a practitioner cannot request accounts');
    const issued = await api('POST', `/admin/accounts/${req.json.id}/issue`, { session: s['ops-manager'].session, body: {} });
    assert.equal(issued.status, 200);
    const cert = await fetch(issued.json.certificateUrl);
    assert.equal(cert.status, 200);
    const html = await cert.text();
    assert.match(html, /登録済証/);
    assert.match(html, /registration certificate/);
    assert.ok(html.includes(req.json.id) && html.includes(issued.json.initialPassword.replace(/&/g, '&amp;')), 'ID and initial password on it');
    assert.equal((await fetch(issued.json.certificateUrl)).status, 410, 'shown once');
  });

  it('R-12: citizens apply for themselves; the ops-manager issues', async () => {
    const app = await api('POST', '/admin/applications/citizen', { body: { name: '市民 一郎', kind: 'resident' } });
    assert.equal(app.status, 201);
    assert.equal(app.json.role, 'citizen');
    assert.equal(app.json.state, 'requested');
    const noLogin = await api('POST', '/auth/login', { body: { id: app.json.id, password: 'anything-at-all-1!' } });
    assert.equal(noLogin.status, 401, 'not issued yet');
    const badProxy = await api('POST', '/admin/applications/citizen', { body: { name: '代諾 者', kind: 'proxy' } });
    assert.equal(badProxy.status, 400);
    const issued = await api('POST', `/admin/accounts/${app.json.id}/issue`, { session: s['ops-manager'].session, body: {} });
    assert.equal(issued.status, 200);
    assert.equal(issued.json.account.state, 'active');
    // A proxy's account links to their RelatedPerson record, as the ops-manager verified it.
    const proxyApp = await api('POST', '/admin/applications/citizen', { body: { name: '代諾 花子', kind: 'proxy', patient: 'p-mother', relationship: '子 / daughter' } });
    const wrongLink = await api('POST', `/admin/accounts/${proxyApp.json.id}/issue`, { session: s['ops-manager'].session, body: { fhirUser: 'Practitioner/x' } });
    assert.equal(wrongLink.status, 400);
    assert.equal(wrongLink.json.field, 'fhirUser');
    const linked = await api('POST', `/admin/accounts/${proxyApp.json.id}/issue`, { session: s['ops-manager'].session, body: { fhirUser: 'RelatedPerson/rp-daughter' } });
    assert.equal(linked.status, 200, linked.text);
    assert.equal(linked.json.account.fhirUser, 'RelatedPerson/rp-daughter');
    const account = await api('GET', `/admin/accounts/${proxyApp.json.id}`, { session: s.secretariat.session });
    assert.deepEqual(account.json.proxyFor.map((x) => [x.patient, x.active]), [['p-mother', true]], 'the relation the application named (R-22)');
  });

  it('R-13: with an initial password nothing but the password change is allowed', async () => {
    const r = await api('POST', '/admin/accounts', { session: s.owner.session, body: { role: 'auditor', name: '初回 太郎' } });
    const l = await api('POST', '/auth/login', { body: { id: r.json.account.id, password: r.json.initialPassword } });
    assert.equal(l.json.mustChangePassword, true);
    const blocked = await api('GET', '/admin/accounts', { session: l.json.session_token });
    assert.equal(blocked.status, 403);
    assert.equal(blocked.json.error, 'password-change-required');
    const weak = await api('POST', '/auth/password', { session: l.json.session_token, body: { current: r.json.initialPassword, new: 'password1234' } });
    assert.equal(weak.status, 400, 'policy: 13+ characters mixing letters, digits and symbols');
    const ok = await api('POST', '/auth/password', { session: l.json.session_token, body: { current: r.json.initialPassword, new: 'Audit-trail-2026!' } });
    assert.equal(ok.status, 200);
    assert.equal((await api('GET', '/admin/accounts', { session: l.json.session_token })).status, 200);
  });

  it('R-14: only the secretariat resets a password, again as an initial password; old sessions end', async () => {
    const u = inst.practitioner;
    const byOps = await api('POST', `/admin/accounts/${u.id}/reset-password`, { session: s['ops-manager'].session, body: {} });
    assert.equal(byOps.status, 403);
    const reset = await api('POST', `/admin/accounts/${u.id}/reset-password`, { session: s.secretariat.session, body: {} });
    assert.equal(reset.status, 200, reset.text);
    assert.equal(reset.json.account.initialPassword, true);
    assert.equal((await api('GET', '/admin/me', { session: u.session })).status, 401, 'the old session ended');
    assert.equal((await loginRequest({ id: u.id, password: u.password })).status, 401, 'the old password is gone');
    Object.assign(u, await firstLogin(u.id, reset.json.initialPassword));
  });

  it('R-16: admin rights need a sysadmin\'s approval, never one\'s own, and at most two holders', async () => {
    const sys2 = await api('POST', '/admin/accounts', { session: s.owner.session, body: { role: 'sysadmin', name: '第二 管理者' } });
    const second = { id: sys2.json.account.id, ...(await firstLogin(sys2.json.account.id, sys2.json.initialPassword)) };
    const candidates = [];
    for (let i = 0; i < 3; i++) {
      const a = await api('POST', '/admin/accounts', { session: s.owner.session, body: { role: 'secretariat', name: `候補 ${i}` } });
      candidates.push(a.json.account.id);
    }
    const grants = [];
    for (const id of candidates) {
      const g = await api('POST', '/admin/admin-rights', { session: s.owner.session, body: { account: id, reason: 'サーバ保守' } });
      assert.equal(g.status, 201, g.text);
      grants.push(g.json.id);
    }
    const byOwner = await api('POST', `/admin/admin-rights/${grants[0]}/approve`, { session: s.owner.session, body: {} });
    assert.equal(byOwner.status, 403, 'only a sysadmin approves');
    const own = await api('POST', '/admin/admin-rights', { session: s.sysadmin.session, body: { account: s.sysadmin.id, reason: 'self' } });
    const selfApprove = await api('POST', `/admin/admin-rights/${own.json.id}/approve`, { session: s.sysadmin.session, body: {} });
    assert.equal(selfApprove.status, 403, 'not one\'s own');
    await api('POST', `/admin/admin-rights/${own.json.id}/reject`, { session: second.session, body: {} });
    // Whoever holds admin rights already (from earlier runs on this fixture) counts too.
    const holders = (await api('GET', '/admin/accounts?state=active', { session: s.owner.session })).json.filter((a) => a.adminRight);
    for (const h of holders) await api('POST', `/admin/accounts/${h.id}/revoke-admin-right`, { session: s.sysadmin.session, body: {} });
    assert.equal((await api('POST', `/admin/admin-rights/${grants[0]}/approve`, { session: s.sysadmin.session, body: {} })).status, 200);
    assert.equal((await api('POST', `/admin/admin-rights/${grants[1]}/approve`, { session: s.sysadmin.session, body: {} })).status, 200);
    const third = await api('POST', `/admin/admin-rights/${grants[2]}/approve`, { session: s.sysadmin.session, body: {} });
    assert.equal(third.status, 409, 'a third holder is refused');
    assert.equal(third.json.error, 'admin-limit');
    await api('POST', `/admin/accounts/${candidates[0]}/revoke-admin-right`, { session: s.sysadmin.session, body: {} });
    assert.equal((await api('POST', `/admin/admin-rights/${grants[2]}/approve`, { session: s.sysadmin.session, body: {} })).status, 200, 'after a revocation there is room');
  });

  it('R-16 under concurrency: six approvals at once leave at most two holders', async () => {
    const holders = (await api('GET', '/admin/accounts?state=active', { session: s.owner.session })).json.filter((a) => a.adminRight);
    for (const h of holders) await api('POST', `/admin/accounts/${h.id}/revoke-admin-right`, { session: s.sysadmin.session, body: {} });
    const grants = [];
    for (let i = 0; i < 6; i++) {
      const a = await api('POST', '/admin/accounts', { session: s.owner.session, body: { role: 'auditor', name: `同時 ${i}` } });
      grants.push((await api('POST', '/admin/admin-rights', { session: s.owner.session, body: { account: a.json.account.id, reason: '保守' } })).json.id);
    }
    const results = await Promise.all(grants.map((g) => api('POST', `/admin/admin-rights/${g}/approve`, { session: s.sysadmin.session, body: {} })));
    const statuses = results.map((r) => r.status).sort();
    assert.deepEqual(statuses, [200, 200, 409, 409, 409, 409], JSON.stringify(results.map((r) => r.json)));
    const now = (await api('GET', '/admin/accounts?state=active', { session: s.owner.session })).json.filter((a) => a.adminRight);
    assert.equal(now.length, 2);
  });

  it('second factor: admin roles must set up TOTP before anything else; a TOTP code counts once', async () => {
    const r = await api('POST', '/admin/accounts', { session: s.owner.session, body: { role: 'ops-manager', name: '運営 二郎' } });
    const l = await api('POST', '/auth/login', { body: { id: r.json.account.id, password: r.json.initialPassword } });
    assert.equal(l.json.secondFactorRequired, true);
    await api('POST', '/auth/password', { session: l.json.session_token, body: { current: r.json.initialPassword, new: 'Ops-manager-pass-1!' } });
    const blocked = await api('GET', '/admin/accounts', { session: l.json.session_token });
    assert.equal(blocked.json.error, 'second-factor-required');
    const t = await api('POST', '/auth/totp', { session: l.json.session_token, body: {} });
    assert.match(t.json.uri, /^otpauth:\/\/totp\//);
    assert.equal((await api('POST', '/auth/totp/confirm', { session: l.json.session_token, body: { code: '000000' } })).status, 400);
    assert.equal((await api('POST', '/auth/totp/confirm', { session: l.json.session_token, body: { code: totp(t.json.secret) } })).status, 200);
    assert.equal((await api('GET', '/admin/accounts', { session: l.json.session_token })).status, 200);
    // From now on the code is required at login, and an accepted code is not accepted again.
    assert.equal((await loginRequest({ id: r.json.account.id, password: 'Ops-manager-pass-1!' })).status, 401);
    await sleep(30_000 - (Date.now() % 30_000) + 300);  // a step no login has used yet
    const code = totp(t.json.secret);
    const first = await loginRequest({ id: r.json.account.id, password: 'Ops-manager-pass-1!', totp: code });
    assert.equal(first.status, 200, first.text);
    const replay = await loginRequest({ id: r.json.account.id, password: 'Ops-manager-pass-1!', totp: code });
    assert.equal(replay.status, 401, 'the same code is refused the second time');
    // The second factor cannot be replaced with only a session (a stolen one would keep the account).
    const again = await api('POST', '/auth/totp', { session: first.json.session_token, body: {} });
    assert.equal(again.status, 409);
  });

  it('a password change ends the account\'s other sessions and tokens', async () => {
    const req = await api('POST', '/admin/accounts/requests', { session: inst.manager.session, body: { name: '変更 太郎' } });
    const iss = await api('POST', `/admin/accounts/${req.json.id}/issue`, { session: s['ops-manager'].session, body: {} });
    const u = { id: req.json.id, ...(await firstLogin(req.json.id, iss.json.initialPassword)) };
    const other = await login(u.id, u.password);
    const t = await userToken(inst, { ...u, session: other });
    const c = await api('POST', '/auth/password', { session: u.session, body: { current: u.password, new: 'Another-pass-2026!' } });
    assert.equal(c.status, 200, c.text);
    assert.equal((await api('GET', '/admin/me', { session: u.session })).status, 200, 'the session that changed it goes on');
    // Guessing the current password here is throttled like a login.
    const wrong1 = await api('POST', '/auth/password', { session: u.session, body: { current: 'not-it-XXXX-1!', new: 'Third-pass-2026!!' } });
    assert.equal(wrong1.status, 400);
    const wrong2 = await api('POST', '/auth/password', { session: u.session, body: { current: 'not-it-XXXX-2!', new: 'Third-pass-2026!!' } });
    assert.equal(wrong2.status, 429);
    assert.equal((await api('GET', '/admin/me', { session: other })).status, 401, 'another session ends');
    assert.equal((await request('GET', 'Patient?_count=1', bearer(t.access_token))).status, 401, 'its tokens end');
  });

  it('staff accounts link only to Practitioner or PractitionerRole', async () => {
    for (const fhirUser of ['Patient/123', 'PractitionerX', 'Practitioner/"><img src=x>', 'Practitioner/']) {
      const r = await api('POST', '/admin/accounts/requests', { session: inst.manager.session, body: { name: 'x', fhirUser } });
      assert.equal(r.status, 400, fhirUser);
      assert.equal(r.json.field, 'fhirUser');
    }
    const ok = await api('POST', '/admin/accounts/requests', { session: inst.manager.session, body: { name: 'x', fhirUser: 'PractitionerRole/pr-1' } });
    assert.equal(ok.status, 201, ok.text);
  });

  it('R-15: a deregistered account is refused on its very next request, tokens and sessions alike', async () => {
    const req = await api('POST', '/admin/accounts/requests', { session: inst.manager.session, body: { name: '退職 予定' } });
    const iss = await api('POST', `/admin/accounts/${req.json.id}/issue`, { session: s['ops-manager'].session, body: {} });
    const leaver = { id: req.json.id, ...(await firstLogin(req.json.id, iss.json.initialPassword)) };
    const t = await userToken(inst, leaver);
    assert.equal((await request('GET', 'Patient?_count=1', bearer(t.access_token))).status, 200);
    const other = await api('POST', `/admin/accounts/${leaver.id}/deregister`, { session: s.secretariat.session, body: {} });
    assert.equal(other.status, 403, 'the secretariat deregisters citizens, not staff');
    const d = await api('POST', `/admin/accounts/${leaver.id}/deregister`, { session: inst.manager.session, body: { reason: '退職' } });
    assert.equal(d.status, 200, d.text);
    assert.equal((await request('GET', 'Patient?_count=1', bearer(t.access_token))).status, 401);
    assert.equal((await api('GET', '/admin/me', { session: leaver.session })).status, 401);
    const refresh = await postForm(TOKEN_ENDPOINT, { grant_type: 'refresh_token', refresh_token: t.refresh_token }, { basic: [inst.conf.clientId, inst.conf.clientSecret] });
    assert.equal(refresh.status, 400);
    assert.equal((await loginRequest({ id: leaver.id, password: leaver.password })).status, 401);
  });
});

describe('OAuth and SMART negative cases (Inferno-style, R-18, R-19)', () => {
  let s, inst;
  before(async () => {
    s = await staff();
    inst = await institution(s);
  });

  it('authorization code + PKCE S256 → token with scope, id_token (RS256, fhirUser) and Cache-Control: no-store', async () => {
    const a = await authorizeCode({ session: inst.practitioner.session, clientId: inst.conf.clientId, redirectUri: REDIRECT, scope: 'openid fhirUser user/Patient.rs user/Observation.read system/*.rs' });
    assert.equal(a.status, 302);
    assert.equal(a.params.state, a.state, 'state comes back');
    const t = await postForm(TOKEN_ENDPOINT, { grant_type: 'authorization_code', code: a.params.code, redirect_uri: REDIRECT, code_verifier: a.verifier }, { basic: [inst.conf.clientId, inst.conf.clientSecret] });
    assert.equal(t.status, 200, t.text);
    assert.equal(t.headers.get('cache-control'), 'no-store');
    assert.equal(t.json.token_type, 'Bearer');
    assert.ok(t.json.expires_in > 0);
    assert.match(t.json.scope, /user\/Patient\.rs/);
    assert.match(t.json.scope, /user\/Observation\.read/);
    assert.doesNotMatch(t.json.scope, /system\//, 'a user flow never yields system/ scopes');
    const [h, p, sig] = t.json.id_token.split('.');
    const jwks = await (await fetch(`${ORIGIN}/auth/jwks`)).json();
    const key = createPublicKey({ key: jwks.keys.find((k) => k.kid === JSON.parse(Buffer.from(h, 'base64url')).kid), format: 'jwk' });
    assert.ok(verifySig('sha256', Buffer.from(`${h}.${p}`), key, Buffer.from(sig, 'base64url')), 'id_token verifies with the JWKS');
    const claims = JSON.parse(Buffer.from(p, 'base64url'));
    assert.equal(claims.iss, BASE);
    assert.equal(claims.aud, inst.conf.clientId);
    assert.equal(claims.sub, inst.practitioner.id);
    // A system search is allowed for the types the scopes cover, named in _type.
    assert.equal((await request('GET', '?_type=Patient,Observation&_count=1', bearer(t.json.access_token))).status, 200);
    assert.equal((await request('GET', '?_type=Patient,Encounter&_count=1', bearer(t.json.access_token))).status, 403);
    assert.equal((await request('GET', '?_count=1', bearer(t.json.access_token))).status, 403, 'all types need a * scope');
    // Scopes are enforced: Patient read yes, a write no.
    assert.equal((await request('GET', 'Patient?_count=1', bearer(t.json.access_token))).status, 200);
    const write = await request('POST', 'Patient', { ...bearer(t.json.access_token), body: { resourceType: 'Patient' } });
    assert.equal(write.status, 403);
    assert.match(write.headers.get('www-authenticate'), /insufficient_scope/);
  });

  it('plain PKCE, a missing challenge and a wrong aud are refused back to the app', async () => {
    const plain = await authorizeCode({ session: inst.practitioner.session, clientId: inst.conf.clientId, redirectUri: REDIRECT, challenge: 'a'.repeat(43), challengeMethod: 'plain' });
    assert.equal(plain.status, 302);
    assert.equal(plain.params.error, 'invalid_request');
    const none = await authorizeCode({ session: inst.practitioner.session, clientId: inst.conf.clientId, redirectUri: REDIRECT, challenge: '', challengeMethod: undefined });
    assert.equal(none.params.error, 'invalid_request');
    const aud = await authorizeCode({ session: inst.practitioner.session, clientId: inst.conf.clientId, redirectUri: REDIRECT, aud: 'https://other.example/fhir' });
    assert.equal(aud.params.error, 'invalid_request');
    assert.match(aud.params.error_description, /aud/);
  });

  it('an unregistered redirect URI or an unknown client gets an error page, never a redirect', async () => {
    const uri = await authorizeCode({ session: inst.practitioner.session, clientId: inst.conf.clientId, redirectUri: 'https://evil.example/cb' });
    assert.equal(uri.status, 400);
    assert.equal(uri.location, null);
    const unknown = await authorizeCode({ session: inst.practitioner.session, clientId: 'cl-unknown', redirectUri: REDIRECT });
    assert.equal(unknown.status, 400);
  });

  it('a wrong verifier is refused and spends the code; a reused code is refused and revokes its tokens', async () => {
    const a = await authorizeCode({ session: inst.practitioner.session, clientId: inst.conf.clientId, redirectUri: REDIRECT });
    const wrong = await postForm(TOKEN_ENDPOINT, { grant_type: 'authorization_code', code: a.params.code, redirect_uri: REDIRECT, code_verifier: 'x'.repeat(43) }, { basic: [inst.conf.clientId, inst.conf.clientSecret] });
    assert.equal(wrong.status, 400);
    assert.equal(wrong.json.error, 'invalid_grant');
    const b = await authorizeCode({ session: inst.practitioner.session, clientId: inst.conf.clientId, redirectUri: REDIRECT });
    const form = { grant_type: 'authorization_code', code: b.params.code, redirect_uri: REDIRECT, code_verifier: b.verifier };
    const first = await postForm(TOKEN_ENDPOINT, form, { basic: [inst.conf.clientId, inst.conf.clientSecret] });
    assert.equal(first.status, 200);
    const second = await postForm(TOKEN_ENDPOINT, form, { basic: [inst.conf.clientId, inst.conf.clientSecret] });
    assert.equal(second.status, 400);
    assert.equal(second.json.error, 'invalid_grant');
    assert.equal((await request('GET', 'Patient?_count=1', bearer(first.json.access_token))).status, 401, 'tokens from a reused code are revoked');
    const badSecret = await postForm(TOKEN_ENDPOINT, form, { basic: [inst.conf.clientId, 'wrong'] });
    assert.equal(badSecret.status, 401);
    assert.equal(badSecret.json.error, 'invalid_client');
  });

  it('refresh rotates and can only narrow the scopes (no escalation)', async () => {
    const staffOffline = await userToken(inst, inst.practitioner, 'user/Patient.rs offline_access');
    assert.equal(staffOffline.refresh_token, undefined, 'staff get no offline_access: their refresh ends with the login session');
    assert.doesNotMatch(staffOffline.scope, /offline_access/);
    const t = await userToken(inst, inst.practitioner, 'user/Patient.rs online_access');
    const wider = await postForm(TOKEN_ENDPOINT, { grant_type: 'refresh_token', refresh_token: t.refresh_token, scope: 'user/Patient.cruds online_access' }, { basic: [inst.conf.clientId, inst.conf.clientSecret] });
    assert.equal(wider.status, 400);
    assert.equal(wider.json.error, 'invalid_scope');
    const other = await postForm(TOKEN_ENDPOINT, { grant_type: 'refresh_token', refresh_token: t.refresh_token, scope: 'user/Observation.rs' }, { basic: [inst.conf.clientId, inst.conf.clientSecret] });
    assert.equal(other.json.error, 'invalid_scope');
    const narrower = await postForm(TOKEN_ENDPOINT, { grant_type: 'refresh_token', refresh_token: t.refresh_token, scope: 'user/Patient.r online_access' }, { basic: [inst.conf.clientId, inst.conf.clientSecret] });
    assert.equal(narrower.status, 200, narrower.text);
    assert.equal(narrower.json.scope, 'online_access user/Patient.r');
    assert.equal((await request('GET', 'Patient?_count=1', bearer(narrower.json.access_token))).status, 403, 'r is not s');
  });

  it('backend services: private_key_jwt with ES384 and RS384; replayed jti, long exp, wrong aud, wrong key and RS256 refused', async () => {
    for (const key of [inst.es, inst.rs]) {
      const ok = await backendGrant(inst, key);
      assert.equal(ok.status, 200, `${key.alg}: ${ok.text}`);
      assert.equal(ok.json.scope, 'system/*.rs');
      assert.equal(ok.json.expires_in, 3600, 'this fixture sets KASAMA_BACKEND_TOKEN_LIFETIME=3600');
      assert.equal((await request('GET', 'Patient?_count=1', bearer(ok.json.access_token))).status, 200);
    }
    const jti = randomUUID();
    assert.equal((await backendGrant(inst, inst.es, { jti })).status, 200);
    const replay = await backendGrant(inst, inst.es, { jti });
    assert.equal(replay.status, 401);
    assert.match(replay.json.error_description, /jti/);
    const longExp = await backendGrant(inst, inst.es, { exp: Math.floor(Date.now() / 1000) + 600 });
    assert.equal(longExp.status, 401);
    const expired = await backendGrant(inst, inst.es, { exp: Math.floor(Date.now() / 1000) - 120 });
    assert.equal(expired.status, 401);
    const aud = await backendGrant(inst, inst.es, { aud: `${BASE}` });
    assert.equal(aud.status, 401);
    const stranger = newKeyPair('ES384', inst.es.kid);
    assert.equal((await backendGrant(inst, stranger)).status, 401, 'a key that is not registered');
    const rs256 = { ...inst.rs, alg: 'RS256' };
    assert.equal((await backendGrant(inst, rs256)).status, 401, 'RS256 is not accepted for client assertions');
    const escalate = await backendGrant(inst, inst.es, {}, 'system/*.cruds');
    assert.equal(escalate.status, 200);
    assert.equal(escalate.json.scope, 'system/*.rs', 'scopes only narrow to what the terminal is registered for');
    const userScope = await backendGrant(inst, inst.es, {}, 'user/*.cruds');
    assert.equal(userScope.status, 400);
    assert.equal(userScope.json.error, 'invalid_scope');
  });

  it('client_secret_basic: a confidential client gets a system token; introspection and revocation (RFC 7662, 7009)', async () => {
    const t = await postForm(TOKEN_ENDPOINT, { grant_type: 'client_credentials', scope: 'system/Patient.rs' }, { basic: [inst.conf.clientId, inst.conf.clientSecret] });
    assert.equal(t.status, 200, t.text);
    const intro = await postForm(`${ORIGIN}/auth/introspect`, { token: t.json.access_token }, { basic: [inst.conf.clientId, inst.conf.clientSecret] });
    assert.equal(intro.json.active, true);
    assert.equal(intro.json.client_id, inst.conf.clientId);
    assert.ok(intro.json.terminal_id.startsWith('T-'), 'the terminal ID travels with the token (R-18)');
    assert.ok(intro.json.exp > Date.now() / 1000 && intro.json.exp <= Date.now() / 1000 + 3601, 'exp is given');
    const noAuth = await postForm(`${ORIGIN}/auth/introspect`, { token: t.json.access_token });
    assert.equal(noAuth.status, 401);
    const rev = await postForm(`${ORIGIN}/auth/revoke`, { token: t.json.access_token }, { basic: [inst.conf.clientId, inst.conf.clientSecret] });
    assert.equal(rev.status, 200);
    assert.equal((await postForm(`${ORIGIN}/auth/introspect`, { token: t.json.access_token }, { basic: [inst.conf.clientId, inst.conf.clientSecret] })).json.active, false);
    assert.equal((await request('GET', 'Patient?_count=1', bearer(t.json.access_token))).status, 401);
  });

  it('a token reaches only the types its scopes cover: _type, _include, _revinclude, chains and _has, in the query or a POST body', async () => {
    const t = await userToken(inst, inst.practitioner, 'user/Practitioner.rs user/Patient.rs');
    const tok = bearer(t.access_token);
    const cases = [
      ['GET', 'Practitioner?_revinclude=Observation:performer'],
      ['GET', 'Patient?_revinclude=Observation:subject'],
      ['GET', 'Patient?_include=Patient:general-practitioner'],  // Organization is among its targets
      ['GET', 'Patient?_include=*'],
      ['GET', 'Patient?_include:iterate=Patient:organization'],
      ['GET', '?_type=Practitioner&_type=Observation'],
      ['GET', '?_type=Practitioner,Observation'],
      ['GET', 'Patient?_has:Observation:subject:code=1234'],
      ['GET', 'Patient?organization.name=x'],
      ['GET', 'Patient?general-practitioner:Organization.name=x'],
      // Chains and reverse chains inside each other, as the search engine reads them.
      ['GET', 'Patient?general-practitioner:Practitioner._has:Observation:performer:code=x'],
      ['GET', 'Practitioner?_has:Observation:performer:subject:Patient.birthdate=1950-01-01'],
      ['GET', '?_has:Observation:subject:code=x'],
      ['GET', '?_type=Patient&_has:Observation:subject:code=x'],
    ];
    for (const [method, q] of cases) {
      const r = await request(method, q, tok);
      assert.equal(r.status, 403, q);
    }
    const body = await request('POST', 'Practitioner/_search', { ...tok, headers: { ...tok.headers, 'content-type': 'application/x-www-form-urlencoded' }, body: '_revinclude=Observation:performer' });
    assert.equal(body.status, 403, 'a POST _search body is checked as well');
    const sys = await request('POST', '_search?_type=Practitioner', { ...tok, headers: { ...tok.headers, 'content-type': 'application/x-www-form-urlencoded' }, body: '_type=Observation' });
    assert.equal(sys.status, 403);
    // What the scopes do cover still works.
    assert.equal((await request('GET', 'Patient?_include=Patient:general-practitioner:Practitioner', tok)).status, 200);
    assert.equal((await request('GET', '?_type=Patient,Practitioner&_count=1', tok)).status, 200);
    assert.equal((await request('GET', 'Patient?general-practitioner:Practitioner.name=x', tok)).status, 200);
    // Nested _has with scopes for every type in it works.
    const wide = await userToken(inst, inst.practitioner, 'user/*.rs');
    const nested = await request('GET', 'Patient?_has:Encounter:subject:_has:Condition:encounter:code=x', bearer(wide.access_token));
    assert.equal(nested.status, 200, nested.text);
  });

  it('a transaction cannot test for what the token may not search: conditional references and If-None-Exist are authorized first', async () => {
    const t = await userToken(inst, inst.practitioner, 'user/Observation.cruds');
    const tx = (entry) => request('POST', '', { ...bearer(t.access_token), body: { resourceType: 'Bundle', type: 'transaction', entry: [entry] } });
    for (const family of ['Exists', `Missing${uid('f')}`]) {
      const r = await tx({ resource: { resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference: `Patient?family=${family}` } }, request: { method: 'POST', url: 'Observation' } });
      assert.equal(r.status, 403, `${family}: ${r.text}`);
    }
    const ine = await tx({ resource: { resourceType: 'Patient' }, request: { method: 'POST', url: 'Patient', ifNoneExist: 'family=x' } });
    assert.equal(ine.status, 403);
    const plain = await request('POST', 'Observation', { ...bearer(t.access_token), body: { resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference: 'Patient?family=x' } } });
    assert.equal(plain.status, 403, 'a plain create with a conditional reference too');
    // Any link a transaction resolves (here a uri), not only Reference.reference.
    const uri = await tx({ resource: { resourceType: 'Observation', status: 'final', code: { text: 'x' }, identifier: [{ system: 'Condition?code=x', value: 'v' }] }, request: { method: 'POST', url: 'Observation' } });
    assert.equal(uri.status, 403, uri.text);
    // Criteria of conditional operations are searches: their chains need scopes too.
    const chained = await request('POST', 'Observation', { ...bearer(t.access_token), headers: { authorization: `Bearer ${t.access_token}`, 'if-none-exist': 'subject:Patient.birthdate=1950-01-01' }, body: { resourceType: 'Observation', status: 'final', code: { text: 'x' } } });
    assert.equal(chained.status, 403, chained.text);
    const condPut = await request('PUT', 'Observation?subject:Patient.birthdate=1950-01-01', { ...bearer(t.access_token), body: { resourceType: 'Observation', status: 'final', code: { text: 'x' } } });
    assert.equal(condPut.status, 403, condPut.text);
    const condDel = await request('DELETE', 'Observation?subject:Patient.birthdate=1950-01-01', bearer(t.access_token));
    assert.equal(condDel.status, 403, condDel.text);
  });

  it('the login form refuses a post without its own page\'s value (login CSRF)', async () => {
    const r = await fetch(`${ORIGIN}/auth/login`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ id: inst.practitioner.id, password: inst.practitioner.password, next: '/auth/login' }).toString() });
    assert.equal(r.status, 403);
    assert.equal(r.headers.get('set-cookie')?.includes('kasama_session'), false);
    const page = await fetch(`${ORIGIN}/auth/login`);
    const cookie = page.headers.get('set-cookie').split(';')[0];
    const nonce = /name="login_csrf" value="([^"]+)"/.exec(await page.text())[1];
    const ok = await fetch(`${ORIGIN}/auth/login`, { method: 'POST', redirect: 'manual', headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ id: inst.practitioner.id, password: inst.practitioner.password, next: '/auth/login', login_csrf: nonce }).toString() });
    assert.equal(ok.status, 303);
    assert.match(ok.headers.get('set-cookie'), /kasama_session=.*HttpOnly.*SameSite=Lax/);
  });

  it('R-18: staff use only their institution\'s terminals; a deregistered terminal or institution is refused at once', async () => {
    const other = await institution(s);
    const cross = await authorizeCode({ session: other.practitioner.session, clientId: inst.conf.clientId, redirectUri: REDIRECT });
    assert.equal(cross.params.error, 'access_denied');
    const t = await backendGrant(other, other.es);
    const u = await userToken(other, other.practitioner);
    const d = await api('POST', `/admin/clients/${other.backend.clientId}/deregister`, { session: s.secretariat.session, body: {} });
    assert.equal(d.status, 200);
    assert.equal((await request('GET', 'Patient?_count=1', bearer(t.json.access_token))).status, 401);
    const again = await backendGrant(other, other.es);
    assert.equal(again.status, 401);
    assert.equal(again.json.error, 'invalid_client');
    assert.equal((await request('GET', 'Patient?_count=1', bearer(u.access_token))).status, 200, 'the other terminal still works');
    await api('POST', `/admin/institutions/${other.id}/deregister`, { session: s.owner.session, body: {} });
    assert.equal((await request('GET', 'Patient?_count=1', bearer(u.access_token))).status, 401, 'its staff stop with the institution');
    assert.equal((await api('GET', '/admin/me', { session: other.practitioner.session })).status, 401);
  });
});

describe('brute force (R-32 groundwork): increasing delays, a short lock per source, the user unaffected', () => {
  it('each failure makes this source wait longer; after ten it is locked; another source still logs in', async () => {
    const s = await staff();
    const r = await api('POST', '/admin/accounts', { session: s.owner.session, body: { role: 'auditor', name: '総当たり 対象' } });
    const victim = { id: r.json.account.id, ...(await firstLogin(r.json.account.id, r.json.initialPassword)) };
    const waits = [];
    for (let i = 0; i < 10; i++) {
      const f = await api('POST', '/auth/login', { body: { id: victim.id, password: `guess-${i}-XXXXXXXX!` } });
      assert.equal(f.status, 401, `guess ${i}: ${f.text}`);
      // At once again, even with the right password: refused until the wait is over.
      const early = await api('POST', '/auth/login', { body: { id: victim.id, password: victim.password } });
      assert.equal(early.status, 429, `after guess ${i}`);
      assert.ok(Number(early.headers.get('retry-after')) >= 1);
      waits.push(early.json.retry_after_ms);
      if (i < 9) await sleep(early.json.retry_after_ms + 30);
    }
    for (let i = 1; i < 5; i++) assert.ok(waits[i] > waits[i - 1], `waits grow: ${waits.join(', ')}`);
    assert.ok(waits[4] <= 4000 && waits[8] <= 4000, `delays stay short before the lock: ${waits.join(', ')}`);
    assert.ok(waits[9] > 55_000, `ten failures lock this source for about a minute: ${waits[9]}`);
    const locked = await api('POST', '/auth/login', { body: { id: victim.id, password: victim.password } });
    assert.equal(locked.json.error, 'locked');
    // The real user, from another address (127.0.0.2), is not locked out.
    assert.equal((await loginFrom('127.0.0.2', { id: victim.id, password: victim.password })).status, 200);
  });

  it('twenty failures from two addresses: the user\'s own address gets in at once, a new one waits at most 5 s', async () => {
    const s = await staff();
    const r = await api('POST', '/admin/accounts', { session: s.owner.session, body: { role: 'auditor', name: '分散 攻撃' } });
    const victim = { id: r.json.account.id, ...(await firstLogin(r.json.account.id, r.json.initialPassword)) };  // from 127.0.0.1
    for (let i = 0; i < 10; i++) {
      for (const from of ['127.0.0.2', '127.0.0.3']) {
        const f = await loginFrom(from, { id: victim.id, password: `spray-${i}-XXXXXXXX!` });
        assert.equal(f.status, 401, `${from} guess ${i}: ${JSON.stringify(f.json)}`);
      }
      if (i < 9) await sleep(Math.min(250 * 2 ** i, 4000) + 50);
    }
    const fresh = await loginFrom('127.0.0.4', { id: victim.id, password: victim.password });
    assert.equal(fresh.status, 429, 'an address new to this account waits while it is under attack');
    assert.equal(fresh.json.error, 'slow_down');
    assert.ok(fresh.json.retry_after_ms <= 5000, `a short wait: ${fresh.json.retry_after_ms} ms`);
    const own = await loginFrom('127.0.0.1', { id: victim.id, password: victim.password });
    assert.equal(own.status, 200, 'the address the user logged in from before is not held up');
    await sleep(5100);
    assert.equal((await loginFrom('127.0.0.4', { id: victim.id, password: victim.password })).status, 200);
  });

  it('attempts sent all at once get one password check', async () => {
    const s = await staff();
    const r = await api('POST', '/admin/accounts', { session: s.owner.session, body: { role: 'auditor', name: '同時 試行' } });
    const victim = { id: r.json.account.id, ...(await firstLogin(r.json.account.id, r.json.initialPassword)) };
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => loginFrom('127.0.0.6', { id: victim.id, password: `burst-${i}-XXXXXXXX!` })));
    const counts = {};
    for (const x of results) counts[x.status] = (counts[x.status] ?? 0) + 1;
    assert.equal(counts[401], 1, JSON.stringify(counts));
    assert.equal(counts[429], 19, JSON.stringify(counts));
  });

  it('one address spraying many accounts is blocked after 50 failures in 10 minutes', async () => {
    let status;
    let tries = 0;
    while (tries < 60) {
      status = (await loginFrom('127.0.0.5', { id: `r-nobody${tries++}`, password: 'Whatever-2026!' })).status;
      if (status !== 401) break;
    }
    assert.equal(status, 429);
    assert.equal(tries, 52, 'blocked right after the 51st failure');
    const s = await staff();
    assert.equal((await loginFrom('127.0.0.5', { id: s.auditor.id, password: s.auditor.password })).status, 429, 'for every account');
  });
});

// POST /auth/login (JSON) from a given loopback address.
function loginFrom(address, body) {
  const text = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = https.request(`${ORIGIN}/auth/login`, { method: 'POST', localAddress: address, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) } }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        let json;
        try { json = JSON.parse(Buffer.concat(chunks).toString('utf8')); } catch { json = undefined; }
        resolve({ status: res.statusCode, json });
      });
    });
    req.on('error', reject);
    req.end(text);
  });
}

describe('the identity endpoints under garbage (fuzz)', () => {
  it('600 malformed requests to /auth and /admin: never a 5xx, the server stays healthy', async () => {
    const rand = rng(Number(process.env.KASAMA_FUZZ_SEED ?? 4242));
    const pick = (a) => a[Math.floor(rand() * a.length)];
    const junk = () => {
      const n = Math.floor(rand() * 80);
      let s = '';
      for (let i = 0; i < n; i++) s += String.fromCharCode(pick([32 + Math.floor(rand() * 95), 0x3042, 0xff, 0x25, 0x26, 0x3d, 0x2b, 0]));
      return s;
    };
    // Header values: printable ASCII only (fetch refuses others before sending).
    const junkHeader = () => junk().replace(/[^\x20-\x7e]/g, 'x');
    const fields = ['grant_type', 'code', 'code_verifier', 'redirect_uri', 'client_id', 'client_assertion', 'client_assertion_type', 'refresh_token', 'scope', 'token', 'id', 'password', 'totp', 'next', 'csrf', 'decision', 'patient', 'response_type', 'aud', 'code_challenge', 'code_challenge_method', 'state'];
    const values = ['authorization_code', 'client_credentials', 'refresh_token', 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', 'a.b.c', 'eyJhbGciOiJFUzM4NCJ9.e30.AA', 'S256', 'plain', '', '%', '%zz', 'user/*.cruds', 'x'.repeat(3000)];
    const paths = ['/auth/token', '/auth/introspect', '/auth/revoke', '/auth/login', '/auth/authorize', '/auth/password', '/auth/totp', '/auth/totp/confirm', '/auth/logout', '/admin/me', '/admin/institutions', '/admin/institutions/x/approve', '/admin/accounts', '/admin/accounts/requests', '/admin/accounts/x/issue', '/admin/applications/citizen', '/admin/admin-rights', '/admin/admin-rights/abc/approve', '/admin/admin-rights/99999999999999999999/approve', '/admin/clients', '/admin/certificates/x', '/auth/nothing'];
    const statuses = {};
    for (let i = 0; i < 600; i++) {
      const path = pick(paths);
      const method = pick(['GET', 'POST', 'POST', 'POST', 'PUT', 'DELETE']);
      const headers = {};
      let body;
      const kind = rand();
      if (method !== 'GET' && kind < 0.45) {
        const form = new URLSearchParams();
        for (let k = Math.floor(rand() * 6); k > 0; k--) form.append(pick(fields), rand() < 0.5 ? pick(values) : junk());
        body = rand() < 0.2 ? junk() : form.toString();
        headers['content-type'] = 'application/x-www-form-urlencoded';
      } else if (method !== 'GET' && kind < 0.9) {
        const obj = {};
        for (let k = Math.floor(rand() * 6); k > 0; k--) obj[pick(fields.concat(['name', 'role', 'kind', 'institution', 'jwks', 'redirectUris', 'manager', 'loginId']))] = pick([junk(), 1, null, [], { keys: [{ kty: 'EC', crv: 'P-384', x: junk() }] }, ['https://x'], { name: junk() }]);
        body = rand() < 0.15 ? junk() : JSON.stringify(obj);
        headers['content-type'] = 'application/json';
      }
      if (rand() < 0.3) headers.authorization = pick(['Bearer ' + junkHeader(), 'Basic ' + Buffer.from(junk()).toString('base64'), 'Basic !!', junkHeader()]);
      if (rand() < 0.2) headers.cookie = `kasama_session=${junkHeader()}`;
      const q = rand() < 0.3 ? `?${pick(fields)}=${encodeURIComponent(junk())}&${pick(fields)}=${pick(values)}` : '';
      const res = await fetch(`${ORIGIN}${path}${q}`, { method, headers, body, redirect: 'manual' }).catch((e) => ({ status: `error ${e.message}` }));
      statuses[res.status] = (statuses[res.status] ?? 0) + 1;
      assert.ok(typeof res.status === 'number' && res.status < 500, `${method} ${path}${q} ${JSON.stringify(headers)} ${String(body).slice(0, 200)} -> ${res.status}`);
    }
    assert.equal((await fetch(`${ORIGIN}/health`)).status, 200);
    assert.ok(Object.keys(statuses).length >= 4, `a variety of answers: ${JSON.stringify(statuses)}`);
  });
});
