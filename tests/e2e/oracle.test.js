// Search oracle: our server's search results compared, query by query, with an independent
// in-memory implementation of FHIR search, @medplum/core's matchesSearchRequest, over a
// Synthea subset (../shared/corpora/synthea: shared/ then the first 12 patient bundles in
// sorted filename order) loaded through POST [base] as transactions. After the load every
// resource of the queried types is read back (GET /Type?_count=500, following next), so the
// oracle sees the ids and references the server gave them.
//
// Queries (KASAMA_ORACLE_QUERIES, default 360) are generated from the data with a seeded PRNG
// (seed printed; KASAMA_ORACLE_SEED replays a run), on the R4 parameters of each type
// (../shared/fhir-r4/search-parameters.json) of the four types Medplum's matcher evaluates
// (its matchesSearchRequest answers false for number and quantity parameters, so
// value-quantity and the like are not generated): token (code, system|code, |code, system|,
// :not, a code in the other case), string (prefixes lower-cased, accents dropped, :exact,
// :contains), date (no prefix, eq/ne/gt/lt/ge/le/sa/eb at year, month, day, second and
// millisecond precision, in other UTC offsets or none, ranges), reference (Type/id, bare id,
// :Type, absolute URL on the server's base), _id, :missing, comma OR, and AND of two
// clauses. Medplum compares reference strings, so a bare id or an absolute URL is handed to
// it in its Type/id form (same meaning in R4, see medplumClause in lib/oracle.js).
//
// A query agrees when both give the same set of ids. A disagreement is explained when, for
// every resource in it, the KNOWN_DIFFERENCES below (R4 rules where Medplum departs from R4)
// computed on that resource's data give our server's answer; anything else fails the test,
// and so does an agreement below 90%. The full report goes to /tmp/kasama-oracle-report.json
// (KASAMA_ORACLE_REPORT).
//
// Development: KASAMA_ORACLE_LOAD=0 skips the load (the server already holds the corpus; a
// second load would only duplicate it, which the oracle tolerates as it reads back all).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { getSearchParameter as searchParam } from '@medplum/core';
import { rng } from './lib/random.js';
import {
  catalogue,
  clauseKey,
  corpusFiles,
  datePrefix,
  datePrefixMatches,
  dateRange,
  fold,
  loadBundles,
  makeGenerator,
  medplumMatcher,
  paramValues,
  queryString,
  readAll,
  searchAll,
  setupMedplum,
  splitOr,
  stringFields,
  targetRanges,
} from './lib/oracle.js';

const SEED = Number(process.env.KASAMA_ORACLE_SEED ?? 20260611) >>> 0;
const QUERIES = Number(process.env.KASAMA_ORACLE_QUERIES ?? 360);
const PATIENTS = 12;
const TYPES = [
  'Patient', 'Observation', 'Condition', 'Encounter', 'Procedure', 'MedicationRequest', 'Immunization', 'DiagnosticReport',
];
const REPORT = process.env.KASAMA_ORACLE_REPORT ?? '/tmp/kasama-oracle-report.json';
const MIN_AGREEMENT = 0.9;
const EXAMPLES = 3;

// ---------------------------------------------------------------------------------------------
// KNOWN_DIFFERENCES: where @medplum/core departs from FHIR R4 search and our server follows
// R4. Each entry: applies(type, clause, resource), the predicate on a clause of the query (and
// the resource's data) that the difference is about; spec(type, clause, resource), R4's
// answer for that clause on that resource, computed from the data; reason, the R4 text. For a
// resource on which ours and Medplum disagree, each clause's Medplum verdict is replaced by
// spec() of the first entry that applies to it; the disagreement is explained when that gives
// our answer. Checked against the corpus: each entry's comment names where it shows.
const R4 = 'http://hl7.org/fhir/R4/search.html';
const KNOWN_DIFFERENCES = [
  {
    // Condition onset-info / abatement-string are Condition.onset.as(string) and
    // Condition.abatement.as(string); Medplum's FHIRPath .as() returns its input unfiltered,
    // so it string-matches (and counts as present) the onsetDateTime / abatementDateTime.
    id: 'fhirpath-as-type',
    reason: `${R4}#string, with the R4 SearchParameter expression X.as(string): a dateTime is no value of the`
      + ' parameter; Medplum\'s FHIRPath .as() does not filter by type',
    applies: (type, c) => c.ptype === 'string' && /\.as\(string\)/.test(searchParam(type, c.param)?.expression ?? ''),
    spec: (type, c, res) => {
      const fields = asStringFields(type, c.param, res);
      if (c.modifier === 'missing') return (c.value === 'true') === (fields.length === 0);
      return stringMatches(c, fields);
    },
  },
  {
    // Medplum lower-cases but does not fold accents: given=agustin misses "Agustín".
    id: 'string-accents',
    reason: `${R4}#string: a string matches "after both have been normalized by case and accent"; Medplum`
      + ' lower-cases without removing accents',
    applies: (type, c, res) => {
      if (c.ptype !== 'string' || !['', 'contains'].includes(c.modifier)) return false;
      const fields = stringFields(paramValues(res, c.param));
      return stringMatches(c, fields) !== stringMatches(c, fields, { accents: false });
    },
    spec: (type, c, res) => stringMatches(c, stringFields(paramValues(res, c.param))),
  },
  {
    // Medplum's default string match is "contains" (for a HumanName or an Address, in the
    // formatted whole), so value-string=n matches "Current every day smoker".
    id: 'string-starts-with',
    reason: `${R4}#string: "By default, a field matches a string query if the value of the field equals or starts`
      + ' with the supplied parameter value"; Medplum matches anywhere in the field',
    applies: (type, c) => c.ptype === 'string' && c.modifier === '',
    spec: (type, c, res) => stringMatches(c, stringFields(paramValues(res, c.param))),
  },
  {
    // Medplum ignores :exact (a case-insensitive contains): given:exact=AGUSTÍN matches.
    id: 'string-exact',
    reason: `${R4}#modifiers: with :exact "the search parameter must match the entire string, including casing`
      + ' and accents"; Medplum treats :exact as a case-insensitive contains',
    applies: (type, c) => c.ptype === 'string' && c.modifier === 'exact',
    spec: (type, c, res) => stringMatches(c, stringFields(paramValues(res, c.param))),
  },
  {
    // Medplum's eq/ne test overlap, its ge "target end >= search start", its le "target start
    // <= search end"; R4 asks for containment. They differ on Periods (Encounter.period,
    // Procedure.performedPeriod) that start or end at the searched second.
    id: 'date-period-prefix',
    reason: `${R4}#prefix: eq is "the range of the search value fully contains the range of the target value",`
      + ' ne its negation, ge/le "the range above/below the search value intersects ... or the range of the search'
      + ' value fully contains the range of the target value"; Medplum tests overlap (eq, ne) or one end (ge, le)',
    applies: (type, c, res) => c.ptype === 'date' && c.modifier === ''
      && paramValues(res, c.param).some((tv) => tv.type === 'Period'),
    spec: (type, c, res) => dateMatches(c, res),
  },
  {
    // DiagnosticReport.issued has milliseconds; Medplum gives such a value a zero-length
    // range, so issued=eq<that instant> misses it and ne matches it.
    id: 'date-millisecond-precision',
    reason: `${R4}#date: a value's range is implied by its precision, so 03:33:15.091 is [.091, .092) and`
      + ' eq...03:33:15.091 matches it; Medplum gives it no width and its strict overlap test fails',
    applies: (type, c, res) => c.ptype === 'date' && c.modifier === ''
      && (/\.\d/.test(c.value) || paramValues(res, c.param).some((tv) => /\.\d/.test(JSON.stringify(tv.value)))),
    spec: (type, c, res) => dateMatches(c, res),
  },
  {
    // Medplum's date ne is "no value overlaps", true for a resource without a value:
    // Patient?death-date=ne2008-12-14 returns every living patient.
    id: 'date-ne-no-value',
    reason: `${R4}#prefix: ne compares "the range of the search value" with "the range of the target value", so a`
      + ' resource without a value does not match (only :not "includes resources that have no value",'
      + ' #modifiers); Medplum\'s ne matches it',
    applies: (type, c, res) => c.ptype === 'date' && c.modifier === ''
      && splitOr(c.value).every((v) => datePrefix(v) === 'ne') && targetRanges(res, c.param).length === 0,
    spec: () => false,
  },
  {
    // Patient telecom / phone: ContactPoint values; Patient?telecom=|555-139-3142.
    id: 'token-contactpoint-no-system',
    reason: `${R4}#token: the token table gives a ContactPoint no system (only ContactPoint.value), so |value`
      + ' matches it; Medplum takes ContactPoint.system (phone, email) as the token system',
    applies: (type, c, res) => isTokenMatch(c) && paramValues(res, c.param).some((tv) => tv.type === 'ContactPoint'),
    spec: (type, c, res) => tokenMatches(c, paramValues(res, c.param)),
  },
  {
    // code elements (Encounter.status, MedicationRequest.intent, Patient.gender...):
    // Encounter?status=|finished.
    id: 'token-code-implicit-system',
    reason: `${R4}#token: a code's system is implicit (token table: code | (implicit) | code) and |code matches`
      + ' only a Coding/Identifier that "has no system property"; Medplum takes a code as system-less',
    applies: (type, c, res) => isTokenMatch(c)
      && splitOr(c.value).some((v) => v.startsWith('|'))
      && splitOr(c.value).every((v) => !/^[^|]+\|/.test(v))
      && paramValues(res, c.param).some((tv) => tv.type === 'code'),
    spec: (type, c, res) => tokenMatches(c, paramValues(res, c.param)),
  },
  {
    // Medplum lower-cases both sides of a token comparison: status=FINAL, _tag=SYNTHEA-5-2019.
    // Not for BCP-47 language tags (Patient.communication.language), which RFC 5646 2.1.1
    // makes case-insensitive: there Medplum is right.
    id: 'token-case-sensitive',
    reason: `${R4}#token: "Match is case sensitive unless the underlying semantics for the context indicate that`
      + ' the token should be interpreted case-insensitively" (these HL7 code systems and identifiers are'
      + ' case-sensitive); Medplum compares lower-cased',
    applies: (type, c, res) => isTokenMatch(c) && splitOr(c.value).some((v) => {
      const code = v.slice(v.indexOf('|') + 1);
      const tvs = paramValues(res, c.param);
      const one = { ...c, modifier: '', value: v };
      const bcp47 = tvs.some((tv) => tv.type === 'CodeableConcept' && (tv.value.coding ?? [])
        .some((x) => x.system === 'urn:ietf:bcp:47' && x.code?.toLowerCase() === code.toLowerCase()));
      return code !== '' && !bcp47 && tokenMatches(one, tvs) !== tokenMatches(one, tvs, { caseInsensitive: true });
    }),
    spec: (type, c, res) => tokenMatches(c, paramValues(res, c.param)),
  },
  {
    // Observation.category's coding is {system .../observation-category, code vital-signs,
    // display vital-signs}: Medplum also indexes Coding.display and CodeableConcept.text as
    // system-less codes, so category=|vital-signs matches every vital-signs Observation.
    id: 'token-display-is-not-a-code',
    reason: `${R4}#token: a token matches Coding.code / Identifier.value (display and text only with :text) and`
      + ' |code needs a Coding that "has no system property"; Medplum indexes Coding.display and'
      + ' CodeableConcept.text as system-less codes',
    applies: (type, c, res) => {
      if (!isTokenMatch(c)) return false;
      const texts = paramValues(res, c.param).flatMap(({ type: t, value }) => {
        if (t === 'Coding') return [value.display];
        if (t === 'CodeableConcept') return [value.text, ...(value.coding ?? []).map((x) => x.display)];
        return [];
      });
      const code = (v) => v.slice(v.indexOf('|') + 1).toLowerCase();
      return splitOr(c.value).some((v) => texts.some((x) => x && x.toLowerCase() === code(v)));
    },
    spec: (type, c, res) => tokenMatches(c, paramValues(res, c.param)),
  },
];

/** R4 date matching (search.html#prefix, on ranges) of a clause on a resource. */
function dateMatches(c, res) {
  const targets = targetRanges(res, c.param);
  return splitOr(c.value).some((v) => {
    const p = datePrefix(v);
    const s = dateRange(v.slice(p.length));
    return targets.some((t) => datePrefixMatches(p, s, t));
  });
}

const isTokenMatch = (c) => c.ptype === 'token' && ['', 'not'].includes(c.modifier);
const IMPLICIT = Symbol('implicit system');

/**
 * R4 token matching (search.html#token) of a clause (no modifier or :not) on typed values:
 * code, system|code, |code, system|; exact and case-sensitive. The token table's systems:
 * Coding.system, Identifier.system, none for ContactPoint, boolean, string, id and uri, and
 * an implicit one (present, but not written in the resource) for a code element, which
 * system|code therefore never matches here (the generator writes no system for a code).
 */
function tokenMatches(c, tvs, { caseInsensitive = false } = {}) {
  const eq = caseInsensitive ? (a, b) => a?.toLowerCase() === b?.toLowerCase() : (a, b) => a === b;
  const tokens = [];
  for (const { type, value } of tvs) {
    if (type === 'Coding') tokens.push({ system: value.system, code: value.code });
    else if (type === 'CodeableConcept') for (const x of value.coding ?? []) tokens.push({ system: x.system, code: x.code });
    else if (type === 'Identifier') tokens.push({ system: value.system, code: value.value });
    else if (type === 'ContactPoint') tokens.push({ code: value.value });
    else if (type === 'code') tokens.push({ system: IMPLICIT, code: value });
    else if (typeof value !== 'object') tokens.push({ code: String(value) });
  }
  const hit = splitOr(c.value).some((v) => {
    const bar = v.indexOf('|');
    if (bar < 0) return tokens.some((t) => eq(t.code, v));
    const [system, code] = [v.slice(0, bar), v.slice(bar + 1)];
    if (!system) return tokens.some((t) => !t.system && eq(t.code, code));
    return tokens.some((t) => t.system === system && (!code || eq(t.code, code)));
  });
  return c.modifier === 'not' ? !hit : hit;
}

/** R4 string matching of a clause on fields: starts-with (default), :contains, :exact. */
function stringMatches(c, fields, { accents = true } = {}) {
  const norm = accents ? fold : (s) => s.toLowerCase();
  return splitOr(c.value).some((v) => fields.some((f) => {
    if (c.modifier === 'exact') return f === v;
    if (c.modifier === 'contains') return norm(f).includes(norm(v));
    return norm(f).startsWith(norm(v));
  }));
}

/** The string values of an X.elem.as(string) parameter: the elemString choice of the resource. */
function asStringFields(type, param, res) {
  const out = [];
  const expression = searchParam(type, param)?.expression ?? '';
  for (const m of expression.matchAll(/\b[A-Z]\w*\.(\w+)\.as\(string\)/g)) {
    const v = res[`${m[1]}String`];
    if (typeof v === 'string' && v !== '') out.push(v);
  }
  return out;
}

/**
 * The KNOWN_DIFFERENCES that explain a disagreement on one resource (ours: whether our server
 * returned it), or null when they do not.
 */
function explain(type, clauses, resource, ours) {
  const used = [];
  let adjusted = true;
  for (const c of clauses) {
    let v = medplumMatcher(type, [c])(resource);
    const k = KNOWN_DIFFERENCES.find((d) => d.applies(type, c, resource));
    if (k) {
      const s = k.spec(type, c, resource);
      if (s !== v) used.push(k.id);
      v = s;
    }
    adjusted &&= v;
  }
  return adjusted === ours && used.length ? used : null;
}

/** Run one generated query on the server and in Medplum; the result record for the report. */
async function runQuery(q, dataset) {
  const query = queryString(q.type, q.clauses);
  const r = { query, type: q.type, kind: q.kind, keys: [...new Set(q.clauses.map(clauseKey))] };
  const t0 = Date.now();
  const got = await searchAll(`${query}&_count=500`);
  r.serverMs = Date.now() - t0;
  let match;
  try {
    match = medplumMatcher(q.type, q.clauses);
  } catch (err) {
    return { ...r, outcome: 'oracle-error', error: String(err?.message ?? err) };
  }
  const oracle = new Set(dataset[q.type].filter(match).map((res) => res.id));
  r.medplum = oracle.size;
  if (got.error) return { ...r, outcome: 'unexplained', error: `HTTP ${got.status}: ${got.error}` };
  const ours = new Set(got.entries.filter((e) => (e.search?.mode ?? 'match') === 'match').map((e) => e.resource.id));
  r.ours = ours.size;
  r.onlyOurs = [...ours].filter((id) => !oracle.has(id));
  r.onlyMedplum = [...oracle].filter((id) => !ours.has(id));
  if (!r.onlyOurs.length && !r.onlyMedplum.length) return { ...r, outcome: 'agree' };
  const byId = new Map(dataset[q.type].map((res) => [res.id, res]));
  const known = new Set();
  r.unexplainedIds = [];
  for (const [ids, oursHas] of [[r.onlyOurs, true], [r.onlyMedplum, false]]) {
    for (const id of ids) {
      const res = byId.get(id);
      const why = res && explain(q.type, q.clauses, res, oursHas);
      if (why) why.forEach((k) => known.add(k));
      else r.unexplainedIds.push(id);
    }
  }
  r.known = [...known];
  return { ...r, outcome: r.unexplainedIds.length ? 'unexplained' : 'explained' };
}

/** The report: totals, groups by parameter type and modifier/prefix, known differences. */
function makeReport(results, extra) {
  const count = (o) => results.filter((r) => r.outcome === o).length;
  const groups = {};
  for (const r of results) {
    for (const key of [...r.keys, ...(r.keys.length > 1 ? ['(AND of two parameters)'] : [])]) {
      const g = (groups[key] ??= { queries: 0, agree: 0, explained: 0, unexplained: 0, oracleErrors: 0, examples: [] });
      g.queries += 1;
      if (r.outcome === 'agree') g.agree += 1;
      else if (r.outcome === 'explained') g.explained += 1;
      else if (r.outcome === 'unexplained') g.unexplained += 1;
      else g.oracleErrors += 1;
      if (r.outcome !== 'agree' && g.examples.length < EXAMPLES) {
        const { query, outcome, known, error, onlyOurs, onlyMedplum } = r;
        g.examples.push({ query, outcome, known, error, onlyOurs: onlyOurs?.slice(0, 5), onlyMedplum: onlyMedplum?.slice(0, 5) });
      }
    }
  }
  const known = Object.fromEntries(KNOWN_DIFFERENCES.map((k) => [
    k.id, { reason: k.reason, queries: results.filter((r) => r.known?.includes(k.id)).length },
  ]));
  return {
    ...extra,
    queries: results.length,
    agree: count('agree'),
    explained: count('explained'),
    unexplained: count('unexplained'),
    oracleErrors: count('oracle-error'),
    serverMs: results.reduce((s, r) => s + r.serverMs, 0),
    known,
    groups,
    results,
  };
}

function summary(report) {
  const pad = (s, n) => String(s).padEnd(n);
  const lines = [`${pad('group (type, modifier or prefix)', 34)} queries agree explained unexplained`];
  for (const [k, g] of Object.entries(report.groups).sort()) {
    lines.push(`${pad(k, 34)} ${pad(g.queries, 7)} ${pad(g.agree, 5)} ${pad(g.explained, 9)} ${g.unexplained + g.oracleErrors}`);
  }
  const pct = ((100 * report.agree) / report.queries).toFixed(1);
  lines.push(
    `total: ${report.queries} queries, ${report.agree} agree (${pct}%), ${report.explained} explained, `
      + `${report.unexplained} unexplained, ${report.oracleErrors} oracle errors; seed ${report.seed}; `
      + `${report.ms} ms (${report.serverMs} ms waiting for the server); report ${REPORT}`,
  );
  for (const [id, k] of Object.entries(report.known)) lines.push(`known ${id}: ${k.queries} queries`);
  const bad = report.results.filter((x) => x.outcome === 'unexplained' || x.outcome === 'oracle-error');
  for (const r of bad.slice(0, 15)) {
    const detail = r.error ?? `ours ${r.ours}, medplum ${r.medplum}; only ours ${JSON.stringify(r.onlyOurs.slice(0, 3))}; `
      + `only medplum ${JSON.stringify(r.onlyMedplum.slice(0, 3))}`;
    lines.push(`UNEXPLAINED ${r.query}\n  ${detail}`);
  }
  return lines.join('\n');
}

test('search oracle: our server agrees with @medplum/core on a Synthea subset', { timeout: 175_000 }, async (t) => {
  const files = corpusFiles(PATIENTS);
  if (!files) {
    t.skip('KASAMA_SHARED_DIR/corpora/synthea is absent (../shared is not next to the project): no oracle run');
    return;
  }
  const t0 = Date.now();
  const order = process.env.KASAMA_ORACLE_LOAD === '0' ? new Map() : await loadBundles(files);
  const tLoad = Date.now();
  const searchParams = setupMedplum();
  const dataset = {};
  for (const type of TYPES) {
    // in load order (the server's order for what this run did not load): a seed then draws
    // the same resources whatever ids the server gave them
    const rank = (r) => order.get(`${type}/${r.id}`) ?? Infinity;
    const read = (await readAll(type)).map((r, i) => [rank(r), i, r]);
    dataset[type] = read.sort((a, b) => a[0] - b[0] || a[1] - b[1]).map((x) => x[2]);
    assert.ok(dataset[type].length > 0, `the server holds ${type} resources after the load`);
  }
  const cat = catalogue(searchParams, dataset);
  console.log(
    `oracle: seed ${SEED} (KASAMA_ORACLE_SEED replays), ${QUERIES} queries; loaded ${files.length} bundles in `
      + `${tLoad - t0} ms; dataset ${TYPES.map((ty) => `${ty} ${dataset[ty].length}`).join(', ')}`,
  );

  const next = makeGenerator(dataset, cat, rng(SEED));
  const results = [];
  for (let i = 0; i < QUERIES; i++) results.push(await runQuery(next(), dataset));
  const report = makeReport(results, { seed: SEED, ms: Date.now() - t0 });
  writeFileSync(REPORT, JSON.stringify(report, null, 2));
  console.log(summary(report));

  assert.equal(report.oracleErrors, 0, 'every generated query is one the oracle can evaluate');
  assert.equal(
    report.unexplained, 0,
    `${report.unexplained} queries disagree with the oracle in ways KNOWN_DIFFERENCES do not explain (see ${REPORT})`,
  );
  assert.ok(
    report.agree / report.queries >= MIN_AGREEMENT,
    `only ${report.agree} of ${report.queries} queries agree (< ${MIN_AGREEMENT * 100}%)`,
  );
});
