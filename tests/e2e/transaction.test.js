// R-05 (FHIR R4 REST): batch and transaction (http.html#transaction, #brules, #trules)
// against the "main" fixture (referential integrity strict). Every test makes its own
// resources with fresh identifiers, so the tests are independent of each other and of
// whatever else runs against the same server.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  BASE,
  get,
  post,
  request,
  postBundle,
  describe as show,
  uid,
  urn,
  references,
  relativeTarget,
  expressions,
} from './lib/corpus.js';

const SYS = 'urn:kasama-test:transaction';
const newIdent = () => ({ system: SYS, value: uid() });
const q = (ident) => `identifier=${encodeURIComponent(`${ident.system}|${ident.value}`)}`;
const LOCATION_1 = /^(Patient|Observation|Organization|Practitioner|Specimen)\/[A-Za-z0-9\-.]{1,64}\/_history\/1$/;

// ---------------------------------------------------------------------------------------
// builders

const patient = (ident, extra = {}) => ({ resourceType: 'Patient', identifier: [ident], ...extra });
const observation = (ident, subjectRef, extra = {}) => ({
  resourceType: 'Observation',
  identifier: [ident],
  status: 'final',
  code: { text: 'kasama e2e transaction test' },
  ...(subjectRef ? { subject: { reference: subjectRef } } : {}),
  ...extra,
});
const bundle = (type, entry) => ({ resourceType: 'Bundle', type, entry });
const postEntry = (resource, fullUrl, request = {}) => ({
  ...(fullUrl ? { fullUrl } : {}),
  resource,
  request: { method: 'POST', url: resource.resourceType, ...request },
});
const putEntry = (resource, url, request = {}, fullUrl) => ({
  ...(fullUrl ? { fullUrl } : {}),
  resource,
  request: { method: 'PUT', url: url ?? `${resource.resourceType}/${resource.id}`, ...request },
});
const getEntry = (url) => ({ request: { method: 'GET', url } });
const deleteEntry = (url, request = {}) => ({ request: { method: 'DELETE', url, ...request } });
const patchBinary = (ops) => ({
  resourceType: 'Binary',
  contentType: 'application/json-patch+json',
  data: Buffer.from(JSON.stringify(ops)).toString('base64'),
});
const patchEntry = (url, ops, request = {}) => ({
  resource: patchBinary(ops),
  request: { method: 'PATCH', url, ...request },
});

// ---------------------------------------------------------------------------------------
// server helpers

async function create(resource) {
  const res = await post(resource.resourceType, resource, { headers: { Prefer: 'return=representation' } });
  assert.equal(res.status, 201, `setup: create ${resource.resourceType}: ${show(res)}`);
  assert.ok(res.json?.id, 'setup: created resource has an id');
  return res.json;
}

async function read(type, id) {
  return get(`${type}/${id}`);
}

/** Ids of the current resources of `type` with this identifier. */
async function findIds(type, ident) {
  const res = await get(`${type}?${q(ident)}`);
  assert.equal(res.status, 200, `search ${type}?${q(ident)}: ${show(res)}`);
  assert.equal(res.json.type, 'searchset');
  return (res.json.entry || []).map((e) => e.resource.id);
}

async function historyTotal(type, id) {
  const res = await get(`${type}/${id}/_history`);
  assert.equal(res.status, 200, `history ${type}/${id}: ${show(res)}`);
  return res.json.total;
}

function txOk(res, n) {
  assert.equal(res.status, 200, show(res));
  assert.equal(res.json?.resourceType, 'Bundle', show(res));
  assert.equal(res.json.type, 'transaction-response');
  assert.equal((res.json.entry || []).length, n, `one response entry per request entry: ${show(res)}`);
  return res.json.entry;
}

/** Id from a response location Type/id/_history/n. */
function locId(entry, type) {
  const loc = entry.response?.location;
  assert.ok(loc, `entry has a location: ${JSON.stringify(entry)}`);
  const m = new RegExp(`^${type}/([A-Za-z0-9\\-.]{1,64})/_history/(\\d+)$`).exec(loc);
  assert.ok(m, `location '${loc}' is ${type}/id/_history/n`);
  return m[1];
}

function assertOutcome(res, { status, code, expr, diag }) {
  assert.equal(res.status, status, show(res));
  assert.equal(res.json?.resourceType, 'OperationOutcome', show(res));
  const issues = res.json.issue || [];
  assert.ok(issues.length > 0, 'the outcome has issues');
  assert.ok(
    issues.some((i) => i.severity === 'error' || i.severity === 'fatal'),
    `an error issue: ${res.text}`,
  );
  if (code) assert.ok(issues.some((i) => i.code === code), `an issue with code '${code}': ${res.text}`);
  if (expr) {
    const ex = expressions(res.json);
    assert.ok(
      ex.some((e) => expr.test(e)),
      `an issue expression matching ${expr}, got ${JSON.stringify(ex)}: ${res.text}`,
    );
  }
  if (diag) assert.ok(issues.some((i) => diag.test(i.diagnostics || '')), `diagnostics matching ${diag}: ${res.text}`);
}

// ---------------------------------------------------------------------------------------

describe('R-05 transaction atomicity: one bad entry rolls back the whole Bundle', () => {
  // A transaction of five valid entries touching existing and new resources, then one bad
  // entry (index 5). Afterwards nothing of the first five may be visible.
  async function prepare() {
    const c = {
      b: await create(patient(newIdent(), { name: [{ family: 'Before' }] })), // PUT by entry 3
      d: await create(patient(newIdent())), // DELETEd by entry 0
      i1: newIdent(),
      i2: newIdent(),
      bad: newIdent(),
      u1: urn(),
      clientId: `tx-${uid()}`,
    };
    c.entries = [
      deleteEntry(`Patient/${c.d.id}`),
      postEntry(patient(c.i1), c.u1),
      postEntry(observation(c.i2, c.u1)),
      putEntry({ ...c.b, meta: undefined, name: [{ family: 'After' }] }),
      putEntry(patient(newIdent(), { id: c.clientId })), // update-as-create
    ];
    return c;
  }

  async function assertNoTrace(c) {
    assert.deepEqual(await findIds('Patient', c.i1), [], 'the POSTed Patient was not kept');
    assert.deepEqual(await findIds('Observation', c.i2), [], 'the POSTed Observation was not kept');
    assert.deepEqual(await findIds('Patient', c.bad), [], 'nothing of the bad entry was kept');
    assert.deepEqual(await findIds('Observation', c.bad), [], 'nothing of the bad entry was kept');
    const b = await read('Patient', c.b.id);
    assert.equal(b.status, 200, show(b));
    assert.equal(b.json.meta.versionId, '1', 'the updated Patient is back at version 1');
    assert.deepEqual(b.json.name, [{ family: 'Before' }]);
    assert.equal(await historyTotal('Patient', c.b.id), 1, 'the updated Patient has no new history entry');
    const d = await read('Patient', c.d.id);
    assert.equal(d.status, 200, `the deleted Patient is still there: ${show(d)}`);
    assert.equal(d.json.meta.versionId, '1');
    assert.equal(await historyTotal('Patient', c.d.id), 1, 'the deleted Patient has no new history entry');
    const created = await read('Patient', c.clientId);
    assert.equal(created.status, 404, `the Patient created by PUT is unknown (not 410): ${show(created)}`);
    assert.equal((await get(`Patient/${c.clientId}/_history`)).status, 404, 'and has no history');
  }

  it('control: the five valid entries alone commit', async () => {
    const c = await prepare();
    const res = await postBundle(bundle('transaction', c.entries));
    const entries = txOk(res, 5);
    assert.match(entries[0].response.status, /^(200|204)\b/);
    assert.equal(entries[1].response.status, '201 Created');
    assert.equal(entries[2].response.status, '201 Created');
    assert.equal(entries[3].response.status, '200 OK');
    assert.equal(entries[4].response.status, '201 Created');
    assert.equal((await read('Patient', c.clientId)).status, 200);
    assert.equal((await findIds('Patient', c.i1)).length, 1);
    assert.equal((await findIds('Observation', c.i2)).length, 1);
    assert.equal((await read('Patient', c.d.id)).status, 410);
    assert.equal((await read('Patient', c.b.id)).json.meta.versionId, '2');
  });

  const CASES = [
    {
      name: 'invalid resource: Observation without the required status -> 422',
      bad: (c) => postEntry({ resourceType: 'Observation', identifier: [c.bad], code: { text: 'x' } }),
      status: 422,
      code: 'required',
      expr: /^Bundle\.entry\[5\]\.resource\.status$/,
    },
    {
      name: 'malformed resource: unknown element -> 400',
      bad: (c) => postEntry(patient(c.bad, { bogus: true })),
      status: 400,
      code: 'structure',
      expr: /^Bundle\.entry\[5\]\.resource\.bogus$/,
    },
    {
      name: 'PATCH of a resource that does not exist -> 404',
      bad: () => patchEntry(`Patient/${uid()}`, [{ op: 'replace', path: '/active', value: true }]),
      status: 404,
      code: 'not-found',
      expr: /^Bundle\.entry\[5\]/,
    },
    {
      name: 'GET of a resource that does not exist -> 404',
      bad: () => getEntry(`Patient/${uid()}`),
      status: 404,
      code: 'not-found',
      expr: /^Bundle\.entry\[5\]/,
    },
    {
      name: 'PUT with an If-Match naming a stale version -> 412 at request.ifMatch',
      setup: async (c) => {
        c.target = await create(patient(newIdent(), { active: true }));
      },
      bad: (c) => putEntry({ ...c.target, meta: undefined, active: false }, undefined, { ifMatch: 'W/"7"' }),
      status: 412,
      expr: /^Bundle\.entry\[5\]\.request\.ifMatch$/,
    },
    {
      name: 'PATCH with an If-Match naming a stale version -> 412 at request.ifMatch',
      setup: async (c) => {
        c.target = await create(patient(newIdent(), { active: true }));
      },
      bad: (c) =>
        patchEntry(`Patient/${c.target.id}`, [{ op: 'replace', path: '/active', value: false }], { ifMatch: 'W/"2"' }),
      status: 412,
      expr: /^Bundle\.entry\[5\]\.request\.ifMatch$/,
    },
    {
      name: 'PATCH whose JSON Patch test operation fails -> 422',
      setup: async (c) => {
        c.target = await create(patient(newIdent(), { active: true }));
      },
      bad: (c) =>
        patchEntry(`Patient/${c.target.id}`, [
          { op: 'test', path: '/active', value: false },
          { op: 'replace', path: '/active', value: false },
        ]),
      status: 422,
      expr: /^Bundle\.entry\[5\]/,
    },
    {
      name: 'conditional reference that matches nothing -> 412',
      bad: (c) => postEntry(observation(c.bad, `Patient?identifier=${SYS}|${uid()}`)),
      status: 412,
      code: 'not-found',
      expr: /^Bundle\.entry\[5\]/,
    },
    {
      name: 'conditional reference that matches two Patients -> 412',
      setup: async (c) => {
        c.dup = newIdent();
        await create(patient(c.dup));
        await create(patient(c.dup));
      },
      bad: (c) => postEntry(observation(c.bad, `Patient?identifier=${SYS}|${c.dup.value}`)),
      status: 412,
      code: 'multiple-matches',
      expr: /^Bundle\.entry\[5\]/,
    },
    {
      name: 'ifNoneExist that matches two Patients -> 412 at request.ifNoneExist',
      setup: async (c) => {
        c.dup = newIdent();
        await create(patient(c.dup));
        await create(patient(c.dup));
      },
      bad: (c) => postEntry(patient(c.dup), urn(), { ifNoneExist: q(c.dup) }),
      status: 412,
      expr: /^Bundle\.entry\[5\]\.request\.ifNoneExist$/,
    },
    {
      name: 'conditional PUT that matches two Patients -> 412',
      setup: async (c) => {
        c.dup = newIdent();
        await create(patient(c.dup));
        await create(patient(c.dup));
      },
      bad: (c) => putEntry(patient(c.dup, { active: true }), `Patient?${q(c.dup)}`),
      status: 412,
      expr: /^Bundle\.entry\[5\]/,
    },
    {
      name: 'reference to a Patient that does not exist (referential integrity) -> 409',
      bad: (c) => postEntry(observation(c.bad, `Patient/${uid()}`)),
      status: 409,
      expr: /^Bundle\.entry\[5\]\.resource\.subject(\.reference)?$/,
    },
    {
      name: 'DELETE of a Patient that another resource still refers to -> 409',
      setup: async (c) => {
        c.target = await create(patient(newIdent()));
        await create(observation(newIdent(), `Patient/${c.target.id}`));
      },
      bad: (c) => deleteEntry(`Patient/${c.target.id}`),
      status: 409,
      code: 'conflict',
      expr: /^Bundle\.entry\[5\]/,
    },
  ];

  for (const tc of CASES) {
    it(`${tc.name}; the OperationOutcome names Bundle.entry[5] and nothing is kept`, async () => {
      const c = await prepare();
      if (tc.setup) await tc.setup(c);
      const res = await postBundle(bundle('transaction', [...c.entries, tc.bad(c)]));
      assertOutcome(res, tc);
      await assertNoTrace(c);
      if (c.target) {
        const t = await read('Patient', c.target.id);
        assert.equal(t.status, 200, show(t));
        assert.equal(t.json.meta.versionId, '1', 'the bad entry\'s target is unchanged');
      }
    });
  }

  it('two entries that change the same resource (PUT and PUT) -> 400, nothing kept', async () => {
    const c = await prepare();
    const res = await postBundle(
      bundle('transaction', [...c.entries, putEntry({ ...c.b, meta: undefined, name: [{ family: 'Twice' }] })]),
    );
    assertOutcome(res, { status: 400, expr: /^Bundle\.entry\[(3|5)\]/ });
    await assertNoTrace(c);
  });

  it('two entries that change the same resource (DELETE and PATCH) -> 400, nothing kept', async () => {
    const c = await prepare();
    const res = await postBundle(
      bundle('transaction', [...c.entries, patchEntry(`Patient/${c.d.id}`, [{ op: 'add', path: '/active', value: true }])]),
    );
    assertOutcome(res, { status: 400, expr: /^Bundle\.entry\[(0|5)\]/ });
    await assertNoTrace(c);
  });

  it('a rolled-back conditional create (ifNoneExist) leaves nothing behind: the same criteria create later', async () => {
    const c = await prepare();
    const ident = newIdent();
    const res = await postBundle(
      bundle('transaction', [
        ...c.entries,
        postEntry(patient(ident), urn(), { ifNoneExist: q(ident) }),
        getEntry(`Patient/${uid()}`),
      ]),
    );
    assertOutcome(res, { status: 404, expr: /^Bundle\.entry\[6\]/ });
    await assertNoTrace(c);
    assert.deepEqual(await findIds('Patient', ident), []);
    const again = await post('Patient', patient(ident), { headers: { 'If-None-Exist': q(ident) } });
    assert.equal(again.status, 201, show(again));
    const twice = await post('Patient', patient(ident), { headers: { 'If-None-Exist': q(ident) } });
    assert.equal(twice.status, 200, `the second conditional create finds the first: ${show(twice)}`);
  });
});

describe('R-05 transaction processing order: DELETE, POST, PUT/PATCH, then GET', () => {
  it('GET entries listed first see the results of the PUT and POST listed after them', async () => {
    const x = await create(patient(newIdent(), { active: false }));
    const fresh = newIdent();
    const res = await postBundle(
      bundle('transaction', [
        getEntry(`Patient/${x.id}`),
        getEntry(`Patient?${q(fresh)}`),
        putEntry({ ...x, meta: undefined, active: true }),
        postEntry(patient(fresh), urn()),
      ]),
    );
    const e = txOk(res, 4);
    assert.equal(e[0].response.status, '200 OK');
    assert.equal(e[0].resource?.resourceType, 'Patient', 'a GET entry carries the resource');
    assert.equal(e[0].resource.meta.versionId, '2', 'the GET ran after the PUT');
    assert.equal(e[0].resource.active, true);
    assert.equal(e[1].response.status, '200 OK');
    assert.equal(e[1].resource?.resourceType, 'Bundle');
    assert.equal(e[1].resource.type, 'searchset');
    const newId = locId(e[3], 'Patient');
    assert.deepEqual(
      (e[1].resource.entry || []).map((x) => x.resource.id),
      [newId],
      'the search ran after the POST and found its Patient',
    );
    assert.equal(e[2].response.status, '200 OK');
    assert.equal(e[3].response.status, '201 Created');
  });

  it('a DELETE runs before a POST: conditional delete of the old Patient does not see the new one', async () => {
    const ident = newIdent();
    const old = await create(patient(ident));
    const res = await postBundle(
      bundle('transaction', [postEntry(patient(ident, { active: true })), deleteEntry(`Patient?${q(ident)}`)]),
    );
    const e = txOk(res, 2);
    assert.equal(e[0].response.status, '201 Created');
    assert.match(e[1].response.status, /^(200|204)\b/);
    const newId = locId(e[0], 'Patient');
    assert.deepEqual(await findIds('Patient', ident), [newId], 'only the new Patient carries the identifier');
    assert.equal((await read('Patient', old.id)).status, 410, 'the old Patient is deleted');
  });

  it('a DELETE and a POST of the same kind in one Bundle, both listed in reverse order', async () => {
    const gone = await create(patient(newIdent()));
    const ident = newIdent();
    const res = await postBundle(bundle('transaction', [postEntry(patient(ident)), deleteEntry(`Patient/${gone.id}`)]));
    const e = txOk(res, 2);
    assert.equal(e[0].response.status, '201 Created');
    assert.match(e[1].response.status, /^(200|204)\b/);
    assert.equal((await read('Patient', gone.id)).status, 410);
    assert.equal((await findIds('Patient', ident)).length, 1);
  });
});

describe('R-05 transaction: urn:uuid fullUrls are replaced by the new ids everywhere', () => {
  it('references (nested, in extensions, in contained resources) and narrative links point at the new resources', async () => {
    const uP = urn(),
      uO = urn(),
      uPr = urn(),
      uS = urn(),
      uObs = urn();
    const prId = `tx-${uid()}`;
    const ids = { obs: newIdent(), pat: newIdent(), org: newIdent(), pr: newIdent(), sp: newIdent() };
    const entries = [
      // The Observation comes first and refers to everything created after it.
      postEntry(
        observation(ids.obs, uP, {
          performer: [{ reference: uO }, { reference: uPr }],
          focus: [{ reference: uS }],
          specimen: { reference: '#sp' },
          contained: [{ resourceType: 'Specimen', id: 'sp', subject: { reference: uP } }],
          extension: [
            {
              url: 'http://example.org/fhir/StructureDefinition/kasama-test-outer',
              extension: [{ url: 'inner', valueReference: { reference: uO } }],
            },
          ],
          component: [
            {
              code: { text: 'c' },
              extension: [
                { url: 'http://example.org/fhir/StructureDefinition/kasama-test-ref', valueReference: { reference: uPr } },
              ],
              valueString: 'v',
            },
          ],
        }),
        uObs,
      ),
      postEntry(
        patient(ids.pat, {
          managingOrganization: { reference: uO },
          generalPractitioner: [{ reference: uPr }, { reference: uO }],
          text: {
            status: 'generated',
            div: `<div xmlns="http://www.w3.org/1999/xhtml"><p>Cared for by <a href="${uO}">the organisation</a> and <a href="${uPr}">the practitioner</a></p><img src="${uS}" alt="specimen"/></div>`,
          },
        }),
        uP,
      ),
      postEntry({ resourceType: 'Organization', identifier: [ids.org], name: 'Kasama test org' }, uO),
      putEntry(
        {
          resourceType: 'Practitioner',
          id: prId,
          identifier: [ids.pr],
          extension: [{ url: 'http://example.org/fhir/StructureDefinition/kasama-test-org', valueReference: { reference: uO } }],
        },
        undefined,
        {},
        uPr,
      ),
      postEntry({ resourceType: 'Specimen', identifier: [ids.sp], subject: { reference: uP } }, uS),
    ];
    const res = await postBundle(bundle('transaction', entries));
    const e = txOk(res, 5);
    assert.deepEqual(
      e.map((x) => x.response.status),
      ['201 Created', '201 Created', '201 Created', '201 Created', '201 Created'],
    );
    const obsId = locId(e[0], 'Observation');
    const patId = locId(e[1], 'Patient');
    const orgId = locId(e[2], 'Organization');
    assert.equal(locId(e[3], 'Practitioner'), prId, 'the PUT keeps the client id');
    const spId = locId(e[4], 'Specimen');
    for (const [u, id] of [[uP, patId], [uO, orgId], [uS, spId], [uObs, obsId]]) {
      assert.ok(!id.includes(u.slice(9)), `the server assigned its own id, not the urn (${u})`);
    }

    const obs = (await read('Observation', obsId)).json;
    assert.equal(obs.subject.reference, `Patient/${patId}`);
    assert.deepEqual(obs.performer, [{ reference: `Organization/${orgId}` }, { reference: `Practitioner/${prId}` }]);
    assert.deepEqual(obs.focus, [{ reference: `Specimen/${spId}` }]);
    assert.equal(obs.specimen.reference, '#sp', 'a local reference to a contained resource is kept');
    assert.equal(obs.contained[0].subject.reference, `Patient/${patId}`, 'references inside contained resources');
    assert.equal(obs.extension[0].extension[0].valueReference.reference, `Organization/${orgId}`, 'nested extension');
    assert.equal(obs.component[0].extension[0].valueReference.reference, `Practitioner/${prId}`, 'in a backbone element');

    const pat = (await read('Patient', patId)).json;
    assert.equal(pat.managingOrganization.reference, `Organization/${orgId}`);
    assert.deepEqual(pat.generalPractitioner, [
      { reference: `Practitioner/${prId}` },
      { reference: `Organization/${orgId}` },
    ]);
    assert.ok(pat.text.div.includes(`href="Organization/${orgId}"`), `narrative <a href>: ${pat.text.div}`);
    assert.ok(pat.text.div.includes(`href="Practitioner/${prId}"`), `narrative <a href>: ${pat.text.div}`);
    assert.ok(pat.text.div.includes(`src="Specimen/${spId}"`), `narrative <img src>: ${pat.text.div}`);

    const pr = (await read('Practitioner', prId)).json;
    assert.equal(pr.extension[0].valueReference.reference, `Organization/${orgId}`, 'in a PUT entry\'s resource');

    const sp = (await read('Specimen', spId)).json;
    assert.equal(sp.subject.reference, `Patient/${patId}`);

    // Nothing keeps a urn, and every reference resolves.
    for (const [type, id] of [
      ['Observation', obsId],
      ['Patient', patId],
      ['Organization', orgId],
      ['Practitioner', prId],
      ['Specimen', spId],
    ]) {
      const r = await read(type, id);
      assert.equal(r.status, 200, show(r));
      assert.ok(!/urn:uuid:/.test(r.text), `${type}/${id} still holds a urn:uuid: ${r.text}`);
      for (const ref of references(r.json)) {
        if (ref.reference.startsWith('#')) continue;
        const t = relativeTarget(ref.reference);
        assert.ok(t, `${type}/${id} ${ref.path} = '${ref.reference}' is a relative reference`);
        const target = await read(t.type, t.id);
        assert.equal(target.status, 200, `${type}/${id} ${ref.path} -> ${ref.reference}: ${show(target)}`);
      }
    }
  });

  it('an absolute fullUrl on this server (PUT) is rewritten to the relative reference', async () => {
    const prId = `tx-${uid()}`;
    const res = await postBundle(
      bundle('transaction', [
        postEntry(observation(newIdent(), `${BASE}/Patient/${prId}`)),
        putEntry(patient(newIdent(), { id: prId }), `Patient/${prId}`, {}, `${BASE}/Patient/${prId}`),
      ]),
    );
    const e = txOk(res, 2);
    const obs = (await read('Observation', locId(e[0], 'Observation'))).json;
    assert.match(obs.subject.reference, new RegExp(`^(${BASE.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/)?Patient/${prId}$`));
    assert.equal(locId(e[1], 'Patient'), prId);
  });

  it('an element of type url (Attachment.url) naming a fullUrl is rewritten too', async () => {
    // http.html#trules: "... elements of type uri, url, oid, uuid ..."
    const uBin = urn();
    const res = await postBundle(
      bundle('transaction', [
        postEntry({
          resourceType: 'DocumentReference',
          identifier: [newIdent()],
          status: 'current',
          content: [{ attachment: { contentType: 'text/plain', url: uBin } }],
        }),
        postEntry({ resourceType: 'Binary', contentType: 'text/plain', data: 'aGVsbG8=' }, uBin),
      ]),
    );
    const e = txOk(res, 2);
    const binId = locId(e[1], 'Binary');
    const doc = (await read('DocumentReference', locId(e[0], 'DocumentReference'))).json;
    assert.equal(doc.content[0].attachment.url, `Binary/${binId}`);
    assert.equal((await read('Binary', binId)).status, 200);
  });

  it('a string element that merely equals a fullUrl (Identifier.value) is data, not a reference: it is kept', async () => {
    // http.html#trules: servers replace matching links in resource ids, references and
    // elements of type uri/url/oid/uuid and the narrative; Identifier.value is a string.
    const u = urn();
    const res = await postBundle(
      bundle('transaction', [
        postEntry(
          {
            resourceType: 'DocumentReference',
            masterIdentifier: { system: 'urn:ietf:rfc:3986', value: u },
            identifier: [newIdent()],
            status: 'current',
            content: [{ attachment: { contentType: 'text/plain', data: 'aGVsbG8=' } }],
          },
          u,
        ),
      ]),
    );
    const e = txOk(res, 1);
    const doc = (await read('DocumentReference', locId(e[0], 'DocumentReference'))).json;
    assert.equal(doc.masterIdentifier.value, u, 'Identifier.value is unchanged');
  });
});

describe('R-05 transaction: conditional references (Type?criteria)', () => {
  it('resolve to the single matching resource, wherever they appear', async () => {
    const ident = newIdent();
    const p = await create(patient(ident));
    const cond = `Patient?identifier=${SYS}|${ident.value}`;
    const obsIdent = newIdent();
    const res = await postBundle(
      bundle('transaction', [
        postEntry(
          observation(obsIdent, cond, {
            extension: [
              {
                url: 'http://example.org/fhir/StructureDefinition/kasama-test-outer',
                extension: [{ url: 'inner', valueReference: { reference: cond } }],
              },
            ],
          }),
        ),
      ]),
    );
    const e = txOk(res, 1);
    assert.equal(e[0].response.status, '201 Created');
    const obs = (await read('Observation', locId(e[0], 'Observation'))).json;
    assert.equal(obs.subject.reference, `Patient/${p.id}`);
    assert.equal(obs.extension[0].extension[0].valueReference.reference, `Patient/${p.id}`);
  });

  it('with several criteria (identifier and _id) all must match', async () => {
    const ident = newIdent();
    const p = await create(patient(ident));
    await create(patient(ident)); // a second match for the identifier alone
    const res = await postBundle(
      bundle('transaction', [postEntry(observation(newIdent(), `Patient?identifier=${SYS}|${ident.value}&_id=${p.id}`))]),
    );
    const e = txOk(res, 1);
    const obs = (await read('Observation', locId(e[0], 'Observation'))).json;
    assert.equal(obs.subject.reference, `Patient/${p.id}`);
  });
});

describe('R-05 transaction: conditional create (ifNoneExist) and conditional update', () => {
  it('ifNoneExist that matches: entry 200 with the existing id, references to its fullUrl point at it', async () => {
    const ident = newIdent();
    const existing = await create(patient(ident));
    const u = urn();
    const obsIdent = newIdent();
    const res = await postBundle(
      bundle('transaction', [
        postEntry(patient(ident, { active: true }), u, { ifNoneExist: q(ident) }),
        postEntry(observation(obsIdent, u)),
      ]),
    );
    const e = txOk(res, 2);
    assert.equal(e[0].response.status, '200 OK');
    assert.equal(e[0].response.location, `Patient/${existing.id}/_history/1`);
    assert.equal(e[0].response.etag, 'W/"1"');
    assert.equal(e[1].response.status, '201 Created');
    const obs = (await read('Observation', locId(e[1], 'Observation'))).json;
    assert.equal(obs.subject.reference, `Patient/${existing.id}`);
    assert.deepEqual(await findIds('Patient', ident), [existing.id], 'no second Patient was created');
    const p = (await read('Patient', existing.id)).json;
    assert.equal(p.active, undefined, 'the existing Patient is not changed');
  });

  it('ifNoneExist that matches nothing: entry 201, created once', async () => {
    const ident = newIdent();
    const u = urn();
    const res = await postBundle(
      bundle('transaction', [
        postEntry(observation(newIdent(), u)),
        postEntry(patient(ident), u, { ifNoneExist: q(ident) }),
      ]),
    );
    const e = txOk(res, 2);
    assert.equal(e[1].response.status, '201 Created');
    const pid = locId(e[1], 'Patient');
    assert.deepEqual(await findIds('Patient', ident), [pid]);
    const obs = (await read('Observation', locId(e[0], 'Observation'))).json;
    assert.equal(obs.subject.reference, `Patient/${pid}`);
  });

  it('conditional PUT that matches one: updates it (200, version 2) and references follow it', async () => {
    const ident = newIdent();
    const existing = await create(patient(ident, { active: false }));
    const u = urn();
    const res = await postBundle(
      bundle('transaction', [
        postEntry(observation(newIdent(), u)),
        putEntry(patient(ident, { active: true }), `Patient?${q(ident)}`, {}, u),
      ]),
    );
    const e = txOk(res, 2);
    assert.equal(e[1].response.status, '200 OK');
    assert.equal(e[1].response.location, `Patient/${existing.id}/_history/2`);
    assert.equal(e[1].response.etag, 'W/"2"');
    const p = (await read('Patient', existing.id)).json;
    assert.equal(p.active, true);
    assert.equal(p.meta.versionId, '2');
    const obs = (await read('Observation', locId(e[0], 'Observation'))).json;
    assert.equal(obs.subject.reference, `Patient/${existing.id}`);
    assert.deepEqual(await findIds('Patient', ident), [existing.id]);
  });

  it('conditional PUT that matches nothing: creates (201) and references follow the new id', async () => {
    const ident = newIdent();
    const u = urn();
    const res = await postBundle(
      bundle('transaction', [
        putEntry(patient(ident, { active: true }), `Patient?${q(ident)}`, {}, u),
        postEntry(observation(newIdent(), u)),
      ]),
    );
    const e = txOk(res, 2);
    assert.equal(e[0].response.status, '201 Created');
    const pid = locId(e[0], 'Patient');
    assert.deepEqual(await findIds('Patient', ident), [pid]);
    const obs = (await read('Observation', locId(e[1], 'Observation'))).json;
    assert.equal(obs.subject.reference, `Patient/${pid}`);
  });
});

describe('R-05 PATCH entries carry a JSON Patch as a Binary', () => {
  const ops = [
    { op: 'replace', path: '/active', value: false },
    { op: 'add', path: '/name', value: [{ family: 'Patched' }] },
  ];

  for (const type of ['transaction', 'batch']) {
    it(`in a ${type}: 200, version 2, the patch applied`, async () => {
      const p = await create(patient(newIdent(), { active: true }));
      const res = await postBundle(bundle(type, [patchEntry(`Patient/${p.id}`, ops, { ifMatch: 'W/"1"' })]));
      assert.equal(res.status, 200, show(res));
      assert.equal(res.json.type, `${type}-response`);
      const e = res.json.entry;
      assert.equal(e.length, 1);
      assert.equal(e[0].response.status, '200 OK', JSON.stringify(e[0]));
      assert.equal(e[0].response.location, `Patient/${p.id}/_history/2`);
      assert.equal(e[0].response.etag, 'W/"2"');
      const now = (await read('Patient', p.id)).json;
      assert.equal(now.active, false);
      assert.deepEqual(now.name, [{ family: 'Patched' }]);
      assert.equal(now.meta.versionId, '2');
    });
  }

  it('a conditional PATCH (Patient?identifier=...) in a transaction patches the single match', async () => {
    const ident = newIdent();
    const p = await create(patient(ident, { active: true }));
    const res = await postBundle(bundle('transaction', [patchEntry(`Patient?${q(ident)}`, ops)]));
    const e = txOk(res, 1);
    assert.equal(e[0].response.status, '200 OK');
    assert.equal(e[0].response.location, `Patient/${p.id}/_history/2`);
    const now = (await read('Patient', p.id)).json;
    assert.equal(now.active, false);
    assert.deepEqual(now.name, [{ family: 'Patched' }]);
  });

  it('a PATCH entry whose resource is not a JSON Patch Binary -> 400, nothing kept', async () => {
    const p = await create(patient(newIdent(), { active: true }));
    const res = await postBundle(
      bundle('transaction', [{ resource: patient(newIdent()), request: { method: 'PATCH', url: `Patient/${p.id}` } }]),
    );
    assertOutcome(res, { status: 400, expr: /^Bundle\.entry\[0\]/ });
    assert.equal((await read('Patient', p.id)).json.meta.versionId, '1');
  });
});

describe('R-05 transaction-response Bundle', () => {
  async function mixed(prefer) {
    const x = await create(patient(newIdent()));
    const y = await create(patient(newIdent()));
    const z = await create(patient(newIdent(), { active: true }));
    const clientId = `tx-${uid()}`;
    const postIdent = newIdent();
    const before = Date.now();
    const res = await postBundle(
      bundle('transaction', [
        getEntry(`Patient/${x.id}`),
        postEntry(patient(postIdent), urn()),
        putEntry(patient(newIdent(), { id: clientId })),
        deleteEntry(`Patient/${y.id}`),
        patchEntry(`Patient/${z.id}`, [{ op: 'replace', path: '/active', value: false }]),
      ]),
      { prefer },
    );
    return { res, x, y, z, clientId, before, after: Date.now() };
  }

  it('type transaction-response, one entry per request entry in request order, status/location/etag/lastModified', async () => {
    const { res, x, z, clientId, before, after } = await mixed();
    assert.match(res.headers.get('content-type') || '', /^application\/fhir\+json/);
    const e = txOk(res, 5);
    assert.equal(e[0].response.status, '200 OK');
    assert.equal(e[0].resource?.id, x.id, 'the GET entry carries the resource read');
    assert.equal(e[1].response.status, '201 Created');
    assert.match(e[1].response.location, LOCATION_1);
    assert.match(e[1].response.location, /^Patient\//);
    assert.equal(e[2].response.status, '201 Created');
    assert.equal(e[2].response.location, `Patient/${clientId}/_history/1`);
    assert.match(e[3].response.status, /^(200 OK|204 No Content)$/);
    assert.equal(e[4].response.status, '200 OK');
    assert.equal(e[4].response.location, `Patient/${z.id}/_history/2`);
    for (const [i, v] of [
      [1, 1],
      [2, 1],
      [4, 2],
    ]) {
      assert.equal(e[i].response.etag, `W/"${v}"`, `entry ${i} etag`);
      const lm = e[i].response.lastModified;
      assert.match(lm, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/, `entry ${i} lastModified`);
      const t = Date.parse(lm);
      assert.ok(t >= before - 5000 && t <= after + 5000, `entry ${i} lastModified ${lm} is the time of the write`);
    }
    // All writes of one transaction share one lastModified.
    assert.equal(e[1].response.lastModified, e[2].response.lastModified);
    assert.equal(e[1].response.lastModified, e[4].response.lastModified);
  });

  it('Prefer: return=representation puts each written resource in its entry', async () => {
    const { res, z, clientId } = await mixed('return=representation');
    const e = txOk(res, 5);
    for (const i of [1, 2, 4]) {
      const r = e[i].resource;
      assert.ok(r, `entry ${i} has a resource: ${JSON.stringify(e[i])}`);
      assert.equal(r.resourceType, 'Patient');
      const [, id, , vid] = e[i].response.location.split('/');
      assert.equal(r.id, id, `entry ${i} resource id matches its location`);
      assert.equal(r.meta.versionId, vid);
      assert.ok(e[i].fullUrl?.endsWith(`Patient/${id}`), `entry ${i} fullUrl ${e[i].fullUrl}`);
    }
    assert.equal(e[2].resource.id, clientId);
    assert.equal(e[4].resource.id, z.id);
    assert.equal(e[4].resource.active, false);
  });

  it('Prefer: return=OperationOutcome gives each write entry an outcome instead of the resource', async () => {
    const { res } = await mixed('return=OperationOutcome');
    const e = txOk(res, 5);
    for (const i of [1, 2, 4]) {
      assert.equal(e[i].resource, undefined, `entry ${i}: ${JSON.stringify(e[i])}`);
      assert.equal(e[i].response.outcome?.resourceType, 'OperationOutcome', `entry ${i}: ${JSON.stringify(e[i])}`);
      assert.ok(e[i].response.outcome.issue.every((x) => x.severity === 'information'), JSON.stringify(e[i]));
    }
  });

  it('Prefer: return=minimal leaves the resources out', async () => {
    const { res } = await mixed('return=minimal');
    const e = txOk(res, 5);
    for (const i of [1, 2, 4]) {
      assert.equal(e[i].resource, undefined, `entry ${i}: ${JSON.stringify(e[i])}`);
      assert.ok(e[i].response.location);
    }
  });
});

describe('R-05 batch: entries succeed or fail one by one', () => {
  it('a bad entry gets its own 4xx status and outcome; the others are processed (201) and kept', async () => {
    const ok1 = newIdent(),
      bad1 = newIdent(),
      bad2 = newIdent();
    const clientId = `tx-${uid()}`;
    const res = await postBundle(
      bundle('batch', [
        postEntry(patient(ok1)),
        postEntry({ resourceType: 'Observation', identifier: [bad1], code: { text: 'no status' } }),
        getEntry(`Patient/${uid()}`),
        putEntry(patient(newIdent(), { id: clientId })),
        postEntry(observation(bad2, `Patient/${uid()}`)),
        putEntry(patient(newIdent(), { id: `tx-${uid()}` }), undefined, { ifMatch: 'W/"3"' }),
      ]),
    );
    assert.equal(res.status, 200, show(res));
    assert.equal(res.json.resourceType, 'Bundle');
    assert.equal(res.json.type, 'batch-response');
    const e = res.json.entry;
    assert.equal(e.length, 6);
    assert.deepEqual(
      e.map((x) => x.response.status.slice(0, 3)),
      ['201', '422', '404', '201', '409', '412'],
      JSON.stringify(e.map((x) => x.response)),
    );
    assert.match(e[0].response.location, LOCATION_1);
    assert.equal(e[3].response.location, `Patient/${clientId}/_history/1`);
    for (const [i, expr] of [
      [1, /^Bundle\.entry\[1\]\.resource\.status$/],
      [2, /^Bundle\.entry\[2\]/],
      [4, /^Bundle\.entry\[4\]\.resource\.subject(\.reference)?$/],
      [5, /^Bundle\.entry\[5\]\.request\.ifMatch$/],
    ]) {
      const oo = e[i].response.outcome;
      assert.equal(oo?.resourceType, 'OperationOutcome', `entry ${i} has an outcome: ${JSON.stringify(e[i])}`);
      assert.ok(expressions(oo).some((x) => expr.test(x)), `entry ${i} outcome expression ${expr}: ${JSON.stringify(oo)}`);
    }
    assert.equal((await findIds('Patient', ok1)).length, 1, 'the good POST was kept');
    assert.equal((await read('Patient', clientId)).status, 200, 'the good PUT was kept');
    assert.deepEqual(await findIds('Observation', bad1), []);
    assert.deepEqual(await findIds('Observation', bad2), []);
  });

  it('Prefer: return=representation in a batch', async () => {
    const res = await postBundle(bundle('batch', [postEntry(patient(newIdent(), { active: true }))]), {
      prefer: 'return=representation',
    });
    assert.equal(res.status, 200, show(res));
    const e = res.json.entry[0];
    assert.equal(e.response.status, '201 Created');
    assert.equal(e.resource?.resourceType, 'Patient');
    assert.equal(e.response.location, `Patient/${e.resource.id}/_history/1`);
  });
});

describe('R-05 malformed batch/transaction requests', () => {
  for (const type of ['collection', 'document', 'message', 'searchset', 'history', 'transaction-response', 'batch-response']) {
    it(`a Bundle of type ${type} POSTed to the base -> 400 at Bundle.type, nothing kept`, async () => {
      const ident = newIdent();
      const res = await postBundle(bundle(type, [postEntry(patient(ident))]));
      assertOutcome(res, { status: 400, expr: /^Bundle\.type$/ });
      assert.deepEqual(await findIds('Patient', ident), []);
    });
  }

  it('a resource other than a Bundle POSTed to the base -> 400', async () => {
    const res = await request('POST', '', { body: patient(newIdent()) });
    assertOutcome(res, { status: 400 });
  });

  for (const type of ['transaction', 'batch']) {
    it(`${type}: an entry without request -> 400 at Bundle.entry[1].request, nothing kept`, async () => {
      const i0 = newIdent(),
        i1 = newIdent();
      const res = await postBundle(bundle(type, [postEntry(patient(i0)), { resource: patient(i1) }]));
      assertOutcome(res, { status: 400, expr: /^Bundle\.entry\[1\]\.request$/ });
      assert.deepEqual(await findIds('Patient', i0), []);
      assert.deepEqual(await findIds('Patient', i1), []);
    });

    it(`${type}: an entry with fullUrl and resource but no request -> 400 at Bundle.entry[0].request`, async () => {
      const i0 = newIdent();
      const res = await postBundle(bundle(type, [{ fullUrl: urn(), resource: patient(i0) }]));
      assertOutcome(res, { status: 400, expr: /^Bundle\.entry\[0\]\.request$/ });
      assert.deepEqual(await findIds('Patient', i0), []);
    });

    it(`${type}: an unknown request.method -> 400 at Bundle.entry[0].request.method`, async () => {
      const i0 = newIdent();
      const res = await postBundle(
        bundle(type, [{ resource: patient(i0), request: { method: 'COPY', url: 'Patient' } }]),
      );
      assert.ok(res.status === 400, show(res));
      assert.ok(expressions(res.json).some((x) => x.startsWith('Bundle.entry[0].request')), res.text);
      assert.deepEqual(await findIds('Patient', i0), []);
    });

    it(`${type}: a POST entry without a resource -> 400 at Bundle.entry[0].resource`, async () => {
      const res = await postBundle(bundle(type, [{ request: { method: 'POST', url: 'Patient' } }]));
      assertOutcome(res, { status: 400, expr: /^Bundle\.entry\[0\]\.resource$/ });
    });
  }

  it('a request.url on another server -> 400 at Bundle.entry[0].request.url, nothing kept', async () => {
    const i0 = newIdent();
    const res = await postBundle(
      bundle('transaction', [postEntry(patient(i0), undefined, { url: 'https://elsewhere.example.org/fhir/Patient' })]),
    );
    assertOutcome(res, { status: 400, expr: /^Bundle\.entry\[0\]\.request\.url$/ });
    assert.deepEqual(await findIds('Patient', i0), []);
  });

  it('a request.url that is this server\'s absolute URL is accepted', async () => {
    const i0 = newIdent();
    const res = await postBundle(bundle('transaction', [postEntry(patient(i0), undefined, { url: `${BASE}/Patient` })]));
    const e = txOk(res, 1);
    assert.equal(e[0].response.status, '201 Created');
    assert.deepEqual(await findIds('Patient', i0), [locId(e[0], 'Patient')]);
  });

  it('an empty transaction -> 200 transaction-response without entries', async () => {
    const res = await postBundle({ resourceType: 'Bundle', type: 'transaction' });
    assert.equal(res.status, 200, show(res));
    assert.equal(res.json.type, 'transaction-response');
    assert.equal((res.json.entry || []).length, 0);
  });
});

describe('R-05 referential integrity (strict by default)', () => {
  it('POST of an Observation whose subject does not exist -> 409, nothing stored', async () => {
    const ident = newIdent();
    const res = await post('Observation', observation(ident, `Patient/${uid()}`));
    assertOutcome(res, { status: 409, expr: /^Observation\.subject(\.reference)?$/ });
    assert.deepEqual(await findIds('Observation', ident), []);
  });

  it('inside a transaction the Patient may be created by a later entry (client id via PUT)', async () => {
    const pid = `tx-${uid()}`;
    const obsIdent = newIdent();
    const res = await postBundle(
      bundle('transaction', [postEntry(observation(obsIdent, `Patient/${pid}`)), putEntry(patient(newIdent(), { id: pid }))]),
    );
    const e = txOk(res, 2);
    assert.equal(e[0].response.status, '201 Created');
    assert.equal(e[1].response.status, '201 Created');
    const obs = (await read('Observation', locId(e[0], 'Observation'))).json;
    assert.equal(obs.subject.reference, `Patient/${pid}`);
  });

  it('inside a transaction the Patient may be created by a later entry (urn:uuid via POST)', async () => {
    const u = urn();
    const res = await postBundle(
      bundle('transaction', [postEntry(observation(newIdent(), u)), postEntry(patient(newIdent()), u)]),
    );
    const e = txOk(res, 2);
    const obs = (await read('Observation', locId(e[0], 'Observation'))).json;
    assert.equal(obs.subject.reference, `Patient/${locId(e[1], 'Patient')}`);
  });

  it('DELETE of a Patient that an Observation still refers to -> 409, the Patient stays', async () => {
    const p = await create(patient(newIdent()));
    await create(observation(newIdent(), `Patient/${p.id}`));
    const res = await request('DELETE', `Patient/${p.id}`);
    assertOutcome(res, { status: 409, code: 'conflict' });
    const after = await read('Patient', p.id);
    assert.equal(after.status, 200);
    assert.equal(after.json.meta.versionId, '1');
  });

  it('deleting the Patient and the Observation that refers to it in one transaction -> OK, both gone', async () => {
    const p = await create(patient(newIdent()));
    const o = await create(observation(newIdent(), `Patient/${p.id}`));
    const res = await postBundle(bundle('transaction', [deleteEntry(`Patient/${p.id}`), deleteEntry(`Observation/${o.id}`)]));
    const e = txOk(res, 2);
    for (const x of e) assert.match(x.response.status, /^(200|204)\b/);
    assert.equal((await read('Patient', p.id)).status, 410);
    assert.equal((await read('Observation', o.id)).status, 410);
  });

  it('deleting the Patient and updating the Observation to drop the reference in one transaction -> OK', async () => {
    const p = await create(patient(newIdent()));
    const o = await create(observation(newIdent(), `Patient/${p.id}`));
    const { subject, meta, ...rest } = o;
    const res = await postBundle(bundle('transaction', [putEntry(rest), deleteEntry(`Patient/${p.id}`)]));
    const e = txOk(res, 2);
    assert.equal(e[0].response.status, '200 OK');
    assert.equal((await read('Patient', p.id)).status, 410);
    const now = (await read('Observation', o.id)).json;
    assert.equal(now.subject, undefined);
    assert.equal(now.meta.versionId, '2');
  });

  it('a transaction that deletes a Patient another resource still refers to -> 409, nothing kept', async () => {
    const p = await create(patient(newIdent()));
    await create(observation(newIdent(), `Patient/${p.id}`));
    const other = newIdent();
    const res = await postBundle(bundle('transaction', [postEntry(patient(other)), deleteEntry(`Patient/${p.id}`)]));
    assertOutcome(res, { status: 409, code: 'conflict', expr: /^Bundle\.entry\[1\]/ });
    assert.equal((await read('Patient', p.id)).status, 200);
    assert.deepEqual(await findIds('Patient', other), []);
  });

  it('a batch entry deleting a referenced Patient fails alone with 409', async () => {
    const p = await create(patient(newIdent()));
    await create(observation(newIdent(), `Patient/${p.id}`));
    const other = newIdent();
    const res = await postBundle(bundle('batch', [deleteEntry(`Patient/${p.id}`), postEntry(patient(other))]));
    assert.equal(res.status, 200, show(res));
    assert.equal(res.json.entry[0].response.status, '409 Conflict');
    assert.equal(res.json.entry[0].response.outcome?.resourceType, 'OperationOutcome');
    assert.equal(res.json.entry[1].response.status, '201 Created');
    assert.equal((await read('Patient', p.id)).status, 200);
    assert.equal((await findIds('Patient', other)).length, 1);
  });
});
