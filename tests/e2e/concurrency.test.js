// End-to-end race tests: many clients doing the same thing at the same time must leave the
// data as if they had gone one after the other (conditional create makes one resource,
// If-Match lets one writer win, client-id creates do not collide, no lost updates, and
// referential integrity holds under concurrent deletes).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, uid, freshIdentifier, request, get, post, put, del, idsByIdentifier, sleep, systemToken } from './lib/client.js';
import { assertOutcome, createPatient, historyVersions, walkPages, versionOfEntry } from './lib/assertions.js';
import net from 'node:net';
import https from 'node:https';
import { requestOnFreshConnection, host, port, caCert } from './lib/raw.js';

const ROUNDS = Number(process.env.KASAMA_RACE_ROUNDS ?? 3);
// The system token, fetched once before the races (every request below sends it).
await systemToken();
const tokenQuery = (i) => `identifier=${encodeURIComponent(`${i.system}|${i.value}`)}`;
const all = (n, f) => Promise.all(Array.from({ length: n }, (_, k) => f(k)));

// Per resource, a later version never has an earlier meta.lastUpdated than the one before.
async function assertLastUpdatedFollowsVersions(type, id) {
  const { entries } = await walkPages(`/${type}/${id}/_history?_count=100`);
  const rows = entries
    .filter((e) => e.resource)
    .map((e) => ({ v: Number(e.resource.meta.versionId), t: Date.parse(e.resource.meta.lastUpdated), s: e.resource.meta.lastUpdated }))
    .sort((a, b) => a.v - b.v);
  for (let i = 1; i < rows.length; i++) {
    assert.ok(rows[i].t >= rows[i - 1].t, `version ${rows[i].v} (${rows[i].s}) is older than version ${rows[i - 1].v} (${rows[i - 1].s})`);
  }
}

describe('conditional create races (If-None-Exist)', () => {
  for (let round = 1; round <= ROUNDS; round++) {
    test(`20 parallel identical conditional creates make exactly one resource (round ${round})`, async () => {
      const ident = freshIdentifier();
      const body = { resourceType: 'Patient', identifier: [ident], name: [{ family: '競合' }] };
      const results = await all(20, () => post('/Patient', body, { headers: { 'if-none-exist': tokenQuery(ident) } }));
      const statuses = results.map((r) => r.status).sort();
      assert.equal(statuses.filter((s) => s === 201).length, 1, `exactly one 201: ${statuses} ${results.find((r) => r.status >= 300)?.text ?? ''}`);
      assert.equal(statuses.filter((s) => s === 200).length, 19, `the rest 200: ${statuses}`);
      const ids = new Set(results.map((r) => r.json.id));
      assert.equal(ids.size, 1, `all answers name the same resource: ${[...ids]}`);
      for (const r of results) {
        assert.equal(r.headers.get('etag'), 'W/"1"');
        assert.equal(r.json.meta.versionId, '1');
      }
      assert.deepEqual(await idsByIdentifier('Patient', ident), [...ids]);
      assert.deepEqual(await historyVersions('Patient', [...ids][0]), ['1']);
    });
  }

  for (let round = 1; round <= ROUNDS; round++) {
    test(`10 parallel transactions with ifNoneExist make exactly one Patient, and every Observation refers to it (round ${round})`, async () => {
      const ident = freshIdentifier();
      const obsSystem = `urn:kasama-e2e:${uid('obs')}`;
      const bundle = (k) => ({
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [
          {
            fullUrl: 'urn:uuid:0d7a1b9e-5b7c-4a38-9d6e-6c7f2f0a0001',
            resource: { resourceType: 'Patient', identifier: [ident], name: [{ family: '競合' }] },
            request: { method: 'POST', url: 'Patient', ifNoneExist: tokenQuery(ident) },
          },
          {
            fullUrl: `urn:uuid:0d7a1b9e-5b7c-4a38-9d6e-6c7f2f0a01${String(k).padStart(2, '0')}`,
            resource: {
              resourceType: 'Observation',
              identifier: [{ system: obsSystem, value: `o${k}` }],
              status: 'final',
              code: { text: '体重' },
              subject: { reference: 'urn:uuid:0d7a1b9e-5b7c-4a38-9d6e-6c7f2f0a0001' },
              valueQuantity: { value: 60 + k, unit: 'kg' },
            },
            request: { method: 'POST', url: 'Observation' },
          },
        ],
      });
      const results = await all(10, (k) => post('', bundle(k)));
      for (const r of results) assert.equal(r.status, 200, r.text.slice(0, 500));
      const patientStatuses = results.map((r) => r.json.entry[0].response.status);
      assert.equal(patientStatuses.filter((s) => s.startsWith('201')).length, 1, `one 201: ${patientStatuses}`);
      assert.equal(patientStatuses.filter((s) => s.startsWith('200')).length, 9, `nine 200: ${patientStatuses}`);
      const patientIds = new Set(results.map((r) => /^Patient\/([^/]+)/.exec(r.json.entry[0].response.location)?.[1]));
      assert.equal(patientIds.size, 1, `one Patient id: ${[...patientIds]}`);
      const [pid] = patientIds;
      assert.deepEqual(await idsByIdentifier('Patient', ident), [pid]);
      for (const r of results) assert.match(r.json.entry[1].response.status, /^201/);
      const { entries } = await walkPages(`/Observation?identifier=${encodeURIComponent(`${obsSystem}|`)}&_count=50`);
      assert.equal(entries.length, 10, 'ten Observations');
      for (const e of entries) assert.equal(e.resource.subject.reference, `Patient/${pid}`, 'refers to the one Patient');
    });
  }

  for (let round = 1; round <= ROUNDS; round++) test(`10 parallel conditional updates (PUT Patient?identifier=...) with no match create exactly one resource (round ${round})`, async () => {
    const ident = freshIdentifier();
    const results = await all(10, (k) => put(`/Patient?${tokenQuery(ident)}`, { resourceType: 'Patient', identifier: [ident], name: [{ family: `w${k}` }] }));
    const statuses = results.map((r) => r.status);
    for (const r of results) assert.ok([200, 201].includes(r.status), `${r.status} ${r.text.slice(0, 300)}`);
    const ids = await idsByIdentifier('Patient', ident);
    assert.equal(ids.length, 1, `one resource for the identifier, found ${ids.length}: ${statuses}`);
    assert.equal(statuses.filter((s) => s === 201).length, 1, `one 201: ${statuses}`);
    assert.deepEqual(new Set(results.map((r) => r.json.id)), new Set(ids));
    const versions = await historyVersions('Patient', ids[0]);
    assert.equal(versions.length, 10, `every write is a version: ${versions}`);
    await assertLastUpdatedFollowsVersions('Patient', ids[0]);
  });
});

describe('version-aware updates race (If-Match)', () => {
  for (let round = 1; round <= ROUNDS; round++) {
    test(`10 parallel updates with the same If-Match: one 200, nine 412 (round ${round})`, async () => {
      const p = await createPatient();
      const results = await all(10, (k) =>
        put(`/Patient/${p.id}`, { ...p.resource, name: [{ family: `writer-${k}` }] }, { headers: { 'if-match': 'W/"1"' } }));
      const statuses = results.map((r) => r.status);
      assert.equal(statuses.filter((s) => s === 200).length, 1, `one winner: ${statuses}`);
      assert.equal(statuses.filter((s) => s === 412).length, 9, `nine 412: ${statuses}`);
      for (const r of results.filter((x) => x.status === 412)) assertOutcome(r, 412);
      const winner = results.find((r) => r.status === 200);
      assert.equal(winner.headers.get('etag'), 'W/"2"');
      const now = await get(`/Patient/${p.id}`);
      assert.equal(now.headers.get('etag'), 'W/"2"');
      assert.equal(now.json.name[0].family, winner.json.name[0].family, 'the stored version is the winner\'s');
      assert.deepEqual(await historyVersions('Patient', p.id), ['2', '1']);
    });
  }

  test('10 parallel PATCHes with the same If-Match: one 200, nine 412', async () => {
    const p = await createPatient();
    const results = await all(10, (k) =>
      request('PATCH', `/Patient/${p.id}`, {
        body: JSON.stringify([{ op: 'replace', path: '/name/0/family', value: `patch-${k}` }]),
        headers: { 'content-type': 'application/json-patch+json', 'if-match': 'W/"1"' },
      }));
    const statuses = results.map((r) => r.status);
    assert.equal(statuses.filter((s) => s === 200).length, 1, `${statuses}`);
    assert.equal(statuses.filter((s) => s === 412).length, 9, `${statuses}`);
    assert.deepEqual(await historyVersions('Patient', p.id), ['2', '1']);
  });

  test('10 parallel PATCHes without If-Match: no lost update', async () => {
    const p = await createPatient();
    const results = await all(10, (k) =>
      request('PATCH', `/Patient/${p.id}`, {
        body: JSON.stringify([{ op: 'add', path: '/name/-', value: { family: `added-${k}` } }]),
        headers: { 'content-type': 'application/json-patch+json' },
      }));
    for (const r of results) assert.equal(r.status, 200, r.text.slice(0, 300));
    const versions = results.map((r) => Number(r.json.meta.versionId)).sort((a, b) => a - b);
    assert.deepEqual(versions, [2, 3, 4, 5, 6, 7, 8, 9, 10, 11], 'each patch made its own version');
    const now = await get(`/Patient/${p.id}`);
    const families = now.json.name.map((n) => n.family);
    for (let k = 0; k < 10; k++) assert.ok(families.includes(`added-${k}`), `patch ${k} kept: ${families}`);
    await assertLastUpdatedFollowsVersions('Patient', p.id);
    assert.equal((await historyVersions('Patient', p.id)).length, 11);
  });
});

describe('update-as-create races (client ids)', () => {
  for (let round = 1; round <= ROUNDS; round++) {
    test(`10 parallel PUTs creating the same new id with different content: one 201, nine 200, versions 1..10 (round ${round})`, async () => {
      const id = uid('race');
      const ident = freshIdentifier();
      const results = await all(10, (k) => put(`/Patient/${id}`, { resourceType: 'Patient', id, identifier: [ident], name: [{ family: `w${k}` }] }));
      for (const r of results) assert.ok([200, 201].includes(r.status), `${r.status} ${r.text.slice(0, 300)}`);
      const statuses = results.map((r) => r.status);
      assert.equal(statuses.filter((s) => s === 201).length, 1, `one 201: ${statuses}`);
      const created = results.find((r) => r.status === 201);
      assert.equal(created.headers.get('etag'), 'W/"1"');
      const versions = results.map((r) => Number(r.json.meta.versionId)).sort((a, b) => a - b);
      assert.deepEqual(versions, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 'every PUT got its own version');
      for (const r of results) assert.equal(r.headers.get('etag'), `W/"${r.json.meta.versionId}"`);
      await assertLastUpdatedFollowsVersions('Patient', id);
      const hist = await historyVersions('Patient', id);
      assert.deepEqual(hist, ['10', '9', '8', '7', '6', '5', '4', '3', '2', '1']);
      const now = await get(`/Patient/${id}`);
      assert.equal(now.json.meta.versionId, '10');
      const last = results.find((r) => r.json.meta.versionId === '10');
      assert.deepEqual(now.json, last.json, 'the current version is the last write');
      assert.deepEqual(await idsByIdentifier('Patient', ident), [id]);
    });
  }

  test('10 parallel identical PUTs creating the same new id: one 201, the rest are no-op 200 at version 1', async () => {
    const id = uid('race');
    const body = { resourceType: 'Patient', id, identifier: [freshIdentifier()], active: true };
    const results = await all(10, () => put(`/Patient/${id}`, body));
    const statuses = results.map((r) => r.status);
    assert.equal(statuses.filter((s) => s === 201).length, 1, `${statuses}`);
    assert.equal(statuses.filter((s) => s === 200).length, 9, `${statuses}`);
    for (const r of results) assert.equal(r.headers.get('etag'), 'W/"1"');
    assert.deepEqual(await historyVersions('Patient', id), ['1']);
  });
});

describe('deletes and referential integrity under concurrency', () => {
  test('10 parallel deletes of one resource add exactly one delete version', async () => {
    const p = await createPatient();
    const results = await all(10, () => del(`/Patient/${p.id}`));
    for (const r of results) assert.ok([200, 204].includes(r.status), `${r.status} ${r.text}`);
    assert.equal((await get(`/Patient/${p.id}`)).status, 410);
    const h = await get(`/Patient/${p.id}/_history`);
    assert.deepEqual(h.json.entry.map(versionOfEntry), ['2', '1']);
    assert.equal(h.json.entry[0].request.method, 'DELETE');
  });

  for (let round = 1; round <= ROUNDS; round++) {
    test(`creating Observations that refer to a Patient while it is deleted never leaves a dangling reference (round ${round})`, async () => {
      const p = await createPatient();
      const obsSystem = `urn:kasama-e2e:${uid('ri')}`;
      const creates = all(8, (k) => post('/Observation', {
        resourceType: 'Observation',
        identifier: [{ system: obsSystem, value: `o${k}` }],
        status: 'final',
        code: { text: 'x' },
        subject: { reference: `Patient/${p.id}` },
      }));
      const deletion = del(`/Patient/${p.id}`);
      const [results, d] = await Promise.all([creates, deletion]);
      for (const r of results) assert.ok([201, 409].includes(r.status), `${r.status} ${r.text.slice(0, 300)}`);
      assert.ok([200, 409].includes(d.status), `${d.status} ${d.text.slice(0, 300)}`);
      const made = results.filter((r) => r.status === 201).length;
      const stored = (await walkPages(`/Observation?identifier=${encodeURIComponent(`${obsSystem}|`)}&_count=50`)).entries.length;
      assert.equal(stored, made, 'every 201 is stored, nothing else');
      const patient = await get(`/Patient/${p.id}`);
      if (patient.status === 410) {
        assert.equal(made, 0, `the Patient was deleted but ${made} Observations refer to it`);
      } else {
        assert.equal(patient.status, 200);
        assert.equal(d.status, 409, 'the delete failed because of the references');
      }
    });
  }
});

describe('history paging under concurrent writes', () => {
  test('system history walked with _count=5 while 4 writers keep writing: no duplicates, nothing missing', async () => {
    const first = await createPatient();
    const since = first.resource.meta.lastUpdated;
    const before = [first.id];
    for (let i = 0; i < 9; i++) before.push((await createPatient()).id);
    let stop = false;
    const writers = all(4, async () => {
      let n = 0;
      while (!stop && n < 200) {
        await createPatient();
        n++;
      }
    });
    try {
      const { entries } = await walkPages(`/_history?_since=${encodeURIComponent(since)}&_count=5`);
      const keys = entries.map((e) => `${e.fullUrl}|${versionOfEntry(e)}`);
      assert.equal(new Set(keys).size, keys.length, 'no entry twice');
      for (const id of before) assert.ok(keys.includes(`${BASE}/Patient/${id}|1`), `Patient/${id} is in the history`);
    } finally {
      stop = true;
      await writers;
    }
  });
});

// Last in this file: these hold many connections for a moment. Each connection is closed
// at the end so that other tests running against the same server are only briefly slowed.
describe('R-44 availability under many connections', () => {
  test('R-44 /health answers within 3 s while 100 idle TCP connections are open', async () => {
    const sockets = [];
    try {
      for (let i = 0; i < 100; i++) {
        const s = net.connect({ host, port });
        s.on('error', () => {});
        sockets.push(s);
      }
      await sleep(300);
      const started = Date.now();
      const r = await requestOnFreshConnection('GET', new URL('/health', BASE).href, { timeoutMs: 3000, headers: { authorization: null } })
        .catch((e) => ({ status: e.code ?? e.message }));
      assert.equal(r.status, 200, `health with 100 idle connections open: ${r.status} after ${Date.now() - started} ms`);
    } finally {
      for (const s of sockets) s.destroy();
    }
  });

  test('R-44 200 parallel requests on 200 keep-alive connections all succeed within 6 s', async () => {
    const agent = new https.Agent({ keepAlive: true, maxSockets: 200, ca: caCert() });
    // A hard deadline keeps a server that stalls from stalling other test files for long.
    const deadline = setTimeout(() => agent.destroy(), 6000);
    try {
      const results = await all(200, (k) =>
        (k % 2
          ? requestOnFreshConnection('POST', '/Patient', { agent, body: { resourceType: 'Patient', name: [{ family: `load-${k}` }] } })
          : requestOnFreshConnection('GET', '/metadata', { agent, headers: { authorization: null } }) // public: no token
        ).catch((e) => ({ status: e.code ?? e.message })));
      const counts = {};
      for (const r of results) counts[r.status] = (counts[r.status] ?? 0) + 1;
      assert.deepEqual(counts, { 200: 100, 201: 100 }, `statuses: ${JSON.stringify(counts)}`);
    } finally {
      clearTimeout(deadline);
      agent.destroy();
    }
  });
});
