// R-33 (SM 3.2(6)(7), OM 7.4, OM 8): the monthly access-log review and the institution usage
// report, computed from the audit trail. A fresh institution makes a known mix of requests
// (reads of known residents, a denial, a write); its usage report counts exactly those, the
// monthly review lists it with the same figures, the chain verification result and the
// month's incidents; both render as an HTML page (Japanese, English beside) whose chart and
// tables a real browser (Debian's Chromium) draws.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';
import { request, uid, ORIGIN } from './lib/client.js';
import { staff, api, backendToken } from './lib/auth.js';
import * as lib from './lib/institutions.js';

const CHROMIUM = process.env.KASAMA_CHROMIUM ?? '/usr/bin/chromium';
const REDIRECT = 'https://localhost/reports-test-callback';
const FULL = lib.FULL;
let s, inst, manager, browser;
const residents = [];

const bearer = (token, method, path, opts = {}) =>
  request(method, path, { ...opts, headers: { authorization: `Bearer ${token}`, ...(opts.headers ?? {}) } });
// The month as the city counts it (Japan time).
const month = new Date(Date.now() + 9 * 3600_000).toISOString().slice(0, 7);

before(async () => {
  s = await staff();
  const app = await api('POST', '/admin/clients', { session: s.secretariat.session, body: { name: 'Reports test console', kind: 'public', redirectUris: [REDIRECT] } });
  assert.equal(app.status, 201, app.text);
  const city = (await lib.userToken(s.secretariat.session, 'openid fhirUser user/*.cruds', { clientId: app.json.clientId }, REDIRECT)).access_token;
  for (let i = 0; i < 3; i++) {
    const p = await bearer(city, 'POST', '/Patient', { body: { resourceType: 'Patient', name: [{ family: `Report-${i}` }] } });
    assert.equal(p.status, 201, p.text);
    residents.push(p.json.id);
  }
  inst = await lib.institution(s, `Report care <b>&${uid('i')}`, FULL);  // markup in a name must come out escaped
  manager = await lib.issue(s, inst.managerRequest);
  // The institution's traffic: 3 residents read (one twice), 1 denied, 1 write.
  const t = (await backendToken(inst.client)).access_token;
  for (const id of [residents[0], residents[1], residents[2], residents[0]]) assert.equal((await bearer(t, 'GET', `/Patient/${id}`)).status, 200);
  assert.equal((await bearer(t, 'GET', '/AuditEvent')).status, 403);
  const w = await bearer(t, 'POST', '/Observation', { body: { resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference: `Patient/${residents[1]}` } } });
  assert.equal(w.status, 201, w.text);
  browser = await chromium.launch({ executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
});

after(async () => { await browser?.close(); });

describe('R-33 reports from the audit trail', () => {
  it('the usage report of one institution counts exactly its requests', async () => {
    const r = await api('GET', `/admin/reports/usage?month=${month}&institution=${inst.id}`, { session: s.owner.session });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.institution, inst.id);
    // Its FHIR requests, exactly; its logins and token requests (/auth, /admin) count too.
    const inter = r.json.interactions;
    assert.equal(inter.read, 4, JSON.stringify(inter));
    assert.equal(inter.create, 1, JSON.stringify(inter));
    assert.equal(inter['search-type'], 1, JSON.stringify(inter));
    assert.equal(r.json.summary.requests, Object.values(inter).reduce((a, b) => a + b, 0), 'every record is counted once');
    assert.equal(r.json.summary.denied, 1);
    assert.equal(r.json.summary.writes, 1);
    assert.equal(r.json.summary.residents, 3, 'three distinct residents');
    assert.equal(r.json.terminals.length, 1);
    const terminalRow = r.json.users.find((u) => u.user === `client:${inst.client.clientId}`);
    assert.equal(terminalRow.requests, 6, 'its six FHIR requests');
    assert.equal(terminalRow.residents, 3);
    // The institution's manager sees their own, and nobody else's.
    const own = await api('GET', `/admin/reports/usage?month=${month}`, { session: manager.session });
    assert.equal(own.status, 200, own.text);
    assert.equal(own.json.institution, inst.id);
    assert.ok(own.json.summary.requests >= r.json.summary.requests, 'the same records, and the calls made since');
    const other = await api('GET', `/admin/reports/usage?month=${month}&institution=org-other`, { session: manager.session });
    assert.equal(other.status, 403, other.text);
  });

  it('the monthly review lists every institution, the chain verification and the incidents', async () => {
    // An incident this month: a practitioner of the institution refused again and again.
    const terminal = await lib.terminal(s, inst.id, REDIRECT);
    const pa = await lib.staffOf(s, manager.session, 'Report practitioner');
    const tok = (await lib.userToken(pa.session, 'openid fhirUser user/*.cruds', terminal, REDIRECT)).access_token;
    for (let i = 0; i < 4; i++) await bearer(tok, 'GET', '/AuditEvent');
    const r = await api('GET', `/admin/reports/monthly?month=${month}`, { session: s.auditor.session });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.month, month);
    assert.equal(r.json.chain.ok, true, JSON.stringify(r.json.chain));
    assert.ok(r.json.chain.checked > 0);
    const row = r.json.institutions.find((i) => i.institution === inst.id);
    assert.ok(row, 'the institution is listed');
    const usage = await api('GET', `/admin/reports/usage?month=${month}&institution=${inst.id}`, { session: s.auditor.session });
    assert.equal(usage.status, 200, usage.text);
    // The two reports agree (the usage report was asked after the review: at most its own
    // request and the auditor's have been added since, none of them the institution's).
    for (const k of ['requests', 'denied', 'residents', 'writes']) assert.equal(row[k], usage.json.summary[k], k);
    assert.ok(row.denied >= 1 + 4, 'the terminal\'s denial and the practitioner\'s four');
    assert.ok(r.json.summary.requests >= row.requests);
    assert.ok(r.json.incidents.some((i) => i.rule === 'repeated-denials' && i.account === pa.id), 'the incident of the month');
    const days = r.json.days.map((d) => Number(d.day));
    const today = Number(new Date(Date.now() + 9 * 3600_000).toISOString().slice(8, 10));
    assert.ok(days.includes(today), 'today has its bar');
    // Who may see it: the city's auditors and administrators, not institution staff.
    assert.equal((await api('GET', `/admin/reports/monthly?month=${month}`, { session: manager.session })).status, 403);
    assert.equal((await api('GET', '/admin/reports/monthly?month=2026-13', { session: s.auditor.session })).json.field, 'month');
    // A month without records is empty, not an error.
    const empty = await api('GET', '/admin/reports/monthly?month=2001-01', { session: s.auditor.session });
    assert.equal(empty.status, 200, empty.text);
    assert.equal(empty.json.summary.requests, 0);
  });

  it('renders as a page an auditor can read: Japanese with English, chart and tables drawn by Chromium', async () => {
    const url = `${ORIGIN}/admin/reports/monthly?month=${month}&format=html`;
    const raw = await fetch(url, { headers: { authorization: `Bearer ${s.auditor.session}` } });
    assert.equal(raw.status, 200);
    assert.match(raw.headers.get('content-type'), /^text\/html/);
    const html = await raw.text();
    assert.match(html, /月次アクセスログ点検報告 \/ Monthly access-log review/);
    assert.ok(!html.includes('<b>&'), 'names from the records are escaped');
    const context = await browser.newContext({ ignoreHTTPSErrors: true, locale: 'ja-JP', extraHTTPHeaders: { authorization: `Bearer ${s.auditor.session}` } });
    const page = await context.newPage();
    const res = await page.goto(url);
    assert.equal(res.status(), 200);
    assert.equal(await page.textContent('#chain'), '改ざんは検出されませんでした / the chain holds');
    const bars = await page.$$eval('svg.chart rect.bar', (rs) => rs.map((r) => r.getBoundingClientRect().height));
    assert.ok(bars.length >= 1 && bars.some((h) => h > 0), `bars drawn: ${bars}`);
    const instRow = await page.$$eval('table tr', (trs, id) => trs.map((t) => t.innerText).find((t) => t.includes(id)), inst.id);
    assert.ok(instRow, 'the institution has a row');
    const shot = await page.screenshot({ fullPage: true });
    assert.ok(shot.length > 10_000, 'a page was drawn');
    await context.close();
    const usage = await fetch(`${ORIGIN}/admin/reports/usage?month=${month}&institution=${inst.id}&format=html`, { headers: { authorization: `Bearer ${s.owner.session}` } });
    assert.match(await usage.text(), /利用状況報告 \/ Institution usage report/);
  });
});
