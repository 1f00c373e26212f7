// R-03, R-20, R-21, R-22: the leak matrix. Institutions with different access ranges, a
// practitioner with a narrower range of their own, residents who opted out (of every
// institution, of one, in the future, withdrawn) — and every data path a resource can leave
// by: read, vread, search (by id, token, POST _search, system, compartment, _summary=count,
// paging), _include and _revinclude, chains and _has into hidden resources, history at
// every level, $everything, batch entries, and the writes (update, patch, delete,
// conditional, create about a hidden resident). Each case asserts that a resource the caller
// may not see leaves no trace — not its id, its identifier, nor a count — and, as control,
// that what the caller may see is there (a server that hid everything would fail).
// Token-level denials (SMART scope, deregistered institution, revoked user) answer 401/403
// on every path without a trace either.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { request, uid, BASE } from './lib/client.js';
import { staff, api, backendToken, postForm, TOKEN_ENDPOINT } from './lib/auth.js';
import * as lib from './lib/institutions.js';
import { categoryOf } from './lib/assertions.js';

const REDIRECT = 'https://localhost/access-test-callback';
const SYS = `urn:kasama-e2e:access:${uid('s')}`;
const TAG = { system: 'urn:kasama-e2e:access-tag', code: uid('tag') };
const PATIENT_KEYS = ['open', 'all', 'onlyA', 'future', 'withdrawn'];
const TYPES = ['Patient', 'Observation', 'Condition', 'Coverage'];
const CATEGORY = { Patient: 'demographics', Observation: 'checkup', Condition: 'medical', Coverage: 'care' };
const FULL = lib.FULL;

let s;               // city staff sessions
const inst = {};     // A, B, D: { id, client }
const tok = {};      // caller name -> bearer token
const data = {};     // `${key}:${type}` -> { type, id, ident, patient }
let PR, ORG, BRIDGE; // directory anchors and the Observation that points at every resource
let since;           // before the data was written: bounds history listings
const optOuts = {};

const as = (caller, method, path, opts = {}) =>
  request(method, path, { ...opts, headers: { authorization: `Bearer ${tok[caller]}`, ...(opts.headers ?? {}) } });
// The control: the secretariat (the city sees every category and is not held by opt-outs,
// which stop data going to institutions), through a public terminal of the city.
const asServer = (method, path, opts = {}) => as('city', method, path, opts);

const userToken = (session, scope, terminalClient) => lib.userToken(session, scope, terminalClient, REDIRECT);
const institution = (name, categories) => lib.institution(s, name, categories);
const issue = (requestId, fhirUser) => lib.issue(s, requestId, fhirUser);
const staffOf = (managerSession, name) => lib.staffOf(s, managerSession, name);

async function create(resource) {
  const r = await asServer('POST', `/${resource.resourceType}`, { body: { ...resource, meta: { tag: [TAG] } } });
  assert.equal(r.status, 201, r.text);
  return r.json;
}

// What each caller may see: its range (∩ the user's), less the residents hidden from it.
const READS = {
  A: new Set(['demographics', 'care', 'checkup', 'medical']),
  B: new Set(['demographics', 'care']),
  PA: new Set(['demographics', 'checkup']), // A's practitioner, narrowed by the secretariat
};
const INSTITUTION_OF = { A: 'A', B: 'B', PA: 'A' };
function hiddenByOptOut(caller, key) {
  return key === 'all' || (key === 'onlyA' && INSTITUTION_OF[caller] === 'A');
}
function visible(caller, key, type) {
  return !hiddenByOptOut(caller, key) && READS[caller].has(CATEGORY[type]);
}

// A response leaks a resource when its id or its identifier value appears in what it
// returns: a Bundle's entries (resources and fullUrls; the bridge, whose own references name
// everything, is left out) and total, or any other body. Links and error diagnostics echo
// the request itself and are compared with the answer for an id that never existed instead.
function assertNoTrace(res, r, what) {
  let text = res.text;
  if (res.json?.resourceType === 'Bundle') {
    text = JSON.stringify((res.json.entry ?? [])
      .filter((e) => e.resource?.id !== BRIDGE?.id && e.resource?.resourceType !== 'OperationOutcome')
      .map((e) => [e.fullUrl, e.resource, e.response?.location]));
  } else if (res.json?.resourceType === 'OperationOutcome') {
    return;
  }
  assert.ok(!text.includes(r.id), `${what}: the hidden ${r.type}/${r.id} appears in the answer: ${text.slice(0, 300)}`);
  assert.ok(!text.includes(r.ident), `${what}: the hidden ${r.type}'s identifier appears in the answer`);
}

// The answer for a hidden resource must be the answer for one that does not exist.
async function assertLikeNothing(res, path, caller, r, what) {
  const ghost = { ...r, id: crypto.randomUUID(), ident: uid('ghost') };
  const other = await path.run(caller, ghost);
  assert.equal(res.status, other.status, `${what}: status ${res.status} where nothing is ${other.status}`);
  const diag = (x, id) => (x.json?.issue ?? []).map((i) => `${i.code} ${(i.diagnostics ?? '').replaceAll(id, 'ID')}`).join('; ');
  assert.equal(diag(res, r.id), diag(other, ghost.id), `${what}: the outcome differs from that for an unknown id`);
}
function ids(bundle) {
  return (bundle?.entry ?? []).map((e) => e.resource?.id ?? e.response?.location);
}

// The data paths. Each: (caller, r) -> { visible: expected visibility, check(res) }.
// check is called with the caller's answer; `seen` says whether the resource was found.
const REFPARAM = { Observation: 'subject', Condition: 'subject', Coverage: 'beneficiary' };
const ANCHOR_PARAM = { Patient: ['Practitioner', 'general-practitioner'], Observation: ['Practitioner', 'performer'], Condition: ['Practitioner', 'asserter'], Coverage: ['Organization', 'payor'] };
const anchorOf = (type) => (ANCHOR_PARAM[type][0] === 'Practitioner' ? PR : ORG);

const PATHS = {
  read: { run: (c, r) => as(c, 'GET', `/${r.type}/${r.id}`), seen: (res, r) => res.status === 200 && res.json.id === r.id, hiddenStatus: 404 },
  vread: { run: (c, r) => as(c, 'GET', `/${r.type}/${r.id}/_history/1`), seen: (res, r) => res.status === 200 && res.json.id === r.id, hiddenStatus: 404 },
  'search _id': { run: (c, r) => as(c, 'GET', `/${r.type}?_id=${r.id}`), seen: (res, r) => ids(res.json).includes(r.id), total: true },
  'search token': { run: (c, r) => as(c, 'GET', `/${r.type}?identifier=${encodeURIComponent(`${SYS}|${r.ident}`)}`), seen: (res, r) => ids(res.json).includes(r.id), total: true },
  '_summary=count': {
    run: (c, r) => as(c, 'GET', `/${r.type}?identifier=${encodeURIComponent(`${SYS}|${r.ident}`)}&_summary=count`),
    seen: (res) => res.json?.total === 1, total: true,
  },
  '_total=accurate': {
    run: (c, r) => as(c, 'GET', `/${r.type}?identifier=${encodeURIComponent(`${SYS}|${r.ident}`)}&_total=accurate&_count=0`),
    seen: (res) => res.json?.total === 1, total: true,
  },
  'POST _search': {
    run: (c, r) => as(c, 'POST', `/${r.type}/_search`, { body: `_id=${r.id}`, headers: { 'content-type': 'application/x-www-form-urlencoded' } }),
    seen: (res, r) => ids(res.json).includes(r.id), total: true,
  },
  'system search': { run: (c, r) => as(c, 'GET', `?_type=${r.type}&_id=${r.id}`), seen: (res, r) => ids(res.json).includes(r.id), total: true },
  compartment: {
    run: (c, r) => as(c, 'GET', r.type === 'Patient' ? `/Patient/${r.id}/Condition` : `/Patient/${r.patient}/${r.type}?_id=${r.id}`),
    // A Patient's own compartment search answers for the Patient's Condition.
    seen: (res, r) => (r.type === 'Patient' ? res.status === 200 && ids(res.json).includes(data[`${r.key}:Condition`].id) : ids(res.json).includes(r.id)),
    expect: (c, r) => (r.type === 'Patient' ? visible(c, r.key, 'Condition') : visible(c, r.key, r.type)),
    noTraceOf: (r) => (r.type === 'Patient' ? data[`${r.key}:Condition`] : r),
  },
  'history instance': {
    run: (c, r) => as(c, 'GET', `/${r.type}/${r.id}/_history`),
    seen: (res, r) => res.status === 200 && ids(res.json).includes(r.id), hiddenStatus: 404,
  },
  'history type': {
    run: (c, r) => as(c, 'GET', `/${r.type}/_history?_since=${encodeURIComponent(since)}&_count=1000`),
    seen: (res, r) => ids(res.json).includes(r.id),
  },
  'history system': {
    run: (c) => as(c, 'GET', `/_history?_since=${encodeURIComponent(since)}&_count=1000`),
    seen: (res, r) => ids(res.json).includes(r.id),
  },
  '_revinclude from a directory anchor': {
    run: (c, r) => as(c, 'GET', `/${ANCHOR_PARAM[r.type][0]}?_id=${anchorOf(r.type).id}&_revinclude=${r.type}:${ANCHOR_PARAM[r.type][1]}`),
    seen: (res, r) => ids(res.json).includes(r.id),
  },
  '_revinclude=*': {
    run: (c, r) => as(c, 'GET', `/${ANCHOR_PARAM[r.type][0]}?_id=${anchorOf(r.type).id}&_revinclude=*`),
    seen: (res, r) => ids(res.json).includes(r.id),
  },
  '_include from a visible resource': {
    run: (c) => as(c, 'GET', `/Observation?_id=${BRIDGE.id}&_include=Observation:focus`),
    seen: (res, r) => ids(res.json).includes(r.id),
    // Through the bridge (a checkup Observation of the open resident) only.
    expect: (c, r) => visible(c, 'open', 'Observation') && visible(c, r.key, r.type),
  },
  'chain into it': {
    run: (c, r) => as(c, 'GET', `/Observation?_id=${BRIDGE.id}&focus:${r.type}.identifier=${encodeURIComponent(`${SYS}|${r.ident}`)}`),
    seen: (res) => ids(res.json).includes(BRIDGE.id),
    expect: (c, r) => visible(c, 'open', 'Observation') && visible(c, r.key, r.type),
  },
  '_has on it': {
    run: (c, r) => as(c, 'GET', `/${ANCHOR_PARAM[r.type][0]}?_id=${anchorOf(r.type).id}&_has:${r.type}:${ANCHOR_PARAM[r.type][1]}:identifier=${encodeURIComponent(`${SYS}|${r.ident}`)}`),
    seen: (res, r) => ids(res.json).includes(anchorOf(r.type).id),
  },
  $everything: {
    run: (c, r) => as(c, 'GET', `/Patient/${r.patient}/$everything?_count=100`),
    seen: (res, r) => res.status === 200 && ids(res.json).includes(r.id),
  },
  'batch entry': {
    run: (c, r) => as(c, 'POST', '', { body: { resourceType: 'Bundle', type: 'batch', entry: [{ request: { method: 'GET', url: `${r.type}/${r.id}` } }] } }),
    seen: (res, r) => res.status === 200 && res.json.entry?.[0]?.response?.status?.startsWith('200') && res.json.entry[0].resource?.id === r.id,
  },
};

before(async () => {
  s = await staff();
  const app = await api('POST', '/admin/clients', { session: s.secretariat.session, body: { name: 'Access test console', kind: 'public', redirectUris: [REDIRECT] } });
  assert.equal(app.status, 201, app.text);
  tok.city = (await userToken(s.secretariat.session, 'openid fhirUser user/*.cruds', { clientId: app.json.clientId })).access_token;
  inst.A = await institution(`Care A ${uid('i')}`, { demographics: 'read', care: 'read-write', checkup: 'read', medical: 'read' });
  const terminal = await lib.terminal(s, inst.A.id, REDIRECT);
  inst.B = await institution(`Care B ${uid('i')}`, { demographics: 'read', care: 'read' });
  inst.D = await institution(`Care D ${uid('i')}`, FULL);
  tok.A = (await backendToken(inst.A.client)).access_token;
  tok.B = (await backendToken(inst.B.client)).access_token;
  tok.D = (await backendToken(inst.D.client)).access_token;
  tok.Anarrow = (await backendToken(inst.A.client, 'system/Patient.rs system/Observation.rs')).access_token;

  // A's manager, two practitioners: one with a narrower range of their own (OM 4.2(2)), one
  // to be deregistered.
  const manager = await issue(inst.A.managerRequest);
  const pa = await staffOf(manager.session, 'Access test practitioner');
  const narrowed = await api('POST', `/admin/accounts/${pa.id}/access`, { session: s.secretariat.session, body: { categories: { demographics: 'read', checkup: 'read' } } });
  assert.equal(narrowed.status, 200, narrowed.text);
  assert.deepEqual(narrowed.json.details.access, { demographics: 'read', checkup: 'read' });
  tok.PA = (await userToken(pa.session, 'openid fhirUser user/*.cruds', terminal)).access_token;
  const leaver = await staffOf(manager.session, 'Access test leaver');
  tok.leaver = (await userToken(leaver.session, 'openid fhirUser user/*.cruds', terminal)).access_token;
  // Before the opt-outs: the tokens in use when they are recorded must see them at once.

  since = new Date(Date.now() - 1000).toISOString();
  PR = await create({ resourceType: 'Practitioner', identifier: [{ system: SYS, value: uid('pr') }], name: [{ family: 'Anchor' }] });
  ORG = await create({ resourceType: 'Organization', identifier: [{ system: SYS, value: uid('org') }], name: 'Anchor organization' });
  for (const key of PATIENT_KEYS) {
    const pIdent = uid(`pat-${key}`);
    const p = await create({ resourceType: 'Patient', identifier: [{ system: SYS, value: pIdent }], name: [{ family: `Access-${key}` }],
      generalPractitioner: [{ reference: `Practitioner/${PR.id}` }], managingOrganization: { reference: `Organization/${ORG.id}` } });
    data[`${key}:Patient`] = { key, type: 'Patient', id: p.id, ident: pIdent, patient: p.id };
    const subject = { reference: `Patient/${p.id}` };
    const oIdent = uid(`obs-${key}`);
    const o = await create({ resourceType: 'Observation', identifier: [{ system: SYS, value: oIdent }], status: 'final',
      code: { coding: [{ system: 'http://loinc.org', code: '4548-4' }] }, subject, performer: [{ reference: `Practitioner/${PR.id}` }],
      valueQuantity: { value: 5.6, unit: '%', system: 'http://unitsofmeasure.org', code: '%' } });
    data[`${key}:Observation`] = { key, type: 'Observation', id: o.id, ident: oIdent, patient: p.id };
    const cIdent = uid(`cond-${key}`);
    const c = await create({ resourceType: 'Condition', identifier: [{ system: SYS, value: cIdent }], subject,
      code: { coding: [{ system: SYS, code: cIdent }] }, asserter: { reference: `Practitioner/${PR.id}` } });
    data[`${key}:Condition`] = { key, type: 'Condition', id: c.id, ident: cIdent, patient: p.id };
    const vIdent = uid(`cov-${key}`);
    const v = await create({ resourceType: 'Coverage', identifier: [{ system: SYS, value: vIdent }], status: 'active', beneficiary: subject,
      payor: [{ reference: `Organization/${ORG.id}` }] });
    data[`${key}:Coverage`] = { key, type: 'Coverage', id: v.id, ident: vIdent, patient: p.id };
  }
  BRIDGE = await create({ resourceType: 'Observation', status: 'final', code: { text: 'bridge' }, subject: { reference: `Patient/${data['open:Patient'].id}` },
    focus: Object.values(data).map((r) => ({ reference: `${r.type}/${r.id}` })) });

  // Before the opt-out the institutions see the resident.
  assert.equal((await as('A', 'GET', `/Patient/${data['all:Patient'].id}`)).status, 200);
  const record = async (body) => {
    const r = await api('POST', '/admin/opt-outs', { session: s.secretariat.session, body });
    assert.equal(r.status, 201, r.text);
    return r.json;
  };
  optOuts.all = await record({ patient: data['all:Patient'].id, reason: '本人の申出 / at the resident\'s request' });
  optOuts.onlyA = await record({ patient: data['onlyA:Patient'].id, institutions: [inst.A.id] });
  optOuts.future = await record({ patient: data['future:Patient'].id, start: '2099-01-01' });
  optOuts.withdrawn = await record({ patient: data['withdrawn:Patient'].id });
  const w = await api('POST', `/admin/opt-outs/${optOuts.withdrawn.id}/withdraw`, { session: s.secretariat.session, body: {} });
  assert.equal(w.status, 200, w.text);
  assert.equal(w.json.status, 'inactive');

  // The token-level denials: a deregistered institution, a deregistered staff member.
  const dereg = await api('POST', `/admin/institutions/${inst.D.id}/deregister`, { session: s.owner.session, body: { reason: 'test' } });
  assert.equal(dereg.status, 200, dereg.text);
  const gone = await api('POST', `/admin/accounts/${leaver.id}/deregister`, { session: s['ops-manager'].session, body: { reason: 'left' } });
  assert.equal(gone.status, 200, gone.text);
});

describe('R-03 information categories', () => {
  it('every resource is labelled with its category in meta.security, whatever the client sent', async () => {
    for (const r of Object.values(data)) {
      const res = await asServer('GET', `/${r.type}/${r.id}`);
      assert.equal(categoryOf(res.json), CATEGORY[r.type], `${r.type}/${r.id}`);
    }
    // A label of the server's system in the request is replaced by the rules' answer.
    const forged = await asServer('POST', '/Observation', { body: { resourceType: 'Observation', status: 'final', code: { text: 'x' },
      meta: { security: [{ system: 'http://kasama-fhir.example/fhir/CodeSystem/information-category', code: 'directory' }] } } });
    assert.equal(forged.status, 201, forged.text);
    assert.equal(categoryOf(forged.json), 'checkup');
    assert.equal(forged.json.meta.security.length, 1);
    // and the label is searchable (_security)
    const found = await asServer('GET', `/Observation?_id=${forged.json.id}&_security=${encodeURIComponent('http://kasama-fhir.example/fhir/CodeSystem/information-category|checkup')}`);
    assert.deepEqual(ids(found.json), [forged.json.id]);
  });
});

describe('R-20 R-21 leak matrix: every data path × every reason', () => {
  for (const caller of ['A', 'B', 'PA']) {
    for (const [name, path] of Object.entries(PATHS)) {
      it(`${caller}: ${name}`, async () => {
        let hidden = 0, shown = 0;
        for (const key of PATIENT_KEYS) {
          for (const type of TYPES) {
            const r = data[`${key}:${type}`];
            const expect = path.expect ? path.expect(caller, r) : visible(caller, key, type);
            const res = await path.run(caller, r);
            const what = `${caller} ${name} ${key}:${type}`;
            assert.ok(res.status < 500, `${what}: ${res.status} ${res.text.slice(0, 200)}`);
            if (expect) {
              assert.ok(path.seen(res, r), `${what}: should be visible: ${res.status} ${res.text.slice(0, 300)}`);
              shown++;
            } else {
              assert.ok(!path.seen(res, r), `${what}: should be hidden`);
              assertNoTrace(res, path.noTraceOf ? path.noTraceOf(r) : r, what);
              if (path.hiddenStatus) {
                assert.equal(res.status, path.hiddenStatus, `${what}: ${res.text.slice(0, 200)}`);
                await assertLikeNothing(res, path, caller, r, what);
              }
              if (path.total && res.status === 200) assert.equal(res.json.total ?? 0, 0, `${what}: total`);
              hidden++;
            }
          }
        }
        // Both sides of the matrix are exercised (B cannot see the bridge those two paths start from).
        assert.ok(hidden > 0, `${caller} ${name}: nothing hidden`);
        if (!(caller === 'B' && path.expect && name !== 'compartment')) assert.ok(shown > 0, `${caller} ${name}: nothing shown`);
      });
    }
  }

  it('paging through a search returns exactly what the caller may see, and the total agrees', async () => {
    for (const caller of ['A', 'B', 'PA']) {
      for (const type of TYPES) {
        const want = PATIENT_KEYS.filter((k) => visible(caller, k, type)).map((k) => data[`${k}:${type}`].id).sort();
        let res = await as(caller, 'GET', `/${type}?_tag=${encodeURIComponent(`${TAG.system}|${TAG.code}`)}&_count=2&_total=accurate`);
        assert.equal(res.status, 200, res.text);
        const total = res.json.total;
        const got = [];
        for (let pages = 0; pages < 20; pages++) {
          got.push(...ids(res.json).filter((id) => Object.values(data).some((r) => r.id === id)));
          const next = res.json.link?.find((l) => l.relation === 'next');
          if (!next) break;
          res = await as(caller, 'GET', next.url);
          assert.equal(res.status, 200, res.text);
        }
        assert.deepEqual(got.sort(), want, `${caller} ${type}: the pages`);
        // The tag also marks the anchors and the bridge (their own types only).
        const extra = type === 'Observation' && READS[caller].has('checkup') ? 1 : 0;
        assert.equal(total, want.length + extra, `${caller} ${type}: total`);
      }
    }
  });

  it('writes over a hidden resource fail as for one that is not there, and change nothing', async () => {
    for (const caller of ['A', 'B', 'PA']) {
      for (const key of PATIENT_KEYS) {
        for (const type of TYPES) {
          if (visible(caller, key, type)) continue;
          const r = data[`${key}:${type}`];
          const what = `${caller} ${key}:${type}`;
          const stored = (await asServer('GET', `/${r.type}/${r.id}`)).json;
          const put = await as(caller, 'PUT', `/${r.type}/${r.id}`, { body: stored, headers: { 'if-match': 'W/"9"' } });
          // 404 before If-Match is looked at: a version conflict would tell the version.
          assert.equal(put.status, 404, `${what} PUT: ${put.text}`);
          assert.doesNotMatch(put.text, /version/, `${what} PUT`);
          const patch = await as(caller, 'PATCH', `/${r.type}/${r.id}`, { body: JSON.stringify([{ op: 'test', path: '/id', value: r.id }]), headers: { 'content-type': 'application/json-patch+json' } });
          assert.equal(patch.status, 404, `${what} PATCH: ${patch.text}`);
          const del = await as(caller, 'DELETE', `/${r.type}/${r.id}`);
          assert.equal(del.status, 204, `${what} DELETE: ${del.text}`);
          const cdel = await as(caller, 'DELETE', `/${r.type}?identifier=${encodeURIComponent(`${SYS}|${r.ident}`)}`);
          assert.equal(cdel.status, 204, `${what} conditional DELETE: ${cdel.text}`);
          const cpatch = await as(caller, 'PATCH', `/${r.type}?identifier=${encodeURIComponent(`${SYS}|${r.ident}`)}`, { body: '[]', headers: { 'content-type': 'application/json-patch+json' } });
          assert.equal(cpatch.status, 404, `${what} conditional PATCH: ${cpatch.text}`);
          assertNoTrace(cpatch, r, `${what} conditional PATCH`);
          const after = await asServer('GET', `/${r.type}/${r.id}`);
          assert.equal(after.status, 200, `${what}: still there`);
          assert.equal(after.json.meta.versionId, '1', `${what}: unchanged`);
        }
      }
    }
  });

  it('a transaction resolves conditional references and If-None-Exist among what the caller may see only', async () => {
    const hidden = data['all:Patient'];
    const ghostIdent = uid('ghost');
    const tx = (ident) => ({ resourceType: 'Bundle', type: 'transaction', entry: [
      { fullUrl: 'urn:uuid:' + crypto.randomUUID(), request: { method: 'POST', url: 'Coverage' },
        resource: { resourceType: 'Coverage', status: 'active', beneficiary: { reference: `Patient?identifier=${encodeURIComponent(`${SYS}|${ident}`)}` }, payor: [{ reference: `Organization/${ORG.id}` }] } }] });
    const res = await as('A', 'POST', '', { body: tx(hidden.ident) });
    const nothing = await as('A', 'POST', '', { body: tx(ghostIdent) });
    assert.equal(res.status, nothing.status, `${res.text} / ${nothing.text}`);
    assert.ok(res.status >= 400, res.text);
    assertNoTrace(res, hidden, 'transaction conditional reference');
    assert.deepEqual(JSON.parse(res.text.replaceAll(hidden.ident, 'X')).issue, JSON.parse(nothing.text.replaceAll(ghostIdent, 'X')).issue);
    // If-None-Exist matching only the hidden resident creates a new one (the caller cannot
    // know of the other) instead of answering with it.
    const ine = await as('A', 'POST', '', { body: { resourceType: 'Bundle', type: 'transaction', entry: [
      { fullUrl: 'urn:uuid:' + crypto.randomUUID(), request: { method: 'POST', url: 'Coverage', ifNoneExist: `identifier=${encodeURIComponent(`${SYS}|${data['all:Coverage'].ident}`)}` },
        resource: { resourceType: 'Coverage', status: 'active', beneficiary: { reference: `Patient/${data['open:Patient'].id}` }, payor: [{ reference: `Organization/${ORG.id}` }] } }] } });
    assert.equal(ine.status, 200, ine.text);
    assert.match(ine.json.entry[0].response.status, /^201/);
    assertNoTrace(ine, data['all:Coverage'], 'transaction If-None-Exist');
  });

  it('a resource now hidden keeps its earlier versions hidden too (vread, history)', async () => {
    const ident = uid('recat');
    const v1 = await asServer('POST', '/Observation', { body: { resourceType: 'Observation', identifier: [{ system: SYS, value: ident }], status: 'final',
      code: { coding: [{ system: 'http://loinc.org', code: '4548-4' }] }, subject: { reference: `Patient/${data['open:Patient'].id}` } } });
    assert.equal(v1.status, 201, v1.text);
    assert.equal(categoryOf(v1.json), 'checkup');
    assert.equal((await as('PA', 'GET', `/Observation/${v1.json.id}/_history/1`)).status, 200, 'PA reads checkup data');
    // Recorded again as a care-level certification: now care, which PA may not read.
    const v2 = await asServer('PUT', `/Observation/${v1.json.id}`, { body: { ...v1.json, meta: undefined,
      code: { coding: [{ system: 'http://kasama-fhir.example/fhir/CodeSystem/care-level', code: 'care-2' }] } } });
    assert.equal(v2.status, 200, v2.text);
    assert.equal(categoryOf(v2.json), 'care');
    assert.equal((await as('PA', 'GET', `/Observation/${v1.json.id}`)).status, 404);
    const old = await as('PA', 'GET', `/Observation/${v1.json.id}/_history/1`);
    assert.equal(old.status, 404, old.text);
    const h = await as('PA', 'GET', `/Observation/_history?_since=${encodeURIComponent(since)}&_count=1000`);
    assert.ok(!ids(h.json).includes(v1.json.id), 'not in the type history');
    const sys = await as('PA', 'GET', `/_history?_since=${encodeURIComponent(since)}&_count=1000`);
    assert.ok(!ids(sys.json).includes(v1.json.id), 'not in the system history');
    // B reads care but not checkup: the current version, not the first.
    assert.equal((await as('B', 'GET', `/Observation/${v1.json.id}`)).status, 200);
    assert.equal((await as('B', 'GET', `/Observation/${v1.json.id}/_history/1`)).status, 404);
    const bh = await as('B', 'GET', `/Observation/${v1.json.id}/_history`);
    assert.deepEqual(bh.json.entry.map((e) => e.resource.meta.versionId), ['2']);
    assert.equal(bh.json.total, 1);
  });

  it('$reindex tells an institution no count of everyone\'s resources', async () => {
    const r = await as('B', 'POST', '/Patient/$reindex');
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json.parameter.map((p) => p.name), ['seconds', 'type']);
  });

  it('data about a hidden resident cannot be written (answered as for a resident who is not there)', async () => {
    for (const [caller, key] of [['A', 'all'], ['A', 'onlyA'], ['B', 'all'], ['PA', 'onlyA']]) {
      const p = data[`${key}:Patient`];
      const type = caller === 'A' ? 'Coverage' : caller === 'B' ? 'Coverage' : 'Observation';
      const body = type === 'Coverage'
        ? { resourceType: 'Coverage', status: 'active', beneficiary: { reference: `Patient/${p.id}` }, payor: [{ reference: `Organization/${ORG.id}` }] }
        : { resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference: `Patient/${p.id}` } };
      const before = await asServer('GET', `/${type}?${REFPARAM[type]}=Patient/${p.id}&_summary=count`);
      const res = await as(caller, 'POST', `/${type}`, { body });
      // A has care write; B and PA lack write on their categories altogether (403 first).
      if (caller === 'A') {
        assert.equal(res.status, 409, `${caller} ${key}: ${res.text}`);
        // Exactly the answer for a resident who does not exist (same text, same element).
        const ghost = crypto.randomUUID();
        const missing = await as(caller, 'POST', `/${type}`, { body: JSON.parse(JSON.stringify(body).replaceAll(p.id, ghost)) });
        assert.equal(missing.status, 409, missing.text);
        assert.deepEqual(JSON.parse(res.text.replaceAll(p.id, 'ID')).issue, JSON.parse(missing.text.replaceAll(ghost, 'ID')).issue);
      } else {
        assert.equal(res.status, 403, `${caller} ${key}: ${res.text}`);
      }
      const afterCount = await asServer('GET', `/${type}?${REFPARAM[type]}=Patient/${p.id}&_summary=count`);
      assert.equal(afterCount.json.total, before.json.total, 'nothing was stored');
    }
    // The open resident: A writes care data (its range) but not checkup data (read only).
    const open = data['open:Patient'].id;
    const ok = await as('A', 'POST', '/Coverage', { body: { resourceType: 'Coverage', status: 'active', beneficiary: { reference: `Patient/${open}` }, payor: [{ reference: `Organization/${ORG.id}` }] } });
    assert.equal(ok.status, 201, ok.text);
    const no = await as('A', 'POST', '/Observation', { body: { resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference: `Patient/${open}` } } });
    assert.equal(no.status, 403, no.text);
    assert.match(no.json.issue[0].diagnostics, /checkup/);
    // and cannot update a visible resource it may only read
    const obs = (await as('A', 'GET', `/Observation/${data['open:Observation'].id}`)).json;
    const upd = await as('A', 'PUT', `/Observation/${obs.id}`, { body: { ...obs, status: 'amended' } });
    assert.equal(upd.status, 403, upd.text);
  });
});

describe('R-21 R-22 the resident and an active proxy keep their own access', () => {
  it('an opt-out hides nothing from the resident or their proxy; the proxy stops when the relation ends', async () => {
    const p = data['all:Patient'];
    const app = await api('POST', '/admin/clients', { session: s.secretariat.session, body: { name: 'Residents app (access test)', kind: 'public', redirectUris: [REDIRECT] } });
    assert.equal(app.status, 201, app.text);
    const scope = 'launch/patient openid fhirUser patient/*.rs';
    const resident = await api('POST', '/admin/applications/citizen', { body: { name: '住民 (access test)', kind: 'resident', patient: p.id } });
    assert.equal(resident.status, 201, resident.text);
    const r = await issue(resident.json.id, `Patient/${p.id}`);
    const rt = await lib.userToken(r.session, scope, { clientId: app.json.clientId }, REDIRECT);
    assert.equal(rt.patient, p.id);
    const proxyApp = await api('POST', '/admin/applications/citizen', { body: { name: '代諾者 (access test)', kind: 'proxy', patient: p.id, relationship: '子 / son' } });
    assert.equal(proxyApp.status, 201, proxyApp.text);
    const x = await issue(proxyApp.json.id, `RelatedPerson/rp-${uid('x')}`);
    const a = await lib.authorizeCode({ session: x.session, clientId: app.json.clientId, redirectUri: REDIRECT, scope, patient: p.id });
    assert.equal(a.status, 302, a.html);
    const t = await postForm(TOKEN_ENDPOINT, { grant_type: 'authorization_code', code: a.params.code, redirect_uri: REDIRECT, code_verifier: a.verifier, client_id: app.json.clientId });
    assert.equal(t.status, 200, t.text);
    assert.equal(t.json.patient, p.id);
    for (const [who, token] of [['resident', rt.access_token], ['proxy', t.json.access_token]]) {
      const own = await request('GET', `/Patient/${p.id}`, { headers: { authorization: `Bearer ${token}` } });
      assert.equal(own.status, 200, `${who}: ${own.text}`);
      const obs = await request('GET', '/Observation', { headers: { authorization: `Bearer ${token}` } });
      assert.equal(obs.status, 200, obs.text);
      assert.ok(ids(obs.json).includes(data['all:Observation'].id), `${who} sees the checkup data`);
      const cond = await request('GET', `/Condition/${data['all:Condition'].id}`, { headers: { authorization: `Bearer ${token}` } });
      assert.equal(cond.status, 200, `${who}: every category of their own record`);
      // and nobody else's
      const other = await request('GET', `/Patient/${data['open:Patient'].id}`, { headers: { authorization: `Bearer ${token}` } });
      assert.equal(other.status, 404, `${who}: another resident`);
    }
    // R-22: the secretariat ends the relation; the proxy's next request is refused.
    const end = await api('POST', `/admin/accounts/${x.id}/proxies`, { session: s.secretariat.session, body: { patient: p.id, active: false } });
    assert.equal(end.status, 200, end.text);
    const after = await request('GET', `/Patient/${p.id}`, { headers: { authorization: `Bearer ${t.json.access_token}` } });
    assert.equal(after.status, 401, after.text);
    assert.equal((await request('GET', `/Patient/${p.id}`, { headers: { authorization: `Bearer ${rt.access_token}` } })).status, 200, 'the resident still');
  });
});

describe('R-30 a hidden resource is a denial in the audit trail, not for the caller', () => {
  it('the caller reads "not known"; the auditor sees why', async () => {
    const app = await api('POST', '/admin/clients', { session: s.secretariat.session, body: { name: 'Access audit console', kind: 'public', redirectUris: [REDIRECT] } });
    assert.equal(app.status, 201, app.text);
    const auditor = (await userToken(s.auditor.session, 'openid fhirUser user/AuditEvent.rs', { clientId: app.json.clientId })).access_token;
    const rid = uid('access-audit');
    const cases = [
      [`${rid}-optout`, 'A', data['all:Observation'], /opted out/],
      [`${rid}-category`, 'B', data['open:Observation'], /category 'checkup'/],
    ];
    for (const [id, caller, r, why] of cases) {
      const res = await as(caller, 'GET', `/${r.type}/${r.id}`, { headers: { 'x-request-id': id } });
      assert.equal(res.status, 404);
      assert.doesNotMatch(res.text, /opted|category/, 'the caller is not told why');
      const ev = await request('GET', `/AuditEvent?request-id=${id}`, { headers: { authorization: `Bearer ${auditor}` } });
      assert.equal(ev.status, 200, ev.text);
      assert.equal(ev.json.entry?.length, 1, ev.text);
      const e = ev.json.entry[0].resource;
      assert.ok(e.outcomeDesc.includes('(denied)'), e.outcomeDesc);
      assert.match(e.outcomeDesc, why);
      // whose data: the resident's Patient is named as an entity
      assert.ok(JSON.stringify(e.entity).includes(r.type === 'Patient' ? r.id : `${r.type}/${r.id}`), JSON.stringify(e.entity));
    }
  });
});

describe('R-20 token-level denials leave no trace either', () => {
  const cases = [
    { caller: 'Anarrow', why: 'SMART scopes (system/Patient.rs system/Observation.rs)', types: ['Condition', 'Coverage'], status: 403 },
    { caller: 'D', why: 'institution deregistered', types: TYPES, status: 401 },
    { caller: 'leaver', why: 'user deregistered', types: TYPES, status: 401 },
  ];
  for (const c of cases) {
    for (const [name, path] of Object.entries(PATHS)) {
      it(`${c.why}: ${name}`, async () => {
        let n = 0;
        for (const type of c.types) {
          const r = data[`open:${type}`];
          const res = await path.run(c.caller, r);
          const what = `${c.why} ${name} ${type}`;
          assertNoTrace(res, path.noTraceOf ? path.noTraceOf(r) : r, what);
          assert.ok(!path.seen(res, r), what);
          // Entries of a batch are refused one by one; the batch itself is answered.
          if (name === 'batch entry' && c.status === 403) {
            assert.equal(res.status, 200, res.text);
            assert.match(res.json.entry[0].response.status, /^403/);
          } else {
            assert.equal(res.status, c.status, `${what}: ${res.text.slice(0, 200)}`);
          }
          n++;
        }
        assert.ok(n > 0);
      });
    }
  }
});

describe('R-21 opt-out lifecycle through the secretariat', () => {
  it('takes effect at once for tokens already issued, and withdrawing it restores access', async () => {
    const p = data['open:Patient'];
    assert.equal((await as('B', 'GET', `/Patient/${p.id}`)).status, 200);
    const rec = await api('POST', '/admin/opt-outs', { session: s.secretariat.session, body: { patient: p.id, institutions: [inst.B.id] } });
    assert.equal(rec.status, 201, rec.text);
    assert.deepEqual(rec.json.institutions, [`Organization/${inst.B.id}`]);
    assert.equal((await as('B', 'GET', `/Patient/${p.id}`)).status, 404, 'hidden from B at the next request');
    assert.equal((await as('A', 'GET', `/Patient/${p.id}`)).status, 200, 'A is not named');
    const list = await api('GET', `/admin/opt-outs?patient=${p.id}`, { session: s.secretariat.session });
    assert.equal(list.status, 200, list.text);
    assert.ok(list.json.some((o) => o.id === rec.json.id && o.status === 'active'));
    const w = await api('POST', `/admin/opt-outs/${rec.json.id}/withdraw`, { session: s.secretariat.session, body: {} });
    assert.equal(w.status, 200, w.text);
    assert.equal((await as('B', 'GET', `/Patient/${p.id}`)).status, 200, 'visible again');
    // Every change is kept in the Consent's history.
    const h = await asServer('GET', `/Consent/${rec.json.id}/_history`);
    assert.deepEqual(h.json.entry.map((e) => e.resource.status), ['inactive', 'active']);
    // Withdrawn twice: a conflict, not a second version.
    const again = await api('POST', `/admin/opt-outs/${rec.json.id}/withdraw`, { session: s.secretariat.session, body: {} });
    assert.equal(again.status, 409, again.text);
  });

  it('only the secretariat records opt-outs, for a resident that exists, with valid fields', async () => {
    const p = data['open:Patient'].id;
    const byOwner = await api('POST', '/admin/opt-outs', { session: s.owner.session, body: { patient: p } });
    assert.equal(byOwner.status, 403, byOwner.text);
    const unknown = await api('POST', '/admin/opt-outs', { session: s.secretariat.session, body: { patient: 'no-such-patient' } });
    assert.equal(unknown.status, 404, unknown.text);
    const badInst = await api('POST', '/admin/opt-outs', { session: s.secretariat.session, body: { patient: p, institutions: ['org-nosuch'] } });
    assert.equal(badInst.status, 400, badInst.text);
    assert.equal(badInst.json.field, 'institutions');
    const badDate = await api('POST', '/admin/opt-outs', { session: s.secretariat.session, body: { patient: p, start: 'tomorrow' } });
    assert.equal(badDate.status, 400, badDate.text);
    assert.equal(badDate.json.field, 'start');
    assert.equal((await as('B', 'GET', `/Patient/${p}`)).status, 200, 'none of these took effect');
  });

  it('a plain FHIR Consent under the opt-out policy has the same effect', async () => {
    const p = data['future:Patient'];
    assert.equal((await as('A', 'GET', `/Patient/${p.id}`)).status, 200, 'a future opt-out hides nothing yet');
    const consent = {
      resourceType: 'Consent', status: 'active',
      scope: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/consentscope', code: 'patient-privacy' }] },
      category: [{ coding: [{ system: 'http://loinc.org', code: '59284-0' }] }],
      patient: { reference: `Patient/${p.id}` },
      policy: [{ uri: 'http://kasama-fhir.example/fhir/policy/opt-out' }],
      provision: { type: 'deny', period: { start: '2020-01-01' } },
    };
    // Only the secretariat records opt-outs, also through FHIR: an institution's terminal
    // with every category is refused (R-21).
    const byInstitution = await request('POST', '/Consent', { body: consent });
    assert.equal(byInstitution.status, 403, byInstitution.text);
    assert.equal((await as('A', 'GET', `/Patient/${p.id}`)).status, 200, 'nothing took effect');
    const c = await asServer('POST', '/Consent', { body: consent });
    assert.equal(c.status, 201, c.text);
    // Nor can it withdraw one: the Consent is the city's (category privacy) and hidden from
    // institutions outside their range, refused to the rest.
    const stored = (await asServer('GET', `/Consent/${c.json.id}`)).json;
    assert.equal(categoryOf(stored), 'privacy');
    // This one hides the resident from every institution, so its Consent is not there for them.
    const put = await request('PUT', `/Consent/${c.json.id}`, { body: { ...stored, status: 'inactive' } });
    assert.equal(put.status, 404, put.text);
    assert.equal((await request('DELETE', `/Consent/${c.json.id}`)).status, 204);
    assert.equal((await as('A', 'GET', `/Consent/${c.json.id}`)).status, 404, 'A has no privacy range');
    assert.equal((await as('A', 'GET', `/Patient/${p.id}`)).status, 404, 'still in effect');
    // One naming institution B only: visible to an institution with the privacy range, and
    // still refused to it.
    const onlyB = await asServer('POST', '/Consent', { body: { ...consent, patient: { reference: `Patient/${data['open:Patient'].id}` },
      provision: { type: 'deny', actor: [{ role: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType', code: 'IRCP' }] }, reference: { reference: `Organization/${inst.B.id}` } }] } } });
    assert.equal(onlyB.status, 201, onlyB.text);
    const b = (await request('GET', `/Consent/${onlyB.json.id}`)).json;
    assert.equal(b.id, onlyB.json.id);
    const withdraw = await request('PUT', `/Consent/${b.id}`, { body: { ...b, status: 'inactive' } });
    assert.equal(withdraw.status, 403, withdraw.text);
    assert.equal((await request('DELETE', `/Consent/${b.id}`)).status, 403);
    assert.equal((await as('B', 'GET', `/Patient/${data['open:Patient'].id}`)).status, 404, 'the opt-out holds');
    assert.equal((await asServer('DELETE', `/Consent/${b.id}`)).status, 200);
    assert.equal((await as('B', 'GET', `/Patient/${data['open:Patient'].id}`)).status, 200);
    assert.equal((await as('A', 'GET', `/Patient/${p.id}`)).status, 404);
    assert.equal((await as('A', 'GET', `/Observation?subject=Patient/${p.id}&_summary=count`)).json.total, 0);
    const del = await asServer('DELETE', `/Consent/${c.json.id}`);
    assert.equal(del.status, 200, del.text);
    assert.equal((await as('A', 'GET', `/Patient/${p.id}`)).status, 200, 'deleting the Consent ends it');
  });

  it('institution ranges and user ranges are validated and changed only by their owners', async () => {
    const bad = await api('POST', `/admin/institutions/${inst.B.id}/access`, { session: s.owner.session, body: { categories: { care: 'write' } } });
    assert.equal(bad.status, 400, bad.text);
    assert.equal(bad.json.field, 'categories.care');
    const notOwner = await api('POST', `/admin/institutions/${inst.B.id}/access`, { session: s.secretariat.session, body: { categories: { care: 'read' } } });
    assert.equal(notOwner.status, 403, notOwner.text);
    // The owner widens B's range to checkup: B's very next request sees checkup data.
    assert.equal((await as('B', 'GET', `/Observation/${data['onlyA:Observation'].id}`)).status, 404);
    const wide = await api('POST', `/admin/institutions/${inst.B.id}/access`, { session: s.owner.session, body: { categories: { demographics: 'read', care: 'read', checkup: 'read' } } });
    assert.equal(wide.status, 200, wide.text);
    assert.equal((await as('B', 'GET', `/Observation/${data['onlyA:Observation'].id}`)).status, 200);
    assert.equal((await as('B', 'GET', `/Observation/${data['all:Observation'].id}`)).status, 404, 'opted out still');
    const back = await api('POST', `/admin/institutions/${inst.B.id}/access`, { session: s.owner.session, body: { categories: { demographics: 'read', care: 'read' } } });
    assert.equal(back.status, 200, back.text);
    assert.equal((await as('B', 'GET', `/Observation/${data['onlyA:Observation'].id}`)).status, 404);
    const userBad = await api('POST', '/admin/accounts/nosuch/access', { session: s.secretariat.session, body: { categories: { care: 'read' } } });
    assert.equal(userBad.status, 404, userBad.text);
  });
});
