// Assertions and small FHIR helpers for the REST/errors/concurrency tests.
import assert from 'node:assert/strict';
import { BASE, get, post, freshIdentifier, request } from './client.js';

/** The resource type's plain Patient with a fresh identifier (and any extra elements). */
export function newPatient(extra = {}) {
  const identifier = freshIdentifier();
  return { resourceType: 'Patient', identifier: [identifier], name: [{ family: 'E2e', given: ['Test'] }], ...extra };
}

/** POST a Patient with a fresh identifier; returns { id, identifier, res, resource }. */
export async function createPatient(extra = {}) {
  const body = newPatient(extra);
  const res = await post('/Patient', body);
  assert.equal(res.status, 201, `create Patient: ${res.text}`);
  return { id: res.json.id, identifier: body.identifier[0], res, resource: res.json };
}

/** Check a response carries an OperationOutcome with an error issue; optional code / expression / diagnostics. */
export function assertOutcome(res, status, { code, expression, diagnostics, severity } = {}) {
  const show = `${res.status} ${res.text.slice(0, 600)}`;
  if (Array.isArray(status)) assert.ok(status.includes(res.status), `status ${status.join('|')} expected, got ${show}`);
  else assert.equal(res.status, status, `status ${status} expected, got ${show}`);
  assert.match(res.headers.get('content-type') ?? '', /^application\/fhir\+json/, `content-type of ${show}`);
  const oo = res.json;
  assert.ok(oo && oo.resourceType === 'OperationOutcome', `OperationOutcome expected: ${show}`);
  assert.ok(Array.isArray(oo.issue) && oo.issue.length > 0, `issues expected: ${show}`);
  const errs = oo.issue.filter((i) => (severity ? i.severity === severity : ['error', 'fatal'].includes(i.severity)));
  assert.ok(errs.length > 0, `an issue with severity ${severity ?? 'error'} expected: ${show}`);
  for (const i of oo.issue) assert.ok(i.code, `every issue has a code: ${show}`);
  if (code) {
    const codes = Array.isArray(code) ? code : [code];
    assert.ok(errs.some((i) => codes.includes(i.code)), `issue code ${codes.join('|')} expected: ${show}`);
  }
  const mentions = (i, what) => {
    const hay = [...(i.expression ?? []), ...(i.location ?? []), i.diagnostics ?? ''];
    return hay.some((h) => (what instanceof RegExp ? what.test(h) : h.includes(what)));
  };
  for (const x of expression === undefined ? [] : Array.isArray(expression) ? expression : [expression]) {
    assert.ok(
      errs.some((i) => (i.expression ?? []).some((e) => (x instanceof RegExp ? x.test(e) : e === x || e.includes(x)))),
      `issue expression naming ${x} expected: ${show}`,
    );
  }
  if (diagnostics) assert.ok(errs.some((i) => mentions(i, diagnostics)), `issue naming ${diagnostics} expected: ${show}`);
  return oo;
}

/** ETag W/"n", meta.versionId n, Last-Modified matching meta.lastUpdated (to the second). */
export function assertVersion(res, version, { body = true } = {}) {
  const show = `${res.status} ${res.text.slice(0, 300)}`;
  assert.equal(res.headers.get('etag'), `W/"${version}"`, `ETag of ${show}`);
  const lm = res.headers.get('last-modified');
  assert.ok(lm && !Number.isNaN(Date.parse(lm)), `Last-Modified of ${show}`);
  assert.match(lm, /^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$/, 'Last-Modified is an HTTP-date');
  if (body) {
    assert.equal(res.json?.meta?.versionId, String(version), `meta.versionId of ${show}`);
    const lu = res.json.meta.lastUpdated;
    assert.match(lu, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/, 'meta.lastUpdated is an instant');
    assert.equal(Math.floor(Date.parse(lu) / 1000), Math.floor(Date.parse(lm) / 1000), 'Last-Modified = meta.lastUpdated');
  }
}

/** Location (and Content-Location, if any) is BASE/Type/id/_history/version. */
export function assertLocation(res, type, id, version) {
  const loc = res.headers.get('location');
  assert.equal(loc, `${BASE}/${type}/${id}/_history/${version}`, 'Location');
  const cl = res.headers.get('content-location');
  if (cl) assert.equal(cl, loc, 'Content-Location');
}

/** Follow next links from a first URL; returns { pages, entries }. */
export async function walkPages(first, { between, maxPages = 2000 } = {}) {
  const pages = [];
  const entries = [];
  let url = first;
  while (url) {
    const r = await get(url);
    assert.equal(r.status, 200, `GET ${url}: ${r.text.slice(0, 400)}`);
    assert.equal(r.json.resourceType, 'Bundle');
    pages.push(r.json);
    entries.push(...(r.json.entry ?? []));
    url = (r.json.link ?? []).find((l) => l.relation === 'next')?.url;
    assert.ok(pages.length <= maxPages, 'too many pages');
    if (url && between) await between(pages.length);
  }
  return { pages, entries };
}

/** versionIds in an instance history (all pages), newest first. */
export async function historyVersions(type, id) {
  const { entries } = await walkPages(`/${type}/${id}/_history?_count=50`);
  return entries.map((e) => versionOfEntry(e));
}

/** The version of a history entry: resource meta, or the response etag (deletes carry no resource). */
export function versionOfEntry(e) {
  if (e.resource?.meta?.versionId) return e.resource.meta.versionId;
  const m = /^W\/"(\d+)"$/.exec(e.response?.etag ?? '');
  return m ? m[1] : undefined;
}

/** Number of current resources of a type with this identifier. */
export async function countByIdentifier(type, ident) {
  const q = encodeURIComponent(`${ident.system}|${ident.value}`);
  const r = await get(`/${type}?identifier=${q}`);
  assert.equal(r.status, 200, r.text);
  return (r.json.entry ?? []).length;
}

export { request };

/** The information-category system of the label the server keeps in meta.security. */
export const CATEGORY_SYSTEM = 'http://kasama-fhir.example/fhir/CodeSystem/information-category';

/** The category code the server labelled a stored resource with (undefined when none). */
export function categoryOf(resource) {
  return (resource?.meta?.security ?? []).find((c) => c.system === CATEGORY_SYSTEM)?.code;
}

/**
 * meta as the client sent it: the server's own category label taken out of meta.security
 * (and security dropped when nothing else was there). Mutates and returns meta.
 */
export function withoutCategoryLabel(meta) {
  if (!meta || !Array.isArray(meta.security)) return meta;
  meta.security = meta.security.filter((c) => c.system !== CATEGORY_SYSTEM);
  if (meta.security.length === 0) delete meta.security;
  return meta;
}
