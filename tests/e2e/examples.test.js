// R-05 (FHIR R4 JSON): every official R4 example (../shared/corpora/r4-examples, package
// hl7.fhir.r4.examples 4.0.1) stored and read back unchanged, against the "lenient"
// fixture (KASAMA_REF_INTEGRITY=off: the examples refer to resources that are not among
// them).
//
// Each example is PUT to Type/id (update-as-create keeping its id; an example without id
// would be POSTed), then read back and compared with the original text:
// - structure: deep-equal apart from meta.versionId and meta.lastUpdated (and meta removed
//   entirely if the original had none);
// - numbers: the exact text of every JSON number, in document order (JSON.parse loses the
//   difference between 1.50 and 1.5, which FHIR decimals keep).
// Bundles of type transaction/batch are stored as Bundle resources, not executed.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import {
  get,
  request,
  describe as show,
  corporaDir,
  NO_CORPORA,
  numberLiterals,
  expressions,
} from './lib/corpus.js';
import { withoutCategoryLabel } from './lib/assertions.js';

const CORPORA = corporaDir();
const DIR = CORPORA && path.join(CORPORA, 'r4-examples');
const CONCURRENCY = 4;

// Examples that are invalid per the base specification: the server must reject them with
// 422 and an OperationOutcome naming the offending elements, and must not store them.
const EXCLUDED = {
  'ImplementationGuide-fhir.json': {
    reason: 'ImplementationGuide.name (1..1) and ImplementationGuide.status (1..1) are missing',
    expressions: [/^ImplementationGuide\.name$/, /^ImplementationGuide\.status$/],
  },
  'ig-r4.json': {
    reason: 'the same ImplementationGuide/fhir as ImplementationGuide-fhir.json: name and status missing',
    expressions: [/^ImplementationGuide\.name$/, /^ImplementationGuide\.status$/],
  },
  'Questionnaire-qs1.json': {
    reason: 'nested Questionnaire.item elements have no linkId (1..1)',
    expressions: [/^Questionnaire\.item\[\d+\](\.item\[\d+\])+\.linkId$/],
  },
  // txt-2: "The narrative SHALL have some non-whitespace content" (malformed, so 400 value).
  'ActivityDefinition-blood-tubes-supply.json': {
    reason: 'Narrative.div has only whitespace (txt-2)',
    expressions: [/^ActivityDefinition\.text\.div$/],
    status: 400,
    code: 'value',
  },
  'ActivityDefinition-heart-valve-replacement.json': {
    reason: 'Narrative.div has only whitespace (txt-2)',
    expressions: [/^ActivityDefinition\.text\.div$/],
    status: 400,
    code: 'value',
  },
  'EventDefinition-example.json': {
    reason: 'Narrative.div has only whitespace (txt-2)',
    expressions: [/^EventDefinition\.text\.div$/],
    status: 400,
    code: 'value',
  },
  'Questionnaire-zika-virus-exposure-assessment.json': {
    reason: 'Narrative.div holds only an empty <pre> (txt-2)',
    expressions: [/^Questionnaire\.text\.div$/],
    status: 400,
    code: 'value',
  },
};

function index() {
  const lines = readFileSync(path.join(DIR, 'INDEX.tsv'), 'utf8').trim().split('\n');
  const head = lines.shift().split('\t');
  return lines.map((l) => Object.fromEntries(l.split('\t').map((v, i) => [head[i], v])));
}

const rows = CORPORA ? index() : [];
const summary = { stored: 0, created: 0, updated: 0, rejected: 0, mismatches: [], failures: [] };

// Files that share a Type/id are processed one after another.
const locks = new Map();
function withLock(key, fn) {
  const prev = locks.get(key) || Promise.resolve();
  const run = prev.then(fn, fn);
  locks.set(
    key,
    run.catch(() => {}),
  );
  return run;
}

/** The stored resource made comparable with the original. */
function comparable(stored, original) {
  const out = structuredClone(stored);
  if (out.meta) {
    delete out.meta.versionId;
    delete out.meta.lastUpdated;
    // The server's information-category label replaces any the example carried.
    withoutCategoryLabel(out.meta);
    if (!original.meta && Object.keys(out.meta).length === 0) delete out.meta;
  }
  return out;
}

function expected(original) {
  const out = structuredClone(original);
  if (out.meta) {
    // The server owns versionId, lastUpdated and the category label.
    delete out.meta.versionId;
    delete out.meta.lastUpdated;
    withoutCategoryLabel(out.meta);
  }
  return out;
}

async function storeAndCompare(row) {
  const raw = readFileSync(path.join(DIR, row.file), 'utf8');
  const original = JSON.parse(raw);
  assert.equal(original.resourceType, row.resourceType, 'INDEX.tsv type');
  const write = original.id
    ? await request('PUT', `${original.resourceType}/${original.id}`, { body: raw })
    : await request('POST', original.resourceType, { body: raw });
  if (write.status !== 201 && write.status !== 200) {
    summary.failures.push(`${row.file}: ${write.status}`);
    assert.fail(`${row.file}: expected 201/200, ${show(write)}`);
  }
  summary.stored++;
  if (write.status === 201) summary.created++;
  else summary.updated++;
  let id = original.id;
  if (!id) {
    const loc = write.headers.get('location') || '';
    id = new RegExp(`/${original.resourceType}/([^/]+)/_history/`).exec(loc)?.[1];
    assert.ok(id, `POST gave a Location: ${loc}`);
  }
  const res = await get(`${original.resourceType}/${id}`);
  assert.equal(res.status, 200, `${row.file}: read back: ${show(res)}`);
  try {
    assert.equal(res.json.id, id);
    assert.ok(/^\d+$/.test(res.json.meta?.versionId || ''), 'meta.versionId is set');
    assert.ok(res.json.meta?.lastUpdated, 'meta.lastUpdated is set');
    assert.deepStrictEqual(comparable(res.json, original), expected(original), `${row.file}: structure`);
    assert.deepStrictEqual(numberLiterals(res.text), numberLiterals(raw), `${row.file}: number literals (in document order)`);
  } catch (err) {
    summary.mismatches.push(`${row.file}: ${err.message.split('\n')[0]}`);
    throw err;
  }
  return { res, original };
}

describe('R-05 official FHIR R4 examples: stored with PUT Type/id and read back unchanged', { concurrency: CONCURRENCY }, () => {
  if (!CORPORA) {
    it('the r4-examples corpus', (t) => t.skip(NO_CORPORA));
    return;
  }
  it('INDEX.tsv lists the 722 examples', () => {
    assert.equal(rows.length, 722);
  });
  for (const row of rows) {
    if (EXCLUDED[row.file]) continue;
    if (row.resourceType === 'AuditEvent') {
      // the audit trail is the server's own; nobody stores AuditEvents in it.
      it(`${row.file}: refused (only the server writes AuditEvents)`, async () => {
        const original = readFileSync(path.join(DIR, row.file), 'utf8');
        const res = await request('PUT', `AuditEvent/${row.id}`, { body: original });
        assert.equal(res.status, 403, show(res));
        assert.equal(res.json.resourceType, 'OperationOutcome');
      });
      continue;
    }
    it(`${row.file} (${row.resourceType}/${row.id})`, () =>
      withLock(`${row.resourceType}/${row.id}`, () => storeAndCompare(row)));
  }
});

describe('R-05 invalid official examples are rejected (listed exclusions)', () => {
  for (const [file, why] of Object.entries(EXCLUDED)) {
    it(`${file} -> ${why.status ?? 422}: ${why.reason}`, async (t) => {
      if (!CORPORA) return t.skip(NO_CORPORA);
      const raw = readFileSync(path.join(DIR, file), 'utf8');
      const original = JSON.parse(raw);
      const res = await withLock(`${original.resourceType}/${original.id}`, () =>
        request('PUT', `${original.resourceType}/${original.id}`, { body: raw }),
      );
      assert.equal(res.status, why.status ?? 422, show(res));
      assert.equal(res.json?.resourceType, 'OperationOutcome');
      const ex = expressions(res.json);
      for (const want of why.expressions) {
        assert.ok(ex.some((e) => want.test(e)), `an issue at ${want}: ${JSON.stringify(ex).slice(0, 500)}`);
      }
      for (const issue of res.json.issue) {
        assert.equal(issue.severity, 'error');
        assert.equal(issue.code, why.code ?? 'required');
      }
      summary.rejected++;
      const read = await get(`${original.resourceType}/${original.id}`);
      assert.equal(read.status, 404, `the rejected example was not stored: ${show(read)}`);
    });
  }
});

describe('R-05 transaction and batch Bundles among the examples are stored, not executed', () => {
  it('Bundle-bundle-transaction.json: Bundle/bundle-transaction is a stored transaction; its entries did not run', async (t) => {
    if (!CORPORA) return t.skip(NO_CORPORA);
    const res = await get('Bundle/bundle-transaction');
    assert.equal(res.status, 200, show(res));
    assert.equal(res.json.resourceType, 'Bundle');
    assert.equal(res.json.type, 'transaction');
    assert.equal(res.json.entry.length, 10);
    // Its PUT Patient/123 and PUT Patient/123a would have created these.
    assert.equal((await get('Patient/123')).status, 404);
    assert.equal((await get('Patient/123a')).status, 404);
    const s = await get(`Patient?identifier=${encodeURIComponent('http:/example.org/fhir/ids|234234')}`);
    assert.equal(s.status, 200, show(s));
    assert.equal(s.json.total, 0, 'its POST Patient with identifier 234234 did not run');
  });

  it('every transaction/batch Bundle example reads back with its own type', async (t) => {
    if (!CORPORA) return t.skip(NO_CORPORA);
    const txs = rows.filter((r) => r.bundle_type === 'transaction' || r.bundle_type === 'batch');
    assert.ok(txs.length >= 6, `transaction/batch examples: ${txs.map((r) => r.file)}`);
    for (const r of txs) {
      const res = await get(`Bundle/${r.id}`);
      assert.equal(res.status, 200, `${r.file}: ${show(res)}`);
      assert.equal(res.json.type, r.bundle_type, r.file);
      assert.equal(res.json.entry.length, Number(r.entries), r.file);
    }
  });

  after(() => {
    if (!CORPORA) return;
    const total = rows.length;
    console.log(
      `# r4-examples: ${total} examples; stored ${summary.stored} (${summary.created} created, ${summary.updated} updated), ` +
        `rejected as invalid ${summary.rejected} of ${Object.keys(EXCLUDED).length} listed exclusions; ` +
        `${summary.failures.length} not stored, ${summary.mismatches.length} read back different`,
    );
    for (const m of [...summary.failures, ...summary.mismatches].slice(0, 50)) console.log(`#   ${m}`);
  });
});
