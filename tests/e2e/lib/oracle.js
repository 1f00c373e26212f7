// Helpers for the search oracle test (../oracle.test.js): load a Synthea subset, read back
// what the server holds, generate seeded queries from the data, run them on the server, and
// evaluate them in memory with @medplum/core (matchesSearchRequest), an implementation of
// FHIR search written independently of ours. Also the few R4 rules (search.html) that the
// test's KNOWN_DIFFERENCES use to decide, resource by resource, that a disagreement is
// Medplum's and not ours.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  evalFhirPathTyped,
  getSearchParameter,
  indexSearchParameterBundle,
  indexStructureDefinitionBundle,
  matchesSearchRequest,
  parseSearchRequest,
  toTypedValue,
} from '@medplum/core';
import { BASE, request } from './client.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
/** ../shared (KASAMA_SHARED_DIR), by default the folder next to the checkout. */
export const SHARED_DIR = process.env.KASAMA_SHARED_DIR || path.resolve(HERE, '../../../../shared');

// ---------------------------------------------------------------------------------------------
// Corpus

/** The bundles to load: shared/ (organizations, practitioners), then the first n patients. */
export function corpusFiles(n) {
  const dir = path.join(SHARED_DIR, 'corpora', 'synthea');
  if (!existsSync(path.join(dir, 'shared'))) return null;
  const list = (d) => readdirSync(d).filter((f) => f.endsWith('.json')).sort().map((f) => path.join(d, f));
  return [...list(path.join(dir, 'shared')), ...list(dir).slice(0, n)];
}

/**
 * POST each transaction bundle in turn; throws on the first one the server refuses. Returns
 * the load order of what was created (Type/id -> ordinal: bundle, then entry), which the test
 * sorts the dataset by, so that a seed draws the same resources whatever ids they were given.
 */
export async function loadBundles(files) {
  const order = new Map();
  for (const file of files) {
    const res = await request('POST', '', { body: readFileSync(file, 'utf8') });
    if (res.status !== 200 || res.json?.type !== 'transaction-response') {
      throw new Error(`${path.basename(file)}: HTTP ${res.status} ${res.text.slice(0, 800)}`);
    }
    for (const e of res.json.entry ?? []) {
      const m = /^([A-Za-z]+\/[A-Za-z0-9\-.]+)(?:\/_history\/.*)?$/.exec(e.response?.location ?? '');
      if (m && !order.has(m[1])) order.set(m[1], order.size);
    }
  }
  return order;
}

/** GET a search and follow next links; returns { status, entries, error }. */
export async function searchAll(query, { maxPages = 100 } = {}) {
  const entries = [];
  let url = query;
  for (let page = 0; url && page < maxPages; page++) {
    const res = await request('GET', url);
    if (res.status !== 200 || res.json?.resourceType !== 'Bundle') {
      return { status: res.status, entries, error: res.text.slice(0, 400) };
    }
    entries.push(...(res.json.entry ?? []));
    url = (res.json.link ?? []).find((l) => l.relation === 'next')?.url;
  }
  if (url) return { status: 200, entries, error: `more than ${maxPages} pages` };
  return { status: 200, entries };
}

/** Every resource of a type that the server holds. */
export async function readAll(type) {
  const r = await searchAll(`${type}?_count=500`);
  if (r.error) throw new Error(`reading back ${type}: HTTP ${r.status} ${r.error}`);
  return r.entries.map((e) => e.resource);
}

// ---------------------------------------------------------------------------------------------
// Medplum

/** Index the R4 definitions from ../shared/fhir-r4 into @medplum/core's global schema. */
export function setupMedplum() {
  const dir = path.join(SHARED_DIR, 'fhir-r4');
  const read = (f) => JSON.parse(readFileSync(path.join(dir, f), 'utf8'));
  indexStructureDefinitionBundle(read('profiles-types.json'));
  indexStructureDefinitionBundle(read('profiles-resources.json'));
  const params = read('search-parameters.json');
  indexSearchParameterBundle(params);
  // Speed only: Medplum parses a parameter's FHIRPath for every resource it matches, and the
  // shared R4 parameters (date, patient, code...) are unions over dozens of types. Index, for
  // each base type, a copy whose expression keeps only the union terms rooted at that type:
  // the other terms select nothing in a resource of that type, so the answers are the same
  // (only duplicates, which a union drops, may stay: no match depends on them).
  const perType = [];
  for (const { resource: sp } of params.entry) {
    if (!sp.expression || (sp.base ?? []).length < 2) continue;
    for (const base of sp.base) {
      const terms = unionTerms(sp.expression).filter((t) => new RegExp(`^\\(*${base}\\b`).test(t));
      if (terms.length) perType.push({ resource: { ...sp, base: [base], expression: terms.join(' | ') } });
    }
  }
  indexSearchParameterBundle({ resourceType: 'Bundle', type: 'collection', entry: perType });
  return params.entry.map((e) => e.resource);
}

/** The top-level terms of a FHIRPath union a | b | c (not splitting inside (), [] or quotes). */
function unionTerms(expr) {
  const out = [];
  let depth = 0;
  let quote = null;
  let start = 0;
  for (let i = 0; i < expr.length; i++) {
    const ch = expr[i];
    if (quote) {
      if (ch === '\\') i++;
      else if (ch === quote) quote = null;
    } else if (ch === "'" || ch === '`') quote = ch;
    else if (ch === '(' || ch === '[') depth++;
    else if (ch === ')' || ch === ']') depth--;
    else if (ch === '|' && depth === 0) {
      out.push(expr.slice(start, i).trim());
      start = i + 1;
    }
  }
  out.push(expr.slice(start).trim());
  return out;
}

/** The typed values of a search parameter in a resource (its FHIRPath expression, by Medplum). */
export function paramValues(resource, param) {
  let perResource = valueCache.get(resource);
  if (!perResource) valueCache.set(resource, (perResource = new Map()));
  if (!perResource.has(param)) {
    const sp = getSearchParameter(resource.resourceType, param);
    perResource.set(param, sp?.expression ? evalFhirPathTyped(sp.expression, [toTypedValue(resource)]) : []);
  }
  return perResource.get(param);
}
const valueCache = new WeakMap();

/**
 * The values a query is made from: paramValues, less those of another type than an
 * expression's X.as(type) asks for (Medplum's FHIRPath .as() does not filter, so
 * Condition.onset.as(string) would give the onsetDateTime).
 */
export function sourceValues(resource, param) {
  const tvs = paramValues(resource, param);
  const expr = getSearchParameter(resource.resourceType, param)?.expression ?? '';
  const asTypes = [...expr.matchAll(/\.as\((\w+)\)/g)].map((m) => m[1]);
  return asTypes.length ? tvs.filter((tv) => asTypes.includes(tv.type)) : tvs;
}

/**
 * A clause as Medplum's parser can take it. Medplum compares reference values as whole
 * strings, so a bare id (`patient=123`, `subject:Patient=123`) becomes the same search
 * written with the type (`Patient/123`), one OR value per target type, and an absolute URL
 * on this server's base its relative form: R4 search.html#reference gives `[id]`,
 * `[type]/[id]` and `[url]` the same meaning for a resource on this server.
 */
export function medplumClause(type, c) {
  if (c.ptype !== 'reference' || c.modifier === 'missing') return c;
  const sp = getSearchParameter(type, c.param);
  const targets = /^[A-Z]/.test(c.modifier ?? '') ? [c.modifier] : sp?.target ?? [];
  const value = splitOr(c.value)
    .map((v) => (v.startsWith(`${BASE}/`) ? v.slice(BASE.length + 1) : v))
    .flatMap((v) => (v.includes('/') ? [v] : targets.map((t) => `${t}/${v}`)))
    .join(',');
  return { ...c, modifier: /^[A-Z]/.test(c.modifier ?? '') ? '' : c.modifier, value };
}

/** Medplum's verdict for clauses (an AND), as a function of a resource. */
export function medplumMatcher(type, clauses) {
  const q = {};
  for (const c of clauses.map((x) => medplumClause(type, x))) {
    const key = c.modifier ? `${c.param}:${c.modifier}` : c.param;
    (q[key] ??= []).push(c.value);
  }
  const sr = parseSearchRequest(type, q);
  return (resource) => matchesSearchRequest(resource, sr);
}

// ---------------------------------------------------------------------------------------------
// Queries

/** The query string of clauses: values percent-encoded except the search syntax | , : / */
export function queryString(type, clauses) {
  const enc = (v) =>
    encodeURIComponent(v).replace(/%7C/gi, '|').replace(/%2C/gi, ',').replace(/%3A/gi, ':').replace(/%2F/gi, '/');
  return `${type}?${clauses.map((c) => `${c.param}${c.modifier ? ':' + c.modifier : ''}=${enc(c.value)}`).join('&')}`;
}

/** Split a parameter value on unescaped commas (the values contain no backslashes). */
export const splitOr = (v) => v.split(',');

const DATE_PREFIXES = ['eq', 'ne', 'gt', 'lt', 'ge', 'le', 'sa', 'eb'];
export const datePrefix = (v) => (DATE_PREFIXES.includes(v.slice(0, 2)) ? v.slice(0, 2) : '');

/** The report group of a clause: parameter type and modifier or prefix. */
export function clauseKey(c) {
  if (c.modifier === 'missing') return `${c.ptype} :missing`;
  if (c.modifier && /^[A-Z]/.test(c.modifier)) return `${c.ptype} :[type]`;
  if (c.modifier) return `${c.ptype} :${c.modifier}`;
  if (c.ptype === 'date') return `date ${datePrefix(c.value) || '(none)'}`;
  if (c.param === '_id') return '_id';
  if (c.ptype === 'reference') {
    const v = c.value.split(',')[0];
    return `reference ${/^https?:/.test(v) ? 'url' : v.includes('/') ? 'Type/id' : 'id'}`;
  }
  if (c.ptype === 'token') {
    const v = c.value.split(',')[0];
    return `token ${!v.includes('|') ? 'code' : v.startsWith('|') ? '|code' : v.endsWith('|') ? 'system|' : 'system|code'}`;
  }
  return `${c.ptype} (none)`;
}

// Parameters left out of the generated queries: phonetic (a server-defined algorithm) and
// _lastUpdated (the load time). Only the parameter types Medplum's matcher evaluates are used
// (it answers false for number and quantity; no uri parameter of these types has values in
// the corpus).
const SKIP_PARAMS = new Set(['phonetic', '_lastUpdated']);
const ORACLE_TYPES = new Set(['string', 'token', 'reference', 'date']);

/**
 * The parameters of each queried type, from the R4 SearchParameter bundle: those of a type
 * Medplum's matcher evaluates, with whether the dataset has values for them.
 */
export function catalogue(searchParams, dataset) {
  const out = {};
  for (const [type, resources] of Object.entries(dataset)) {
    const params = [];
    const seen = new Set();
    for (const sp of searchParams) {
      const base = sp.base ?? [];
      if (!(base.includes(type) || base.includes('Resource')) || !ORACLE_TYPES.has(sp.type)) continue;
      if (SKIP_PARAMS.has(sp.code) || seen.has(sp.code)) continue;
      if (!getSearchParameter(type, sp.code)) continue;
      seen.add(sp.code);
      const holders = resources.filter((r) => sourceValues(r, sp.code).length > 0);
      params.push({ code: sp.code, ptype: sp.type, target: sp.target ?? [], holders });
    }
    out[type] = params;
  }
  return out;
}

/** Token values { system, code } of typed values (Coding, CodeableConcept, Identifier, primitives). */
function tokenValues(tvs) {
  const out = [];
  for (const { type, value } of tvs) {
    if (value === undefined || value === null) continue;
    if (type === 'Coding') out.push({ system: value.system, code: value.code });
    else if (type === 'CodeableConcept') for (const c of value.coding ?? []) out.push({ system: c.system, code: c.code });
    else if (type === 'Identifier') out.push({ system: value.system, code: value.value });
    else if (type === 'ContactPoint') out.push({ code: value.value, contact: true });
    else if (typeof value !== 'object') out.push({ code: String(value) });
  }
  return out.filter((t) => t.code && !/[,|\\$]/.test(t.code) && !/[,|\\$]/.test(t.system ?? ''));
}

/** The string fields of typed values that a string parameter searches (R4 search.html#string). */
export function stringFields(tvs) {
  const out = [];
  for (const { type, value } of tvs) {
    if (typeof value === 'string') out.push(value);
    else if (type === 'HumanName') {
      out.push(...[value.family, ...(value.given ?? []), ...(value.prefix ?? []), ...(value.suffix ?? []), value.text]);
    } else if (type === 'Address') {
      out.push(...[...(value.line ?? []), value.city, value.district, value.state, value.postalCode, value.country, value.text]);
    }
  }
  return out.filter((s) => typeof s === 'string' && s !== '');
}

/** Date-like values of typed values: strings (date, dateTime, instant) and the ends of Periods. */
function dateValues(tvs) {
  const out = [];
  for (const { value } of tvs) {
    if (typeof value === 'string') out.push(value);
    else if (value && typeof value === 'object') out.push(...[value.start, value.end].filter(Boolean));
  }
  return out;
}

const refValues = (tvs) =>
  tvs.map((t) => t.value?.reference).filter((r) => typeof r === 'string' && /^[A-Z][A-Za-z]+\/[A-Za-z0-9\-.]+$/.test(r));

/** Case- and accent-insensitive form of a string (R4 search.html#string). */
export const fold = (s) => s.normalize('NFD').replace(/\p{M}/gu, '').toLowerCase();

/**
 * The seeded query generator. `rand` is a () => [0, 1) PRNG. Each query is
 * { type, clauses: [{ param, ptype, modifier, value }], kind }.
 */
export function makeGenerator(dataset, cat, rand) {
  const pick = (a) => a[Math.floor(rand() * a.length)];
  const chance = (p) => rand() < p;
  const int = (lo, hi) => lo + Math.floor(rand() * (hi - lo + 1));
  const withValues = (type, ptype) => cat[type].filter((p) => p.ptype === ptype && p.holders.length > 0 && p.code !== '_id');

  function tokenClause(type, p, { not = false } = {}) {
    const toks = tokenValues(sourceValues(pick(p.holders), p.code));
    if (!toks.length) return null;
    const form = (t) => {
      const r = rand();
      // now and then the code in the other case: token matching is case-sensitive
      if (/[a-z]/i.test(t.code) && chance(0.06)) {
        t = { ...t, code: t.code === t.code.toLowerCase() ? t.code.toUpperCase() : t.code.toLowerCase() };
      }
      if (t.contact || !t.system) return r < 0.8 ? t.code : `|${t.code}`;
      if (r < 0.45) return t.code;
      if (r < 0.8) return `${t.system}|${t.code}`;
      if (r < 0.9) return `${t.system}|`;
      return `|${t.code}`;
    };
    let value = form(pick(toks));
    if (chance(0.15)) {
      const more = tokenValues(sourceValues(pick(p.holders), p.code));
      if (more.length) value += ',' + form(pick(more));
    }
    return { param: p.code, ptype: 'token', modifier: not ? 'not' : '', value };
  }

  const accented = (f) => fold(f) !== f.toLowerCase();
  const usable = (fs) => fs.filter((f) => !/[,|\\$]/.test(f));

  function stringClause(type, p) {
    // a field of a random holder; a third of the time one with accents if there is any
    let holder = pick(p.holders);
    if (chance(0.33)) {
      const withAccents = p.holders.filter((h) => stringFields(sourceValues(h, p.code)).some(accented));
      if (withAccents.length) holder = pick(withAccents);
    }
    const fields = usable(stringFields(sourceValues(holder, p.code)));
    if (!fields.length) return null;
    const s = fields.some(accented) && chance(0.7) ? pick(fields.filter(accented)) : pick(fields);
    const r = rand();
    if (r < 0.12) return { param: p.code, ptype: 'string', modifier: 'exact', value: s };
    if (r < 0.17) {
      const v = chance(0.5) ? s.toLowerCase() : s.toUpperCase();
      return { param: p.code, ptype: 'string', modifier: 'exact', value: v };
    }
    if (r < 0.3) {
      const from = int(0, Math.max(0, s.length - 3));
      let v = s.slice(from, from + int(3, 5)).toLowerCase();
      if (chance(0.4)) v = fold(v);
      return { param: p.code, ptype: 'string', modifier: 'contains', value: v };
    }
    // default: the whole value or a prefix of it (mostly 3 characters or more), lower-cased,
    // its accents dropped half of the time
    const len = chance(0.1) ? int(1, 2) : int(3, 8);
    let v = (r < 0.45 ? s : s.slice(0, Math.min(len, s.length))).toLowerCase();
    if (chance(0.5)) v = fold(v);
    if (chance(0.1)) {
      const other = usable(stringFields(sourceValues(pick(p.holders), p.code)));
      if (other.length) v += ',' + pick(other).slice(0, 4).toLowerCase();
    }
    return { param: p.code, ptype: 'string', modifier: '', value: v };
  }

  function dateText(d) {
    const r = rand();
    if (d.length <= 10) {
      if (r < 0.2) return d.slice(0, 4);
      if (r < 0.45) return d.slice(0, 7);
      return d;
    }
    if (r < 0.15) return d.slice(0, 4);
    if (r < 0.35) return d.slice(0, 7);
    if (r < 0.75) return d.slice(0, 10);
    if (r < 0.85 || !/[Z+-]\d{2}:\d{2}$|Z$/.test(d)) return d; // as written, to the second with its offset
    if (r < 0.9) return reoffset(d, 0).slice(0, -1); // in UTC without an offset (taken as UTC)
    return reoffset(d, pick([0, 540, -300, 330, 840, -720])); // the same instant in another offset
  }

  /** An instant written with another UTC offset (minutes), 'Z' for 0, keeping its precision. */
  function reoffset(d, minutes) {
    const frac = /\.\d+/.exec(d)?.[0] ?? '';
    const local = new Date(Date.parse(d) + minutes * 60000).toISOString().slice(0, 19);
    const two = (n) => String(n).padStart(2, '0');
    const abs = Math.abs(minutes);
    const off = minutes === 0 ? 'Z' : `${minutes < 0 ? '-' : '+'}${two(Math.floor(abs / 60))}:${two(abs % 60)}`;
    return local + frac + off;
  }

  function dateClause(type, p, prefix = pick(['', 'eq', 'ne', 'gt', 'lt', 'ge', 'le', 'gt', 'lt', 'ge', 'le', 'sa', 'eb'])) {
    const ds = dateValues(sourceValues(pick(p.holders), p.code));
    if (!ds.length) return null;
    return { param: p.code, ptype: 'date', modifier: '', value: prefix + dateText(pick(ds)) };
  }

  function referenceClause(type, p) {
    const refs = refValues(sourceValues(pick(p.holders), p.code));
    if (!refs.length) return null;
    const ref = pick(refs);
    const [rt, id] = ref.split('/');
    const r = rand();
    if (r < 0.42) return { param: p.code, ptype: 'reference', modifier: '', value: ref };
    if (r < 0.5) return { param: p.code, ptype: 'reference', modifier: '', value: `${BASE}/${ref}` };
    if (r < 0.75) return { param: p.code, ptype: 'reference', modifier: '', value: id };
    if (r < 0.85 && p.target.length > 1) return { param: p.code, ptype: 'reference', modifier: rt, value: id };
    const more = refValues(sourceValues(pick(p.holders), p.code));
    return { param: p.code, ptype: 'reference', modifier: '', value: more.length ? `${ref},${pick(more)}` : ref };
  }

  function idClause(type) {
    const n = chance(0.6) ? 1 : int(2, 3);
    const ids = Array.from({ length: n }, () => pick(dataset[type]).id);
    return { param: '_id', ptype: 'token', modifier: '', value: ids.join(',') };
  }

  function missingClause(type) {
    const p = pick(cat[type].filter((x) => x.code !== '_id'));
    return { param: p.code, ptype: p.ptype, modifier: 'missing', value: chance(0.5) ? 'true' : 'false' };
  }

  // [kind, weight, types that can have it, clause maker]
  const types = Object.keys(dataset);
  const having = (ptype) => types.filter((t) => withValues(t, ptype).length > 0);
  const KINDS = [
    ['token', 22, having('token'), (t) => tokenClause(t, pick(withValues(t, 'token')))],
    ['string', 18, having('string'), (t) => stringClause(t, pick(withValues(t, 'string')))],
    ['date', 22, having('date'), (t) => dateClause(t, pick(withValues(t, 'date')))],
    ['reference', 14, having('reference'), (t) => referenceClause(t, pick(withValues(t, 'reference')))],
    ['_id', 4, types, (t) => idClause(t)],
    ['missing', 7, types, (t) => missingClause(t)],
    ['not', 6, having('token'), (t) => tokenClause(t, pick(withValues(t, 'token')), { not: true })],
  ].filter((k) => k[2].length > 0);
  const total = KINDS.reduce((s, k) => s + k[1], 0);
  const drawKind = () => {
    let r = rand() * total;
    return KINDS.find((k) => (r -= k[1]) < 0) ?? KINDS[0];
  };
  /** One clause on `type`, or (type undefined) on a type drawn for the kind drawn: [type, clause]. */
  function single(type) {
    for (let tries = 0; tries < 50; tries++) {
      const kind = drawKind();
      const t = type ?? pick(kind[2]);
      if (!kind[2].includes(t)) continue;
      const c = kind[3](t);
      if (c) return [t, c];
    }
    const t = type ?? pick(types);
    return [t, idClause(t)];
  }

  /** One query: one clause (75%), two clauses on one type (AND), or a date range. */
  return function next() {
    const r = rand();
    if (r < 0.08) {
      const type = pick(having('date'));
      const p = pick(withValues(type, 'date'));
      const a = dateClause(type, p, pick(['ge', 'gt']));
      const b = dateClause(type, p, pick(['le', 'lt']));
      if (a && b) return { type, clauses: [a, b], kind: 'date range' };
    }
    const [type, a] = single();
    if (r < 0.25) {
      let [, b] = single(type);
      // mostly two parameters; sometimes the same one twice (both values must match)
      const same = chance(0.2);
      for (let i = 0; i < 8 && (b.param === a.param) !== same; i++) [, b] = single(type);
      return { type, clauses: [a, b], kind: 'and' };
    }
    return { type, clauses: [a], kind: 'single' };
  };
}

// ---------------------------------------------------------------------------------------------
// R4 rules used to explain disagreements (search.html)

/**
 * The instant range [lo, hi) in ms of a date, dateTime or instant at its precision (R4
 * search.html#date: "the range of the value is the precision"); no offset means UTC, as
 * both implementations take it.
 */
export function dateRange(s) {
  const m = /^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?)?)?)?(Z|[+-]\d{2}:\d{2})?$/.exec(s);
  if (!m) return null;
  const [, y, mo, d, h, mi, sec, frac, tz] = m;
  const off = !tz || tz === 'Z' ? 0 : (tz[0] === '-' ? -1 : 1) * (Number(tz.slice(1, 3)) * 60 + Number(tz.slice(4, 6))) * 60000;
  const ms = frac ? Number(frac.slice(1, 4).padEnd(3, '0')) : 0;
  const n = (x, dflt) => (x ? Number(x) : dflt);
  const lo = Date.UTC(Number(y), n(mo, 1) - 1, n(d, 1), n(h, 0), n(mi, 0), n(sec, 0), ms) - off;
  let hi;
  if (frac) hi = lo + 10 ** (3 - Math.min(3, frac.length - 1));
  else if (sec) hi = lo + 1000;
  else if (mi) hi = lo + 60000;
  else if (d) hi = Date.UTC(Number(y), Number(mo) - 1, Number(d) + 1) - off;
  else if (mo) hi = Date.UTC(Number(y), Number(mo), 1);
  else hi = Date.UTC(Number(y) + 1, 0, 1);
  return { lo, hi };
}

/** The target ranges of a date parameter in a resource: one per value, a Period as one range. */
export function targetRanges(resource, param) {
  const out = [];
  for (const { value } of paramValues(resource, param)) {
    if (typeof value === 'string') {
      const r = dateRange(value);
      if (r) out.push(r);
    } else if (value && typeof value === 'object' && (value.start || value.end)) {
      out.push({ lo: value.start ? dateRange(value.start).lo : -Infinity, hi: value.end ? dateRange(value.end).hi : Infinity });
    }
  }
  return out;
}

/** R4 search.html#prefix, for ranges: does target range t match prefix p against search range s? */
export function datePrefixMatches(p, s, t) {
  const contains = s.lo <= t.lo && t.hi <= s.hi;
  switch (p || 'eq') {
    case 'eq': return contains;
    case 'ne': return !contains;
    case 'gt': return t.hi > s.hi;
    case 'lt': return t.lo < s.lo;
    case 'ge': return t.hi > s.hi || contains;
    case 'le': return t.lo < s.lo || contains;
    case 'sa': return t.lo >= s.hi;
    case 'eb': return t.hi <= s.lo;
    default: throw new Error(`unknown date prefix ${p}`);
  }
}
