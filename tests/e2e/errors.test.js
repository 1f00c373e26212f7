// End-to-end tests of how kasama-server rejects bad requests: status, an OperationOutcome
// whose issue names the offending element or parameter, and nothing stored after a
// rejected write. Then a small fuzzer: mutated Patient JSON never gets a 5xx and the server
// stays healthy.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, ORIGIN, uid, freshIdentifier, request, get, post, put, authLine } from './lib/client.js';
import { assertOutcome, assertVersion, createPatient, historyVersions, countByIdentifier } from './lib/assertions.js';
import { rawExchange, target, requestOnFreshConnection, pipelined } from './lib/raw.js';
import { rng } from './lib/random.js';

// The Authorization line of the system token, for the HTTP heads written by hand below: every
// request to a non-public endpoint carries it (also a request smuggled inside a body, so that
// if it were wrongly run it would succeed and be caught). GET /metadata stays without one.
const AUTH = await authLine();

const div = (inner) => `<div xmlns=\\"http://www.w3.org/1999/xhtml\\">${inner}</div>`;

// ---------------------------------------------------------------------------------------------
// Bodies that must be rejected. text(ident, id) is the raw request body; each case runs as a
// create (POST) and as an update of an existing resource (PUT), and afterwards nothing was
// stored: no resource carries the case's identifier and the existing resource is unchanged.
const pat = (ident, id, rest) =>
  `{"resourceType":"Patient"${id ? `,"id":"${id}"` : ''},"identifier":[{"system":"${ident.system}","value":"${ident.value}"}]${rest}}`;
const obs = (ident, id, rest) =>
  `{"resourceType":"Observation"${id ? `,"id":"${id}"` : ''},"identifier":[{"system":"${ident.system}","value":"${ident.value}"}]${rest}}`;

const badBodies = [
  // structure (JSON itself)
  { name: 'malformed JSON (truncated)', text: (i, id) => pat(i, id, ',"active":true').slice(0, -1), status: 400, code: 'structure' },
  { name: 'malformed JSON (trailing garbage)', text: (i, id) => pat(i, id, '') + ' trailing', status: 400, code: 'structure' },
  { name: 'malformed JSON (single quotes)', text: (i, id) => pat(i, id, ",'active':true"), status: 400, code: 'structure' },
  { name: 'duplicate property', text: (i, id) => pat(i, id, ',"active":true,"active":false'), status: 400, code: 'structure', diagnostics: 'active' },
  { name: 'lone surrogate escape', text: (i, id) => pat(i, id, ',"name":[{"family":"\\ud800"}]'), status: 400, code: 'structure' },
  { name: 'invalid UTF-8 in a string', text: (i, id) => Buffer.concat([Buffer.from(pat(i, id, ',"name":[{"family":"').slice(0, -2)), Buffer.from([0xc3, 0x28, 0xff]), Buffer.from('"}]}')]), status: 400, code: 'structure' },
  { name: 'number overflow', text: (i, id) => pat(i, id, ',"multipleBirthInteger":1e999999'), status: 400 },
  { name: 'nesting 10000 deep', text: (i, id) => pat(i, id, `,"extension":${'['.repeat(10000)}${']'.repeat(10000)}`), status: 400, code: 'structure' },
  { name: 'body is null', text: () => 'null', status: 400, code: 'structure' },
  { name: 'body is a string', text: () => '"Patient"', status: 400, code: 'structure' },
  { name: 'body is an array', text: (i, id) => `[${pat(i, id, '')}]`, status: 400, code: 'structure' },
  { name: 'body is a number', text: () => '42', status: 400, code: 'structure' },
  { name: 'empty body', text: () => '', status: 400 },
  { name: 'whitespace body', text: () => ' \r\n\t ', status: 400 },
  // resourceType
  { name: 'no resourceType', text: (i, id) => pat(i, id, '').replace('"resourceType":"Patient",', ''), status: 400, expression: 'resourceType' },
  { name: 'resourceType not a string', text: (i, id) => pat(i, id, '').replace('"Patient"', '42'), status: 400, expression: 'resourceType' },
  { name: 'unknown resourceType', text: (i, id) => pat(i, id, '').replace('"Patient"', '"Patientx"'), status: 400, expression: 'resourceType', diagnostics: 'Patientx' },
  { name: 'resourceType does not match the URL', text: (i, id) => obs(i, id, ',"status":"final","code":{"text":"x"}'), status: 400, expression: 'resourceType' },
  // elements
  { name: 'unknown element', text: (i, id) => pat(i, id, ',"favouriteColour":"blue"'), status: 400, code: 'structure', expression: 'Patient.favouriteColour' },
  { name: 'unknown nested element', text: (i, id) => pat(i, id, ',"name":[{"family":"A","nickname":"B"}]'), status: 400, expression: /^Patient\.name(\[0\])?\.nickname$/ },
  { name: 'unknown element in a contained resource', text: (i, id) => pat(i, id, ',"contained":[{"resourceType":"Organization","id":"o1","bogus":1}]'), status: 400, expression: /Patient\.contained(\[0\])?\.bogus/ },
  { name: 'unknown contained resource type', text: (i, id) => pat(i, id, ',"contained":[{"resourceType":"Foo","id":"x"}]'), status: 400, expression: /Patient\.contained/ },
  { name: 'element differs only in case (BirthDate)', text: (i, id) => pat(i, id, ',"BirthDate":"1950-01-01"'), status: 400, expression: 'Patient.BirthDate' },
  // primitive types and formats
  { name: 'birthDate month 13', text: (i, id) => pat(i, id, ',"birthDate":"1950-13-01"'), status: 400, expression: 'Patient.birthDate', diagnostics: '1950-13-01' },
  { name: 'birthDate 30 February', text: (i, id) => pat(i, id, ',"birthDate":"1950-02-30"'), status: 400, expression: 'Patient.birthDate' },
  { name: 'birthDate with a time', text: (i, id) => pat(i, id, ',"birthDate":"1950-01-01T10:00:00Z"'), status: 400, expression: 'Patient.birthDate' },
  { name: 'birthDate Japanese era text', text: (i, id) => pat(i, id, ',"birthDate":"昭和25年1月1日"'), status: 400, expression: 'Patient.birthDate' },
  { name: 'boolean as a string', text: (i, id) => pat(i, id, ',"active":"true"'), status: 400, expression: 'Patient.active' },
  { name: 'boolean as a number', text: (i, id) => pat(i, id, ',"active":1'), status: 400, expression: 'Patient.active' },
  { name: 'integer with a fraction', text: (i, id) => pat(i, id, ',"multipleBirthInteger":1.5'), status: 400, expression: 'Patient.multipleBirthInteger' },
  { name: 'integer as a string', text: (i, id) => pat(i, id, ',"multipleBirthInteger":"2"'), status: 400, expression: 'Patient.multipleBirthInteger' },
  { name: 'integer out of 32-bit range', text: (i, id) => pat(i, id, ',"multipleBirthInteger":2147483648'), status: 400, expression: 'Patient.multipleBirthInteger' },
  { name: 'decimal as a string', text: (i, id) => obs(i, id, ',"status":"final","code":{"text":"x"},"valueQuantity":{"value":"1.5"}'), type: 'Observation', status: 400, expression: /Observation\.valueQuantity\.value/ },
  { name: 'dateTime without a time zone but with a time', text: (i, id) => obs(i, id, ',"status":"final","code":{"text":"x"},"effectiveDateTime":"2024-05-01T10:00:00"'), type: 'Observation', status: 400, expression: 'Observation.effectiveDateTime' },
  { name: 'repeating element not an array', text: (i, id) => pat(i, id, ',"name":{"family":"x"}'), status: 400, expression: 'Patient.name' },
  { name: 'single element given as an array', text: (i, id) => pat(i, id, ',"gender":["male"]'), status: 400, expression: 'Patient.gender' },
  { name: 'empty array', text: (i, id) => pat(i, id, ',"name":[]'), status: 400, expression: 'Patient.name' },
  { name: 'null in an array', text: (i, id) => pat(i, id, ',"name":[null]'), status: 400, expression: /Patient\.name/ },
  { name: 'null value', text: (i, id) => pat(i, id, ',"active":null'), status: 400, expression: 'Patient.active' },
  { name: 'empty string', text: (i, id) => pat(i, id, ',"name":[{"family":""}]'), status: 400, expression: /Patient\.name(\[0\])?\.family/ },
  { name: 'control character in a string', text: (i, id) => pat(i, id, ',"name":[{"family":"a\\u0000b"}]'), status: 400, expression: /Patient\.name(\[0\])?\.family/ },
  { name: 'string over 1 MB', text: (i, id) => pat(i, id, `,"name":[{"family":"${'あ'.repeat(1024 * 1024 + 1)}"}]`), status: 400, expression: /Patient\.name(\[0\])?\.family/ },
  { name: 'two types for one choice element', text: (i, id) => pat(i, id, ',"deceasedBoolean":true,"deceasedDateTime":"2020"'), status: 400, expression: /Patient\.deceased/ },
  { name: 'choice element without a type suffix', text: (i, id) => pat(i, id, ',"deceased":true'), status: 400, expression: 'Patient.deceased' },
  { name: 'uri with whitespace', text: (i, id) => pat(i, id, ',"telecom":[{"system":"url","value":"x"}],"managingOrganization":{"display":"x"},"link":[{"other":{"display":"x"},"type":"seealso"}],"photo":[{"url":"not a uri"}]'), status: 400, expression: /Patient\.photo(\[0\])?\.url/ },
  { name: 'code with leading space', text: (i, id) => pat(i, id, ',"gender":" male"'), status: 400, expression: 'Patient.gender' },
  // terminology: codes of required bindings
  { name: 'required binding: gender not in AdministrativeGender', text: (i, id) => pat(i, id, ',"gender":"unknown-code"'), status: 400, expression: 'Patient.gender', diagnostics: 'unknown-code' },
  { name: 'required binding: Observation.status not in ObservationStatus', text: (i, id) => obs(i, id, ',"status":"bogus","code":{"text":"x"}'), type: 'Observation', status: 400, expression: 'Observation.status' },
  // narrative (xhtml): well-formed XHTML div, txt-1 (no active content)
  { name: 'narrative with a script', text: (i, id) => pat(i, id, `,"text":{"status":"generated","div":"${div('<script>alert(1)</script>')}"}`), status: 400, expression: /Patient\.text\.div/ },
  { name: 'narrative with an event attribute', text: (i, id) => pat(i, id, `,"text":{"status":"generated","div":"${div('<p onclick=\\"x()\\">a</p>')}"}`), status: 400, expression: /Patient\.text\.div/ },
  { name: 'narrative that is not XML', text: (i, id) => pat(i, id, ',"text":{"status":"generated","div":"not xml <<"}'), status: 400, expression: /Patient\.text\.div/ },
  { name: 'narrative div without the XHTML namespace', text: (i, id) => pat(i, id, ',"text":{"status":"generated","div":"<div>no ns</div>"}'), status: 400, expression: /Patient\.text\.div/ },
  // cardinality: well-formed but breaks the base definition -> 422
  { name: 'Observation without status and code', text: (i, id) => obs(i, id, ''), type: 'Observation', status: 422, code: 'required', expression: ['Observation.status', 'Observation.code'] },
  { name: 'Patient.link without other', text: (i, id) => pat(i, id, ',"link":[{"type":"seealso"}]'), status: 422, expression: /Patient\.link(\[0\])?\.other/ },
  { name: 'extension without url', text: (i, id) => pat(i, id, ',"extension":[{"valueString":"x"}]'), status: 422, expression: /Patient\.extension(\[0\])?\.url/ },
  // referential integrity (strict on the main server)
  { name: 'reference to a resource that does not exist', text: (i, id) => pat(i, id, `,"managingOrganization":{"reference":"Organization/${uid('none')}"}`), status: 409, expression: 'Patient.managingOrganization' },
  { name: 'reference to a deleted resource', setup: true, text: (i, id, ctx) => pat(i, id, `,"link":[{"other":{"reference":"Patient/${ctx.deletedId}"},"type":"seealso"}]`), status: 409, expression: /Patient\.link/ },
];

async function deletedPatient() {
  const p = await createPatient();
  const d = await request('DELETE', `/Patient/${p.id}`);
  assert.ok([200, 204].includes(d.status));
  return p.id;
}

describe('rejected bodies: status, OperationOutcome naming the element, nothing stored', () => {
  for (const c of badBodies) {
    const type = c.type ?? 'Patient';
    test(`create ${type}: ${c.name} -> ${c.status}`, async () => {
      const ident = freshIdentifier();
      const ctx = c.setup ? { deletedId: await deletedPatient() } : {};
      const res = await post(`/${type}`, c.text(ident, null, ctx));
      assertOutcome(res, c.status, { code: c.code, expression: c.expression, diagnostics: c.diagnostics });
      assert.equal(await countByIdentifier(type, ident), 0, 'nothing was created');
    });
    test(`update ${type}: ${c.name} -> ${c.status}`, async () => {
      const ident = freshIdentifier();
      const ctx = c.setup ? { deletedId: await deletedPatient() } : {};
      const orig = type === 'Patient'
        ? (await createPatient()).resource
        : (await post('/Observation', { resourceType: 'Observation', status: 'final', code: { text: 'orig' } })).json;
      const res = await put(`/${type}/${orig.id}`, c.text(ident, orig.id, ctx));
      assertOutcome(res, c.status, { code: c.code, expression: c.expression, diagnostics: c.diagnostics });
      const after = await get(`/${type}/${orig.id}`);
      assertVersion(after, 1);
      assert.deepEqual(after.json, orig, 'the resource is unchanged');
      assert.deepEqual(await historyVersions(type, orig.id), ['1']);
      assert.equal(await countByIdentifier(type, ident), 0);
    });
  }

  test('update-as-create with a bad body creates nothing', async () => {
    for (const c of badBodies.filter((b) => b.status === 400).slice(0, 12)) {
      const id = uid('cid');
      const res = await put(`/Patient/${id}`, c.text(freshIdentifier(), id, {}));
      assertOutcome(res, 400);
      assert.equal((await get(`/Patient/${id}`)).status, 404, `${c.name}: nothing at Patient/${id}`);
    }
  });

  test('a 14 MB Patient (under the 16 MB limit, every string under 1 MB) is accepted and read back intact', async () => {
    const ident = freshIdentifier();
    const names = Array.from({ length: 20 }, (_, i) => ({ family: `${'笠'.repeat(200_000)}${i}` }));
    const res = await post('/Patient', { resourceType: 'Patient', identifier: [ident], name: names });
    assert.equal(res.status, 201, res.text.slice(0, 300));
    const r = await get(`/Patient/${res.json.id}`);
    assert.equal(r.status, 200);
    assert.deepEqual(r.json.name, names);
  });
});

// ---------------------------------------------------------------------------------------------
// Requests rejected for their method, path, headers or parameters.
const requestCases = [
  // unknown resource type in the URL -> 404
  { name: 'GET of an unknown type', method: 'GET', path: '/Foo', status: 404, diagnostics: 'Foo' },
  { name: 'read of an unknown type', method: 'GET', path: '/Foo/1', status: 404, diagnostics: 'Foo' },
  { name: 'POST to an unknown type', method: 'POST', path: '/Foo', body: { resourceType: 'Foo' }, status: 404, diagnostics: 'Foo' },
  { name: 'lower-case type', method: 'GET', path: '/patient/1', status: 404, diagnostics: 'patient' },
  { name: 'a data type is not a resource type', method: 'GET', path: '/HumanName/1', status: 404, diagnostics: 'HumanName' },
  // bad id in the URL -> 400
  { name: 'id with an underscore', method: 'GET', path: '/Patient/a_b', status: 400, diagnostics: 'a_b' },
  { name: 'id of 65 characters', method: 'GET', path: `/Patient/${'a'.repeat(65)}`, status: 400, diagnostics: 'a'.repeat(60) },
  { name: 'id with a percent-encoded space', method: 'GET', path: '/Patient/a%20b', status: 400 },
  { name: 'id with non-ASCII', method: 'GET', path: `/Patient/${encodeURIComponent('患者1')}`, status: 400 },
  { name: 'PUT with a bad id', method: 'PUT', path: '/Patient/a_b', body: (i) => ({ resourceType: 'Patient', id: 'a_b', identifier: [i] }), status: 400, stored: 'Patient' },
  { name: 'DELETE with a bad id', method: 'DELETE', path: '/Patient/a_b', status: 400 },
  // unknown paths -> 404
  { name: 'unknown sub-path', method: 'GET', path: '/Patient/1/foo', status: 404 },
  { name: 'too deep', method: 'GET', path: '/Patient/1/_history/1/x', status: 404 },
  { name: 'unknown system path', method: 'GET', path: '/_foo', status: 404 },
  { name: 'unknown operation', method: 'GET', path: '/$foo', status: 404 },
  { name: 'outside the FHIR base', method: 'GET', path: `${ORIGIN}/other`, status: 404 },
  // wrong method -> 405 with Allow
  { name: 'POST on an instance', method: 'POST', path: '/Patient/123', body: (i) => ({ resourceType: 'Patient', identifier: [i] }), status: 405, allow: ['GET', 'PUT', 'PATCH', 'DELETE'], stored: 'Patient' },
  { name: 'DELETE /metadata', method: 'DELETE', path: '/metadata', status: 405, allow: ['GET'] },
  { name: 'POST /metadata', method: 'POST', path: '/metadata', body: { resourceType: 'Parameters' }, status: 405, allow: ['GET'] },
  { name: 'PUT /_history', method: 'PUT', path: '/_history', body: { resourceType: 'Bundle', type: 'history' }, status: 405, allow: ['GET'] },
  { name: 'POST on instance history', method: 'POST', path: '/Patient/1/_history', body: { resourceType: 'Patient' }, status: 405, allow: ['GET'] },
  { name: 'DELETE on a version', method: 'DELETE', path: '/Patient/1/_history/1', status: 405, allow: ['GET'] },
  { name: 'PUT on type history', method: 'PUT', path: '/Patient/_history', body: { resourceType: 'Patient' }, status: 405, allow: ['GET'] },
  { name: 'PATCH on the base', method: 'PATCH', path: '', body: '[]', headers: { 'content-type': 'application/json-patch+json' }, status: 405, allow: ['POST'] },
  { name: 'OPTIONS on a type', method: 'OPTIONS', path: '/Patient', status: 405, allow: ['GET', 'POST'] },
  // wrong Content-Type -> 415, nothing stored
  { name: 'text/plain', method: 'POST', path: '/Patient', body: (i) => ({ resourceType: 'Patient', identifier: [i] }), headers: { 'content-type': 'text/plain' }, status: 415, stored: 'Patient', diagnostics: /Content-Type|text\/plain/ },
  { name: 'form encoded', method: 'POST', path: '/Patient', body: (i) => ({ resourceType: 'Patient', identifier: [i] }), headers: { 'content-type': 'application/x-www-form-urlencoded' }, status: 415, stored: 'Patient' },
  { name: 'XML body', method: 'POST', path: '/Patient', body: '<Patient xmlns="http://hl7.org/fhir"><active value="true"/></Patient>', headers: { 'content-type': 'application/fhir+xml' }, status: 415 },
  { name: 'JSON Patch type on a create', method: 'POST', path: '/Patient', body: (i) => ({ resourceType: 'Patient', identifier: [i] }), headers: { 'content-type': 'application/json-patch+json' }, status: 415, stored: 'Patient' },
  { name: 'no Content-Type', method: 'POST', path: '/Patient', body: (i) => ({ resourceType: 'Patient', identifier: [i] }), headers: { 'content-type': null }, status: 415, stored: 'Patient' },
  { name: 'text/plain on an update', method: 'PUT', path: (i, id) => `/Patient/${id}`, body: (i, id) => ({ resourceType: 'Patient', id, identifier: [i] }), headers: { 'content-type': 'text/plain' }, status: 415, stored: 'Patient' },
  // formats the server does not produce -> 406 (R-05: XML comes later), and a 406 stores nothing
  { name: 'R-05 Accept: application/fhir+xml', method: 'GET', path: '/metadata', headers: { accept: 'application/fhir+xml' }, status: 406, diagnostics: /Accept|XML|JSON/ },
  { name: 'R-05 Accept: application/xml', method: 'GET', path: '/metadata', headers: { accept: 'application/xml' }, status: 406 },
  { name: 'R-05 _format=xml', method: 'GET', path: '/metadata?_format=xml', status: 406, diagnostics: '_format' },
  { name: 'R-05 _format=application/fhir+xml', method: 'GET', path: '/metadata?_format=application/fhir%2Bxml', status: 406, diagnostics: '_format' },
  { name: 'R-05 _format=turtle', method: 'GET', path: '/metadata?_format=ttl', status: 406, diagnostics: '_format' },
  { name: 'R-05 Accept: text/html', method: 'GET', path: '/metadata', headers: { accept: 'text/html' }, status: 406 },
  { name: 'R-05 create with Accept: XML', method: 'POST', path: '/Patient', body: (i) => ({ resourceType: 'Patient', identifier: [i] }), headers: { accept: 'application/fhir+xml' }, status: 406, stored: 'Patient' },
  // parameters
  { name: 'unsupported history parameter', method: 'GET', path: '/Patient/_history?foo=1', status: 400, expression: 'foo' },
  { name: 'unsupported system history parameter', method: 'GET', path: '/_history?_sort=-_lastUpdated2', status: 400, diagnostics: '_sort' },
  { name: 'unsupported instance history parameter', method: 'GET', path: (i, id) => `/Patient/${id}/_history?_list=x`, status: 400, diagnostics: '_list' },
  { name: 'unsupported search parameter', method: 'GET', path: '/Patient?nonexistent-param=x', status: 400, diagnostics: 'nonexistent-param' },
  { name: '_count negative', method: 'GET', path: '/Patient/_history?_count=-1', status: 400, expression: '_count' },
  { name: '_count not a number', method: 'GET', path: '/Patient/_history?_count=abc', status: 400, expression: '_count' },
  { name: '_count with a fraction', method: 'GET', path: '/_history?_count=1.5', status: 400, expression: '_count' },
  { name: '_count empty', method: 'GET', path: '/Patient?_count=', status: 400, expression: '_count' },
  { name: '_since a word', method: 'GET', path: '/Patient/_history?_since=yesterday', status: 400, expression: '_since' },
  { name: '_since with hour 25', method: 'GET', path: '/_history?_since=2024-01-01T25:00:00Z', status: 400, expression: '_since' },
  { name: '_since with an unencoded + (a space)', method: 'GET', path: '/_history?_since=2024-01-01T10:00:00+09:00', status: 400, expression: '_since' },
  { name: '_since month 13', method: 'GET', path: '/_history?_since=2024-13-01T00:00:00Z', status: 400, expression: '_since' },
  { name: '_at garbage', method: 'GET', path: '/Patient/_history?_at=garbage', status: 400, expression: '_at' },
  { name: 'forged history cursor', method: 'GET', path: '/_history?_cursor=abc', status: 400, diagnostics: '_cursor' },
  // headers and conditional requests
  { name: 'If-Match not a version', method: 'PUT', path: (i, id) => `/Patient/${id}`, body: (i, id) => ({ resourceType: 'Patient', id, identifier: [i] }), headers: { 'if-match': 'W/"abc"' }, status: 400, diagnostics: 'If-Match', stored: 'Patient' },
  { name: 'PUT on a type without criteria', method: 'PUT', path: '/Patient', body: (i) => ({ resourceType: 'Patient', identifier: [i] }), status: 400, stored: 'Patient' },
  { name: 'conditional update with an unsupported criterion', method: 'PUT', path: '/Patient?nonexistent-param=x', body: (i) => ({ resourceType: 'Patient', identifier: [i] }), status: 400, diagnostics: 'nonexistent-param', stored: 'Patient' },
  { name: 'conditional delete with an unsupported criterion', method: 'DELETE', path: '/Patient?nonexistent-param=x', status: 400, diagnostics: 'nonexistent-param' },
  { name: 'conditional delete without criteria', method: 'DELETE', path: '/Patient', status: 400 },
  { name: 'If-None-Exist naming nothing', method: 'POST', path: '/Patient', body: (i) => ({ resourceType: 'Patient', identifier: [i] }), headers: { 'if-none-exist': 'identifier=|' }, status: 400, stored: 'Patient' },
];

describe('rejected requests: method, path, headers, parameters', () => {
  for (const c of requestCases) {
    test(`${c.method} ${typeof c.path === 'string' ? c.path.replace(ORIGIN, '') || '/' : '...'}: ${c.name} -> ${c.status}`, async () => {
      const ident = freshIdentifier();
      const existing = typeof c.path === 'function' ? await createPatient() : undefined;
      const path = typeof c.path === 'function' ? c.path(ident, existing.id) : c.path;
      const body = typeof c.body === 'function' ? c.body(ident, existing?.id) : c.body;
      // A connection of its own: a server that leaves an unread body behind must not disturb other tests.
      // The CapabilityStatement is public: requests to /metadata go without a token, as before.
      const headers = /^\/metadata(\?|$)/.test(path) ? { authorization: null, ...c.headers } : c.headers;
      const res = await requestOnFreshConnection(c.method, path, { body, headers });
      assertOutcome(res, c.status, { expression: c.expression, diagnostics: c.diagnostics });
      if (c.allow) {
        const allow = res.headers.get('allow');
        assert.ok(allow, `405 must carry an Allow header (RFC 9110 15.5.6): ${[...res.headers].join('; ')}`);
        const methods = allow.split(',').map((m) => m.trim());
        for (const m of c.allow) assert.ok(methods.includes(m), `Allow lists ${m}: ${allow}`);
        assert.ok(!methods.includes(c.method), `Allow does not list ${c.method}`);
      }
      if (c.stored) assert.equal(await countByIdentifier(c.stored, ident), 0, 'nothing was stored');
      if (existing) {
        const after = await get(`/Patient/${existing.id}`);
        assertVersion(after, 1);
        assert.deepEqual(after.json, existing.resource, 'the existing resource is unchanged');
      }
    });
  }

  const lenient = [
    '/Patient/_history?foo=1',
    '/_history?foo=1&_count=1',
    '/Patient?nonexistent-param=x&_count=1',
  ];
  for (const path of lenient) {
    test(`Prefer: handling=lenient ignores the unsupported parameter: GET ${path}`, async () => {
      const res = await get(path, { headers: { prefer: 'handling=lenient' } });
      assert.equal(res.status, 200, res.text);
      assert.equal(res.json.resourceType, 'Bundle');
    });
  }

  test('Prefer: handling=strict rejects like the default', async () => {
    assertOutcome(await get('/Patient/_history?foo=1', { headers: { prefer: 'handling=strict' } }), 400, { expression: 'foo' });
  });

  // An error found before the body was read must not leave the body on a keep-alive
  // connection: the server would read it as the next request (desync, request smuggling).
  const early = [
    { name: '406 (Accept: XML)', path: `${target.pathname}/Patient`, headers: 'Accept: application/fhir+xml\r\n', status: 406 },
    { name: '406 (_format=xml)', path: `${target.pathname}/Patient?_format=xml`, headers: '', status: 406 },
    { name: '404 (outside the FHIR base)', path: '/not-fhir', headers: '', status: 404 },
    { name: 'POST /health', path: '/health', headers: '', status: [200, 405] },
    { name: '405 (POST on an instance)', path: `${target.pathname}/Patient/x1`, headers: '', status: 405 },
    { name: '415 (text/plain)', path: `${target.pathname}/Patient`, headers: '', contentType: 'text/plain', status: 415 },
  ];
  for (const c of early) {
    test(`keep-alive connection stays in sync after an early error: ${c.name}`, async () => {
      const ident = freshIdentifier();
      const smuggled = `POST ${target.pathname}/Patient HTTP/1.1\r\nHost: ${target.host}\r\n${AUTH}Content-Type: application/fhir+json\r\n` +
        `Content-Length: ${Buffer.byteLength(JSON.stringify({ resourceType: 'Patient', identifier: [ident] }))}\r\n\r\n` +
        JSON.stringify({ resourceType: 'Patient', identifier: [ident] });
      const first = `POST ${c.path} HTTP/1.1\r\nHost: ${target.host}\r\n${AUTH}Content-Type: ${c.contentType ?? 'application/fhir+json'}\r\n${c.headers}` +
        `Content-Length: ${Buffer.byteLength(smuggled)}\r\n\r\n${smuggled}`;
      const second = `GET ${target.pathname}/metadata HTTP/1.1\r\nHost: ${target.host}\r\nAccept: application/fhir+json\r\nConnection: close\r\n\r\n`;
      const responses = await pipelined([first, second]);
      const statuses = responses.map((r) => r.status);
      const want = Array.isArray(c.status) ? c.status : [c.status];
      assert.ok(want.includes(statuses[0]), `first response ${want}: ${statuses}`);
      assert.equal(responses.length, 2, `exactly two responses, got ${statuses}`);
      assert.equal(statuses[1], 200, `the next request is served: ${statuses} ${responses[1]?.body.slice(0, 200)}`);
      assert.equal(JSON.parse(responses[1].body).resourceType, 'CapabilityStatement');
      assert.equal(await countByIdentifier('Patient', ident), 0, 'the body was not run as a request');
    });
  }

  test('a HEAD that fails answers with the error status and no body', async () => {
    const r = await request('HEAD', `/Patient/${uid('nope')}`);
    assert.equal(r.status, 404);
    assert.equal(r.text, '');
  });
});

// ---------------------------------------------------------------------------------------------
describe('body over the limit (KASAMA_MAX_BODY=16M) -> 413', () => {
  const SIZE = 17 * 1024 * 1024;
  const bigBody = (ident) => {
    const head = Buffer.from(`{"resourceType":"Patient","identifier":[{"system":"${ident.system}","value":"${ident.value}"}],"name":[{"family":"`);
    const tail = Buffer.from('"}]}');
    return Buffer.concat([head, Buffer.alloc(SIZE - head.length - tail.length, 0x61), tail]);
  };
  const headFor = (extra) =>
    `POST ${target.pathname}/Patient HTTP/1.1\r\nHost: ${target.host}\r\n${AUTH}Content-Type: application/fhir+json\r\nAccept: application/fhir+json\r\n${extra}\r\n`;
  const check413 = async (r, ident) => {
    const final = r.responses.find((x) => x.status >= 200);
    assert.ok(final, `a final response must arrive (got ${r.responses.map((x) => x.status)} error ${r.error} after ${r.bytesSent} bytes sent)`);
    assert.equal(final.status, 413, final.body);
    const oo = JSON.parse(final.body);
    assert.equal(oo.resourceType, 'OperationOutcome');
    assert.ok(oo.issue.some((i) => i.severity === 'error'));
    assert.equal(await countByIdentifier('Patient', ident), 0, 'nothing was stored');
  };

  for (let attempt = 1; attempt <= 3; attempt++) {
    test(`R-44 413 with Content-Length is delivered to the client (attempt ${attempt})`, async () => {
      const ident = freshIdentifier();
      const body = bigBody(ident);
      const r = await rawExchange(headFor(`Content-Length: ${body.length}\r\n`), body);
      await check413(r, ident);
    });
  }

  test('R-44 413 for a client that sends Expect: 100-continue (as curl does)', async () => {
    const ident = freshIdentifier();
    const body = bigBody(ident);
    const r = await rawExchange(headFor(`Content-Length: ${body.length}\r\nExpect: 100-continue\r\n`), body, { waitForContinue: true });
    await check413(r, ident);
    assert.ok(!r.responses.some((x) => x.status === 100), 'no 100 Continue for a body whose declared length is already too large');
  });

  test('R-44 413 for a chunked body without Content-Length', async () => {
    const ident = freshIdentifier();
    const body = bigBody(ident);
    const parts = [];
    for (let off = 0; off < body.length; off += 1 << 20) {
      const c = body.subarray(off, off + (1 << 20));
      parts.push(Buffer.from(`${c.length.toString(16)}\r\n`), c, Buffer.from('\r\n'));
    }
    parts.push(Buffer.from('0\r\n\r\n'));
    const r = await rawExchange(headFor('Transfer-Encoding: chunked\r\n'), Buffer.concat(parts));
    await check413(r, ident);
  });

  test('fetch gets the 413 (or at worst a connection error), and the server stays healthy', async () => {
    const ident = freshIdentifier();
    try {
      const res = await post('/Patient', bigBody(ident));
      assertOutcome(res, 413);
    } catch (e) {
      // undici cannot read a response while it is still sending; covered by the raw tests.
      assert.match(String(e.cause?.code ?? e.message), /EPIPE|ECONNRESET|fetch failed|other side closed/);
    }
    assert.equal(await countByIdentifier('Patient', ident), 0);
    assert.equal((await fetch(`${ORIGIN}/health`)).status, 200);
  });
});

// ---------------------------------------------------------------------------------------------
// HTTP/1.1 message framing (RFC 9112): ambiguous framing must be refused, never turned into a
// second request (request smuggling behind a proxy), and odd but legal requests get no 5xx.
describe('HTTP framing and request smuggling defences (RFC 9112)', () => {
  const P = target.pathname;
  // With the token: the outer requests, and the smuggled create inside their bodies.
  const H = `Host: ${target.host}\r\n${AUTH}Content-Type: application/fhir+json\r\nAccept: application/fhir+json\r\n`;
  const smuggledCreate = (ident) => {
    const b = JSON.stringify({ resourceType: 'Patient', identifier: [ident] });
    return `POST ${P}/Patient HTTP/1.1\r\n${H}Content-Length: ${Buffer.byteLength(b)}\r\n\r\n${b}`;
  };
  const after = `GET ${P}/metadata HTTP/1.1\r\nHost: ${target.host}\r\nConnection: close\r\n\r\n`;
  const cases = [
    {
      name: 'Transfer-Encoding and Content-Length together',
      req: (s) => `POST ${P}/Patient HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nContent-Length: ${5 + s.length}\r\n\r\n0\r\n\r\n${s}`,
      first: [400, 501],
    },
    {
      name: 'Content-Length and Transfer-Encoding together (CL first)',
      req: (s) => `POST ${P}/Patient HTTP/1.1\r\n${H}Content-Length: ${5 + s.length}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${s}`,
      first: [400, 501],
    },
    {
      name: 'two different Content-Length values',
      req: (s) => `POST ${P}/Patient HTTP/1.1\r\n${H}Content-Length: ${s.length}\r\nContent-Length: 2\r\n\r\n${s}`,
      first: [400],
    },
    {
      name: 'Content-Length with a sign',
      req: (s) => `POST ${P}/Patient HTTP/1.1\r\n${H}Content-Length: +${s.length}\r\n\r\n${s}`,
      first: [400],
    },
    {
      name: 'whitespace between the field name and the colon',
      req: (s) => `POST ${P}/Patient HTTP/1.1\r\n${H}Content-Length : ${s.length}\r\n\r\n${s}`,
      first: [400],
    },
    {
      name: 'unknown transfer coding',
      req: (s) => `POST ${P}/Patient HTTP/1.1\r\n${H}Transfer-Encoding: xchunked\r\n\r\n${s.length.toString(16)}\r\n${s}\r\n0\r\n\r\n`,
      first: [400, 501],
    },
    {
      name: 'invalid chunk size',
      req: (s) => `POST ${P}/Patient HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\nzz\r\n${s}\r\n0\r\n\r\n`,
      first: [400],
    },
  ];
  for (const c of cases) {
    test(`${c.name}: refused, and nothing in the body runs as a request`, async () => {
      const ident = freshIdentifier();
      const responses = await pipelined([c.req(smuggledCreate(ident)), after], { timeoutMs: 5000 });
      const statuses = responses.map((r) => r.status);
      assert.ok(c.first.includes(statuses[0]), `first response ${c.first.join('|')}, got ${statuses}`);
      assert.ok(!statuses.includes(201), `nothing was created: ${statuses}`);
      assert.ok(statuses.every((x) => x < 500), `no 5xx: ${statuses}`);
      assert.equal(await countByIdentifier('Patient', ident), 0, 'the smuggled request did not run');
      assert.equal(responses.length, 1, `the connection is closed after a framing error (RFC 9112 6.3): ${statuses}`);
    });
  }

  test('an honest pipelined sequence is answered in order', async () => {
    const ident = freshIdentifier();
    const responses = await pipelined([smuggledCreate(ident), `GET ${P}/Patient?identifier=${encodeURIComponent(`${ident.system}|${ident.value}`)} HTTP/1.1\r\nHost: ${target.host}\r\n${AUTH}\r\n`, after]);
    assert.deepEqual(responses.map((r) => r.status), [201, 200, 200]);
    assert.equal(JSON.parse(responses[1].body).total, 1);
  });

  test('HTTP/1.1 request without Host -> 400, not 500', async () => {
    const responses = await pipelined([`GET ${P}/metadata HTTP/1.1\r\nAccept: application/fhir+json\r\n\r\n`, after], { timeoutMs: 5000 });
    assert.equal(responses[0]?.status, 400, `got ${responses.map((r) => `${r.status} ${r.body.slice(0, 150)}`)}`);
  });

  test('HTTP/1.0 request without Host is served (no 500)', async () => {
    const responses = await pipelined([`GET ${P}/metadata HTTP/1.0\r\nAccept: application/fhir+json\r\n\r\n`], { timeoutMs: 5000 });
    assert.equal(responses[0]?.status, 200, `got ${responses.map((r) => `${r.status} ${r.body.slice(0, 150)}`)}`);
    assert.equal(JSON.parse(responses[0].body).resourceType, 'CapabilityStatement');
  });

  const limits = [
    { name: 'a 200 kB header', req: `GET ${P}/metadata HTTP/1.1\r\nHost: ${target.host}\r\nX-Big: ${'a'.repeat(200_000)}\r\n\r\n` },
    { name: '1000 header fields', req: `GET ${P}/metadata HTTP/1.1\r\nHost: ${target.host}\r\n${Array.from({ length: 1000 }, (_, i) => `X-H${i}: v`).join('\r\n')}\r\n\r\n` },
    { name: 'a 100 kB URL', req: `GET ${P}/Patient?_id=${'a'.repeat(100_000)} HTTP/1.1\r\nHost: ${target.host}\r\n${AUTH}\r\n` },
  ];
  for (const c of limits) {
    test(`${c.name} is refused with a 4xx and the server stays healthy`, async () => {
      const responses = await pipelined([c.req], { timeoutMs: 5000 });
      assert.ok(responses.length === 0 || (responses[0].status >= 400 && responses[0].status < 500), `got ${responses.map((r) => r.status)}`);
      assert.equal((await fetch(`${ORIGIN}/health`)).status, 200);
    });
  }
});

// ---------------------------------------------------------------------------------------------
// Fuzz-lite: random mutations of a valid Patient text. Seeded, so a failure can be replayed
// with KASAMA_FUZZ_SEED.

describe('fuzz-lite: 200 mutated Patient bodies never give a 5xx', () => {
  const seed = Number(process.env.KASAMA_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
  test(`200 mutations (KASAMA_FUZZ_SEED=${seed})`, async (t) => {
    const rand = rng(seed);
    const int = (n) => Math.floor(rand() * n);
    const pick = (xs) => xs[int(xs.length)];
    const base = await createPatient({ birthDate: '1950-01-01', gender: 'female', name: [{ family: '笠間', given: ['太郎'] }], address: [{ city: '笠間市', postalCode: '309-1611' }] });
    const valid = Buffer.from(JSON.stringify(base.resource));
    const nasty = [
      [0xff], [0xfe], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xe3, 0x80], [0x00], [0x1b], [0x7f],
      [0x5c], [0x22], [0x7b], [0x5d], [0x2c], [0x3a], [0xe3, 0x80, 0x80], [0xef, 0xbb, 0xbf],
    ];
    const mutators = [
      ['truncate', (b) => b.subarray(0, int(b.length))],
      ['flip byte', (b) => { const c = Buffer.from(b); c[int(c.length)] = int(256); return c; }],
      ['insert bytes', (b) => { const at = int(b.length); return Buffer.concat([b.subarray(0, at), Buffer.from(pick(nasty)), b.subarray(at)]); }],
      ['delete range', (b) => { const at = int(b.length); return Buffer.concat([b.subarray(0, at), b.subarray(at + 1 + int(20))]); }],
      ['duplicate range', (b) => { const at = int(b.length); const len = 1 + int(40); return Buffer.concat([b.subarray(0, at + len), b.subarray(at, at + len), b.subarray(at + len)]); }],
      ['swap structure', (b) => { const s = b.toString('latin1'); const i = int(s.length); const r = pick(['{', '}', '[', ']', '"', ',', ':', 'null', 'true', '-', '1e', '\\u', '\\']); return Buffer.from(s.slice(0, i) + r + s.slice(i + 1), 'latin1'); }],
      ['deep nesting', () => Buffer.from(`{"resourceType":"Patient","extension":${pick(['[', '{"a":'] ).repeat(10000)}1${''}`)],
      ['deep nesting closed', () => Buffer.from(`{"resourceType":"Patient","contained":[${'{"resourceType":"Patient","contained":['.repeat(2000)}${']}'.repeat(2000)}]}`)],
      ['huge number', (b) => Buffer.from(b.toString('utf8').replace('"1950-01-01"', pick(['1e999999', '-0', '123456789012345678901234567890', '0x10', 'NaN', 'Infinity', '1.']) ))],
      ['wrong types', (b) => { const j = JSON.parse(b.toString('utf8')); const k = pick(['name', 'gender', 'birthDate', 'address', 'identifier', 'meta', 'id', 'resourceType']); j[k] = pick([null, 1, true, [], {}, 'x', [[]], [{}], { value: 1 }]); return Buffer.from(JSON.stringify(j)); }],
      ['long string', (b) => Buffer.from(b.toString('utf8').replace('笠間市', 'か'.repeat(int(400_000))))],
      ['unicode escapes', (b) => Buffer.from(b.toString('utf8').replace('太郎', pick(['\\ud800', '\\udc00x', '\\u0000', '\\uZZZZ', '\\ud83d\\ude00', '\\/', '\\x41'])))],
    ];
    const counts = {};
    const failures = [];
    const targets = ['POST', 'PUT'];
    const jobs = [];
    for (let n = 0; n < 200; n++) {
      const [name, mutate] = pick(mutators);
      let body = valid;
      const rounds = 1 + int(3);
      for (let k = 0; k < rounds; k++) body = mutate(body);
      jobs.push({ n, name, body, method: pick(targets) });
    }
    // 4 at a time: faster, and a little concurrency on top.
    for (let i = 0; i < jobs.length; i += 4) {
      await Promise.all(jobs.slice(i, i + 4).map(async (j) => {
        const path = j.method === 'POST' ? '/Patient' : `/Patient/${base.id}`;
        let res;
        try {
          res = await request(j.method, path, { body: j.body });
        } catch (e) {
          failures.push(`#${j.n} ${j.name} ${j.method}: transport error ${e.cause?.code ?? e.message}`);
          return;
        }
        counts[res.status] = (counts[res.status] ?? 0) + 1;
        if (res.status >= 500) failures.push(`#${j.n} ${j.name} ${j.method}: ${res.status} ${res.text.slice(0, 200)} body ${j.body.subarray(0, 120).toString('hex')}`);
        else if (res.status >= 400) {
          try {
            assertOutcome(res, res.status);
          } catch (e) {
            failures.push(`#${j.n} ${j.name}: error without an OperationOutcome: ${e.message.slice(0, 300)}`);
          }
        }
      }));
    }
    t.diagnostic(`seed ${seed}; statuses ${JSON.stringify(counts)}`);
    assert.deepEqual(failures, [], `seed ${seed}; statuses ${JSON.stringify(counts)}`);
    // Still healthy, and still serving correct content.
    const health = await fetch(`${ORIGIN}/health`);
    assert.equal(health.status, 200);
    assert.equal((await health.json()).status, 'ok');
    const after = await get(`/Patient/${base.id}`);
    assert.equal(after.status, 200);
    assert.equal(after.json.id, base.id);
    const fresh = await createPatient();
    assert.equal((await get(`/Patient/${fresh.id}`)).status, 200);
  });
});
