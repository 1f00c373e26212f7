// R-32 (SM 3.2(5)), R-42: abnormal access is detected and cut off. On a server whose rules
// have small thresholds (anomaly-rules.json): a terminal that reads residents in bulk is
// suspended at the request that crosses the threshold, which itself gets nothing; so is one
// that pages through searches in bulk, and a user who is refused again and again. Failed
// logins and off-hours access raise incidents without suspending. Incidents are shown to the
// sysadmin and the ops-manager and closed with cause and measures; reinstatement is an
// audited /admin act, after which the subject starts afresh.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { request, uid } from './lib/client.js';
import { staff, api, backendToken, loginRequest } from './lib/auth.js';
import * as lib from './lib/institutions.js';

const REDIRECT = 'https://localhost/anomaly-test-callback';
const FULL = lib.FULL;
let s, inst, cityToken, auditorToken, terminal, manager;
const patients = [];
const practitioners = [];

const bearer = (token, method, path, opts = {}) =>
  request(method, path, { ...opts, headers: { authorization: `Bearer ${token}`, ...(opts.headers ?? {}) } });

async function incidents(rule) {
  const r = await api('GET', '/admin/incidents?state=open', { session: s.sysadmin.session });
  assert.equal(r.status, 200, r.text);
  return r.json.filter((i) => !rule || i.rule === rule);
}

before(async () => {
  s = await staff();
  const app = await api('POST', '/admin/clients', { session: s.secretariat.session, body: { name: 'Anomaly test console', kind: 'public', redirectUris: [REDIRECT] } });
  assert.equal(app.status, 201, app.text);
  // The city writes the data (its roles are not under the residents-per-hour rule here).
  cityToken = (await lib.userToken(s.secretariat.session, 'openid fhirUser user/*.cruds', { clientId: app.json.clientId }, REDIRECT)).access_token;
  auditorToken = (await lib.userToken(s.auditor.session, 'openid fhirUser user/AuditEvent.rs', { clientId: app.json.clientId }, REDIRECT)).access_token;
  for (let i = 0; i < 8; i++) {
    const p = await bearer(cityToken, 'POST', '/Patient', { body: { resourceType: 'Patient', name: [{ family: `Anomaly-${i}` }] } });
    assert.equal(p.status, 201, p.text);
    patients.push(p.json.id);
    const pr = await bearer(cityToken, 'POST', '/Practitioner', { body: { resourceType: 'Practitioner', name: [{ family: `Pager-${i}` }] } });
    assert.equal(pr.status, 201, pr.text);
    practitioners.push(pr.json.id);
  }
  inst = await lib.institution(s, `Anomaly care ${uid('i')}`, FULL);
  terminal = await lib.terminal(s, inst.id, REDIRECT);
  manager = await lib.issue(s, inst.managerRequest);
});

describe('R-32 R-42 abnormal access is cut off, incidents raised and closed', () => {
  it('a terminal reading residents in bulk is suspended at the request that crosses the threshold', async () => {
    let token = (await backendToken(inst.client)).access_token;
    for (let i = 0; i < 5; i++) {
      const r = await bearer(token, 'GET', `/Patient/${patients[i]}`);
      assert.equal(r.status, 200, `resident ${i + 1} of the threshold (5): ${r.text}`);
    }
    const sixth = await bearer(token, 'GET', `/Patient/${patients[5]}`);
    assert.equal(sixth.status, 403, sixth.text);
    assert.match(sixth.json.issue[0].diagnostics, /abnormal access was detected \(incident \d+\)/);
    assert.ok(!sixth.text.includes('Anomaly-5'), 'the request that crossed the threshold gets nothing');
    const seventh = await bearer(token, 'GET', `/Patient/${patients[0]}`);
    assert.equal(seventh.status, 401, 'its tokens are revoked at once');
    // A new token is refused too: the terminal is suspended.
    await assert.rejects(backendToken(inst.client), /token: 4\d\d/);

    const inc = (await incidents('residents-per-hour')).find((i) => i.client === inst.client.clientId);
    assert.ok(inc, 'an incident for the terminal');
    assert.equal(inc.level, 5, 'SM 4.3 level 5: personal data at risk');
    assert.equal(inc.action, 'suspended');
    assert.equal(inc.institution, inst.id);
    assert.match(inc.detail, /6 distinct residents in 60 minutes \(threshold 5\)/);
    // The ops-manager sees it too; a practitioner does not.
    assert.equal((await api('GET', '/admin/incidents', { session: s['ops-manager'].session })).status, 200);

    // Reinstatement: a reason is required; then the terminal starts afresh.
    const noReason = await api('POST', `/admin/clients/${inst.client.clientId}/reinstate`, { session: s['ops-manager'].session, body: {} });
    assert.equal(noReason.status, 400, noReason.text);
    const rid = uid('reinstate');
    const back = await api('POST', `/admin/clients/${inst.client.clientId}/reinstate`, { session: s['ops-manager'].session, body: { reason: '調査の結果、正規の一括処理と確認 / a legitimate batch job' }, headers: { 'x-request-id': rid } });
    assert.equal(back.status, 200, back.text);
    assert.equal(back.json.state, 'active');
    token = (await backendToken(inst.client)).access_token;
    assert.equal((await bearer(token, 'GET', `/Patient/${patients[6]}`)).status, 200, 'reinstated: its windows start afresh');
    // Reinstatement is an audited act.
    const ev = await bearer(auditorToken, 'GET', `/AuditEvent?request-id=${rid}`);
    assert.equal(ev.status, 200, ev.text);
    assert.equal(ev.json.entry?.length, 1, ev.text);
    assert.equal(ev.json.entry[0].resource.agent.find((a) => a.requestor)?.who?.identifier?.value, s['ops-manager'].id);

    // Closing: cause and measures are required (SM 4.8).
    const noMeasures = await api('POST', `/admin/incidents/${inc.id}/close`, { session: s.sysadmin.session, body: { cause: 'batch job' } });
    assert.equal(noMeasures.status, 400, noMeasures.text);
    assert.equal(noMeasures.json.field, 'measures');
    const closed = await api('POST', `/admin/incidents/${inc.id}/close`, { session: s.sysadmin.session, body: { cause: '夜間一括処理 / nightly batch', measures: '閾値の見直し / threshold reviewed' } });
    assert.equal(closed.status, 200, closed.text);
    assert.equal(closed.json.state, 'closed');
    assert.ok(!(await incidents()).some((i) => i.id === inc.id), 'no longer open');
  });

  it('bulk paging through search results suspends the terminal', async () => {
    const other = await lib.institution(s, `Anomaly pager ${uid('i')}`, FULL);
    const token = (await backendToken(other.client)).access_token;
    let res = await bearer(token, 'GET', `/Practitioner?_id=${practitioners.join(',')}&_count=1`);
    assert.equal(res.status, 200, res.text);
    const statuses = [];
    for (let i = 0; i < 6; i++) {
      const next = res.json?.link?.find((l) => l.relation === 'next');
      if (!next) break;
      res = await bearer(token, 'GET', next.url);
      statuses.push(res.status);
    }
    assert.deepEqual(statuses.slice(0, 5), [200, 200, 200, 200, 403], `pages: ${statuses}`);
    const inc = (await incidents('bulk-paging')).find((i) => i.client === other.client.clientId);
    assert.ok(inc);
    assert.equal(inc.action, 'suspended');
  });

  it('a user refused again and again is suspended, and reinstated by the ops-manager', async () => {
    const pa = await lib.staffOf(s, manager.session, 'Anomaly practitioner');
    const token = (await lib.userToken(pa.session, 'openid fhirUser user/*.cruds', terminal, REDIRECT)).access_token;
    for (let i = 0; i < 4; i++) {
      const r = await bearer(token, 'GET', '/AuditEvent');
      assert.equal(r.status, 403, r.text);
    }
    const after = await bearer(token, 'GET', `/Patient/${patients[0]}`);
    assert.equal(after.status, 401, 'suspended after the 4th denial (threshold 3)');
    const acct = await api('GET', `/admin/accounts/${pa.id}`, { session: s['ops-manager'].session });
    assert.equal(acct.json.state, 'suspended');
    const login = await loginRequest({ id: pa.id, password: pa.password });
    assert.equal(login.status, 401, 'a suspended account cannot log in');
    const inc = (await incidents('repeated-denials')).find((i) => i.account === pa.id);
    assert.ok(inc);
    assert.equal(inc.level, 1);
    const back = await api('POST', `/admin/accounts/${pa.id}/reinstate`, { session: s['ops-manager'].session, body: { reason: '本人確認済み / confirmed with the user' } });
    assert.equal(back.status, 200, back.text);
    assert.equal(back.json.state, 'active');
    const again = await loginRequest({ id: pa.id, password: pa.password });
    assert.equal(again.status, 200, again.text);
    // Only the ops-manager and the sysadmin reinstate.
    const bySecretariat = await api('POST', `/admin/accounts/${pa.id}/reinstate`, { session: s.secretariat.session, body: { reason: 'x' } });
    assert.equal(bySecretariat.status, 403, bySecretariat.text);
  });

  it('repeated login failures and off-hours access raise incidents without suspending', async () => {
    const pa = await lib.staffOf(s, manager.session, 'Anomaly login');
    for (let i = 0; i < 4; i++) {
      const r = await loginRequest({ id: pa.id, password: `Wrong-password-${i}!x` });
      assert.equal(r.status, 401, r.text);
    }
    const inc = (await incidents('login-failures')).find((i) => i.account === pa.id);
    assert.ok(inc, 'an incident for the ID tried');
    assert.equal(inc.action, 'recorded');
    const ok = await loginRequest({ id: pa.id, password: pa.password });
    assert.equal(ok.status, 200, 'the account itself is not locked out by others\' guesses');

    const me = await api('GET', '/admin/me', { session: manager.session });
    assert.equal(me.status, 200, me.text);
    const off = (await incidents('off-hours')).find((i) => i.account === manager.id);
    assert.ok(off, 'an off-hours incident for the org-manager');
    assert.equal(off.action, 'recorded');
    assert.equal((await api('GET', '/admin/me', { session: manager.session })).status, 200, 'not suspended');
    // Incidents are for the city's administrators, not for institution staff.
    assert.equal((await api('GET', '/admin/incidents', { session: manager.session })).status, 403);
  });
});
