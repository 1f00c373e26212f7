// Data-driven tests of the search semantics (R4 search.html): every file in search-cases/
// (sorted by name) loads its resources, runs its cases and deletes its resources again.
// The format of a case file and how to add a case are in search-cases/README.md.
//
// - Resources are sent with one PUT /Type/id each, as the exact text of the file (so decimals
//   such as 100.000 keep their precision), and deleted in reverse order afterwards (failures
//   ignored: the server for this suite runs with referential integrity off).
// - A case's query is used as written after BASE + '/': the runner only percent-encodes
//   spaces and non-ASCII characters (Japanese text may be written as is); anything else that
//   needs encoding is already encoded in the file (%2B for '+', %5C for '\').
// - Every next link is followed; "expect" is the set of search.mode=match entries over all
//   pages (a list in order with "ordered": true), "include" the set of search.mode=include
//   entries, "total" Bundle.total of the first page; "status" other than 200 expects an
//   OperationOutcome whose first error issue's diagnostics contain "diagnostics".
// A file's queries only see its own resources as long as the server holds no other
// resources of the types a file queries; the first suite removes what an interrupted earlier
// run may have left behind.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BASE, request } from './lib/client.js';

const DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'search-cases');
const MAX_PAGES = 200;
const FILES = readdirSync(DIR)
  .filter((f) => f.endsWith('.json'))
  .sort()
  .map(loadCaseFile);

/** A case file with each resource's exact text (raw) next to its type and id. */
function loadCaseFile(name) {
  const text = readFileSync(path.join(DIR, name), 'utf8');
  const data = JSON.parse(text);
  const raw = rawArrayItems(text, 'resources');
  const resources = (data.resources ?? []).map((r, i) => {
    assert.deepEqual(JSON.parse(raw[i]), r, `${name}: raw text of resource ${i}`);
    return { type: r.resourceType, id: r.id, key: `${r.resourceType}/${r.id}`, raw: raw[i] };
  });
  return { name, description: data.description ?? '', cases: data.cases ?? [], resources };
}

/** The exact source text of each element of the top-level array `key` of a (valid) JSON text. */
function rawArrayItems(text, key) {
  let i = 0;
  const ws = () => {
    while (i < text.length && ' \t\r\n'.includes(text[i])) i++;
  };
  const skipString = () => {
    i++;
    while (text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
    i++;
  };
  const skipValue = () => {
    ws();
    const open = text[i];
    if (open === '"') return skipString();
    if (open === '{' || open === '[') {
      i++;
      ws();
      if (text[i] === (open === '{' ? '}' : ']')) return void i++;
      for (;;) {
        if (open === '{') {
          ws();
          skipString();
          ws();
          i++; // ':'
        }
        skipValue();
        ws();
        if (text[i++] !== ',') return undefined; // '}' or ']'
      }
    }
    while (i < text.length && !' \t\r\n,]}'.includes(text[i])) i++; // number, true, false, null
    return undefined;
  };
  ws();
  i++; // '{'
  for (;;) {
    ws();
    if (text[i] === '}') return [];
    const start = i;
    skipString();
    const name = JSON.parse(text.slice(start, i));
    ws();
    i++; // ':'
    ws();
    if (name === key && text[i] === '[') {
      const items = [];
      i++;
      ws();
      if (text[i] === ']') return items;
      for (;;) {
        ws();
        const s = i;
        skipValue();
        items.push(text.slice(s, i));
        ws();
        if (text[i++] !== ',') return items;
      }
    }
    skipValue();
    ws();
    if (text[i++] !== ',') return [];
  }
}

/** BASE/query with spaces and non-ASCII characters percent-encoded (UTF-8), nothing else touched. */
function urlOf(query) {
  return `${BASE}/${query.replace(/[^\x21-\x7e]+/g, (s) => encodeURIComponent(s))}`;
}

const typeOf = (query) => query.split('?')[0];
const list = (xs) => `[${xs.join(', ')}]`;

/** GET the query and every next page; the match and include keys ("Type/id") in order. */
async function runSearch(query, headers) {
  const match = [];
  const include = [];
  const seen = new Set();
  let url = urlOf(query);
  let first;
  while (url) {
    assert.ok(!seen.has(url), `${query}\n  next link loops back to ${url}`);
    seen.add(url);
    assert.ok(seen.size <= MAX_PAGES, `${query}\n  more than ${MAX_PAGES} pages`);
    const res = await request('GET', url, { headers });
    if (!first) {
      first = res;
      if (res.status !== 200) return { first, match, include };
    }
    assert.equal(res.status, 200, `${query}\n  page ${url}: ${res.status} ${res.text.slice(0, 600)}`);
    const bundle = res.json;
    assert.equal(bundle?.resourceType, 'Bundle', `${query}\n  not a Bundle: ${res.text.slice(0, 600)}`);
    assert.equal(bundle.type, 'searchset', `${query}\n  Bundle.type`);
    if (seen.size === 1) first.bundle = bundle;
    for (const e of bundle.entry ?? []) {
      const key = e.resource ? `${e.resource.resourceType}/${e.resource.id}` : String(e.fullUrl);
      const mode = e.search?.mode ?? 'match';
      if (mode === 'match') match.push(key);
      else if (mode === 'include') include.push(key);
    }
    url = (bundle.link ?? []).find((l) => l.relation === 'next')?.url;
  }
  return { first, match, include };
}

/** A failure message with the query, both sets and their differences. */
function differs(file, c, what, expected, actual) {
  const known = new Set(file.resources.map((r) => r.key));
  const missing = expected.filter((k) => !actual.includes(k));
  const unexpected = actual.filter((k) => !expected.includes(k));
  const foreign = actual.filter((k) => !known.has(k));
  return [
    `${c.query}`,
    `  ${what} expected: ${list(expected)}`,
    `  ${what} actual:   ${list(actual)}`,
    `  missing: ${list(missing)}  unexpected: ${list(unexpected)}`,
    ...(foreign.length ? [`  not loaded by ${file.name} (another test's data on the server?): ${list(foreign)}`] : []),
  ].join('\n');
}

async function runCase(file, c) {
  const status = c.status ?? 200;
  const { first, match, include } = await runSearch(c.query, c.headers ?? {});
  if (status !== 200) {
    const show = `${c.query}\n  ${first.status} ${first.text.slice(0, 800)}`;
    assert.equal(first.status, status, `status ${status} expected: ${show}`);
    const oo = first.json;
    assert.equal(oo?.resourceType, 'OperationOutcome', `OperationOutcome expected: ${show}`);
    const issues = oo.issue ?? [];
    const issue = issues.find((i) => i.severity === 'error' || i.severity === 'fatal') ?? issues[0];
    assert.ok(issue, `an issue expected: ${show}`);
    if (c.diagnostics !== undefined) {
      assert.ok((issue.diagnostics ?? '').includes(c.diagnostics), `diagnostics naming "${c.diagnostics}" expected: ${show}`);
    }
    return;
  }
  assert.equal(first.status, 200, `${c.query}\n  ${first.status} ${first.text.slice(0, 800)}`);
  if (c.expect !== undefined) {
    if (c.ordered) {
      assert.deepEqual(match, c.expect, differs(file, c, 'matches (in order)', c.expect, match));
    } else {
      const want = [...c.expect].sort();
      const got = [...match].sort();
      assert.deepEqual(got, want, differs(file, c, 'matches', want, got));
    }
  }
  if (c.include !== undefined) {
    const want = [...new Set(c.include)].sort();
    const got = [...new Set(include)].sort();
    assert.deepEqual(got, want, differs(file, c, 'includes', want, got));
  }
  if (c.total !== undefined) {
    assert.equal(first.bundle?.total, c.total, `${c.query}\n  Bundle.total expected ${c.total}, actual ${first.bundle?.total}`);
  }
}

async function deleteAll(resources) {
  for (const r of [...resources].reverse()) {
    try {
      await request('DELETE', `/${r.type}/${encodeURIComponent(r.id)}`);
    } catch {
      // ignored: only cleaning up
    }
  }
}

// ---------------------------------------------------------------------------------------------
describe('search case files', () => {
  it('are well formed: unique ids, queries on loaded types, expected entries among the resources', () => {
    const owner = new Map();
    const problems = [];
    for (const f of FILES) {
      const keys = new Set(f.resources.map((r) => r.key));
      const types = new Set(f.resources.map((r) => r.type));
      for (const r of f.resources) {
        if (!r.type || !r.id) problems.push(`${f.name}: a resource without resourceType or id`);
        if (owner.has(r.id)) problems.push(`${f.name}: id ${r.id} also in ${owner.get(r.id)}`);
        owner.set(r.id, f.name);
      }
      const names = new Set();
      for (const c of f.cases) {
        const where = `${f.name}: "${c.name}"`;
        if (!c.name || !c.query) problems.push(`${where}: name and query are required`);
        if (names.has(c.name)) problems.push(`${where}: duplicate case name`);
        names.add(c.name);
        if (c.query && !types.has(typeOf(c.query))) problems.push(`${where}: ${typeOf(c.query)} is not loaded by the file`);
        for (const k of [...(c.expect ?? []), ...(c.include ?? [])]) {
          if (!keys.has(k)) problems.push(`${where}: ${k} is not a resource of the file`);
        }
        const error = (c.status ?? 200) !== 200;
        if (error && c.diagnostics === undefined) problems.push(`${where}: an error case needs diagnostics`);
        if (!error && c.expect === undefined && c.total === undefined) problems.push(`${where}: expect or total is required`);
      }
    }
    assert.deepEqual(problems, []);
  });

  it('leftovers of an interrupted earlier run are removed', async () => {
    for (const f of [...FILES].reverse()) await deleteAll(f.resources);
  });
});

for (const file of FILES) {
  describe(`${file.name}: ${file.description.match(/^[^(.;]*/)[0].trim()}`, () => {
    before(async () => {
      for (const r of file.resources) {
        const res = await request('PUT', `/${r.type}/${encodeURIComponent(r.id)}`, { body: r.raw });
        assert.ok([200, 201].includes(res.status), `PUT ${r.key}: ${res.status} ${res.text.slice(0, 800)}`);
      }
    });
    after(async () => {
      await deleteAll(file.resources);
    });
    for (const c of file.cases) {
      it(c.name, async () => {
        await runCase(file, c);
      });
    }
  });
}
