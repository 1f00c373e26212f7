// Helpers for the transaction, Synthea and official-examples end-to-end tests: raw FHIR
// HTTP over verified TLS (global fetch; the server's self-signed certificate is trusted via
// NODE_EXTRA_CA_CERTS, never by turning verification off), the ../shared corpora, a small
// concurrency pool, and a tokenizer for the number literals of raw JSON text.
import { existsSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { systemToken } from './auth.js';

export const BASE = (process.env.KASAMA_TEST_URL || '').replace(/\/+$/, '');

function requireEnv() {
  if (!BASE) throw new Error('KASAMA_TEST_URL is not set (run through ctest, or export it: https://localhost:PORT/fhir)');
  if (!process.env.NODE_EXTRA_CA_CERTS) {
    throw new Error(
      'NODE_EXTRA_CA_CERTS is not set: point it at the server certificate (' +
        (process.env.KASAMA_TEST_CA || 'DIR/tls/server.crt') +
        ') so that TLS is verified; it must be set before node starts',
    );
  }
}

export const FHIR_JSON = 'application/fhir+json';

/**
 * One HTTP exchange. `path` is relative to BASE ('' is the base itself) or absolute.
 * `body` may be an object (sent as JSON) or a string (sent as is).
 * The system token (lib/auth.js) is sent unless headers has Authorization (null: none at all).
 * Returns { status, headers, text, json } where json is the parsed body or undefined.
 */
export async function request(method, pathOrUrl, { body, headers = {}, contentType = FHIR_JSON } = {}) {
  requireEnv();
  const url = /^https?:\/\//.test(pathOrUrl) ? pathOrUrl : BASE + (pathOrUrl ? '/' + pathOrUrl.replace(/^\/+/, '') : '');
  const hasAuth = Object.keys(headers).some((k) => k.toLowerCase() === 'authorization');
  const h = { Accept: FHIR_JSON, ...(hasAuth ? {} : { Authorization: `Bearer ${await systemToken()}` }), ...headers };
  for (const k of Object.keys(h)) if (h[k] === null) delete h[k];
  let payload;
  if (body !== undefined) {
    payload = typeof body === 'string' ? body : JSON.stringify(body);
    if (!Object.keys(h).some((k) => k.toLowerCase() === 'content-type')) h['Content-Type'] = contentType;
  }
  let lastErr;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const res = await fetch(url, { method, headers: h, body: payload });
      const text = await res.text();
      let json;
      if (text) {
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
      }
      return { status: res.status, headers: res.headers, text, json };
    } catch (err) {
      // A reused keep-alive socket that the server closed: retry reads only, never writes.
      lastErr = err;
      if (method !== 'GET' && method !== 'HEAD') break;
    }
  }
  throw new Error(`${method} ${url} failed: ${lastErr?.cause?.message || lastErr?.message}`);
}

export const get = (p, opts) => request('GET', p, opts);
export const post = (p, body, opts = {}) => request('POST', p, { ...opts, body });
export const put = (p, body, opts = {}) => request('PUT', p, { ...opts, body });

/** POST a batch/transaction Bundle to the base. */
export function postBundle(bundle, { prefer } = {}) {
  return request('POST', '', { body: bundle, headers: prefer ? { Prefer: prefer } : {} });
}

/** A short description of a response for assertion messages. */
export function describe(res) {
  return `HTTP ${res.status}: ${res.text.length > 1500 ? res.text.slice(0, 1500) + '...' : res.text}`;
}

export const uid = () => randomUUID();
export const urn = () => 'urn:uuid:' + randomUUID();

/** The ../shared corpora folder, or null when it is absent (tests must then t.skip). */
export function corporaDir() {
  const shared = process.env.KASAMA_SHARED_DIR;
  if (!shared) return null;
  const dir = path.join(shared, 'corpora');
  return existsSync(dir) ? dir : null;
}

export const NO_CORPORA =
  'KASAMA_SHARED_DIR/corpora is absent (the ../shared folder is not next to the project), so this corpus test cannot run';

/** Run fn over items with at most `limit` in flight; results in input order. */
export async function pool(items, limit, fn) {
  const out = new Array(items.length);
  let next = 0;
  async function worker() {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/**
 * The number literals of raw JSON text, as written, in document order. JSON.parse loses
 * the difference between 1.50 and 1.5 (FHIR decimals keep their precision), so comparing
 * these sequences checks that a server echoes numbers exactly.
 */
export function numberLiterals(text) {
  const out = [];
  const re = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
  for (let i = 0; i < text.length; ) {
    const c = text[i];
    if (c === '"') {
      i++;
      while (i < text.length && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
      i++;
    } else if (c === '-' || (c >= '0' && c <= '9')) {
      re.lastIndex = i;
      const m = re.exec(text);
      if (!m) throw new Error(`bad number at offset ${i}`);
      out.push(m[0]);
      i += m[0].length;
    } else {
      i++;
    }
  }
  return out;
}

/**
 * Every Reference.reference string in a resource (including contained resources and
 * nested elements), with its JSON path.
 */
export function references(node, at = '', out = []) {
  if (Array.isArray(node)) {
    node.forEach((v, i) => references(v, `${at}[${i}]`, out));
  } else if (node && typeof node === 'object') {
    for (const [k, v] of Object.entries(node)) {
      if (k === 'reference' && typeof v === 'string') out.push({ path: `${at}.reference`, reference: v });
      else references(v, at ? `${at}.${k}` : k, out);
    }
  }
  return out;
}

/** Type/id (optionally /_history/n) relative to this server, or null. */
export function relativeTarget(reference) {
  let r = reference;
  if (r.startsWith(BASE + '/')) r = r.slice(BASE.length + 1);
  const m = /^([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})(?:\/_history\/[A-Za-z0-9\-.]{1,64})?$/.exec(r);
  return m ? { type: m[1], id: m[2], path: `${m[1]}/${m[2]}` } : null;
}

/** The OperationOutcome issues' expressions, flattened. */
export function expressions(outcome) {
  return (outcome?.issue || []).flatMap((i) => i.expression || []);
}
