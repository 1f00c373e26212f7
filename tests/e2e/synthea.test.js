// R-05 (FHIR R4 JSON, transactions): the Synthea corpus (../shared/corpora/synthea) loaded
// through POST [base] as transaction Bundles, against the "main" fixture (referential
// integrity strict). The shared organization/practitioner bundles load first, then every
// patient bundle. Then every created resource is read back and compared with what was
// sent, and every relative reference in it must resolve (GET 200).
//
// The corpus is loaded once (the tests of this file build on each other); loading it
// twice into one server only duplicates resources (Synthea bundles carry no ifNoneExist).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import {
  get,
  postBundle,
  describe as show,
  corporaDir,
  NO_CORPORA,
  pool,
  references,
  relativeTarget,
} from './lib/corpus.js';
import { categoryOf, withoutCategoryLabel } from './lib/assertions.js';

const CORPORA = corporaDir();
const DIR = CORPORA && path.join(CORPORA, 'synthea');
// Bundles in flight: 2 by default (2 cores shared with the server and MariaDB).
const INGEST_CONCURRENCY = Number(process.env.KASAMA_SYNTHEA_CONCURRENCY) || 2;
const READ_CONCURRENCY = 16;

const state = {
  loaded: [], // { file, created: [{ type, id, index }] } per bundle, shared ones first
  sent: 0, // entries sent
  resources: 0, // resources created
  failures: [],
  readOk: new Set(), // Type/id read back with 200
  refs: new Map(), // Type/id -> first referrer, for every relative reference seen
};

function bundleFiles() {
  const shared = readdirSync(path.join(DIR, 'shared'))
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => path.join(DIR, 'shared', f));
  const patients = readdirSync(DIR)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => path.join(DIR, f));
  return { shared, patients };
}

/** POST one transaction bundle file; returns what it created, or records why not. */
async function load(file) {
  const text = readFileSync(file, 'utf8');
  const b = JSON.parse(text);
  const name = path.relative(DIR, file);
  state.sent += b.entry.length;
  const res = await postBundle(text);
  if (res.status !== 200 || res.json?.type !== 'transaction-response') {
    state.failures.push(`${name}: ${show(res)}`);
    return null;
  }
  const got = res.json.entry || [];
  if (got.length !== b.entry.length) {
    state.failures.push(`${name}: ${b.entry.length} entries sent, ${got.length} answered`);
    return null;
  }
  const created = [];
  got.forEach((e, index) => {
    const type = b.entry[index].resource.resourceType;
    const status = e.response?.status;
    const m = /^([A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})\/_history\/1$/.exec(e.response?.location || '');
    if (status !== '201 Created' || !m || m[1] !== type) {
      state.failures.push(`${name} entry ${index} (${type}): status '${status}', location '${e.response?.location}'`);
      return;
    }
    created.push({ type, id: m[2], index });
  });
  state.resources += created.length;
  const rec = { file, created };
  state.loaded.push(rec);
  return rec;
}

/**
 * What the server must store: every Reference.reference equal to a fullUrl of the bundle
 * replaced by the new Type/id, and so every narrative link. (In this corpus no other
 * element holds a fullUrl.)
 */
function rewrite(node, map) {
  if (Array.isArray(node)) return node.map((v) => rewrite(v, map));
  if (node && typeof node === 'object') {
    const out = {};
    for (const [k, v] of Object.entries(node)) {
      if (k === 'reference' && typeof v === 'string') {
        out[k] = map.get(v) ?? v;
      } else if (k === 'div' && typeof v === 'string') {
        let div = v;
        for (const [from, to] of map) div = div.split(`"${from}"`).join(`"${to}"`);
        out[k] = div;
      } else {
        out[k] = rewrite(v, map);
      }
    }
    return out;
  }
  return node;
}

function containedIds(resource) {
  return new Set((resource.contained || []).map((c) => c.id));
}

describe('R-05 Synthea transaction bundles', () => {
  it('the shared organization and practitioner bundles load first: every entry 201 Created', async (t) => {
    if (!CORPORA) return t.skip(NO_CORPORA);
    const { shared } = bundleFiles();
    assert.ok(shared.length >= 1, 'synthea/shared holds bundles');
    for (const f of shared) await load(f);
    assert.deepEqual(state.failures, [], `failed entries:\n${state.failures.slice(0, 20).join('\n')}`);
    console.log(`# synthea: shared bundles ${shared.length}, resources ${state.resources}`);
  });

  it('every patient bundle (148) loads as a transaction: every entry 201 Created', async (t) => {
    if (!CORPORA) return t.skip(NO_CORPORA);
    const { patients } = bundleFiles();
    assert.equal(patients.length, 148, 'the corpus holds 148 patient bundles');
    const before = state.resources;
    const sentBefore = state.sent;
    const start = process.hrtime.bigint();
    await pool(patients, INGEST_CONCURRENCY, load);
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    const n = state.resources - before;
    console.log(
      `# synthea: ${patients.length} patient bundles, ${n} resources in ${seconds.toFixed(1)} s = ` +
        `${(n / seconds).toFixed(0)} resources/s (${INGEST_CONCURRENCY} bundles in flight); ` +
        `total with shared ${state.resources} resources`,
    );
    assert.deepEqual(state.failures, [], `failed bundles/entries:\n${state.failures.slice(0, 20).join('\n')}`);
    assert.equal(n, state.sent - sentBefore, 'one resource created per entry sent');
    assert.ok(n > 15000, `about 19k resources expected, got ${n}`);
  });

  it('every created resource reads back (GET 200) equal to what was sent, urn:uuid references rewritten', async (t) => {
    if (!CORPORA) return t.skip(NO_CORPORA);
    assert.ok(state.loaded.length > 0, 'the corpus was loaded by the tests before');
    const start = process.hrtime.bigint();
    const mismatches = [];
    let reads = 0;
    for (const rec of state.loaded) {
      const b = JSON.parse(readFileSync(rec.file, 'utf8'));
      const map = new Map();
      for (const c of rec.created) {
        const fu = b.entry[c.index].fullUrl;
        if (fu) map.set(fu, `${c.type}/${c.id}`);
      }
      await pool(rec.created, READ_CONCURRENCY, async (c) => {
        const res = await get(`${c.type}/${c.id}`);
        reads++;
        const where = `${path.relative(DIR, rec.file)} entry ${c.index} ${c.type}/${c.id}`;
        if (res.status !== 200) {
          mismatches.push(`${where}: ${show(res)}`);
          return;
        }
        state.readOk.add(`${c.type}/${c.id}`);
        const got = res.json;
        // What was sent, as the server must store it: references to fullUrls rewritten,
        // the server's id, versionId/lastUpdated added to meta.
        const sent = rewrite(b.entry[c.index].resource, map);
        sent.id = c.id;
        const { versionId, lastUpdated, ...metaRest } = structuredClone(got.meta || {});
        // The server labels every resource with its information category.
        if (!categoryOf(got)) mismatches.push(`${where}: no information-category label in meta.security`);
        const gotCmp = { ...got, meta: withoutCategoryLabel(metaRest) };
        if (!sent.meta) sent.meta = {};
        if (versionId !== '1' || typeof lastUpdated !== 'string') {
          mismatches.push(`${where}: meta.versionId '${versionId}', lastUpdated '${lastUpdated}'`);
        }
        try {
          assert.deepStrictEqual(gotCmp, sent);
        } catch (err) {
          mismatches.push(`${where}: differs from what was sent: ${err.message.slice(0, 800)}`);
        }
        const contained = containedIds(got);
        for (const r of references(got)) {
          if (r.reference.startsWith('#')) {
            if (!contained.has(r.reference.slice(1))) mismatches.push(`${where} ${r.path}: '${r.reference}' names no contained resource`);
            continue;
          }
          const target = relativeTarget(r.reference);
          if (!target) {
            mismatches.push(`${where} ${r.path}: '${r.reference}' is not a relative reference (Type/id)`);
            continue;
          }
          if (!state.refs.has(target.path)) state.refs.set(target.path, `${where} ${r.path}`);
        }
      });
    }
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    console.log(
      `# synthea: read back ${reads} resources in ${seconds.toFixed(1)} s (${(reads / seconds).toFixed(0)}/s, ` +
        `${READ_CONCURRENCY} in flight); ${state.refs.size} distinct reference targets`,
    );
    assert.deepEqual(mismatches.slice(0, 20), [], `${mismatches.length} problems`);
  });

  it('every relative reference in every stored resource resolves (GET 200)', async (t) => {
    if (!CORPORA) return t.skip(NO_CORPORA);
    assert.ok(state.refs.size > 0, 'references were collected by the test before');
    // Targets already read back with 200 above are resolved; GET the others.
    const pending = [...state.refs.keys()].filter((k) => !state.readOk.has(k));
    const dangling = [];
    await pool(pending, READ_CONCURRENCY, async (target) => {
      const res = await get(target);
      if (res.status !== 200) dangling.push(`${state.refs.get(target)} -> ${target}: HTTP ${res.status}`);
    });
    const resolvedByRead = state.refs.size - pending.length;
    console.log(
      `# synthea: ${state.refs.size} distinct targets: ${resolvedByRead} among the created resources read back, ` +
        `${pending.length} fetched separately, ${dangling.length} dangling`,
    );
    assert.deepEqual(dangling.slice(0, 20), [], `${dangling.length} dangling references`);
  });
});
