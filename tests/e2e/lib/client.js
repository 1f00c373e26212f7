// Small, generic helpers shared by the end-to-end tests: the server's base URL, raw HTTP
// requests with global fetch (undici, TLS verified against NODE_EXTRA_CA_CERTS), fresh
// identifiers, and a fhir-kit-client instance. Keep this file generic; put
// topic-specific helpers in their own lib/*.js.
import { randomBytes } from 'node:crypto';
import Client from 'fhir-kit-client';
import { systemToken } from './auth.js';

export { systemToken, authLine } from './auth.js';

export const BASE = (process.env.KASAMA_TEST_URL ?? 'https://localhost:18440/fhir').replace(/\/+$/, '');
export const ORIGIN = new URL(BASE).origin;
export const FHIR_JSON = 'application/fhir+json';

/** A fresh random token of [a-z0-9], usable in ids (<= 64 chars) and identifier values. */
export function uid(prefix = 't') {
  return `${prefix}-${Date.now().toString(36)}-${randomBytes(6).toString('hex')}`;
}

/** A fresh business identifier { system, value } that no other test uses. */
export function freshIdentifier(system = 'urn:kasama-e2e:' + uid('sys')) {
  return { system, value: uid('v') };
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function urlFor(path) {
  if (/^https?:/.test(path)) return path;
  if (path === '' || path.startsWith('?')) return BASE + path;
  return BASE + (path.startsWith('/') ? path : '/' + path);
}

/**
 * One raw HTTP request. body: a string/Buffer (sent as is) or an object (JSON-encoded,
 * Content-Type application/fhir+json unless given). Returns { status, headers, text, json }
 * where json is the parsed body or undefined; never throws on HTTP error statuses.
 * The system token is sent unless headers.authorization is given (null: none at all).
 */
export async function request(method, path, { headers = {}, body, signal } = {}) {
  const given = lowerKeys(headers);
  const h = { accept: FHIR_JSON, ...('authorization' in given ? {} : { authorization: `Bearer ${await systemToken()}` }), ...given };
  let payload = body;
  if (body !== undefined && typeof body !== 'string' && !(body instanceof Uint8Array)) {
    payload = JSON.stringify(body);
  }
  if (payload !== undefined && !('content-type' in h)) h['content-type'] = FHIR_JSON;
  for (const k of Object.keys(h)) if (h[k] === null) delete h[k];
  const res = await fetch(urlFor(path), { method, headers: h, body: payload, redirect: 'manual', signal });
  const buf = Buffer.from(await res.arrayBuffer());
  const text = buf.toString('utf8');
  let json;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, bytes: buf, json };
}

function lowerKeys(o) {
  const out = {};
  for (const [k, v] of Object.entries(o)) out[k.toLowerCase()] = v;
  return out;
}

export const get = (path, opts) => request('GET', path, opts);
export const post = (path, body, opts = {}) => request('POST', path, { ...opts, body });
export const put = (path, body, opts = {}) => request('PUT', path, { ...opts, body });
export const del = (path, opts) => request('DELETE', path, opts);

/** Ids of the current resources of a type whose identifier matches system|value. */
export async function idsByIdentifier(type, { system, value }) {
  const q = encodeURIComponent(`${system ?? ''}|${value}`);
  const r = await get(`/${type}?identifier=${q}&_count=100`);
  if (r.status !== 200) throw new Error(`search ${type}?identifier=${system}|${value}: ${r.status} ${r.text}`);
  return (r.json.entry ?? []).map((e) => e.resource.id);
}

/** A fhir-kit-client Client for the server under test, sending the system token. */
export async function fhirClient(options = {}) {
  return new Client({ baseUrl: BASE, bearerToken: await systemToken(), ...options });
}
