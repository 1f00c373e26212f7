// REST fuzzer: ~1500 seeded random requests over methods, paths, query parameters, headers
// and bodies (resources, transaction/batch Bundles, JSON Patch documents), mixed with the
// ids of resources that really exist. Every response must be < 500 (also each entry of a
// batch/transaction-response), carry a body that is UTF-8 JSON holding a resource when it
// says application/fhir+json, an OperationOutcome with an error issue when it is a 4xx, and
// an Allow header when it is a 405; the server must stay healthy (GET /health every 100
// requests and at the end). Most requests carry the system token (Authorization: Bearer);
// a few carry none or a garbage one: those may get a 401 (with WWW-Authenticate: Bearer) but
// never a success other than the public CapabilityStatement, and a request with the valid
// token never gets a 401. With KASAMA_TEST_DATA_DIR, the server.log ERROR lines written
// during the run are part of the report (X-Request-Id fuzz-<seed>-<n> names request #n).
//
// The request sequence depends only on the seed (KASAMA_FUZZ_SEED, default fixed) and on
// the ids the setup creates. Requests go out one at a time on a raw TLS connection of our
// own, byte for byte as generated (fetch would normalise dot segments, upper-case the method
// and re-encode the URL), so a failure report is an exact reproduction: method, target,
// headers, the first 300 bytes of the body and a curl command. Full reproductions of the
// failures are also written to $TMPDIR/kasama-fuzz-rest-<seed>.jsonl.
//   KASAMA_FUZZ_SEED=n          the seed (printed at the start)
//   KASAMA_FUZZ_REQUESTS=n      how many requests (default 1500)
//   KASAMA_FUZZ_BUDGET_MS=n     stop sending after this long (default 55000)
//   KASAMA_FUZZ_LOG=file        also write one line per request (n, status, method, kind, target, response)
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import tls from 'node:tls';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BASE, ORIGIN, request, uid, systemToken } from './lib/client.js';
import { caCert, host, port, target } from './lib/raw.js';
import { rng } from './lib/random.js';

const SEED = Number(process.env.KASAMA_FUZZ_SEED ?? 20250601) >>> 0;
const COUNT = Number(process.env.KASAMA_FUZZ_REQUESTS ?? 1500);
const BUDGET_MS = Number(process.env.KASAMA_FUZZ_BUDGET_MS ?? 55_000);
const LOG = process.env.KASAMA_FUZZ_LOG;
const REQUEST_TIMEOUT_MS = 15_000;
const FHIR = target.pathname.replace(/\/+$/, ''); // "/fhir"
console.log(`fuzz_rest: KASAMA_FUZZ_SEED=${SEED} requests=${COUNT} budget=${BUDGET_MS}ms`);

// ---------------------------------------------------------------------------------------------
// Helpers over the seeded PRNG of lib/random.js.

function makeGen(seed) {
  const rand = rng(seed);
  const int = (n) => Math.floor(rand() * n);
  const chance = (p) => rand() < p;
  const pick = (xs) => xs[int(xs.length)];
  // [[value, weight], ...]; a value that is a function is called.
  const weighted = (pairs) => {
    let total = 0;
    for (const [, w] of pairs) total += w;
    let r = rand() * total;
    for (const [v, w] of pairs) {
      if ((r -= w) < 0) return typeof v === 'function' ? v() : v;
    }
    const last = pairs[pairs.length - 1][0];
    return typeof last === 'function' ? last() : last;
  };
  const hex = (n) => Array.from({ length: n }, () => '0123456789abcdef'[int(16)]).join('');
  const uuid = () => `${hex(8)}-${hex(4)}-4${hex(3)}-${'89ab'[int(4)]}${hex(3)}-${hex(12)}`;
  return { rand, int, chance, pick, weighted, hex, uuid };
}

// ---------------------------------------------------------------------------------------------
// A raw HTTP/1.1 client on one kept-alive TLS connection (reconnects when the server closes).
class RawClient {
  constructor() {
    this.socket = null;
    this.buf = Buffer.alloc(0);
    this.needed = 0; // bytes a response whose head was read needs in all
    this.closed = true;
    this.wake = null;
    this.ca = caCert();
  }

  get buf() {
    if (this.chunks.length) {
      this.#flat = Buffer.concat([this.#flat, ...this.chunks]);
      this.chunks = [];
    }
    return this.#flat;
  }

  set buf(b) {
    this.#flat = b;
    this.chunks = [];
    this.received = b.length;
  }

  #flat = Buffer.alloc(0);
  chunks = [];
  received = 0;

  async connect() {
    this.buf = Buffer.alloc(0);
    this.needed = 0;
    this.closed = false;
    const socket = tls.connect({ host, port, servername: host, ca: this.ca });
    this.socket = socket;
    socket.on('data', (d) => {
      if (this.socket !== socket) return;
      // Chunks are kept in a list and joined only when a response can be complete:
      // concatenating per chunk made a 20 MB body quadratic (minutes instead of a second).
      this.chunks.push(d);
      this.received += d.length;
      if (this.received >= this.needed) this.wake?.();
    });
    const onEnd = () => {
      if (this.socket !== socket) return;
      this.closed = true;
      this.wake?.();
    };
    socket.on('close', onEnd);
    socket.on('end', onEnd);
    socket.on('error', (e) => {
      if (this.socket !== socket) return;
      this.error = e.code ?? e.message;
      onEnd();
    });
    await new Promise((resolve, reject) => {
      socket.once('secureConnect', resolve);
      socket.once('error', reject);
    });
  }

  close() {
    this.socket?.destroy();
    this.socket = null;
    this.closed = true;
  }

  /** Sends the request bytes; resolves { status, headers, body, leftover } or throws. */
  async exchange(bytes, isHead) {
    const reused = !this.closed;
    if (this.closed) await this.connect();
    let leftover;
    if (this.buf.length) {
      leftover = this.buf.subarray(0, 200).toString('latin1');
      this.buf = Buffer.alloc(0);
    }
    this.error = undefined;
    this.socket.write(bytes);
    try {
      const res = await this.readResponse(isHead);
      if (leftover) res.leftover = leftover;
      return res;
    } catch (e) {
      // A kept-alive connection the server closed while idle: try once on a fresh one.
      if (reused && e.noBytes) {
        this.close();
        await this.connect();
        this.socket.write(bytes);
        return this.readResponse(isHead);
      }
      throw e;
    }
  }

  async readResponse(isHead) {
    const deadline = Date.now() + REQUEST_TIMEOUT_MS;
    let sawAny = false;
    for (;;) {
      if (this.buf.length) sawAny = true;
      const parsed = this.tryParse(isHead);
      if (parsed) {
        if (parsed.status >= 100 && parsed.status < 200) continue; // interim response: read on
        if ((parsed.headers.connection ?? '').toLowerCase().includes('close')) this.close();
        return parsed;
      }
      if (this.closed) {
        const err = new Error(`connection closed ${sawAny ? 'in the middle of a response' : 'without a response'}` +
          `${this.error ? ` (${this.error})` : ''}; got ${this.buf.length} bytes: ${this.buf.subarray(0, 200).toString('latin1')}`);
        err.noBytes = !sawAny;
        this.close();
        throw err;
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        this.close();
        throw new Error(`no complete response within ${REQUEST_TIMEOUT_MS} ms (got ${this.buf.length} bytes)`);
      }
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          this.wake = null;
          resolve();
        };
      });
    }
  }

  tryParse(isHead) {
    if (this.needed && this.received < this.needed && !this.closed) return null;
    const end = this.buf.indexOf('\r\n\r\n');
    if (end < 0) return null;
    const lines = this.buf.subarray(0, end).toString('latin1').split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]);
    if (!m) {
      const err = new Error(`not an HTTP response: ${lines[0].slice(0, 200)}`);
      this.close();
      throw err;
    }
    const status = Number(m[1]);
    const headers = {};
    const raw = [];
    for (const line of lines.slice(1)) {
      const i = line.indexOf(':');
      if (i <= 0) continue;
      const k = line.slice(0, i).trim().toLowerCase();
      const v = line.slice(i + 1).trim();
      raw.push([k, v]);
      headers[k] = k in headers ? `${headers[k]}, ${v}` : v;
    }
    let len;
    if (isHead || status < 200 || status === 204 || status === 304) len = 0;
    else if (headers['content-length'] !== undefined) len = Number(headers['content-length']);
    else if (headers['transfer-encoding']) throw new Error(`unexpected Transfer-Encoding: ${headers['transfer-encoding']}`);
    else if (this.closed) len = this.buf.length - end - 4; // read to the close
    else return null;
    if (!Number.isFinite(len) || len < 0) throw new Error(`bad Content-Length ${headers['content-length']}`);
    if (this.buf.length < end + 4 + len) {
      this.needed = end + 4 + len;
      return null;
    }
    this.needed = 0;
    const body = this.buf.subarray(end + 4, end + 4 + len);
    this.buf = this.buf.subarray(end + 4 + len);
    return { status, headers, rawHeaders: raw, body: Buffer.from(body) };
  }
}

function encodeRequest(r) {
  const lines = [`${r.method} ${r.target} ${r.version ?? 'HTTP/1.1'}`];
  if (!r.headers.some(([k]) => k.toLowerCase() === 'host')) lines.push(`Host: ${host}:${port}`);
  for (const [k, v] of r.headers) lines.push(`${k}: ${v}`);
  const body = r.body === undefined ? undefined : Buffer.isBuffer(r.body) ? r.body : Buffer.from(r.body, 'utf8');
  if (body !== undefined) lines.push(`Content-Length: ${body.length}`);
  const head = Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1');
  return body ? Buffer.concat([head, body]) : head;
}

// A curl command that sends the same request (bytes of the target and headers as latin1).
function curlFor(r) {
  const q = (s) => `'${String(s).replace(/'/g, `'\\''`)}'`;
  const parts = ['curl', '-sS', '-i', '--http1.1', '--path-as-is', '-g', '--cacert', q(process.env.KASAMA_TEST_CA ?? process.env.NODE_EXTRA_CA_CERTS ?? 'server.crt')];
  if (r.method === 'HEAD') parts.push('-I');
  else parts.push('-X', q(r.method));
  const names = new Set(r.headers.map(([k]) => k.toLowerCase()));
  for (const [k, v] of r.headers) parts.push('-H', q(v === '' ? `${k};` : `${k}: ${v}`));
  if (!names.has('accept')) parts.push('-H', q('Accept:'));
  if (!names.has('user-agent')) parts.push('-H', q('User-Agent:'));
  let pipe = '';
  if (r.body !== undefined) {
    if (!names.has('content-type')) parts.push('-H', q('Content-Type:'));
    const buf = Buffer.isBuffer(r.body) ? r.body : Buffer.from(r.body, 'utf8');
    const text = buf.toString('utf8');
    const plain = Buffer.from(text, 'utf8').equals(buf) && !/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/.test(text);
    if (plain && buf.length <= 4000) parts.push('--data-binary', q(text));
    else {
      pipe = `echo ${buf.toString('base64')} | base64 -d | `;
      parts.push('--data-binary', '@-');
    }
  }
  parts.push(q(`${ORIGIN}${r.target}`));
  return pipe + parts.join(' ');
}

// Text with control bytes and bytes over 0x7e shown as \xNN (targets and headers are latin1).
const printable = (s) => s.replace(/[\u0000-\u001f\u007f-\u00ff]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);

function describeRequest(r) {
  const body = r.body === undefined ? '(none)' : printable((Buffer.isBuffer(r.body) ? r.body : Buffer.from(r.body, 'utf8')).subarray(0, 300).toString('latin1'));
  return [
    `#${r.n} [${r.label}] ${printable(r.method)} ${printable(r.target.length > 400 ? `${r.target.slice(0, 400)}... (${r.target.length} chars)` : r.target)} ${r.version}`,
    `  headers: ${printable(r.headers.map(([k, v]) => `${k}: ${v.length > 200 ? `${v.slice(0, 200)}... (${v.length} chars)` : v}`).join(' | '))}`,
    `  body[0..300]: ${body}`,
    `  repro: ${curlFor(r).slice(0, 6000)}`,
    `  replay (if it depends on earlier requests): KASAMA_FUZZ_SEED=${SEED} node --test fuzz_rest.test.js`,
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------
// The generator. ctx holds the ids and identifiers of the resources the setup created.
function generate(seed, count, ctx) {
  const g = makeGen(seed);
  const { int, chance, pick, weighted, uuid } = g;
  const enc = encodeURIComponent;
  const big = (n) => 'a'.repeat(n);

  // --- building blocks ------------------------------------------------------------------------
  const realTypes = ['Patient', 'Observation', 'Organization', 'Encounter', 'Practitioner', 'Bundle', 'Binary', 'Parameters', 'OperationOutcome', 'CapabilityStatement', 'AuditEvent'];
  const badTypes = ['Foo', 'patient', 'PATIENT', 'Patients', 'HumanName', 'Resource', 'DomainResource', 'Element', 'BackboneElement',
    'MetadataResource', 'CanonicalResource', 'Patient%00', '%50atient', 'Patient%20', 'Patient.', 'Patient;x', 'Patient%2FObservation',
    '%C3%28', '%FF', '%E6%82%A3%E8%80%85', '\xff\xfe', big(8192), '$meta', '_search', '%', '%G0', 'Patient%'];
  const type = () => weighted([['Patient', 42], ['Observation', 27], [() => pick(realTypes), 15], [() => pick(badTypes), 8]]);
  const freshId = () => `fz-${ctx.tag}-${int(1e6).toString(36)}`;
  const realId = (t) => (t === 'Observation' ? pick(ctx.observations) : t === 'Patient' ? pick([...ctx.patients, ctx.deletedPatient]) : pick([...ctx.patients, ...ctx.observations]));
  const oddIds = ['a_b', 'a%20b', 'a%2Fb', '%2E%2E', '..', '.', '-', '--', big(64), big(65), 'x'.repeat(8192), '%C3%28', '%FF', '%00', '%',
    '%G1', '%2', '%E6%82%A3%E8%80%85', '\xe9\xff', '$everything', '$validate', '_history', 'null', '0', 'A.b-1', '%41', ';', 'a;b',
    'a%3Fb', 'a#b', 'a%23b', '%2e', 'a+b', 'a%2Bb', "a'b", 'a"b', 'a<b>', '{id}', '[0]', 'a|b', 'a\\b', '%5C', '~', 'a%0D%0Ab'];
  const id = (t) => weighted([[() => realId(t), 58], [freshId, 20], [() => pick(oddIds), 22]]);
  const vids = ['1', '2', '3', '0', '-1', '999999999', '1234567890', '4294967297', 'abc', '', '01', '1.0', 'W%2F%221%22', '%31', '1%00', big(8192), '%FF', '1e2', '+1', '%2B1'];
  const ops = ['$everything', '$validate', '$meta', '$expand', '$', '$$', '$%00', '$' + big(300), '$export'];

  const dates = ['0000-01-01T00:00:00Z', '0000', '0001-01-01', '9999-12-31T23:59:59Z', '9999', '9999-12-31T23:59:59.999Z',
    '2016-12-31T23:59:60Z', '2024-06-30T23:59:60%2B14:00', '2024-01-01T10:00:00%2B14:00', '2024-01-01T10:00:00-12:00',
    '2024-01-01T10:00:00+14:00', '2024-01-01T10:00:00%2B14:01', '2024-01-01T10:00:00-12:01', '2024-01-01T10:00:00%2B99:99',
    '2024-01-01T10:00:00.12345678901234567890Z', '2024-01-01T10:00:00.' + '9'.repeat(60) + 'Z', '2024-01-01T10:00:00.Z',
    '2024', '2024-02', '2024-02-29', '2023-02-29', '2024-02-30', '2024-13', '2024-00-10', '-2024-01-01', '99999-01-01',
    '2024-01-01T24:00:00Z', '2024-01-01T10:00Z', '2024-01-01T10:00:00', '2024-01-01T10:00:00z', '2024-01-01t10:00:00Z',
    '2024-W01', 'ge2024-01-01', 'now', '1714550400', '', '%00', '2024-01-01T10:00:00Z,2024', '2024-01-01%20T10:00:00Z',
    '1970-01-01T00:00:00Z', '1969-12-31T23:59:59Z', '2038-01-19T03:14:08Z', '2262-04-11T23:47:16.854775807Z', '+2024-01-01',
    '2024-01-01T10:00:00.000000000000000000001%2B05:30', '2024-1-1', '2024-01-01T10:00:00Z\\,2025', '\\', '2024\\,2025'];
  const counts = ['-1', '0', '0', '1', '2', '10', '1000', '999999999', '9999999999', '1e3', '1.5', '', 'abc', '+1', '%2B1', '%201',
    '0x10', '00000000001', '%D9%A1', '-0', '18446744073709551617', '1,2', '%00', big(20)];
  const cursors = ['', 'abc', '1.2.3', '-1.2.3', '0.0.0', '9223372036854775807.18446744073709551615.4294967295',
    '9223372036854775808.1.1', '1.18446744073709551616.1', '1.1.4294967296', '1.2.3.4', '1..3', '.', '..', '1.2.', '.1.2',
    '1.-2.3', '1.2.-3', '%2B1.2.3', '1%2E2%2E3', '1900000000000.1.1', '4102444800000.999999999.1', '1 .2.3', big(8000), '%FF.%FF.%FF',
    ctx.cursor, ctx.cursor, `${ctx.cursor}0`, ctx.cursor.replace(/\.\d+$/, '.0'), ctx.cursor.replace(/^\d+/, '-1'), `${ctx.cursor}.`];
  const idents = () => {
    const { system: s, value: v } = pick(ctx.identifiers);
    return pick([
      `${s}|${v}`, `|${v}`, `${s}|`, '|', '||', '|||', '\\', 'a\\', '\\|', 'a\\|b', `${s}\\|${v}`, '\\$', 'a\\$b', '\\,', 'a\\,b',
      ',', ',,', 'a,b', `${s}|${v},${s}|nope`, '\\\\|x', 'x|\\', '|\\', '\\|\\|', '', `${s}|${big(8000)}`, `${s}|v\\`,
      `${ctx.sharedIdent.system}|${ctx.sharedIdent.value}`, `${ctx.sharedIdent.system}|`, `|${ctx.sharedIdent.value}`,
      `${s}|${v}\\,${v}`, `${s}|${v}|extra`, `${s}%7C${v}`, `${s}%7c${v}`, `${s}|${v}%00`, '%5C', '%5C%7C', v, '\\\\', `${s}|\\\\${v}`,
    ]);
  };
  const idList = () => pick([
    () => realId('Patient'), () => `${realId('Patient')},${realId('Observation')}`, () => '', () => ',', () => 'a,,b',
    () => `${realId('Patient')}\\,x`, () => Array.from({ length: 100 }, () => realId('Patient')).join(','),
    () => pick(oddIds), () => `${realId('Patient')},${pick(oddIds)}`, () => `\\${realId('Patient')}`, () => `${realId('Patient')}\\`,
  ])();
  const formats = ['json', 'application/fhir+json', 'application/fhir%2Bjson', 'application/json', 'xml', 'application/fhir%2Bxml',
    'html', 'text/html', '', 'ttl', '*/*', 'application/json;charset=utf-8', 'JSON', big(300)];
  const unknownParams = ['foo=1', '_sort=x', '_elements=id', '_summary=true', 'name=x', '_include=*', '_total=accurate', '_type=Patient',
    'identifier:missing=true', 'identifier:text=x', '_id:not=x', '_list=x', '_has:Observation:subject:code=x', '=x', '==', '%00=1',
    `${big(300)}=1`, '_COUNT=1', '_count%00=1', 'patient=x', '_lastUpdated=gt2020'];

  const paramFor = (name) => {
    switch (name) {
      case '_count': return `_count=${pick(counts)}`;
      case '_since': return `_since=${pick(dates)}`;
      case '_at': return `_at=${chance(0.3) ? `${pick(dates)},${pick(dates)}` : pick(dates)}`;
      case '_cursor': return `_cursor=${pick(cursors)}`;
      case '_after': return `_after=${pick(['', '~', 'zzzz', realId('Patient'), big(8000), '%FF', '%00', freshId(), '0', 'a%2Cb'])}`;
      case 'identifier': {
        const v = idents();
        return `identifier=${weighted([[v, 45], [() => enc(v), 45], [() => v.replace(/\|/g, '%7C'), 10]])}`;
      }
      case '_id': {
        const v = idList();
        return `_id=${chance(0.5) ? enc(v) : v}`;
      }
      case '_format': return `_format=${pick(formats)}`;
      case '_pretty': return `_pretty=${pick(['true', 'false', '', 'yes', 'TRUE'])}`;
      case 'bare': return pick(['_count', 'identifier', '_id', '_since', '_cursor', '_format', '_pretty', 'foo', '']);
      default: return pick(unknownParams);
    }
  };

  // --- paths ------------------------------------------------------------------------------------
  const genPath = () => {
    const t = type();
    const kind = weighted([
      ['base', 5], ['metadata', 4], ['sysHistory', 6], ['type', 22], ['typeHistory', 8], ['instance', 25], ['instHistory', 8],
      ['vread', 8], ['op', 3], ['search', 2], ['deep', 3], ['junk', 3],
    ]);
    let segs;
    switch (kind) {
      case 'base': segs = []; break;
      case 'metadata': segs = ['metadata']; break;
      case 'sysHistory': segs = ['_history']; break;
      case 'type': segs = [t]; break;
      case 'typeHistory': segs = [t, '_history']; break;
      case 'instance': segs = [t, id(t)]; break;
      case 'instHistory': segs = [t, id(t), '_history']; break;
      case 'vread': segs = [t, id(t), '_history', pick(vids)]; break;
      case 'op': segs = pick([[pick(ops)], [t, pick(ops)], [t, id(t), pick(ops)]]); break;
      case 'search': segs = [t, '_search']; break;
      case 'deep': segs = pick([[t, id(t), '_history', '1', 'x'], [t, id(t), 'foo'], [t, id(t), '_history', '1', '_history'], ['metadata', 'x'], ['_history', 'x', 'y']]); break;
      default: segs = pick([['_foo'], ['$'], ['health'], ['_history%00'], ['%2Fmetadata'], ['metadata%3Fx'], ['%00'], [''], ['..', 'metadata'], ['Patient', '..', '..', 'metadata']]);
    }
    let p = segs.length ? '/' + segs.join('/') : pick(['', '/', '//']);
    if (chance(0.1)) {
      // decorations: double slashes, dot segments, trailing slash, encoded slash
      p = weighted([
        [() => p.replace(/\/(?=[^/]*$)/, '//'), 3],
        [() => '/' + p, 2],
        [() => p + '/', 3],
        [() => '/.' + p, 1],
        [() => '/..' + p, 1],
        [() => p.replace(/\/(?=[^/]*$)/, '/./'), 1],
        [() => p.replace(/\/(?=[^/]*$)/, '/x/../'), 1],
        [() => p.replace(/\/(?=[^/]*$)/, '/%2E%2E/'), 1],
        [() => p.replace(/\/(?=[^/]*$)/, '%2F'), 1],
      ]);
    }
    return { kind, type: t, segs, path: p };
  };

  // --- headers ----------------------------------------------------------------------------------
  const ifMatches = () => pick(['W/"1"', 'W/"2"', '"1"', '1', 'W/"abc"', '*', '', 'W/', '"', 'W/""', 'W/"99999999999"', 'W/"-1"',
    'W/"1", W/"2"', 'w/"1"', 'W/"0"', 'W/"4294967297"', '"1', 'W/"1"x', ' W/"1" ', 'W/"%00"', 'W/"' + '9'.repeat(9) + '"']);
  const httpDates = ['Thu, 01 Jan 1970 00:00:00 GMT', 'Fri, 31 Dec 9999 23:59:59 GMT', 'Mon, 31 Feb 2024 00:00:00 GMT', '0', '', '-1',
    'Sun, 06 Nov 1994 08:49:37 GMT', 'Sunday, 06-Nov-94 08:49:37 GMT', 'Sun Nov  6 08:49:37 1994', 'Sun, 06 Nov 1994 25:61:61 GMT',
    'Sat, 01 Jan 0000 00:00:00 GMT', 'Wed, 01 Jan 3000 00:00:00 GMT', new Date(Date.UTC(2030, 0, 1)).toUTCString(), 'garbage',
    '2024-01-01T00:00:00Z', 'Tue, 31 Dec 2024 23:59:60 GMT', 'Thu, 01 Jan 1970 00:00:00 +1400', big(500)];
  const criteriaStrings = () => pick([
    () => `identifier=${enc(idents())}`, () => `identifier=${idents()}`, () => 'identifier=|', () => '', () => `_id=${realId('Patient')}`,
    () => 'foo=bar', () => '?', () => '&&', () => 'identifier', () => 'identifier=\\', () => '_count=0', () => `_id=${idList()}`,
    () => `Patient?identifier=${enc(idents())}`, () => `?identifier=${enc(idents())}&_id=${realId('Patient')}`, () => '=', () => '%',
    () => `identifier=${enc(`${ctx.sharedIdent.system}|${ctx.sharedIdent.value}`)}`,
  ])();
  const prefers = ['return=minimal', 'return=representation', 'return=OperationOutcome', 'handling=lenient', 'handling=strict',
    'respond-async', 'return=minimal, handling=lenient', 'handling=lenient; return=representation', 'return=', 'RETURN=MINIMAL',
    'handling=lenient,handling=strict', '', 'x'.repeat(2000), 'return=operationoutcome;handling=lenient'];
  const accepts = ['application/fhir+json', 'application/json', '*/*', 'application/fhir+xml', 'application/xml', 'text/html', '',
    'application/fhir+json;q=0', 'foo', 'application/fhir+json; fhirVersion=4.0', 'application/fhir+xml, application/fhir+json',
    'application/xml;q=1, */*;q=0.1', ',,,', ';', 'text/*', 'application/*', 'APPLICATION/FHIR+JSON', 'a'.repeat(4000),
    'application/fhir+json; charset=utf-8', 'application/fhir+turtle'];
  const contentTypes = ['application/fhir+json', 'application/json', 'application/json-patch+json', 'text/plain',
    'application/fhir+json; charset=utf-8', 'application/fhir+json; charset=latin1', '', 'application/fhir+xml',
    'multipart/form-data; boundary=x', ';;;', 'APPLICATION/FHIR+JSON', 'application/fhir+json;fhirVersion=4.0',
    'application/x-www-form-urlencoded', 'application/json-patch+json; charset=utf-8', '*/*', 'json'];
  const hosts = ['evil.example', `localhost:${port}`, 'localhost:1', '[::1]', '', 'a'.repeat(300), 'h\xffst', 'x:y:z', '127.0.0.1'];

  // --- bodies -----------------------------------------------------------------------------------
  const b64 = (s) => Buffer.from(s, 'utf8').toString('base64');
  const refTo = (bundleFullUrls = []) => weighted([
    [() => `Patient/${pick(ctx.patients)}`, 20],
    [() => (bundleFullUrls.length ? pick(bundleFullUrls) : `urn:uuid:${uuid()}`), 20],
    [() => `urn:uuid:${uuid()}`, 10],
    [() => `Patient?identifier=${enc(`${pick(ctx.identifiers).system}|${pick(ctx.identifiers).value}`)}`, 8],
    [() => `Patient?identifier=${pick(ctx.identifiers).system}|${pick(ctx.identifiers).value}`, 4],
    [() => `Patient?identifier=${enc(`${ctx.sharedIdent.system}|${ctx.sharedIdent.value}`)}`, 4],
    [() => `Patient?_id=${realId('Patient')}`, 4],
    [() => pick(['Patient?', 'Patient?foo=bar', 'Patient?identifier=|', 'Patient?identifier=\\', 'Patient?_count=0', 'Foo?x=1',
      '?identifier=x', 'Patient?identifier', 'Patient?_id=', 'Patient?identifier=%FF', 'Patient?identifier=a\\,b', 'Patient??']), 10],
    [() => `Patient/${ctx.deletedPatient}`, 3],
    [() => `Patient/${freshId()}`, 3],
    [() => pick(['#contained', '#', 'http://example.org/fhir/Patient/1', `${BASE}/Patient/${pick(ctx.patients)}`, `${BASE}/Patient/${freshId()}`,
      'urn:uuid:', 'urn:oid:1.2.3', 'Patient/', '/Patient/x', 'Patient/a_b', 'Patient/1/_history/1', `Patient/${pick(ctx.patients)}/_history/1`]), 8],
  ]);
  const patient = (theId, fullUrls) => {
    const r = { resourceType: 'Patient' };
    if (theId !== undefined) r.id = theId;
    if (chance(0.7)) r.identifier = [chance(0.3) ? pick(ctx.identifiers) : { system: `urn:kasama-fuzz:${ctx.tag}`, value: `v${int(50)}` }];
    if (chance(0.04)) r.identifier = [pick([{ system: `urn:kasama-fuzz:${ctx.tag}`, value: `v${'x'.repeat(pick([511, 512, 513, 2000]))}` },
      { system: `urn:kasama-fuzz:${ctx.tag}:${'s'.repeat(pick([500, 600, 3000]))}`, value: 'v' }, { value: 'x'.repeat(1000) }, { system: '', value: 'v' }, { system: 'urn:x' }])];
    if (chance(0.5)) r.name = [{ family: pick(['Fuzz', '笠間', 'O\'Brien', 'a\\b', 'x'.repeat(200)]), given: ['T'] }];
    if (chance(0.3)) r.gender = pick(['male', 'female', 'other', 'unknown']);
    if (chance(0.3)) r.birthDate = pick(['1950-01-01', '2000', '1999-12', '0001-01-01', '9999-12-31']);
    if (chance(0.25)) r.managingOrganization = { reference: chance(0.5) ? `urn:uuid:${uuid()}` : refTo(fullUrls).replace(/^Patient/, 'Organization') };
    if (chance(0.25)) r.link = [{ other: { reference: refTo(fullUrls) }, type: 'seealso' }];
    if (chance(0.1)) r.text = { status: 'generated', div: `<div xmlns="http://www.w3.org/1999/xhtml"><a href="${fullUrls?.length ? pick(fullUrls) : 'urn:uuid:' + uuid()}">x</a></div>` };
    if (chance(0.05)) r.meta = pick([{ versionId: '99' }, { lastUpdated: '0000-01-01T00:00:00Z' }, { profile: ['http://x'] }, {}]);
    return r;
  };
  const observation = (theId, fullUrls) => {
    const r = { resourceType: 'Observation', status: pick(['final', 'preliminary', 'amended']), code: { text: 'fuzz' } };
    if (theId !== undefined) r.id = theId;
    if (chance(0.8)) r.subject = { reference: refTo(fullUrls) };
    if (chance(0.3)) r.identifier = [pick(ctx.identifiers)];
    if (chance(0.3)) r.valueQuantity = { value: pick([1, 0, -1.5, 1e10, 0.000001]), unit: 'mg' };
    if (chance(0.2)) r.effectiveDateTime = pick(['2024-01-01T10:00:00+14:00', '2024', '2016-12-31T23:59:60Z', '0001-01-01T00:00:00Z']);
    return r;
  };
  const resourceFor = (t, theId, fullUrls) => (t === 'Observation' ? observation(theId, fullUrls) : t === 'Patient' || chance(0.7) ? patient(theId, fullUrls) : { resourceType: t, id: theId });

  const patchPaths = ['/active', '/gender', '/birthDate', '/name', '/name/0', '/name/0/family', '/name/-', '/name/1', '/name/999', '/name/-1',
    '/identifier/0/value', '/identifier', '/id', '/resourceType', '/meta', '/meta/versionId', '/meta/lastUpdated', '', '/', '/~1', '/~2',
    '/a~', '/~0', '/text/div', '/text', '/extension', '/telecom/0', '/name/0/given/-', '/managingOrganization/reference', '/link',
    '/link/0/other/reference', '/name/01', '/name/ 0', '/name/0/', '//', 5, null];
  const patchValues = () => pick([true, false, 'male', 'x', '', 5, -1, 1.5, null, [], {}, [{ family: 'Fz' }], { family: 'Fz' }, '1950-01-01',
    'not-a-date', { reference: `Patient/${freshId()}` }, { reference: `Patient/${pick(ctx.patients)}` }, 'Patient', 'Observation',
    '<div xmlns="http://www.w3.org/1999/xhtml">x</div>', '<script/>', 'x'.repeat(10000), [[]], { resourceType: 'Patient' }, 1e300, 'Patient/x']);
  const patchDoc = () => {
    const n = weighted([[0, 1], [1, 5], [2, 3], [3, 2], [6, 1]]);
    const docOps = [];
    for (let i = 0; i < n; i++) {
      const op = weighted([['add', 4], ['remove', 3], ['replace', 5], ['move', 1], ['copy', 1], ['test', 2], [() => pick(['ADD', '', 'foo', 5, null]), 1]]);
      const o = { op };
      if (chance(0.95)) o.path = pick(patchPaths);
      if (['add', 'replace', 'test'].includes(op) ? chance(0.92) : chance(0.1)) o.value = patchValues();
      if (['move', 'copy'].includes(op) ? chance(0.9) : chance(0.05)) o.from = pick(patchPaths);
      if (chance(0.03)) o.extra = 1;
      docOps.push(chance(0.02) ? pick([null, 5, 'op', []]) : o);
    }
    return weighted([[docOps, 90], [() => ({ op: 'add', path: '/active', value: true }), 2], ['"x"', 1], ['null', 1], ['[', 1],
      [() => patient(), 2], [() => JSON.stringify(docOps).slice(0, -1), 2], ['[]', 1]]);
  };

  const bundle = () => {
    const btype = weighted([['transaction', 45], ['batch', 45], ['collection', 2], ['history', 2], ['searchset', 2], [() => pick(['TRANSACTION', '', 5, 'transaction-response']), 2], [undefined, 2]]);
    const n = weighted([[0, 3], [1, 10], [2, 10], [3, 10], [5, 8], [8, 4], [30, 1]]);
    const fullUrls = Array.from({ length: n }, () => `urn:uuid:${uuid()}`);
    const usedFullUrls = [];
    const entries = [];
    for (let i = 0; i < n; i++) {
      const t = weighted([['Patient', 60], ['Observation', 30], [() => pick(realTypes), 5], [() => pick(['Foo', 'patient', 'Resource']), 5]]);
      const method = weighted([['POST', 30], ['PUT', 20], ['GET', 15], ['PATCH', 10], ['DELETE', 12], ['HEAD', 3], [() => pick(['get', 'FOO', 5, '', null, 'OPTIONS']), 5]]);
      const e = {};
      const fu = weighted([[fullUrls[i], 70], [undefined, 10], [() => (usedFullUrls.length ? pick(usedFullUrls) : fullUrls[i]), 5],
        [() => `http://example.org/fhir/${t}/${freshId()}`, 5], [() => `${BASE}/${t}/${freshId()}`, 3], [() => pick(['urn:uuid:', 'urn:oid:1.2', 'x', 5, 'urn:uuid:not-a-uuid']), 7]]);
      if (fu !== undefined) e.fullUrl = fu;
      if (typeof fu === 'string') usedFullUrls.push(fu);
      const req = { method };
      const crit = () => `${t}?${criteriaStrings()}`;
      switch (method) {
        case 'POST':
          req.url = weighted([[t, 80], [() => `${t}/${realId(t)}`, 3], [() => pick(['', 'Foo', `${BASE}/${t}`, 'http://other/fhir/Patient', `/${t}`, `${t}/_history`, `${t}?x=1`, '$op']), 17]]);
          e.resource = resourceFor(t, chance(0.1) ? freshId() : undefined, fullUrls);
          if (chance(0.3)) req.ifNoneExist = criteriaStrings();
          break;
        case 'PUT': {
          const theId = weighted([[() => realId(t), 50], [freshId, 35], [() => pick(oddIds), 15]]);
          req.url = weighted([[`${t}/${theId}`, 70], [crit, 25], [() => pick([t, `${t}/`, `${t}/${theId}/_history/1`]), 5]]);
          e.resource = resourceFor(t, chance(0.8) ? theId : chance(0.5) ? undefined : freshId(), fullUrls);
          if (chance(0.25)) req.ifMatch = ifMatches();
          break;
        }
        case 'PATCH': {
          req.url = weighted([[() => `${t}/${realId(t)}`, 70], [crit, 20], [() => `${t}/${freshId()}`, 10]]);
          const doc = patchDoc();
          const data = typeof doc === 'string' ? doc : JSON.stringify(doc);
          e.resource = weighted([
            [{ resourceType: 'Binary', contentType: 'application/json-patch+json', data: b64(data) }, 80],
            [() => ({ resourceType: 'Binary', contentType: 'application/json-patch+json', data: pick([5, null, {}, [], true, '!!!', '', '=====']) }), 6],
            [() => ({ resourceType: 'Binary', contentType: pick(['application/json', 5, '', null]), data: b64(data) }), 5],
            [() => ({ resourceType: 'Binary', contentType: 'application/json-patch+json' }), 3],
            [() => ({ resourceType: pick([5, 'Parameters', null]), contentType: 'application/json-patch+json', data: b64(data) }), 3],
            [() => patient(), 3],
          ]);
          if (chance(0.25)) req.ifMatch = ifMatches();
          break;
        }
        case 'DELETE':
          req.url = weighted([[() => `${t}/${realId(t)}`, 50], [() => `${t}/${freshId()}`, 15], [crit, 30], [() => `${t}`, 5]]);
          if (chance(0.2)) req.ifMatch = ifMatches();
          break;
        default: {
          const gp = genPath();
          const qs = chance(0.5) ? '?' + Array.from({ length: 1 + int(3) }, () => paramFor(pick(['_count', '_since', '_at', '_cursor', '_id', 'identifier', '_after', 'x']))).join('&') : '';
          req.url = gp.path.replace(/^\/+/, '') + qs;
          if (chance(0.2)) req.ifNoneMatch = ifMatches();
          if (chance(0.2)) req.ifModifiedSince = pick(httpDates);
          if (chance(0.1)) e.resource = patient();
        }
      }
      if (chance(0.05)) req.url = pick([5, null, '', ' ', '?', '/', '//', 'http://x/fhir/Patient', `${BASE}/Patient/${pick(ctx.patients)}`]);
      if (chance(0.04)) req.ifNoneExist = criteriaStrings();
      e.request = weighted([[req, 96], [undefined, 1], [() => pick([5, 'x', [], null]), 1], [() => ({ ...req, method: pick(['PATCH', 'POST']) }), 2]]);
      if (chance(0.03)) e.resource = pick([5, 'x', [], null, {}, { resourceType: 'Bundle', type: 'transaction', entry: [] }]);
      entries.push(chance(0.02) ? pick([null, 5, [], 'entry']) : e);
    }
    const b = { resourceType: 'Bundle' };
    if (btype !== undefined) b.type = btype;
    if (n || chance(0.5)) b.entry = entries;
    if (chance(0.03)) b.entry = pick([{}, 5, 'x', null]);
    return b;
  };
  const junkBody = () => pick([
    () => '', () => ' ', () => '{', () => 'null', () => '[]', () => '{"resourceType":"Patient"', () => '{"resourceType":"Patient"}x',
    () => Buffer.from(Array.from({ length: int(200) }, () => int(256))), () => Buffer.from([0x7b, 0x22, 0xc3, 0x28, 0xff, 0x22, 0x3a, 0x31, 0x7d]),
    () => `{"resourceType":"Patient","extension":${'['.repeat(3000)}${']'.repeat(3000)}}`, () => '\ufeff{"resourceType":"Patient"}',
    () => '{"resourceType":"Patient","id":"x","id":"y"}', () => '{"resourceType":"Patient","name":[{"family":"\\ud800"}]}',
  ])();

  // --- requests ---------------------------------------------------------------------------------
  const junkMethods = ['FOO', 'get', 'Get', 'PROPFIND', 'TRACE', 'CONNECT', 'M-SEARCH', 'X'.repeat(100), 'PATCH2', 'POSTX', 'DELETE!',
    "GET'", 'G@T', '(GET)', 'GET/', 'SEARCH', 'QUERY', 'LINK', 'PURGE', 'head', 'options'];
  const out = [];
  for (let n = 1; n <= count; n++) {
    const method = weighted([['GET', 30], ['HEAD', 4], ['POST', 21], ['PUT', 13], ['PATCH', 11], ['DELETE', 9], ['OPTIONS', 3], [() => pick(junkMethods), 6]]);
    // POST mostly goes to the base (Bundles) or a type (create); other methods to any path.
    let gp = genPath();
    if (method === 'POST' && chance(0.8)) gp = chance(0.6) ? { kind: 'base', segs: [], path: pick(['', '/']) } : { kind: 'type', type: gp.type, segs: [gp.type], path: '/' + gp.type };
    if ((method === 'PATCH' || method === 'PUT' || method === 'DELETE') && chance(0.5)) {
      const t = chance(0.7) ? 'Patient' : 'Observation';
      const theId = realId(t);
      gp = chance(0.7) ? { kind: 'instance', type: t, segs: [t, theId], path: `/${t}/${theId}` } : { kind: 'type', type: t, segs: [t], path: `/${t}` };
    }
    // query parameters
    const params = [];
    const relevant = {
      sysHistory: ['_count', '_since', '_at', '_cursor'], typeHistory: ['_count', '_since', '_at', '_cursor'],
      instHistory: ['_count', '_since', '_at', '_cursor'], type: ['_count', 'identifier', '_id', '_after', '_count', 'identifier'],
    }[gp.kind] ?? ['identifier', '_id', '_count'];
    const nParams = weighted([[0, 25], [1, 30], [2, 25], [3, 12], [5, 6], [12, 2]]);
    for (let i = 0; i < nParams; i++) {
      const name = weighted([[() => pick(relevant), 65], [() => pick(['_count', '_since', '_at', '_cursor', '_after', 'identifier', '_id']), 15],
        ['_format', 3], ['_pretty', 4], ['bare', 3], ['unknown', 8]]);
      params.push(paramFor(name));
      if (chance(0.08)) params.push(params[params.length - 1]); // repeated parameter
    }
    let query = params.length ? '?' + params.join('&') : chance(0.03) ? '?' : '';
    if (query && chance(0.04)) query = pick([query + '&', query.replace('?', '?&'), query.replace(/&/g, '&&'), query + '#frag', query + '?x=1']);
    // headers
    const headers = [];
    const accept = weighted([['application/fhir+json', 88], [undefined, 6], [() => pick(accepts), 6]]);
    if (accept !== undefined) headers.push(['Accept', accept]);
    if (chance(0.12)) headers.push(['If-Match', ifMatches()]);
    if (chance(0.08)) headers.push(['If-None-Match', ifMatches()]);
    if (chance(method === 'POST' ? 0.2 : 0.04)) headers.push(['If-None-Exist', criteriaStrings()]);
    if (chance(0.08)) headers.push(['If-Modified-Since', pick(httpDates)]);
    const hasUnknown = params.some((p) => unknownParams.includes(p));
    if (chance(hasUnknown ? 0.5 : 0.15)) headers.push(['Prefer', hasUnknown && chance(0.7) ? 'handling=lenient' : pick(prefers)]);
    // Authorization: the system token mostly; sometimes none, or one the server must refuse.
    const auth = weighted([['valid', 92], ['none', 4], ['garbage', 4]]);
    if (auth === 'valid') headers.push(['Authorization', `Bearer ${ctx.token}`]);
    else if (auth === 'garbage') {
      headers.push(['Authorization', pick([`Bearer ${ctx.token.slice(0, -2)}`, `Bearer ${ctx.token}x`, 'Bearer garbage', 'Bearer', 'Bearer ',
        `Basic ${Buffer.from('owner:password').toString('base64')}`, ctx.token, `Token ${ctx.token}`, 'Bearer \xff\xfe', `Bearer ${big(5000)}`])]);
    }
    // The request number as X-Request-Id, so that the server log's lines name it.
    headers.push(['X-Request-Id', chance(0.02) ? pick(['', 'x'.repeat(300), 'a b', '\xff', '../../etc']) : `fuzz-${seed}-${n}`]);
    if (chance(0.02)) headers.push(['Host', pick(hosts)]);
    if (chance(0.02)) headers.push(['If-Match', ifMatches()], ['If-Match', ifMatches()]);
    // body
    let body;
    let label = `${gp.kind}`;
    const bodyKind = (() => {
      if (method === 'POST' && gp.kind === 'base') return weighted([['bundle', 85], ['resource', 5], ['junk', 5], ['patch', 2], ['none', 3]]);
      if (method === 'PATCH') return weighted([['patch', 82], ['resource', 6], ['junk', 4], ['bundle', 2], ['none', 6]]);
      if (method === 'POST' || method === 'PUT') return weighted([['resource', 78], ['bundle', 5], ['junk', 8], ['patch', 3], ['none', 6]]);
      if (['GET', 'HEAD', 'DELETE', 'OPTIONS'].includes(method)) return weighted([['none', 92], ['resource', 4], ['junk', 4]]);
      return weighted([['none', 50], ['resource', 20], ['junk', 15], ['bundle', 15]]);
    })();
    let defaultCt = 'application/fhir+json';
    switch (bodyKind) {
      case 'bundle': body = JSON.stringify(bundle()); break;
      case 'patch': {
        const d = patchDoc();
        body = typeof d === 'string' ? d : JSON.stringify(d);
        defaultCt = 'application/json-patch+json';
        break;
      }
      case 'resource': {
        const t = gp.type && realTypes.includes(gp.type) ? gp.type : 'Patient';
        const urlId = gp.kind === 'instance' ? gp.segs[1] : undefined;
        const theId = method === 'PUT' ? weighted([[urlId, 80], [undefined, 8], [freshId, 8], [() => pick(oddIds), 4]]) : chance(0.1) ? freshId() : undefined;
        body = JSON.stringify(resourceFor(chance(0.9) ? t : pick(realTypes), theId, []));
        break;
      }
      case 'junk': body = junkBody(); break;
      default: body = undefined;
    }
    if (body !== undefined) {
      const ct = weighted([[defaultCt, 88], [undefined, 3], [() => pick(contentTypes), 9]]);
      if (ct !== undefined) headers.push(['Content-Type', ct]);
      label += `+${bodyKind}`;
    }
    const version = chance(0.01) ? 'HTTP/1.0' : 'HTTP/1.1';
    if (version === 'HTTP/1.0') label += '+http1.0';
    if (auth !== 'valid') label += `+${auth === 'none' ? 'noauth' : 'badauth'}`;
    const prefix = chance(0.01) ? pick(['/FHIR', '', '/fhir/..', '/fhir%2F', '/fhirx']) : FHIR;
    let tgt = prefix + gp.path + query;
    if (!tgt.startsWith('/')) tgt = '/' + tgt;
    out.push({ n, label, method, target: tgt, headers, body, version, auth });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });
function firstBadUtf8(buf) {
  for (let i = 0; i < buf.length; i++) {
    try {
      strictUtf8.decode(buf.subarray(0, i + 1));
    } catch {
      // a multi-byte sequence still open at i is only bad if it never completes
      try {
        strictUtf8.decode(buf.subarray(0, i + 4));
      } catch {
        return i;
      }
    }
  }
  return -1;
}

// Checks of one response; returns a list of problems (empty: fine).
function check(r, res) {
  const problems = [];
  if (res.leftover) problems.push(`bytes left on the connection after the previous response (request #${r.n - 1}): ${JSON.stringify(res.leftover)}`);
  if (res.status >= 500) problems.push(`status ${res.status}`);
  const ct = res.headers['content-type'] ?? '';
  const isFhirJson = /^application\/fhir\+json/i.test(ct);
  let json;
  if (r.method !== 'HEAD' && res.body.length) {
    if (isFhirJson) {
      let text;
      try {
        text = strictUtf8.decode(res.body);
      } catch {
        text = res.body.toString('utf8');
        const at = Buffer.from(text, 'utf8').length === res.body.length ? -1 : firstBadUtf8(res.body);
        problems.push(`the application/fhir+json body is not valid UTF-8 (RFC 8259 8.1) near byte ${at}: ${printable(res.body.subarray(Math.max(0, at - 60), at + 20).toString('latin1'))}`);
      }
      try {
        json = JSON.parse(text);
      } catch (e) {
        problems.push(`Content-Type ${ct} but the body is not JSON: ${e.message}`);
      }
      if (json !== undefined && (json === null || typeof json !== 'object' || Array.isArray(json) || typeof json.resourceType !== 'string')) {
        problems.push('the body is not a FHIR resource (no resourceType)');
      }
    }
  }
  if (res.status >= 400 && res.status < 500 && r.method !== 'HEAD') {
    if (!isFhirJson) problems.push(`a ${res.status} with Content-Type '${ct}' (application/fhir+json expected)`);
    else if (json) {
      if (json.resourceType !== 'OperationOutcome') problems.push(`a ${res.status} whose body is a ${json.resourceType}, not an OperationOutcome`);
      else if (!Array.isArray(json.issue) || !json.issue.length) problems.push(`a ${res.status} OperationOutcome without issues`);
      else if (!json.issue.some((i) => ['error', 'fatal'].includes(i.severity)) || json.issue.some((i) => !i.code)) problems.push(`a ${res.status} OperationOutcome without an error issue with a code`);
    } else if (!problems.length) problems.push(`a ${res.status} without a body`);
  }
  if (res.status === 405 && !res.headers.allow) problems.push('a 405 without an Allow header');
  // Authentication: a 401 says how to authenticate, never answers the valid token, and a request
  // without a valid token gets nothing but the public CapabilityStatement (RFC 6750 3).
  if (res.status === 401 && !/^Bearer\b/i.test(res.headers['www-authenticate'] ?? '')) {
    problems.push(`a 401 without WWW-Authenticate: Bearer (got '${res.headers['www-authenticate'] ?? ''}')`);
  }
  if (res.status === 401 && r.auth === 'valid') problems.push('a 401 although the request carried the valid system token');
  if (r.auth !== 'valid' && res.status < 400 && r.method !== 'HEAD' && json?.resourceType !== 'CapabilityStatement') {
    problems.push(`a ${res.status} (${json?.resourceType ?? 'no resource'}) for a request ${r.auth === 'none' ? 'without a token' : 'with a garbage token'}`);
  }
  if (json?.resourceType === 'Bundle' && /-response$/.test(json.type ?? '') && Array.isArray(json.entry)) {
    json.entry.forEach((e, i) => {
      const s = String(e?.response?.status ?? '');
      if (/^5/.test(s)) problems.push(`Bundle ${json.type} entry[${i}] has response.status ${s}: ${JSON.stringify(e.response.outcome ?? {}).slice(0, 300)}`);
    });
  }
  return problems;
}

async function healthy() {
  try {
    const h = await fetch(`${ORIGIN}/health`, { signal: AbortSignal.timeout(10_000) });
    return { ok: h.status === 200, status: h.status, text: (await h.text()).slice(0, 300) };
  } catch (e) {
    return { ok: false, status: 0, text: String(e.cause?.code ?? e.message) };
  }
}

// ---------------------------------------------------------------------------------------------
describe('REST fuzz: random methods, paths, parameters, headers and bodies never get a 5xx', () => {
  test(`${COUNT} requests (KASAMA_FUZZ_SEED=${SEED})`, { timeout: 180_000 }, async (t) => {
    const start = Date.now();
    // Setup: resources that exist, with identifiers (one shared by two Patients, so that
    // criteria can match more than one), versions to vread, and a deleted Patient.
    const tag = uid('r').replace(/^r-/, '').replace(/[^a-z0-9-]/g, '');
    const sys = `urn:kasama-fuzz:${tag}`;
    const sharedIdent = { system: sys, value: 'shared' };
    const identifiers = [];
    const patients = [];
    for (let i = 0; i < 4; i++) {
      const ident = { system: sys, value: `p${i}` };
      identifiers.push(ident);
      const res = await request('POST', '/Patient', { body: { resourceType: 'Patient', identifier: [ident, sharedIdent], name: [{ family: `Fuzz${i}` }], birthDate: '1950-01-01' } });
      assert.equal(res.status, 201, res.text);
      patients.push(res.json.id);
    }
    const upd = await request('PUT', `/Patient/${patients[0]}`, { body: { resourceType: 'Patient', id: patients[0], identifier: [identifiers[0], sharedIdent], active: true } });
    assert.equal(upd.status, 200, upd.text);
    const observations = [];
    for (let i = 0; i < 4; i++) {
      const ident = { system: sys, value: `o${i}` };
      identifiers.push(ident);
      const res = await request('POST', '/Observation', { body: { resourceType: 'Observation', identifier: [ident], status: 'final', code: { text: 'fuzz' }, subject: { reference: `Patient/${patients[i % 3]}` } } });
      assert.equal(res.status, 201, res.text);
      observations.push(res.json.id);
    }
    const gone = await request('POST', '/Patient', { body: { resourceType: 'Patient', identifier: [{ system: sys, value: 'deleted' }] } });
    assert.equal(gone.status, 201, gone.text);
    assert.ok([200, 204].includes((await request('DELETE', `/Patient/${gone.json.id}`)).status));
    identifiers.push({ system: sys, value: 'deleted' }, { system: 'urn:kasama-fuzz:none', value: 'none' });
    // A real history cursor, to fuzz variations of it.
    const page = await request('GET', `/Patient/${patients[0]}/_history?_count=1`);
    assert.equal(page.status, 200, page.text);
    const next = page.json.link?.find((l) => l.relation === 'next')?.url ?? '';
    const cursor = decodeURIComponent(/[?&]_cursor=([^&]*)/.exec(next)?.[1] ?? '1.1.1');
    const ctx = { tag, patients, observations, deletedPatient: gone.json.id, identifiers, sharedIdent, cursor, token: await systemToken() };

    // With the fixture's data directory, the server log's ERROR lines of this run go into the report.
    const logFile = process.env.KASAMA_TEST_DATA_DIR ? path.join(process.env.KASAMA_TEST_DATA_DIR, 'server.log') : undefined;
    const logStart = logFile && fs.existsSync(logFile) ? fs.statSync(logFile).size : undefined;
    const serverErrors = () => {
      if (logStart === undefined) return [];
      try {
        const fd = fs.openSync(logFile, 'r');
        const len = fs.fstatSync(fd).size - logStart;
        const buf = Buffer.alloc(Math.max(0, Math.min(len, 4 << 20)));
        fs.readSync(fd, buf, 0, buf.length, logStart);
        fs.closeSync(fd);
        return buf.toString('utf8').split('\n').filter((l) => / (ERROR|FATAL) /.test(l) || /terminate|Segmentation|Aborted|signal/i.test(l));
      } catch {
        return [];
      }
    };

    const requests = generate(SEED, COUNT, ctx);
    const client = new RawClient();
    const failures = [];
    const statuses = {};
    const byKind = {};
    const dumpFile = path.join(os.tmpdir(), `kasama-fuzz-rest-${SEED}.jsonl`);
    const record = (r, problems, res) => {
      const text = `${describeRequest(r)}\n  problems: ${problems.join('; ')}\n  response: ${res ? `${res.status} ${printable(res.body.subarray(0, 300).toString('latin1'))}` : '(none)'}`;
      // Failures of one kind are listed once in the assertion (the worst kinds first).
      const category = (res?.status >= 500 ? `${problems[0]} ${r.method} [${r.label}] ${res.body.subarray(0, 200).toString('latin1')}` : problems[0]).replace(/[0-9a-f]{8}-[0-9a-f-]{27}/g, '<id>').replace(/near byte \d+:.*/, '').replace(/\d+/g, 'N').slice(0, 160);
      const rank = /transport|health/.test(problems.join()) ? 0 : res?.status >= 500 || problems.some((p) => /response\.status 5/.test(p)) ? 1 : 2;
      failures.push({ text, category, rank });
      console.log(`FUZZ FAILURE (seed ${SEED})\n${text}`);
      try {
        fs.appendFileSync(dumpFile, JSON.stringify({ seed: SEED, n: r.n, method: r.method, target: r.target, headers: r.headers,
          body: r.body === undefined ? null : (Buffer.isBuffer(r.body) ? r.body : Buffer.from(r.body, 'utf8')).toString('base64'),
          status: res?.status, problems, curl: curlFor(r) }) + '\n');
      } catch { /* best effort */ }
    };
    const logLines = [];
    let sent = 0;
    let dead = false;
    try {
      for (const r of requests) {
        if (Date.now() - start > BUDGET_MS) break;
        sent++;
        let res;
        try {
          res = await client.exchange(encodeRequest(r), r.method === 'HEAD');
        } catch (e) {
          const h = await healthy();
          record(r, [`transport error: ${e.message}`, `health afterwards: ${h.status} ${h.text}`], undefined);
          if (!h.ok) {
            dead = true;
            break;
          }
          continue;
        }
        statuses[res.status] = (statuses[res.status] ?? 0) + 1;
        const kind = `${r.method.length > 8 ? 'junk' : r.method} ${r.label}`;
        byKind[kind] = (byKind[kind] ?? 0) + 1;
        if (LOG) logLines.push(`${r.n}\t${res.status}\t${r.method.slice(0, 12)}\t${r.label}\t${printable(r.target.slice(0, 160))}\t${printable(res.body.subarray(0, 300).toString('latin1').replace(/\s+/g, ' '))}`);
        const problems = check(r, res);
        if (problems.length) record(r, problems, res);
        if (r.n % 100 === 0) {
          const h = await healthy();
          if (!h.ok) {
            record(r, [`GET /health after request #${r.n}: ${h.status} ${h.text} (the server died somewhere in #${r.n - 99}..#${r.n})`], res);
            dead = true;
            break;
          }
        }
      }
    } finally {
      client.close();
    }
    if (LOG) fs.writeFileSync(LOG, logLines.join('\n') + '\n');
    const elapsed = Date.now() - start;
    const summary = `seed ${SEED}: ${sent}/${requests.length} requests in ${elapsed} ms; statuses ${JSON.stringify(statuses)}; ${failures.length} failure(s)`;
    console.log(summary);
    t.diagnostic(summary);
    if (failures.length) console.log(`failing requests also in ${dumpFile}`);
    const h = await healthy();
    const errors = serverErrors();
    const errorReport = errors.length
      ? `\n\nserver.log ERROR lines of this run (${errors.length}; X-Request-Id fuzz-<seed>-<n> is request #n):\n` +
        [...new Set(errors.map((l) => l.replace(/^\S+ /, '').slice(0, 400)))].slice(0, 30).join('\n')
      : '';
    if (errors.length) console.log(errorReport.trim());
    assert.ok(!dead && h.ok, `the server is not healthy: ${h.status} ${h.text}\n${failures.slice(-3).map((f) => f.text).join('\n')}${errorReport}`);
    assert.ok(sent >= Math.min(requests.length, 300), `only ${sent} requests went out within the budget`);
    if (failures.length) {
      const kinds = new Map();
      for (const f of failures) {
        const k = kinds.get(f.category) ?? { count: 0, first: f };
        k.count++;
        kinds.set(f.category, k);
      }
      const list = [...kinds.values()].sort((a, b) => a.first.rank - b.first.rank || a.first.text.localeCompare(b.first.text));
      assert.fail(`${summary}; ${kinds.size} kind(s) of failure, the first request of each:\n\n` +
        list.slice(0, 30).map((k) => `(${k.count}x) ${k.first.text}`).join('\n\n') + errorReport);
    }
  });
});
