// Search over the REST API (issue 3): paging stability and links, POST _search, system and
// compartment search, Patient $everything, _include/_revinclude, result parameters,
// conditional interactions with full criteria, the CapabilityStatement and $reindex. The
// per-parameter semantics are in the data-driven cases (search_cases.test.js); here each
// test tags its resources with a fresh tag so that it sees only its own data.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, uid, request, get, post, put, del } from './lib/client.js';
import { walkPages } from './lib/assertions.js';

const TAG_SYSTEM = 'urn:kasama-e2e:search';
const tagged = (tag, res) => ({ ...res, meta: { tag: [{ system: TAG_SYSTEM, code: tag }] } });
const tagParam = (tag) => `_tag=${encodeURIComponent(`${TAG_SYSTEM}|${tag}`)}`;
const ids = (entries = [], mode = 'match') =>
  entries.filter((e) => e.search?.mode === mode).map((e) => `${e.resource.resourceType}/${e.resource.id}`);

async function create(res) {
  const r = await post(`/${res.resourceType}`, res);
  assert.equal(r.status, 201, r.text.slice(0, 400));
  return r.json;
}

function observation(tag, patientId, { code = '8867-4', date = '2024-01-01T00:00:00Z', value = 70, encounter } = {}) {
  const o = {
    resourceType: 'Observation',
    status: 'final',
    code: { coding: [{ system: 'http://loinc.org', code }] },
    subject: { reference: `Patient/${patientId}` },
    effectiveDateTime: date,
    valueQuantity: { value, system: 'http://unitsofmeasure.org', code: '/min' },
  };
  if (encounter) o.encounter = { reference: `Encounter/${encounter}` };
  return tagged(tag, o);
}

async function patientWithData(tag, n = 5) {
  const pr = await create(tagged(tag, { resourceType: 'Practitioner', name: [{ family: 'Ishii' }] }));
  const p = await create(tagged(tag, {
    resourceType: 'Patient', name: [{ family: `Kasama${uid('n')}`, given: ['Hanako'] }], birthDate: '1950-01-01',
    generalPractitioner: [{ reference: `Practitioner/${pr.id}` }],
  }));
  const enc = await create(tagged(tag, {
    resourceType: 'Encounter', status: 'finished',
    class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' },
    subject: { reference: `Patient/${p.id}` },
  }));
  const obs = [];
  for (let i = 0; i < n; i++) {
    const day = String(1 + i).padStart(2, '0');
    obs.push(await create(observation(tag, p.id, { date: `2024-03-${day}T09:00:00+09:00`, value: 60 + i, encounter: enc.id })));
  }
  return { practitioner: pr, patient: p, encounter: enc, observations: obs };
}

// ---------------------------------------------------------------------------------------------
describe('paging', () => {
  test('default order: walked with _count=3 while resources are created and updated, each match exactly once', async () => {
    const tag = uid('page');
    const p = await create(tagged(tag, { resourceType: 'Patient' }));
    const originals = [];
    for (let i = 0; i < 14; i++) originals.push(await create(observation(tag, p.id, { value: i })));
    let extra = 0;
    const { entries, pages } = await walkPages(`/Observation?${tagParam(tag)}&_count=3`, {
      between: async () => {
        extra += 1;
        await create(observation(tag, p.id, { value: 100 + extra }));
        const o = originals[extra % originals.length];
        assert.equal((await put(`/Observation/${o.id}`, { ...o, status: 'amended', meta: o.meta })).status, 200);
      },
    });
    const seen = ids(entries);
    assert.equal(new Set(seen).size, seen.length, 'no resource twice');
    for (const o of originals) assert.ok(seen.includes(`Observation/${o.id}`), `Observation/${o.id} not skipped`);
    assert.ok(pages.every((pg) => (pg.entry ?? []).length <= 3));
    assert.equal(pages[0].total, 14, 'the first page counts what matched then');
  });

  test('sorted (_sort=-date,_id): next pages then previous pages give the same pages in reverse', async () => {
    const tag = uid('prev');
    const p = await create(tagged(tag, { resourceType: 'Patient' }));
    for (let i = 0; i < 11; i++) {
      // Pairs share a date, so the tie-breaker matters.
      const day = String(1 + Math.floor(i / 2)).padStart(2, '0');
      await create(observation(tag, p.id, { date: `2024-02-${day}`, value: i }));
    }
    const { pages } = await walkPages(`/Observation?${tagParam(tag)}&_sort=-date,_id&_count=4`);
    assert.equal(pages.length, 3);
    const forward = pages.map((pg) => ids(pg.entry ?? []));
    const all = forward.flat();
    assert.equal(new Set(all).size, 11);
    const dates = pages.flatMap((pg) => pg.entry.map((e) => e.resource.effectiveDateTime));
    assert.deepEqual(dates, [...dates].sort().reverse(), 'descending by date');
    // Walk back from the last page.
    const back = [];
    let url = pages[2].link.find((l) => l.relation === 'previous')?.url;
    assert.ok(url, 'the last page has a previous link');
    while (url) {
      const r = await get(url);
      assert.equal(r.status, 200, r.text);
      back.push(ids(r.json.entry ?? []));
      url = r.json.link.find((l) => l.relation === 'previous')?.url;
    }
    assert.deepEqual(back, [forward[1], forward[0]]);
    assert.ok(!pages[0].link.some((l) => l.relation === 'previous'), 'the first page has no previous link');
  });

  test('a _cursor the server did not issue is refused with 400 naming _cursor', async () => {
    for (const c of ['garbage', 'WyJ4Il0', Buffer.from('["n","1; DROP TABLE resource"]').toString('base64url')]) {
      const r = await get(`/Patient?_cursor=${c}`);
      assert.equal(r.status, 400, c);
      assert.match(r.json.issue[0].diagnostics, /_cursor/);
    }
  });
});

// ---------------------------------------------------------------------------------------------
describe('search interactions', () => {
  test('POST Type/_search with a form body answers as GET does; other bodies are refused (415)', async () => {
    const tag = uid('post');
    const { patient } = await patientWithData(tag, 3);
    const g = await get(`/Observation?${tagParam(tag)}&patient=${patient.id}`);
    const form = `${tagParam(tag)}&patient=${patient.id}`;
    const p = await request('POST', '/Observation/_search', {
      body: form, headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    assert.equal(p.status, 200, p.text);
    assert.deepEqual(ids(p.json.entry).sort(), ids(g.json.entry).sort());
    assert.equal(p.json.entry.length, 3);
    const bad = await request('POST', '/Observation/_search', { body: '{}', headers: { 'content-type': 'application/fhir+json' } });
    assert.equal(bad.status, 415);
  });

  test('system search: _type restricts; without _type every type with the tag is found', async () => {
    const tag = uid('sys');
    const { patient, encounter, practitioner, observations } = await patientWithData(tag, 2);
    const all = await get(`?${tagParam(tag)}&_count=50`);
    assert.equal(all.status, 200, all.text);
    assert.deepEqual(ids(all.json.entry).sort(), [
      `Encounter/${encounter.id}`, ...observations.map((o) => `Observation/${o.id}`), `Patient/${patient.id}`,
      `Practitioner/${practitioner.id}`].sort());
    const some = await get(`?_type=Patient,Practitioner&${tagParam(tag)}`);
    assert.deepEqual(ids(some.json.entry).sort(), [`Patient/${patient.id}`, `Practitioner/${practitioner.id}`].sort());
    const bad = await get(`?_type=Nope`);
    assert.equal(bad.status, 400);
    const typeParam = await get(`?_type=Patient&birthdate=1950`);
    assert.equal(typeParam.status, 400, 'system search takes only the common parameters');
  });

  test('compartment search Patient/[id]/Observation with criteria; a type outside the compartment is refused', async () => {
    const tag = uid('comp');
    const a = await patientWithData(tag, 3);
    const b = await patientWithData(tag, 2);
    const r = await get(`/Patient/${a.patient.id}/Observation?value-quantity=ge61`);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(ids(r.json.entry).sort(), a.observations.slice(1).map((o) => `Observation/${o.id}`).sort());
    const enc = await get(`/Patient/${b.patient.id}/Encounter`);
    assert.deepEqual(ids(enc.json.entry), [`Encounter/${b.encounter.id}`]);
    const out = await get(`/Patient/${a.patient.id}/Organization`);
    assert.equal(out.status, 400);
    const other = await get(`/Practitioner/${a.practitioner.id}/Observation`);
    assert.equal(other.status, 400, 'only the Patient compartment is defined here');
    assert.match(other.json.issue[0].diagnostics, /Patient compartment/);
  });

  test('Patient $everything: the patient, its compartment and what they refer to, paged; _type; unknown patient 404', async () => {
    const tag = uid('every');
    const d = await patientWithData(tag, 4);
    const { entries, pages } = await walkPages(`/Patient/${d.patient.id}/$everything?_count=2`);
    assert.equal(pages[0].total, 6);
    assert.deepEqual(ids(entries).sort(), [
      `Patient/${d.patient.id}`, `Encounter/${d.encounter.id}`, ...d.observations.map((o) => `Observation/${o.id}`)].sort());
    assert.ok(ids(entries, 'include').includes(`Practitioner/${d.practitioner.id}`), 'the GP is included');
    const obsOnly = await get(`/Patient/${d.patient.id}/$everything?_type=Observation&_count=50`);
    assert.equal(ids(obsOnly.json.entry).length, 4);
    assert.equal((await get(`/Patient/${uid('none')}/$everything`)).status, 404);
  });

  test('a reference by absolute URL on this base and by Type/id are the same reference, both ways', async () => {
    const tag = uid('abs');
    const p = await create(tagged(tag, { resourceType: 'Patient' }));
    const rel = await create(observation(tag, p.id));
    const abs = await create({ ...observation(tag, p.id), subject: { reference: `${BASE}/Patient/${p.id}` } });
    const both = [`Observation/${abs.id}`, `Observation/${rel.id}`].sort();
    for (const q of [`subject=Patient/${p.id}`, `patient=${p.id}`, `subject=${encodeURIComponent(`${BASE}/Patient/${p.id}`)}`]) {
      const r = await get(`/Observation?${tagParam(tag)}&${q}`);
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(ids(r.json.entry).sort(), both, q);
    }
    const other = await get(`/Observation?${tagParam(tag)}&subject=${encodeURIComponent(`https://elsewhere.example/fhir/Patient/${p.id}`)}`);
    assert.equal(other.status, 200, other.text);
    assert.deepEqual(ids(other.json.entry ?? []), [], 'another server\'s URL is another resource');
    const far = `https://elsewhere.example/fhir/Patient/${uid('far')}`;
    const ext = await create({ ...observation(tag, p.id), subject: { reference: far } });
    const byUrl = await get(`/Observation?${tagParam(tag)}&subject=${encodeURIComponent(far)}`);
    assert.deepEqual(ids(byUrl.json.entry), [`Observation/${ext.id}`], 'a reference elsewhere is found by its URL');
  });

  test('_include, type-restricted _include, _revinclude and _include:iterate', async () => {
    const tag = uid('inc');
    const d = await patientWithData(tag, 2);
    const inc = await get(`/Observation?${tagParam(tag)}&_include=Observation:subject`);
    assert.deepEqual(ids(inc.json.entry, 'include'), [`Patient/${d.patient.id}`]);
    const typed = await get(`/Observation?${tagParam(tag)}&_include=Observation:subject:Group`);
    assert.deepEqual(ids(typed.json.entry, 'include'), []);
    const rev = await get(`/Patient?_id=${d.patient.id}&_revinclude=Observation:subject&_revinclude=Encounter:subject`);
    assert.deepEqual(ids(rev.json.entry, 'include').sort(), [
      `Encounter/${d.encounter.id}`, ...d.observations.map((o) => `Observation/${o.id}`)].sort());
    const iter = await get(
      `/Encounter?_id=${d.encounter.id}&_include=Encounter:subject&_include:iterate=Patient:general-practitioner`);
    assert.deepEqual(ids(iter.json.entry, 'include').sort(),
      [`Patient/${d.patient.id}`, `Practitioner/${d.practitioner.id}`].sort());
    const noIter = await get(`/Encounter?_id=${d.encounter.id}&_include=Encounter:subject&_include=Patient:general-practitioner`);
    assert.deepEqual(ids(noIter.json.entry, 'include'), [`Patient/${d.patient.id}`], 'without :iterate one level only');
    const bad = await get(`/Observation?_include=Observation:code`);
    assert.equal(bad.status, 400);
  });

  test('_summary=count, _total=none, _summary=true, _elements', async () => {
    const tag = uid('sum');
    await patientWithData(tag, 3);
    const count = await get(`/Observation?${tagParam(tag)}&_summary=count`);
    assert.equal(count.json.total, 3);
    assert.equal(count.json.entry, undefined);
    const none = await get(`/Observation?${tagParam(tag)}&_total=none`);
    assert.equal(none.json.total, undefined);
    assert.equal(none.json.entry.length, 3);
    const summary = await get(`/Patient?${tagParam(tag)}&_summary=true`);
    const p = summary.json.entry[0].resource;
    assert.ok(p.name && p.birthDate, 'summary elements kept');
    assert.ok(p.meta.tag.some((t) => t.code === 'SUBSETTED'));
    const el = await get(`/Observation?${tagParam(tag)}&_elements=status,value`);
    const o = el.json.entry[0].resource;
    assert.deepEqual(Object.keys(o).sort(), ['id', 'meta', 'resourceType', 'status', 'valueQuantity'].sort());
  });

  test('edge values: huge numbers 400, odd _id matches nothing, $everything _count=0, Type:* revinclude, non-token composite', async () => {
    for (const q of ['value-quantity=1e400', 'value-quantity=gt-1e309', 'value-quantity=0e99999999999']) {
      const r = await get(`/Observation?${q}`);
      assert.equal(r.status, 400, `${q}: ${r.text.slice(0, 200)}`);
      assert.match(r.json.issue[0].diagnostics, /value-quantity/);
    }
    for (const q of ['_id=%C3%A9', '_id=a%7Cb', `_id=${'x'.repeat(65)}`]) {
      const r = await get(`/Patient?${q}`);
      assert.equal(r.status, 200, `${q}: ${r.text.slice(0, 200)}`);
      assert.equal(r.json.total, 0);
    }
    const lu = await get('/Patient?_lastUpdated=le9999&_lastUpdated=ge0001&_summary=count');
    assert.equal(lu.status, 200, lu.text);
    assert.ok(lu.json.total > 0, 'every resource was updated between the years 1 and 9999');
    const tag = uid('edge');
    const d = await patientWithData(tag, 2);
    const zero = await get(`/Patient/${d.patient.id}/$everything?_count=0`);
    assert.equal(zero.json.total, 4);
    assert.equal(zero.json.entry, undefined);
    assert.ok(!zero.json.link.some((l) => l.relation === 'next'), '_count=0 has no next page');
    const rev = await get(`/Patient?_id=${d.patient.id}&_revinclude=Encounter:*`);
    assert.deepEqual(ids(rev.json.entry, 'include'), [`Encounter/${d.encounter.id}`], 'only Encounters are included');
    const comp = await get('/DocumentReference?relationship=DocumentReference/x$replaces');
    assert.equal(comp.status, 400, comp.text);
    assert.match(comp.json.issue[0].diagnostics, /does not start with a token/);
  });

  test('bad result parameters are refused with 400 naming them', async () => {
    for (const [q, name] of [['_sort=nosuch', '_sort'], ['_sort=code-value-quantity', '_sort'], ['_total=some', '_total'],
      ['_summary=maybe', '_summary'], ['_count=-1', '_count'], ['_include=Nope:subject', '_include'],
      ['_include:deep=Observation:subject', '_include:deep'], ['_contained=true', '_contained']]) {
      const r = await get(`/Observation?${q}`);
      assert.equal(r.status, 400, `${q}: ${r.text.slice(0, 200)}`);
      assert.ok(JSON.stringify(r.json.issue).includes(name), `${q} names ${name}`);
    }
  });
});

// ---------------------------------------------------------------------------------------------
describe('conditional interactions take full search criteria', () => {
  test('conditional create, update and delete by name and birthdate', async () => {
    const family = `Cond${uid('f').replace(/-/g, '')}`;
    const body = { resourceType: 'Patient', name: [{ family, given: ['Ichiro'] }], birthDate: '1961-02-03' };
    const criteria = `family=${family}&birthdate=1961-02-03`;
    const first = await post('/Patient', body, { headers: { 'if-none-exist': criteria } });
    assert.equal(first.status, 201, first.text);
    const again = await post('/Patient', body, { headers: { 'if-none-exist': criteria } });
    assert.equal(again.status, 200, 'the existing match is returned');
    assert.equal(again.json.id, first.json.id);
    const upd = await put(`/Patient?${criteria}`, { ...body, gender: 'male' });
    assert.equal(upd.status, 200, upd.text);
    assert.equal(upd.json.id, first.json.id);
    assert.equal((await get(`/Patient?family:exact=${family}&gender=male`)).json.total, 1);
    await post('/Patient', { ...body, birthDate: '1961-02' });
    const two = await del(`/Patient?family=${family}&birthdate=1961-02`);
    assert.equal(two.status, 412, 'two matches for a conditional delete');
    const badCrit = await post('/Patient', body, { headers: { 'if-none-exist': 'nosuch=1' } });
    assert.equal(badCrit.status, 400);
  });
});

// ---------------------------------------------------------------------------------------------
describe('CapabilityStatement and $reindex', () => {
  test('the CapabilityStatement lists the registry parameters per type, unsupported ones, and the operations', async () => {
    const cs = (await get('/metadata')).json;
    const rest = cs.rest[0];
    const patient = rest.resource.find((r) => r.type === 'Patient');
    for (const name of ['name', 'birthdate', 'family', 'identifier', '_id', '_lastUpdated', '_tag', 'kana']) {
      const sp = patient.searchParam.find((s) => s.name === name);
      assert.ok(sp, `Patient ${name}`);
      assert.ok(sp.type && sp.documentation);
    }
    assert.equal(patient.searchParam.find((s) => s.name === 'birthdate').definition,
      'http://hl7.org/fhir/SearchParameter/individual-birthdate');
    assert.match(patient.documentation, /_text/);
    assert.ok(patient.searchRevInclude.includes('Observation:subject'));
    assert.ok(patient.operation.some((o) => o.name === 'everything'));
    assert.ok(rest.interaction.some((i) => i.code === 'search-system'));
    assert.ok(rest.operation.some((o) => o.name === 'reindex'));
  });

  test('POST Patient/$reindex rebuilds the index and search answers the same after it', async () => {
    const tag = uid('reix');
    const d = await patientWithData(tag, 1);
    const before = await get(`/Patient?${tagParam(tag)}&name=hanako`);
    const r = await post('/Patient/$reindex', undefined);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.resourceType, 'Parameters');
    // The test client is an institution's terminal: it is told no count of everyone's
    // resources (R-20), only that the rebuild ran.
    assert.equal(r.json.parameter.find((p) => p.name === 'resources'), undefined);
    assert.ok(r.json.parameter.find((p) => p.name === 'seconds'));
    const after = await get(`/Patient?${tagParam(tag)}&name=hanako`);
    assert.deepEqual(ids(after.json.entry), ids(before.json.entry));
    assert.deepEqual(ids(after.json.entry), [`Patient/${d.patient.id}`]);
  });
});
