// End-to-end tests of the FHIR R4 RESTful API (http.html) against a running kasama-server:
// create, read, vread, update, patch, delete, history, conditional interactions, Prefer,
// exact decimals, Japanese text, CapabilityStatement, health and the basic search.
// Every test uses fresh identifiers and ids, so the tests are independent of each other,
// of their order and of other test files writing to the same server.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, ORIGIN, uid, freshIdentifier, request, get, post, put, del, fhirClient, sleep } from './lib/client.js';
import {
  assertOutcome, assertVersion, assertLocation, createPatient, newPatient, walkPages, historyVersions,
  versionOfEntry, countByIdentifier,
} from './lib/assertions.js';

const PATCH = 'application/json-patch+json';
const patch = (path, ops, headers = {}) =>
  request('PATCH', path, { body: typeof ops === 'string' ? ops : JSON.stringify(ops), headers: { 'content-type': PATCH, ...headers } });

// ---------------------------------------------------------------------------------------------
describe('create (http.html#create)', () => {
  test('R-05 POST assigns a server id and answers 201 with Location, ETag W/"1", Last-Modified and meta', async () => {
    const clientId = uid('client');
    const body = { ...newPatient(), id: clientId };
    const res = await post('/Patient', body);
    assert.equal(res.status, 201, res.text);
    assert.match(res.headers.get('content-type'), /^application\/fhir\+json/);
    const id = res.json.id;
    assert.ok(id && id !== clientId, 'the id in the body is ignored; the server assigns its own');
    assert.match(id, /^[A-Za-z0-9\-.]{1,64}$/);
    assert.equal(res.json.resourceType, 'Patient');
    assert.deepEqual(res.json.identifier, body.identifier);
    assertLocation(res, 'Patient', id, 1);
    assertVersion(res, 1);
    // The client's id did not create anything.
    assertOutcome(await get(`/Patient/${clientId}`), 404, { code: 'not-found' });
    // What was returned is what is stored.
    const read = await get(`/Patient/${id}`);
    assert.equal(read.status, 200);
    assert.deepEqual(read.json, res.json);
  });

  test('two creates of the same content make two resources with different ids', async () => {
    const body = newPatient();
    const a = await post('/Patient', body);
    const b = await post('/Patient', body);
    assert.equal(a.status, 201);
    assert.equal(b.status, 201);
    assert.notEqual(a.json.id, b.json.id);
    assert.equal(await countByIdentifier('Patient', body.identifier[0]), 2);
  });

  test('meta.versionId and meta.lastUpdated sent by the client are replaced; other meta is kept', async () => {
    const body = newPatient({ meta: { versionId: '42', lastUpdated: '2001-01-01T00:00:00Z', tag: [{ system: 'urn:t', code: 'x' }] } });
    const res = await post('/Patient', body);
    assert.equal(res.status, 201, res.text);
    assertVersion(res, 1);
    assert.notEqual(res.json.meta.lastUpdated, '2001-01-01T00:00:00Z');
    assert.ok(Math.abs(Date.parse(res.json.meta.lastUpdated) - Date.now()) < 5 * 60_000, 'lastUpdated is now');
    assert.deepEqual(res.json.meta.tag, [{ system: 'urn:t', code: 'x' }]);
  });
});

// ---------------------------------------------------------------------------------------------
describe('read and vread (http.html#read, #vread)', () => {
  test('read returns the current version with ETag and Last-Modified', async () => {
    const p = await createPatient({ gender: 'female' });
    const r = await get(`/Patient/${p.id}`);
    assert.equal(r.status, 200);
    assertVersion(r, 1);
    assert.equal(r.json.gender, 'female');
  });

  test('HEAD on a read answers like GET without a body', async () => {
    const p = await createPatient();
    const r = await request('HEAD', `/Patient/${p.id}`);
    assert.equal(r.status, 200);
    assert.equal(r.text, '');
    assert.equal(r.headers.get('etag'), 'W/"1"');
    assert.ok(r.headers.get('last-modified'));
    const g = await get(`/Patient/${p.id}`);
    assert.equal(Number(r.headers.get('content-length')), Buffer.byteLength(g.text), 'HEAD Content-Length = GET body length');
  });

  const readCases = [
    { name: 'unknown id -> 404 not-found', path: () => `/Patient/${uid('nope')}`, status: 404, code: 'not-found' },
    { name: 'vread of an unknown version -> 404', path: (id) => `/Patient/${id}/_history/99`, status: 404, code: 'not-found' },
    { name: 'vread of version 0 -> 404', path: (id) => `/Patient/${id}/_history/0`, status: 404, code: 'not-found' },
    { name: 'vread of a non-numeric version -> 404', path: (id) => `/Patient/${id}/_history/abc`, status: 404, code: 'not-found' },
    { name: 'vread of an unknown resource -> 404', path: () => `/Patient/${uid('nope')}/_history/1`, status: 404, code: 'not-found' },
  ];
  for (const c of readCases) {
    test(`read/vread: ${c.name}`, async () => {
      const p = await createPatient();
      assertOutcome(await get(c.path(p.id)), c.status, { code: c.code });
    });
  }

  test('vread returns each version as it was', async () => {
    const p = await createPatient({ gender: 'male' });
    const u = await put(`/Patient/${p.id}`, { ...p.resource, gender: 'female' });
    assert.equal(u.status, 200, u.text);
    const v1 = await get(`/Patient/${p.id}/_history/1`);
    const v2 = await get(`/Patient/${p.id}/_history/2`);
    assert.equal(v1.status, 200);
    assert.equal(v2.status, 200);
    assertVersion(v1, 1);
    assertVersion(v2, 2);
    assert.equal(v1.json.gender, 'male');
    assert.equal(v2.json.gender, 'female');
    assert.deepEqual(v1.json, p.resource, 'vread of version 1 = the created resource');
  });
});

// ---------------------------------------------------------------------------------------------
describe('update (http.html#update)', () => {
  test('PUT on an existing resource: 200, version + 1, Location with _history/2', async () => {
    const p = await createPatient();
    await sleep(5);
    const res = await put(`/Patient/${p.id}`, { ...p.resource, active: true });
    assert.equal(res.status, 200, res.text);
    assertVersion(res, 2);
    assertLocation(res, 'Patient', p.id, 2);
    assert.equal(res.json.active, true);
    assert.ok(Date.parse(res.json.meta.lastUpdated) > Date.parse(p.resource.meta.lastUpdated), 'lastUpdated moves on');
    const r = await get(`/Patient/${p.id}`);
    assertVersion(r, 2);
    assert.deepEqual(await historyVersions('Patient', p.id), ['2', '1']);
  });

  test('update-as-create with a client id: 201, version 1', async () => {
    const id = uid('cid');
    const res = await put(`/Patient/${id}`, { ...newPatient(), id });
    assert.equal(res.status, 201, res.text);
    assert.equal(res.json.id, id);
    assertVersion(res, 1);
    assertLocation(res, 'Patient', id, 1);
    assert.equal((await get(`/Patient/${id}`)).status, 200);
  });

  const rejected = [
    { name: 'body without id -> 400 naming id', body: (id) => newPatient(), status: 400, expression: /(^|\.)id$/ },
    { name: 'body id differs from the URL -> 400 naming id', body: (id) => ({ ...newPatient(), id: id + 'x' }), status: 400, expression: /(^|\.)id$/ },
    { name: 'body of another type -> 400', body: (id) => ({ resourceType: 'Observation', id, status: 'final', code: { text: 'x' } }), status: 400, expression: 'resourceType' },
    { name: 'invalid content -> 400 naming the element', body: (id) => ({ ...newPatient(), id, gender: 42 }), status: 400, expression: 'Patient.gender' },
  ];
  for (const c of rejected) {
    test(`rejected update of an existing resource: ${c.name}; nothing changes`, async () => {
      const p = await createPatient();
      const res = await put(`/Patient/${p.id}`, c.body(p.id));
      assertOutcome(res, c.status, { expression: c.expression });
      const r = await get(`/Patient/${p.id}`);
      assertVersion(r, 1);
      assert.deepEqual(r.json, p.resource);
      assert.deepEqual(await historyVersions('Patient', p.id), ['1']);
    });
    test(`rejected update-as-create: ${c.name}; nothing is created`, async () => {
      const id = uid('cid');
      const res = await put(`/Patient/${id}`, c.body(id));
      assertOutcome(res, c.status, { expression: c.expression });
      assertOutcome(await get(`/Patient/${id}`), 404, { code: 'not-found' });
    });
  }

  test('an update that changes nothing keeps the version (no new history entry)', async () => {
    const p = await createPatient({ birthDate: '1950-01-02' });
    const res = await put(`/Patient/${p.id}`, p.resource);
    assert.equal(res.status, 200, res.text);
    assertVersion(res, 1);
    assert.equal(res.json.meta.lastUpdated, p.resource.meta.lastUpdated);
    // The same, without the meta the server wrote.
    const { meta, ...noMeta } = p.resource;
    const res2 = await put(`/Patient/${p.id}`, noMeta);
    assert.equal(res2.status, 200, res2.text);
    assertVersion(res2, 1);
    assert.deepEqual(await historyVersions('Patient', p.id), ['1']);
  });

  const ifMatch = [
    { name: 'If-Match W/"1" on version 1 -> 200', header: 'W/"1"', status: 200, after: 2 },
    { name: 'If-Match W/"2" on version 1 -> 412', header: 'W/"2"', status: 412, after: 1 },
    { name: 'If-Match W/"0" -> 412', header: 'W/"0"', status: 412, after: 1 },
    { name: 'If-Match "abc" (not a version) -> 400', header: '"abc"', status: 400, after: 1 },
  ];
  for (const c of ifMatch) {
    test(`version-aware update: ${c.name}`, async () => {
      const p = await createPatient();
      const res = await put(`/Patient/${p.id}`, { ...p.resource, active: false }, { headers: { 'if-match': c.header } });
      if (c.status < 300) {
        assert.equal(res.status, c.status, res.text);
        assertVersion(res, c.after);
      } else {
        assertOutcome(res, c.status, { diagnostics: /If-Match|version/i });
      }
      assertVersion(await get(`/Patient/${p.id}`), c.after);
      assert.equal((await historyVersions('Patient', p.id)).length, c.after);
    });
  }

  test('If-Match on a resource that does not exist -> 412, nothing created', async () => {
    const id = uid('cid');
    const res = await put(`/Patient/${id}`, { ...newPatient(), id }, { headers: { 'if-match': 'W/"1"' } });
    assertOutcome(res, 412);
    assert.equal((await get(`/Patient/${id}`)).status, 404);
  });

  test('PUT after delete brings the resource back with the next version (201)', async () => {
    const p = await createPatient();
    assert.equal((await del(`/Patient/${p.id}`)).status, 200);
    const res = await put(`/Patient/${p.id}`, p.resource);
    assert.equal(res.status, 201, res.text);
    assertVersion(res, 3);
    assertVersion(await get(`/Patient/${p.id}`), 3);
    assert.deepEqual(await historyVersions('Patient', p.id), ['3', '2', '1']);
  });
});

// ---------------------------------------------------------------------------------------------
describe('delete (http.html#delete)', () => {
  test('delete, then read is 410 and history keeps all versions including the delete', async () => {
    const p = await createPatient();
    const u = await put(`/Patient/${p.id}`, { ...p.resource, active: true });
    assert.equal(u.status, 200);
    const d = await del(`/Patient/${p.id}`);
    assert.ok([200, 204].includes(d.status), `delete: ${d.status} ${d.text}`);
    assert.equal(d.headers.get('etag'), 'W/"3"', 'a delete answers with the ETag of the deletion version');
    if (d.status === 200 && d.text) assert.equal(d.json.resourceType, 'OperationOutcome');
    assertOutcome(await get(`/Patient/${p.id}`), 410, { code: 'deleted' });
    assert.equal((await request('HEAD', `/Patient/${p.id}`)).status, 410, 'HEAD of a deleted resource');
    assertOutcome(await get(`/Patient/${p.id}/_history/3`), 410, { code: 'deleted' });
    assert.equal((await get(`/Patient/${p.id}/_history/1`)).status, 200, 'older versions stay readable');
    assert.equal((await get(`/Patient/${p.id}/_history/2`)).status, 200);
    const h = await get(`/Patient/${p.id}/_history`);
    assert.equal(h.status, 200);
    assert.equal(h.json.total, 3);
    const [e3, e2, e1] = h.json.entry;
    assert.equal(e3.request.method, 'DELETE');
    assert.equal(e3.request.url, `Patient/${p.id}`);
    assert.equal(e3.resource, undefined, 'a delete entry has no resource');
    assert.equal(e3.response.etag, 'W/"3"');
    assert.match(e3.response.status, /^204|^200|^410/);
    assert.equal(e2.request.method, 'PUT');
    assert.equal(e2.resource.meta.versionId, '2');
    assert.equal(e1.request.method, 'POST');
    assert.equal(e1.resource.meta.versionId, '1');
    assert.match(e1.response.status, /^201/);
    // The deleted resource is not found by search any more.
    assert.equal(await countByIdentifier('Patient', p.identifier), 0);
  });

  test('delete with Prefer: return=minimal -> 204 without a body', async () => {
    const p = await createPatient();
    const d = await del(`/Patient/${p.id}`, { headers: { prefer: 'return=minimal' } });
    assert.equal(d.status, 204);
    assert.equal(d.text, '');
    assert.equal((await get(`/Patient/${p.id}`)).status, 410);
  });

  test('delete of an unknown id -> 204 and nothing appears', async () => {
    const id = uid('gone');
    const d = await del(`/Patient/${id}`);
    assert.equal(d.status, 204, d.text);
    assert.equal(d.text, '');
    assert.equal((await get(`/Patient/${id}`)).status, 404);
  });

  test('deleting an already deleted resource adds no version', async () => {
    const p = await createPatient();
    assert.equal((await del(`/Patient/${p.id}`)).status, 200);
    const again = await del(`/Patient/${p.id}`);
    assert.ok([200, 204].includes(again.status), again.text);
    assert.deepEqual(await historyVersions('Patient', p.id), ['2', '1']);
  });

  test('delete with If-Match of an old version -> 412, the resource stays', async () => {
    const p = await createPatient();
    await put(`/Patient/${p.id}`, { ...p.resource, active: true });
    assertOutcome(await del(`/Patient/${p.id}`, { headers: { 'if-match': 'W/"1"' } }), 412);
    assertVersion(await get(`/Patient/${p.id}`), 2);
    const ok = await del(`/Patient/${p.id}`, { headers: { 'if-match': 'W/"2"' } });
    assert.equal(ok.status, 200, ok.text);
    assert.equal((await get(`/Patient/${p.id}`)).status, 410);
  });
});

// ---------------------------------------------------------------------------------------------
describe('history (http.html#history)', () => {
  test('instance history: Bundle type history, newest first, with total, fullUrl, request and response', async () => {
    const p = await createPatient();
    await put(`/Patient/${p.id}`, { ...p.resource, active: true });
    await put(`/Patient/${p.id}`, { ...p.resource, active: false });
    const h = await get(`/Patient/${p.id}/_history`);
    assert.equal(h.status, 200);
    assert.equal(h.json.resourceType, 'Bundle');
    assert.equal(h.json.type, 'history');
    assert.equal(h.json.total, 3);
    assert.deepEqual(h.json.entry.map(versionOfEntry), ['3', '2', '1']);
    for (const e of h.json.entry) {
      assert.equal(e.fullUrl, `${BASE}/Patient/${p.id}`);
      assert.equal(e.resource.id, p.id);
      assert.equal(e.response.etag, `W/"${e.resource.meta.versionId}"`);
      assert.ok(e.response.lastModified);
      assert.equal(e.response.lastModified, e.resource.meta.lastUpdated);
    }
    assert.ok(h.json.link.some((l) => l.relation === 'self'));
  });

  test('history of an unknown resource -> 404', async () => {
    assertOutcome(await get(`/Patient/${uid('nope')}/_history`), 404);
  });

  test('instance history paged with _count=2 while the resource keeps changing: every version once', async () => {
    const p = await createPatient();
    for (let v = 2; v <= 7; v++) {
      const r = await put(`/Patient/${p.id}`, { ...p.resource, birthDate: `19${50 + v}-01-01` });
      assert.equal(r.status, 200);
    }
    let extra = 0;
    const { pages, entries } = await walkPages(`/Patient/${p.id}/_history?_count=2`, {
      between: async () => {
        extra++;
        const r = await put(`/Patient/${p.id}`, { ...p.resource, birthDate: `20${10 + extra}-01-01` });
        assert.equal(r.status, 200);
      },
    });
    assert.equal(pages[0].total, 7);
    assert.ok(pages.every((pg) => (pg.entry ?? []).length <= 2), '_count=2 is honoured');
    const versions = entries.map((e) => Number(versionOfEntry(e)));
    assert.equal(new Set(versions).size, versions.length, `no duplicates: ${versions}`);
    for (let v = 1; v <= 7; v++) assert.ok(versions.includes(v), `version ${v} present: ${versions}`);
    assert.deepEqual(versions, [...versions].sort((a, b) => b - a), 'newest first');
    assert.ok(extra >= 3, 'writes happened between pages');
  });

  async function walkWithConcurrentWrites(firstUrl, created, system) {
    const during = [];
    const { entries } = await walkPages(firstUrl, {
      between: async () => {
        const n = await createPatient();
        during.push(n.id);
      },
    });
    const keys = entries.map((e) => `${e.fullUrl}|${versionOfEntry(e)}`);
    const dups = keys.filter((k, i) => keys.indexOf(k) !== i);
    assert.deepEqual(dups, [], 'no entry appears twice');
    for (const c of created) {
      const got = entries.filter((e) => e.fullUrl === `${BASE}/Patient/${c.id}`).map(versionOfEntry).sort();
      assert.deepEqual(got, c.versions, `all versions of Patient/${c.id}`);
    }
    return { entries, during };
  }

  test('type history with _since and _count=3, walked while other Patients are created: nothing missing, no duplicates', async () => {
    const first = await createPatient();
    const since = first.resource.meta.lastUpdated;
    const created = [{ id: first.id, versions: ['1'] }];
    for (let i = 0; i < 6; i++) {
      const p = await createPatient();
      const versions = ['1'];
      if (i % 2 === 0) {
        await put(`/Patient/${p.id}`, { ...p.resource, active: true });
        versions.push('2');
      }
      created.push({ id: p.id, versions });
    }
    const { entries } = await walkWithConcurrentWrites(`/Patient/_history?_since=${encodeURIComponent(since)}&_count=3`, created);
    for (const e of entries) {
      assert.match(e.fullUrl, new RegExp(`^${BASE}/Patient/`), 'type history holds only Patients');
      if (e.resource) assert.ok(e.resource.meta.lastUpdated >= since || Date.parse(e.resource.meta.lastUpdated) >= Date.parse(since), '_since');
    }
  });

  test('system history with _since and _count=4: all types, nothing missing, no duplicates', async () => {
    const first = await createPatient();
    const since = first.resource.meta.lastUpdated;
    const obs = await post('/Observation', { resourceType: 'Observation', status: 'final', code: { text: 'e2e' }, subject: { reference: `Patient/${first.id}` } });
    assert.equal(obs.status, 201, obs.text);
    const created = [{ id: first.id, versions: ['1'] }];
    for (let i = 0; i < 4; i++) created.push({ id: (await createPatient()).id, versions: ['1'] });
    const { entries } = await walkWithConcurrentWrites(`/_history?_since=${encodeURIComponent(since)}&_count=4`, created);
    assert.ok(entries.some((e) => e.fullUrl === `${BASE}/Observation/${obs.json.id}`), 'the Observation is in the system history');
  });

  test('_since keeps only versions at or after the instant', async () => {
    const p = await createPatient();
    await sleep(20);
    const u = await put(`/Patient/${p.id}`, { ...p.resource, active: true });
    const since = u.json.meta.lastUpdated;
    const h = await get(`/Patient/${p.id}/_history?_since=${encodeURIComponent(since)}`);
    assert.equal(h.status, 200, h.text);
    assert.deepEqual(h.json.entry.map(versionOfEntry), ['2']);
    assert.equal(h.json.total, 1);
    const future = new Date(Date.now() + 3600_000).toISOString();
    const none = await get(`/Patient/${p.id}/_history?_since=${encodeURIComponent(future)}`);
    assert.equal(none.status, 200);
    assert.equal(none.json.total, 0);
    assert.equal((none.json.entry ?? []).length, 0);
  });

  test('_since in Japan time (+09:00) means the same instant as in UTC', async () => {
    const p = await createPatient();
    await sleep(20);
    const u = await put(`/Patient/${p.id}`, { ...p.resource, active: true });
    const t = new Date(Date.parse(u.json.meta.lastUpdated) + 9 * 3600_000).toISOString().replace('Z', '+09:00');
    const h = await get(`/Patient/${p.id}/_history?_since=${encodeURIComponent(t)}`);
    assert.equal(h.status, 200, h.text);
    assert.deepEqual(h.json.entry.map(versionOfEntry), ['2'], `_since=${t}`);
    const t1 = new Date(Date.parse(u.json.meta.lastUpdated) + 9 * 3600_000 + 1).toISOString().replace('Z', '+09:00');
    const none = await get(`/Patient/${p.id}/_history?_since=${encodeURIComponent(t1)}`);
    assert.deepEqual(none.json.entry ?? [], [], `_since=${t1} is 1 ms after the last version`);
  });

  test('_at returns the version current at that time', async () => {
    const p = await createPatient();
    await sleep(30);
    const between = new Date(Date.parse(p.resource.meta.lastUpdated) + 10).toISOString();
    await sleep(30);
    const u = await put(`/Patient/${p.id}`, { ...p.resource, active: true });
    assert.equal(u.status, 200);
    const h1 = await get(`/Patient/${p.id}/_history?_at=${encodeURIComponent(between)}`);
    assert.equal(h1.status, 200, h1.text);
    assert.deepEqual(h1.json.entry.map(versionOfEntry), ['1']);
    await sleep(10);
    const later = new Date(Date.now()).toISOString();
    const h2 = await get(`/Patient/${p.id}/_history?_at=${encodeURIComponent(later)}`);
    assert.deepEqual(h2.json.entry.map(versionOfEntry), ['2']);
    const before = new Date(Date.parse(p.resource.meta.lastUpdated) - 60_000).toISOString();
    const h0 = await get(`/Patient/${p.id}/_history?_at=${encodeURIComponent(before)}`);
    assert.deepEqual(h0.json.entry ?? [], []);
  });

  test('_count=0 gives the total only', async () => {
    const p = await createPatient();
    await put(`/Patient/${p.id}`, { ...p.resource, active: true });
    const h = await get(`/Patient/${p.id}/_history?_count=0`);
    assert.equal(h.status, 200);
    assert.equal(h.json.total, 2);
    assert.deepEqual(h.json.entry ?? [], []);
  });
});

// ---------------------------------------------------------------------------------------------
describe('Prefer return= (http.html#ops)', () => {
  const writes = [
    { name: 'create', run: async (pref) => post('/Patient', newPatient(), { headers: pref }), status: 201, version: 1 },
    {
      name: 'update',
      run: async (pref) => {
        const p = await createPatient();
        return put(`/Patient/${p.id}`, { ...p.resource, active: true }, { headers: pref });
      },
      status: 200,
      version: 2,
    },
    {
      name: 'patch',
      run: async (pref) => {
        const p = await createPatient();
        return patch(`/Patient/${p.id}`, [{ op: 'add', path: '/active', value: true }], pref);
      },
      status: 200,
      version: 2,
    },
  ];
  for (const w of writes) {
    test(`${w.name} with return=minimal: no body, but Location and ETag`, async () => {
      const res = await w.run({ prefer: 'return=minimal' });
      assert.equal(res.status, w.status, res.text);
      assert.equal(res.text, '');
      assert.equal(res.headers.get('etag'), `W/"${w.version}"`);
      assert.match(res.headers.get('location'), new RegExp(`^${BASE}/Patient/[^/]+/_history/${w.version}$`));
      assert.ok(res.headers.get('last-modified'));
    });
    test(`${w.name} with return=representation: the resource`, async () => {
      const res = await w.run({ prefer: 'return=representation' });
      assert.equal(res.status, w.status, res.text);
      assert.equal(res.json.resourceType, 'Patient');
      assertVersion(res, w.version);
    });
    test(`${w.name} with return=OperationOutcome: an informational OperationOutcome`, async () => {
      const res = await w.run({ prefer: 'return=OperationOutcome' });
      assert.equal(res.status, w.status, res.text);
      assert.equal(res.json.resourceType, 'OperationOutcome');
      assert.ok(res.json.issue.every((i) => i.severity === 'information'), res.text);
      assert.equal(res.headers.get('etag'), `W/"${w.version}"`);
    });
  }
});

// ---------------------------------------------------------------------------------------------
describe('conditional create (If-None-Exist)', () => {
  const cases = [
    { name: '0 matches -> 201 creates', existing: 0, status: 201, after: 1 },
    { name: '1 match -> 200 returns the existing, creates nothing', existing: 1, status: 200, after: 1 },
    { name: '2 matches -> 412, creates nothing', existing: 2, status: 412, after: 2 },
  ];
  for (const c of cases) {
    test(c.name, async () => {
      const ident = freshIdentifier();
      const existing = [];
      for (let i = 0; i < c.existing; i++) {
        const r = await post('/Patient', { resourceType: 'Patient', identifier: [ident] });
        assert.equal(r.status, 201);
        existing.push(r.json);
      }
      const res = await post('/Patient', { resourceType: 'Patient', identifier: [ident], active: true }, {
        headers: { 'if-none-exist': `identifier=${ident.system}|${ident.value}` },
      });
      if (c.status === 412) {
        assertOutcome(res, 412);
      } else {
        assert.equal(res.status, c.status, res.text);
        assertVersion(res, 1);
        assertLocation(res, 'Patient', res.json.id, 1);
      }
      if (c.existing === 1) {
        assert.equal(res.json.id, existing[0].id);
        assert.deepEqual(res.json, existing[0], 'the existing resource, unchanged');
      }
      assert.equal(await countByIdentifier('Patient', ident), c.after);
    });
  }

  test('If-None-Exist with a full query URL form (Patient?identifier=...) and _id', async () => {
    const p = await createPatient();
    const r1 = await post('/Patient', newPatient(), { headers: { 'if-none-exist': `_id=${p.id}` } });
    assert.equal(r1.status, 200, r1.text);
    assert.equal(r1.json.id, p.id);
    const r2 = await post('/Patient', newPatient(), {
      headers: { 'if-none-exist': `identifier=${encodeURIComponent(p.identifier.system)}|${encodeURIComponent(p.identifier.value)}` },
    });
    assert.equal(r2.status, 200, r2.text);
    assert.equal(r2.json.id, p.id);
  });

  test('a match at version 2 answers 200 with ETag W/"2" and Location _history/2; return=minimal has no body', async () => {
    const p = await createPatient();
    await put(`/Patient/${p.id}`, { ...p.resource, active: true });
    const q = `identifier=${encodeURIComponent(`${p.identifier.system}|${p.identifier.value}`)}`;
    const r = await post('/Patient', newPatient(), { headers: { 'if-none-exist': q } });
    assert.equal(r.status, 200, r.text);
    assertVersion(r, 2);
    assertLocation(r, 'Patient', p.id, 2);
    const m = await post('/Patient', newPatient(), { headers: { 'if-none-exist': q, prefer: 'return=minimal' } });
    assert.equal(m.status, 200);
    assert.equal(m.text, '');
    assert.equal(m.headers.get('etag'), 'W/"2"');
  });

  test('a deleted resource does not match: 201 creates a new one', async () => {
    const p = await createPatient();
    await del(`/Patient/${p.id}`);
    const r = await post('/Patient', { resourceType: 'Patient', identifier: [p.identifier] }, {
      headers: { 'if-none-exist': `identifier=${encodeURIComponent(`${p.identifier.system}|${p.identifier.value}`)}` },
    });
    assert.equal(r.status, 201, r.text);
    assert.notEqual(r.json.id, p.id);
    assert.equal(await countByIdentifier('Patient', p.identifier), 1);
  });

  test('If-None-Exist with an unsupported parameter -> 400 naming it, nothing created', async () => {
    const body = newPatient();
    const res = await post('/Patient', body, { headers: { 'if-none-exist': 'nonsense-param=1' } });
    assertOutcome(res, 400, { diagnostics: 'nonsense-param' });
    assert.equal(await countByIdentifier('Patient', body.identifier[0]), 0);
  });
});

// ---------------------------------------------------------------------------------------------
describe('conditional update (PUT Type?criteria)', () => {
  const cases = [
    { name: '0 matches, no id -> 201 creates with a new id', existing: 0, status: 201, count: 1 },
    { name: '1 match -> 200 updates that resource', existing: 1, status: 200, count: 1 },
    { name: '2 matches -> 412, nothing changes', existing: 2, status: 412, count: 2 },
  ];
  for (const c of cases) {
    test(c.name, async () => {
      const ident = freshIdentifier();
      const existing = [];
      for (let i = 0; i < c.existing; i++) existing.push((await post('/Patient', { resourceType: 'Patient', identifier: [ident] })).json);
      const q = `identifier=${encodeURIComponent(`${ident.system}|${ident.value}`)}`;
      const res = await put(`/Patient?${q}`, { resourceType: 'Patient', identifier: [ident], gender: 'other' });
      if (c.status === 412) {
        assertOutcome(res, 412);
        for (const e of existing) assert.deepEqual((await get(`/Patient/${e.id}`)).json, e);
      } else {
        assert.equal(res.status, c.status, res.text);
        assert.equal(res.json.gender, 'other');
        if (c.existing === 1) {
          assert.equal(res.json.id, existing[0].id);
          assertVersion(res, 2);
        } else {
          assertVersion(res, 1);
        }
        assertLocation(res, 'Patient', res.json.id, c.existing === 1 ? 2 : 1);
      }
      assert.equal(await countByIdentifier('Patient', ident), c.count);
    });
  }

  test('1 match but the body id names another resource -> 400, nothing changes', async () => {
    const p = await createPatient();
    const q = `identifier=${encodeURIComponent(`${p.identifier.system}|${p.identifier.value}`)}`;
    const res = await put(`/Patient?${q}`, { ...p.resource, id: uid('other'), active: true });
    assertOutcome(res, 400, { expression: /(^|\.)id$/ });
    assertVersion(await get(`/Patient/${p.id}`), 1);
  });

  test('0 matches with a body id creates that id', async () => {
    const ident = freshIdentifier();
    const id = uid('cid');
    const res = await put(`/Patient?identifier=${encodeURIComponent(`${ident.system}|${ident.value}`)}`, { resourceType: 'Patient', id, identifier: [ident] });
    assert.equal(res.status, 201, res.text);
    assert.equal(res.json.id, id);
  });
});

// ---------------------------------------------------------------------------------------------
describe('conditional interactions with If-Match', () => {
  const cases = [
    { name: 'conditional update', run: (q, p) => put(`/Patient?${q}`, { ...p.resource, active: true }, { headers: { 'if-match': 'W/"5"' } }) },
    { name: 'conditional patch', run: (q) => patch(`/Patient?${q}`, [{ op: 'add', path: '/active', value: true }], { 'if-match': 'W/"5"' }) },
    { name: 'conditional delete', run: (q) => del(`/Patient?${q}`, { headers: { 'if-match': 'W/"5"' } }) },
  ];
  for (const c of cases) {
    test(`${c.name} with a stale If-Match -> 412, nothing changes`, async () => {
      const p = await createPatient();
      const q = `identifier=${encodeURIComponent(`${p.identifier.system}|${p.identifier.value}`)}`;
      assertOutcome(await c.run(q, p), 412, { diagnostics: /If-Match|version/i });
      const read = await get(`/Patient/${p.id}`);
      assertVersion(read, 1);
      assert.deepEqual(read.json, p.resource);
    });
  }
});

describe('conditional delete (DELETE Type?criteria)', () => {
  test('0 matches -> 204 (nothing to delete)', async () => {
    const ident = freshIdentifier();
    const d = await del(`/Patient?identifier=${encodeURIComponent(`${ident.system}|${ident.value}`)}`);
    assert.ok([200, 204].includes(d.status), d.text);
  });
  test('1 match -> deleted; read gives 410', async () => {
    const p = await createPatient();
    const d = await del(`/Patient?identifier=${encodeURIComponent(`${p.identifier.system}|${p.identifier.value}`)}`);
    assert.ok([200, 204].includes(d.status), d.text);
    assertOutcome(await get(`/Patient/${p.id}`), 410);
    assert.equal(await countByIdentifier('Patient', p.identifier), 0);
  });
  test('2 matches -> 412, both stay (conditionalDelete single)', async () => {
    const ident = freshIdentifier();
    const a = (await post('/Patient', { resourceType: 'Patient', identifier: [ident] })).json;
    const b = (await post('/Patient', { resourceType: 'Patient', identifier: [ident] })).json;
    assertOutcome(await del(`/Patient?identifier=${encodeURIComponent(`${ident.system}|${ident.value}`)}`), 412);
    assert.equal((await get(`/Patient/${a.id}`)).status, 200);
    assert.equal((await get(`/Patient/${b.id}`)).status, 200);
  });
});

// ---------------------------------------------------------------------------------------------
describe('conditional read (If-None-Match, If-Modified-Since)', () => {
  const cases = [
    { name: 'If-None-Match W/"1" on version 1 -> 304', headers: () => ({ 'if-none-match': 'W/"1"' }), status: 304 },
    { name: 'If-None-Match W/"2" on version 1 -> 200', headers: () => ({ 'if-none-match': 'W/"2"' }), status: 200 },
    { name: 'If-Modified-Since = Last-Modified -> 304', headers: (lm) => ({ 'if-modified-since': lm }), status: 304 },
    { name: 'If-Modified-Since a second after (and in the past) -> 304', wait: 1100, headers: (lm) => ({ 'if-modified-since': new Date(Date.parse(lm) + 1000).toUTCString() }), status: 304 },
    { name: 'If-Modified-Since that is not a date -> 200 (ignored)', headers: () => ({ 'if-modified-since': 'yesterday' }), status: 200 },
    { name: 'If-Modified-Since an hour before -> 200', headers: (lm) => ({ 'if-modified-since': new Date(Date.parse(lm) - 3600_000).toUTCString() }), status: 200 },
  ];
  for (const c of cases) {
    test(c.name, async () => {
      const p = await createPatient();
      const lm = p.res.headers.get('last-modified');
      if (c.wait) await sleep(c.wait);
      const r = await get(`/Patient/${p.id}`, { headers: c.headers(lm) });
      assert.equal(r.status, c.status, r.text);
      if (c.status === 304) {
        assert.equal(r.text, '', '304 has no body');
        assert.equal(r.headers.get('etag'), 'W/"1"');
      } else {
        assertVersion(r, 1);
      }
    });
  }
  test('If-None-Match on vread -> 304', async () => {
    const p = await createPatient();
    const r = await get(`/Patient/${p.id}/_history/1`, { headers: { 'if-none-match': 'W/"1"' } });
    assert.equal(r.status, 304);
  });
});

// ---------------------------------------------------------------------------------------------
describe('patch with JSON Patch (http.html#patch)', () => {
  const ok = [
    { name: 'add', ops: [{ op: 'add', path: '/active', value: true }], check: (r) => assert.equal(r.active, true) },
    { name: 'add to an array', ops: [{ op: 'add', path: '/name/-', value: { family: 'Second' } }], check: (r) => assert.equal(r.name[1].family, 'Second') },
    { name: 'replace', ops: [{ op: 'replace', path: '/name/0/family', value: '笠間' }], check: (r) => assert.equal(r.name[0].family, '笠間') },
    { name: 'remove', ops: [{ op: 'remove', path: '/birthDate' }], check: (r) => assert.equal(r.birthDate, undefined) },
    {
      name: 'test then replace',
      ops: [{ op: 'test', path: '/gender', value: 'male' }, { op: 'replace', path: '/gender', value: 'female' }],
      check: (r) => assert.equal(r.gender, 'female'),
    },
    { name: 'move and copy', ops: [{ op: 'copy', from: '/name/0', path: '/name/-' }], check: (r) => assert.equal(r.name.length, 2) },
  ];
  for (const c of ok) {
    test(`PATCH ${c.name} -> 200, version 2`, async () => {
      const p = await createPatient({ birthDate: '1950-01-01', gender: 'male' });
      const res = await patch(`/Patient/${p.id}`, c.ops);
      assert.equal(res.status, 200, res.text);
      assertVersion(res, 2);
      assertLocation(res, 'Patient', p.id, 2);
      c.check(res.json);
      const read = await get(`/Patient/${p.id}`);
      assertVersion(read, 2);
      c.check(read.json);
      assert.deepEqual(read.json.identifier, p.resource.identifier);
    });
  }

  const bad = [
    { name: 'failed test -> 422', ops: [{ op: 'test', path: '/gender', value: 'female' }, { op: 'replace', path: '/gender', value: 'other' }], status: 422 },
    { name: 'replace of a missing path -> 400', ops: [{ op: 'replace', path: '/nonexistent/0', value: 1 }], status: 400 },
    { name: 'remove of a missing path -> 400', ops: [{ op: 'remove', path: '/deceasedBoolean' }], status: 400 },
    { name: 'unknown op -> 400', ops: [{ op: 'frobnicate', path: '/active', value: true }], status: 400 },
    { name: 'not an array -> 400', ops: { op: 'add', path: '/active', value: true }, status: 400 },
    { name: 'not JSON -> 400', ops: '[{"op":', status: 400 },
    { name: 'patching the id -> 400 naming id', ops: [{ op: 'replace', path: '/id', value: 'other-id' }], status: 400, expression: /(^|\.)id$/ },
    { name: 'removing the id -> 400', ops: [{ op: 'remove', path: '/id' }], status: 400, expression: /(^|\.)id$/ },
    { name: 'patching resourceType -> 400', ops: [{ op: 'replace', path: '/resourceType', value: 'Group' }], status: 400, expression: 'resourceType' },
    { name: 'result invalid (bad birthDate) -> 400 naming it', ops: [{ op: 'replace', path: '/birthDate', value: '1950-13-01' }], status: 400, expression: 'Patient.birthDate' },
    { name: 'result has an unknown element -> 400 naming it', ops: [{ op: 'add', path: '/favouriteColour', value: 'blue' }], status: 400, expression: 'favouriteColour' },
    { name: 'If-Match of another version -> 412', ops: [{ op: 'add', path: '/active', value: true }], headers: { 'if-match': 'W/"7"' }, status: 412 },
    { name: 'Content-Type application/fhir+json -> 415', ops: [{ op: 'add', path: '/active', value: true }], headers: { 'content-type': 'application/fhir+json' }, status: 415 },
    { name: 'Content-Type application/json -> 415', ops: [{ op: 'add', path: '/active', value: true }], headers: { 'content-type': 'application/json' }, status: 415 },
    { name: 'FHIRPath Patch (Parameters) -> 415', ops: { resourceType: 'Parameters' }, headers: { 'content-type': 'application/fhir+json' }, status: 415 },
  ];
  for (const c of bad) {
    test(`PATCH ${c.name}; nothing changes`, async () => {
      const p = await createPatient({ birthDate: '1950-01-01', gender: 'male' });
      const res = await patch(`/Patient/${p.id}`, c.ops, c.headers);
      assertOutcome(res, c.status, { expression: c.expression });
      const read = await get(`/Patient/${p.id}`);
      assertVersion(read, 1);
      assert.deepEqual(read.json, p.resource);
    });
  }

  test('PATCH that removes a required element -> 422 naming it; nothing changes', async () => {
    const o = await post('/Observation', { resourceType: 'Observation', status: 'final', code: { text: 'x' } });
    assert.equal(o.status, 201);
    const res = await patch(`/Observation/${o.json.id}`, [{ op: 'remove', path: '/status' }]);
    assertOutcome(res, 422, { expression: 'Observation.status' });
    const read = await get(`/Observation/${o.json.id}`);
    assertVersion(read, 1);
    assert.deepEqual(read.json, o.json);
  });

  test('PATCH with the matching If-Match -> 200', async () => {
    const p = await createPatient();
    const res = await patch(`/Patient/${p.id}`, [{ op: 'add', path: '/active', value: true }], { 'if-match': 'W/"1"' });
    assert.equal(res.status, 200, res.text);
    assertVersion(res, 2);
  });

  test('PATCH of an unknown resource -> 404; of a deleted one -> 410', async () => {
    assertOutcome(await patch(`/Patient/${uid('nope')}`, [{ op: 'add', path: '/active', value: true }]), 404);
    const p = await createPatient();
    await del(`/Patient/${p.id}`);
    assertOutcome(await patch(`/Patient/${p.id}`, [{ op: 'add', path: '/active', value: true }]), 410);
  });

  test('conditional PATCH (PATCH Patient?identifier=...)', async () => {
    const p = await createPatient();
    const q = `identifier=${encodeURIComponent(`${p.identifier.system}|${p.identifier.value}`)}`;
    const res = await patch(`/Patient?${q}`, [{ op: 'add', path: '/active', value: true }]);
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.id, p.id);
    assertVersion(res, 2);
    const ident = freshIdentifier();
    assertOutcome(await patch(`/Patient?identifier=${encodeURIComponent(`${ident.system}|${ident.value}`)}`, [{ op: 'add', path: '/active', value: true }]), 404);
  });
});

// ---------------------------------------------------------------------------------------------
describe('R-05 exact content: decimals and Japanese text', () => {
  // JSON.parse would turn 1.50 into 1.5: these checks read the raw response text.
  const decimals = ['1.50', '1e2', '0.000100', '100.000', '-0.0', '12345678901234567890.123456789', '1E-7', '3.0e+10'];
  const obsText = (id, ident) => {
    const rr = decimals.map((d) => `{"low":{"value":${d},"unit":"mg"},"text":"${d}"}`).join(',');
    return `{"resourceType":"Observation"${id ? `,"id":"${id}"` : ''},"identifier":[{"system":"${ident.system}","value":"${ident.value}"}],` +
      `"status":"final","code":{"text":"decimal check"},"valueQuantity":{"value":1.50,"unit":"mg/dL"},"referenceRange":[${rr}]}`;
  };
  const assertDecimals = (text, where) => {
    assert.ok(text.includes('"valueQuantity":{"value":1.50,'), `${where}: 1.50 kept: ${text}`);
    for (const d of decimals) assert.ok(text.includes(`{"low":{"value":${d},"unit":"mg"}`), `${where}: ${d} kept exactly: ${text}`);
  };

  test('decimals keep their exact text through create, read, vread, update, history and search', async () => {
    const ident = freshIdentifier();
    const c = await post('/Observation', obsText(null, ident));
    assert.equal(c.status, 201, c.text);
    assertDecimals(c.text, 'create');
    const id = c.json.id;
    assertDecimals((await get(`/Observation/${id}`)).text, 'read');
    assertDecimals((await get(`/Observation/${id}/_history/1`)).text, 'vread');
    const u = await put(`/Observation/${id}`, obsText(id, ident).replace('"final"', '"amended"'));
    assert.equal(u.status, 200, u.text);
    assertDecimals(u.text, 'update');
    assertDecimals((await get(`/Observation/${id}/_history`)).text, 'history');
    assertDecimals((await get(`/Observation?_id=${id}`)).text, 'search');
    // A patch keeps the decimals it does not touch.
    const pt = await patch(`/Observation/${id}`, [{ op: 'replace', path: '/status', value: 'final' }]);
    assert.equal(pt.status, 200, pt.text);
    assertDecimals(pt.text, 'patch');
  });

  test('an update that only changes a decimal\'s text (1.50 -> 1.5) is a change', async () => {
    const ident = freshIdentifier();
    const c = await post('/Observation', obsText(null, ident));
    const id = c.json.id;
    const u = await put(`/Observation/${id}`, obsText(id, ident).replace('"value":1.50,"unit":"mg/dL"', '"value":1.5,"unit":"mg/dL"'));
    assert.equal(u.status, 200, u.text);
    assertVersion(u, 2);
    assert.ok(u.text.includes('"value":1.5,"unit":"mg/dL"'));
    assert.ok((await get(`/Observation/${id}/_history/1`)).text.includes('"value":1.50,"unit":"mg/dL"'));
  });

  const strings = [
    { name: 'ideographic space U+3000', value: '笠間　太郎' },
    { name: 'full-width digits and letters', value: '被保険者番号１２３４５６７８ＡＢＣ' },
    { name: 'half-width katakana', value: 'ｶｻﾏ ﾀﾛｳ ﾞﾟｰ' },
    { name: 'kanji outside the BMP and variation selectors', value: '𠮷野家 葛\u{E0100}城' },
    { name: 'wave dash, minus and special punctuation', value: '〜－‐―‖…‥〃々〆' },
    { name: 'escapes that must stay escapes', value: 'tab\tquote"backslash\\slash/ newline\n' },
    { name: 'decomposed kana (NFD) is not normalised', value: 'か\u3099き\u3099 ハ\u309A' },
    { name: 'IVS and old-form kanji (髙﨑)', value: '髙﨑 齋藤 邊\u{E0101}' },
  ];
  for (const s of strings) {
    test(`Japanese/Unicode text round-trips byte-exact: ${s.name}`, async () => {
      const body = newPatient({ name: [{ family: s.value, given: [s.value] }], address: [{ text: s.value, city: '笠間市' }] });
      const c = await post('/Patient', body);
      assert.equal(c.status, 201, c.text);
      const encoded = JSON.stringify(s.value); // as the client sent it
      for (const r of [c, await get(`/Patient/${c.json.id}`)]) {
        assert.equal(r.json.name[0].family, s.value);
        assert.equal(r.json.address[0].text, s.value);
        assert.equal(r.json.address[0].city, '笠間市');
        assert.ok(r.bytes.includes(Buffer.from(encoded, 'utf8')), `raw UTF-8 bytes of ${encoded} in ${r.text}`);
      }
      // Searching by identifier still works, and the search result carries the same bytes.
      const s2 = await get(`/Patient?_id=${c.json.id}`);
      assert.ok(s2.bytes.includes(Buffer.from(encoded, 'utf8')));
    });
  }

  test('non-ASCII identifier values are matched exactly by search and conditional create', async () => {
    const ident = { system: 'urn:kasama:被保険者番号', value: `１２３-${uid('ｶﾅ')}` };
    const c = await post('/Patient', { resourceType: 'Patient', identifier: [ident] });
    assert.equal(c.status, 201, c.text);
    assert.equal(await countByIdentifier('Patient', ident), 1);
    assert.equal(await countByIdentifier('Patient', { ...ident, value: ident.value.replace('１２３', '123') }), 0, 'full-width and ASCII digits differ');
    const again = await post('/Patient', { resourceType: 'Patient', identifier: [ident] }, {
      headers: { 'if-none-exist': `identifier=${encodeURIComponent(ident.system)}|${encodeURIComponent(ident.value)}` },
    });
    assert.equal(again.status, 200, again.text);
    assert.equal(again.json.id, c.json.id);
  });
});

// ---------------------------------------------------------------------------------------------
describe('R-05 CapabilityStatement and R-44 health', () => {
  // The CapabilityStatement is public (a client reads it before it has a token): no token here.
  const noToken = { authorization: null };
  test('GET /metadata is a CapabilityStatement for FHIR 4.0.1 listing Patient interactions', async () => {
    const r = await get('/metadata', { headers: noToken });
    assert.equal(r.status, 200, r.text);
    assert.match(r.headers.get('content-type'), /^application\/fhir\+json/);
    const cs = r.json;
    assert.equal(cs.resourceType, 'CapabilityStatement');
    assert.equal(cs.fhirVersion, '4.0.1');
    assert.equal(cs.kind, 'instance');
    assert.ok(['active', 'draft'].includes(cs.status));
    assert.ok(cs.date);
    assert.ok(cs.format.some((f) => /json/.test(f)));
    assert.ok((cs.patchFormat ?? []).includes('application/json-patch+json'));
    const rest = cs.rest.find((x) => x.mode === 'server');
    assert.ok(rest);
    const patient = rest.resource.find((x) => x.type === 'Patient');
    assert.ok(patient, 'Patient is listed');
    const codes = patient.interaction.map((i) => i.code);
    for (const code of ['read', 'vread', 'update', 'patch', 'delete', 'history-instance', 'history-type', 'create', 'search-type']) {
      assert.ok(codes.includes(code), `Patient interaction ${code}`);
    }
    assert.equal(patient.versioning, 'versioned-update');
    assert.equal(patient.updateCreate, true);
    assert.equal(patient.conditionalCreate, true);
    assert.equal(patient.conditionalUpdate, true);
    assert.ok(patient.searchParam.some((s) => s.name === 'identifier'));
    assert.ok(patient.searchParam.some((s) => s.name === '_id'));
    const sys = rest.interaction.map((i) => i.code);
    for (const code of ['transaction', 'batch', 'history-system']) assert.ok(sys.includes(code), `system interaction ${code}`);
    for (const type of ['Observation', 'Encounter', 'Coverage', 'Consent']) assert.ok(rest.resource.some((x) => x.type === type), type);
  });

  test('HEAD /metadata and ?_format=json and ?_pretty=true', async () => {
    const h = await request('HEAD', '/metadata', { headers: noToken });
    assert.equal(h.status, 200);
    assert.equal(h.text, '');
    const f = await get('/metadata?_format=json', { headers: { accept: null, ...noToken } });
    assert.equal(f.status, 200);
    assert.equal(f.json.resourceType, 'CapabilityStatement');
    const f2 = await get('/metadata?_format=application/fhir%2Bjson', { headers: noToken });
    assert.equal(f2.status, 200);
    const pretty = await get('/metadata?_pretty=true', { headers: noToken });
    assert.equal(pretty.status, 200);
    assert.ok(pretty.text.includes('\n'), 'pretty output has line breaks');
    assert.deepEqual(pretty.json, f.json);
  });

  const accepts = ['application/fhir+json', 'application/json', '*/*', 'application/fhir+json; fhirVersion=4.0', 'text/html, application/fhir+json;q=0.9'];
  for (const a of accepts) {
    test(`R-05 Accept: ${a} -> JSON`, async () => {
      const r = await get('/metadata', { headers: { accept: a, ...noToken } });
      assert.equal(r.status, 200, r.text);
      assert.match(r.headers.get('content-type'), /^application\/fhir\+json/);
    });
  }

  test('R-44 GET /health answers 200 JSON with status ok', async () => {
    const r = await fetch(`${ORIGIN}/health`);
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type'), /json/);
    const body = await r.json();
    assert.equal(body.status, 'ok');
    const r2 = await fetch(`${BASE}/health`);
    assert.equal(r2.status, 200);
  });
});

// ---------------------------------------------------------------------------------------------
describe('search (identifier, _id)', () => {
  test('Patient?identifier=system|value finds exactly that Patient as a searchset', async () => {
    const p = await createPatient();
    await createPatient(); // another, not matching
    const r = await get(`/Patient?identifier=${encodeURIComponent(`${p.identifier.system}|${p.identifier.value}`)}`);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.resourceType, 'Bundle');
    assert.equal(r.json.type, 'searchset');
    assert.equal(r.json.total, 1);
    assert.equal(r.json.entry.length, 1);
    assert.equal(r.json.entry[0].fullUrl, `${BASE}/Patient/${p.id}`);
    assert.equal(r.json.entry[0].search.mode, 'match');
    assert.deepEqual(r.json.entry[0].resource, p.resource);
    assert.ok(r.json.link.some((l) => l.relation === 'self'));
  });

  test('paging a criteria search: _count=0 gives only the total, _count=1 pages through every match', async () => {
    // Regression: _count=0 with more matches than _count once crashed the server.
    const system = `urn:kasama-e2e:${uid('page')}`;
    const ids = [];
    for (let i = 0; i < 3; i++) {
      const c = await post('/Patient', { resourceType: 'Patient', identifier: [{ system, value: `v${i}` }] });
      assert.equal(c.status, 201, c.text);
      ids.push(c.json.id);
    }
    const q = `/Patient?identifier=${encodeURIComponent(`${system}|`)}`;
    const zero = await get(`${q}&_count=0`);
    assert.equal(zero.status, 200, zero.text);
    assert.equal(zero.json.total, 3);
    assert.equal(zero.json.entry, undefined);
    assert.ok(!zero.json.link.some((l) => l.relation === 'next'));
    const seen = [];
    let next = `${q}&_count=1`;
    while (next) {
      const page = await get(next);
      assert.equal(page.status, 200, page.text);
      assert.ok((page.json.entry ?? []).length <= 1);
      for (const e of page.json.entry ?? []) seen.push(e.resource.id);
      next = page.json.link.find((l) => l.relation === 'next')?.url;
    }
    assert.deepEqual(seen.sort(), ids.sort());
    assert.equal((await get('/metadata')).status, 200, 'the server is still up');
  });

  const forms = [
    { name: 'value only', q: (i) => i.value, n: 1 },
    { name: 'system| (any value)', q: (i) => `${i.system}|`, n: 1 },
    { name: 'other system', q: (i) => `urn:other|${i.value}`, n: 0 },
    { name: 'two values, comma-separated (OR)', q: (i) => `${i.system}|${i.value},${i.system}|nope`, n: 1 },
    { name: 'value differs only by case', q: (i) => `${i.system}|${i.value.toUpperCase()}`, n: 0 },
  ];
  for (const f of forms) {
    test(`identifier search: ${f.name} -> ${f.n}`, async () => {
      const p = await createPatient();
      const r = await get(`/Patient?identifier=${encodeURIComponent(f.q(p.identifier))}`);
      assert.equal(r.status, 200, r.text);
      assert.equal((r.json.entry ?? []).length, f.n);
      assert.equal(r.json.total, f.n);
    });
  }

  for (const v of ['a,b', 'x|y', 'p\\q', 'sp ace', '100%', 'a+b', '$x', '笠間,市']) {
    test(`identifier value ${JSON.stringify(v)} is found with search escaping (\\, \\| \\\\ \\$) by search and If-None-Exist`, async () => {
      const system = `urn:kasama-e2e:${uid('esc')}`;
      const c = await post('/Patient', { resourceType: 'Patient', identifier: [{ system, value: v }] });
      assert.equal(c.status, 201, c.text);
      const esc = v.replace(/[\\,|$]/g, (m) => `\\${m}`);
      const q = encodeURIComponent(`${system}|${esc}`);
      const r = await get(`/Patient?identifier=${q}`);
      assert.equal(r.status, 200, r.text);
      assert.deepEqual((r.json.entry ?? []).map((e) => e.resource.id), [c.json.id]);
      const again = await post('/Patient', { resourceType: 'Patient', identifier: [{ system, value: v }] }, { headers: { 'if-none-exist': `identifier=${q}` } });
      assert.equal(again.status, 200, again.text);
      assert.equal(again.json.id, c.json.id);
    });
  }

  test('_id search and _id combined with identifier (AND)', async () => {
    const p = await createPatient();
    const q = await createPatient();
    const r = await get(`/Patient?_id=${p.id}`);
    assert.deepEqual(r.json.entry.map((e) => e.resource.id), [p.id]);
    const both = await get(`/Patient?_id=${p.id},${q.id}`);
    assert.deepEqual(both.json.entry.map((e) => e.resource.id).sort(), [p.id, q.id].sort());
    const and = await get(`/Patient?_id=${q.id}&identifier=${encodeURIComponent(`${p.identifier.system}|${p.identifier.value}`)}`);
    assert.equal((and.json.entry ?? []).length, 0);
  });

  test('an update that changes the identifier moves the search match; a deleted resource is not found', async () => {
    const p = await createPatient();
    const other = freshIdentifier();
    const u = await put(`/Patient/${p.id}`, { ...p.resource, identifier: [other] });
    assert.equal(u.status, 200, u.text);
    assert.equal(await countByIdentifier('Patient', p.identifier), 0, 'the old identifier no longer matches');
    assert.equal(await countByIdentifier('Patient', other), 1);
    await del(`/Patient/${p.id}`);
    assert.equal(await countByIdentifier('Patient', other), 0);
    const byId = await get(`/Patient?_id=${p.id}`);
    assert.equal((byId.json.entry ?? []).length, 0);
  });

  test('identifier search pages with _count and next links', async () => {
    const system = `urn:kasama-e2e:${uid('page')}`;
    const ids = [];
    for (let i = 0; i < 5; i++) ids.push((await post('/Patient', { resourceType: 'Patient', identifier: [{ system, value: `v${i}` }] })).json.id);
    const { pages, entries } = await walkPages(`/Patient?identifier=${encodeURIComponent(`${system}|`)}&_count=2`);
    assert.equal(pages.length, 3);
    assert.equal(pages[0].total, 5);
    assert.deepEqual(entries.map((e) => e.resource.id).sort(), ids.sort());
  });

  test('HEAD on a search -> 200 without a body', async () => {
    const p = await createPatient();
    const r = await request('HEAD', `/Patient?_id=${p.id}`);
    assert.equal(r.status, 200);
    assert.equal(r.text, '');
  });
});

// ---------------------------------------------------------------------------------------------
describe('a real client (fhir-kit-client)', () => {
  test('create, read, update, patch, search, history, vread, transaction, delete', async () => {
    const client = await fhirClient();
    const cs = await client.capabilityStatement();
    assert.equal(cs.resourceType, 'CapabilityStatement');

    const ident = freshIdentifier();
    const created = await client.create({ resourceType: 'Patient', body: { resourceType: 'Patient', identifier: [ident], name: [{ family: '笠間', given: ['花子'] }] } });
    assert.equal(created.meta.versionId, '1');
    const id = created.id;

    const read = await client.read({ resourceType: 'Patient', id });
    assert.deepEqual(read, created);

    const updated = await client.update({ resourceType: 'Patient', id, body: { ...read, birthDate: '1945-03-10' } });
    assert.equal(updated.meta.versionId, '2');
    assert.equal(updated.birthDate, '1945-03-10');

    const patched = await client.patch({ resourceType: 'Patient', id, JSONPatch: [{ op: 'add', path: '/active', value: true }] });
    assert.equal(patched.meta.versionId, '3');

    const found = await client.search({ resourceType: 'Patient', searchParams: { identifier: `${ident.system}|${ident.value}` } });
    assert.equal(found.type, 'searchset');
    assert.deepEqual(found.entry.map((e) => e.resource.id), [id]);

    const history = await client.history({ resourceType: 'Patient', id });
    assert.deepEqual(history.entry.map((e) => e.resource.meta.versionId), ['3', '2', '1']);
    const v1 = await client.vread({ resourceType: 'Patient', id, version: '1' });
    assert.equal(v1.birthDate, undefined);

    const obsIdent = freshIdentifier();
    const tx = await client.transaction({
      body: {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [
          { fullUrl: 'urn:uuid:6f1c7c1e-1111-4e2a-9a55-000000000001', resource: { resourceType: 'Observation', identifier: [obsIdent], status: 'final', code: { text: '体重' }, subject: { reference: `Patient/${id}` }, valueQuantity: { value: 60.50, unit: 'kg' } }, request: { method: 'POST', url: 'Observation' } },
          { resource: { ...patched, gender: 'female' }, request: { method: 'PUT', url: `Patient/${id}` } },
        ],
      },
    });
    assert.equal(tx.type, 'transaction-response');
    assert.match(tx.entry[0].response.status, /^201/);
    assert.match(tx.entry[1].response.status, /^200/);
    assert.match(tx.entry[0].response.location, /^Observation\/[^/]+\/_history\/1$/);

    const next = await client.search({ resourceType: 'Observation', searchParams: { identifier: `${obsIdent.system}|${obsIdent.value}` } });
    assert.equal(next.entry.length, 1);
    assert.equal(next.entry[0].resource.subject.reference, `Patient/${id}`);

    // Referential integrity: the Patient is referenced and cannot be deleted yet.
    await assert.rejects(client.delete({ resourceType: 'Patient', id }), (e) => e.response?.status === 409);
    await client.delete({ resourceType: 'Observation', id: next.entry[0].resource.id });
    await client.delete({ resourceType: 'Patient', id });
    await assert.rejects(client.read({ resourceType: 'Patient', id }), (e) => e.response?.status === 410);
  });
});
