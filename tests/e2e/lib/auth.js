// OAuth 2.0 / SMART helpers for the end-to-end tests: client assertions (private_key_jwt,
// ES384/RS384) signed with node:crypto, token requests, TOTP codes (RFC 6238), the JSON
// account API, and the system token every other test sends.
//
// Where the token comes from: a fixture on the embedded default starts with
// KASAMA_DEMO_DATA=accounts and writes <data dir>/demo-credentials.json; its backend client
// (private_key_jwt, system/*.cruds) gets the token. A fixture on KASAMA_DB has no demo data:
// the harness ran `kasama-server bootstrap-owner` (bootstrap.json), and provisionViaApi()
// walks the city's own procedure over HTTPS (R-11) to register a backend client.
import { createHmac, createPrivateKey, generateKeyPairSync, randomBytes, randomUUID, sign } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

const BASE = (process.env.KASAMA_TEST_URL ?? 'https://localhost:18440/fhir').replace(/\/+$/, '');
export const ORIGIN = new URL(BASE).origin;
export const TOKEN_ENDPOINT = `${ORIGIN}/auth/token`;
const DATA_DIR = process.env.KASAMA_TEST_DATA_DIR;

const b64url = (buf) => Buffer.from(buf).toString('base64url');

/** A signed JWT; alg ES384 (raw r||s signature), ES256, RS384 or RS256. */
export function signJwt(claims, privateKeyPem, { alg = 'ES384', kid } = {}) {
  const header = { alg, typ: 'JWT', ...(kid ? { kid } : {}) };
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  const hash = { ES384: 'sha384', RS384: 'sha384', ES256: 'sha256', RS256: 'sha256' }[alg];
  const key = createPrivateKey(privateKeyPem);
  const sig = sign(hash, Buffer.from(input), alg.startsWith('ES') ? { key, dsaEncoding: 'ieee-p1363' } : key);
  return `${input}.${b64url(sig)}`;
}

/** A client assertion for private_key_jwt (SMART Backend Services). */
export function clientAssertion({ clientId, privateKeyPem, kid, alg = 'ES384', aud = TOKEN_ENDPOINT, exp, jti }) {
  const now = Math.floor(Date.now() / 1000);
  return signJwt({ iss: clientId, sub: clientId, aud, exp: exp ?? now + 240, jti: jti ?? randomUUID() }, privateKeyPem,
    { alg, kid });
}

/** A fresh key pair and its public JWK: { privateKeyPem, jwk }. */
export function newKeyPair(alg = 'ES384', kid = `k-${randomBytes(4).toString('hex')}`) {
  const { privateKey, publicKey } = alg.startsWith('ES')
    ? generateKeyPairSync('ec', { namedCurve: alg === 'ES384' ? 'P-384' : 'P-256' })
    : generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = { ...publicKey.export({ format: 'jwk' }), kid, alg, use: 'sig' };
  return { privateKeyPem: privateKey.export({ format: 'pem', type: 'pkcs8' }), jwk, kid, alg };
}

/** POST a form to an /auth endpoint: { status, json, headers }. */
export async function postForm(endpoint, form, { basic, headers = {} } = {}) {
  const h = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json', ...headers };
  if (basic) h.authorization = 'Basic ' + Buffer.from(`${encodeURIComponent(basic[0])}:${encodeURIComponent(basic[1])}`).toString('base64');
  const res = await fetch(endpoint.startsWith('http') ? endpoint : ORIGIN + endpoint, {
    method: 'POST', headers: h, body: new URLSearchParams(form).toString(), redirect: 'manual',
  });
  const text = await res.text();
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: res.status, json, text, headers: res.headers };
}

/** JSON request to the account API (/admin/…, /auth/login …) with an optional session token. */
export async function api(method, pathname, { body, session, headers = {} } = {}) {
  const h = { accept: 'application/json', ...headers };
  if (body !== undefined) h['content-type'] = 'application/json';
  if (session) h.authorization = `Bearer ${session}`;
  const res = await fetch(ORIGIN + pathname, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body), redirect: 'manual' });
  const text = await res.text();
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: res.status, json, text, headers: res.headers };
}

/** RFC 6238 TOTP (SHA-1, 6 digits, 30 s) for a base32 secret. */
export function totp(secretBase32, unixSeconds = Math.floor(Date.now() / 1000)) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of secretBase32.replace(/=+$/, '').toUpperCase()) bits += alphabet.indexOf(c).toString(2).padStart(5, '0');
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(unixSeconds / 30)));
  const h = createHmac('sha1', key).update(counter).digest();
  const o = h[h.length - 1] & 0xf;
  const n = ((h[o] & 0x7f) << 24) | (h[o + 1] << 16) | (h[o + 2] << 8) | h[o + 3];
  return String(n % 1_000_000).padStart(6, '0');
}

/**
 * Logs in with an initial password and makes the account usable: changes the password
 * (R-13) and, for roles that need one, sets up TOTP. Returns { session, password, totpSecret }.
 */
/**
 * POST /auth/login, waiting out the short delay the server imposes on a source after a
 * failed attempt (429 slow_down with retry_after_ms); a lock (429 locked) is returned as is.
 */
export async function loginRequest(body) {
  for (let attempt = 0; ; attempt++) {
    const r = await api('POST', '/auth/login', { body });
    if (r.status !== 429 || r.json?.error !== 'slow_down' || attempt >= 5) return r;
    await new Promise((res) => setTimeout(res, r.json.retry_after_ms + 30));
  }
}

export async function firstLogin(id, initialPassword, newPassword = `N3w-${randomBytes(9).toString('base64url')}!`) {
  let r = await loginRequest({ id, password: initialPassword });
  if (r.status !== 200) throw new Error(`login ${id}: ${r.status} ${r.text}`);
  const session = r.json.session_token;
  if (r.json.mustChangePassword) {
    const c = await api('POST', '/auth/password', { session, body: { current: initialPassword, new: newPassword } });
    if (c.status !== 200) throw new Error(`password change ${id}: ${c.status} ${c.text}`);
  }
  let totpSecret;
  if (r.json.secondFactorRequired) {
    const s = await api('POST', '/auth/totp', { session, body: {} });
    if (s.status !== 200) throw new Error(`totp start ${id}: ${s.status} ${s.text}`);
    totpSecret = s.json.secret;
    const c = await api('POST', '/auth/totp/confirm', { session, body: { code: totp(totpSecret) } });
    if (c.status !== 200) throw new Error(`totp confirm ${id}: ${c.status} ${c.text}`);
  }
  return { session, password: newPassword, totpSecret };
}

function readJson(file) {
  try { return JSON.parse(fs.readFileSync(file, 'utf8')); } catch { return undefined; }
}

/** The fixture's demo credentials (embedded default with KASAMA_DEMO_DATA), or undefined. */
export function demoCredentials() {
  return DATA_DIR ? readJson(path.join(DATA_DIR, 'demo-credentials.json')) : undefined;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Logs in (with the current TOTP code when the account has a second factor): a session token. */
export async function login(id, password, totpSecret) {
  for (let attempt = 0; ; attempt++) {
    const r = await loginRequest({ id, password, ...(totpSecret ? { totp: totp(totpSecret) } : {}) });
    if (r.status === 200) return r.json.session_token;
    // A TOTP code counts once (replay protection): a second login in the same 30 s step
    // waits for the next code.
    if (totpSecret && r.status === 401 && attempt < 2) {
      await sleep(30_000 - (Date.now() % 30_000) + 500);
      continue;
    }
    throw new Error(`login ${id}: ${r.status} ${r.text}`);
  }
}

const CITY_ROLES = ['owner', 'ops-manager', 'secretariat', 'sysadmin', 'auditor'];

/**
 * Sessions of the city staff (owner, ops-manager, secretariat, sysadmin, auditor) for the
 * tests that act as them: { role: { id, password, totpSecret, session } }. The first call on
 * a fixture makes the accounts usable (initial password changed, TOTP set up) — from the
 * demo accounts, or from the bootstrap owner on a KASAMA_DB fixture, which creates the rest
 * (R-11) — and keeps them in <data dir>/test-staff.json; later calls reuse live sessions.
 */
export async function staff() {
  const file = path.join(DATA_DIR, 'test-staff.json');
  let known = readJson(file);
  if (!known) {
    known = {};
    const demo = demoCredentials();
    if (demo) {
      for (const role of CITY_ROLES) {
        const a = await firstLogin(demo[role].id, demo[role].password);
        known[role] = { id: demo[role].id, ...a };
      }
    } else {
      const boot = readJson(path.join(DATA_DIR, 'bootstrap.json'));
      if (!boot) throw new Error(`no demo-credentials.json or bootstrap.json in ${DATA_DIR}`);
      known.owner = { id: boot.id, ...(await firstLogin(boot.id, boot.initialPassword)) };
      for (const role of CITY_ROLES.slice(1)) {
        const r = await api('POST', '/admin/accounts', { session: known.owner.session, body: { role, name: `Test ${role}` } });
        if (r.status !== 201) throw new Error(`create ${role}: ${r.status} ${r.text}`);
        known[role] = { id: r.json.account.id, ...(await firstLogin(r.json.account.id, r.json.initialPassword)) };
      }
    }
    fs.writeFileSync(file, JSON.stringify(known), { mode: 0o600 });
    return known;
  }
  let changed = false;
  for (const role of CITY_ROLES) {
    const k = known[role];
    const me = await api('GET', '/admin/me', { session: k.session });
    if (me.status === 200) continue;
    k.session = await login(k.id, k.password, k.totpSecret);
    changed = true;
  }
  if (changed) fs.writeFileSync(file, JSON.stringify(known), { mode: 0o600 });
  return known;
}

/**
 * On a fixture without demo data: a backend client registered the way the city does it — an
 * institution applies, the owner approves, the secretariat registers its terminal (R-11,
 * R-18). Cached in the data dir.
 */
export async function provisionViaApi() {
  const cache = path.join(DATA_DIR, 'test-credentials.json');
  const cached = readJson(cache);
  if (cached) return cached;
  const s = await staff();
  const inst = await api('POST', '/admin/institutions', { body: { name: 'Test institution', manager: { name: 'Test manager' } } });
  // Every category read-write: the suites that use this client store and read everything.
  const categories = Object.fromEntries(['demographics', 'care', 'checkup', 'medical', 'directory', 'privacy'].map((c) => [c, 'read-write']));
  const approved = await api('POST', `/admin/institutions/${inst.json.id}/approve`, { session: s.owner.session, body: { categories } });
  if (approved.status !== 200) throw new Error(`approve: ${approved.status} ${approved.text}`);
  const key = newKeyPair('ES384');
  const client = await api('POST', '/admin/clients', {
    session: s.secretariat.session,
    body: { name: 'Test backend', kind: 'backend', institution: inst.json.id, scope: 'system/*.cruds', jwks: { keys: [key.jwk] } },
  });
  if (client.status !== 201) throw new Error(`register client: ${client.status} ${client.text}`);
  const creds = { 'backend-client': { clientId: client.json.clientId, kid: key.kid, alg: 'ES384', privateKeyPem: key.privateKeyPem } };
  fs.writeFileSync(cache, JSON.stringify(creds), { mode: 0o600 });
  return creds;
}

/** A client_credentials token for a backend client { clientId, privateKeyPem, kid, alg }. */
export async function backendToken(c, scope = 'system/*.cruds') {
  const r = await postForm(TOKEN_ENDPOINT, {
    grant_type: 'client_credentials', scope,
    client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
    client_assertion: clientAssertion({ clientId: c.clientId, privateKeyPem: c.privateKeyPem, kid: c.kid, alg: c.alg }),
  });
  if (r.status !== 200) throw new Error(`token: ${r.status} ${r.text}`);
  return r.json;
}

let cached;   // { token, expires }
let pending;  // the token request under way, shared by concurrent callers

/** The system token the tests send (system/*.cruds), renewed a minute before it expires. */
export async function systemToken() {
  if (cached && cached.expires - Date.now() > 60_000) return cached.token;
  pending ??= (async () => {
    try {
      const creds = demoCredentials() ?? await provisionViaApi();
      const t = await backendToken(creds['backend-client']);
      cached = { token: t.access_token, expires: Date.now() + t.expires_in * 1000 };
      return cached.token;
    } finally {
      pending = undefined;
    }
  })();
  return pending;
}

/** "Authorization: Bearer …\r\n", for the tests that write HTTP heads by hand. */
export async function authLine() {
  return `Authorization: Bearer ${await systemToken()}\r\n`;
}

/**
 * The authorization-code leg without a browser: the consent form as the page posts it, with
 * a session cookie. Returns { status, location, params (of the redirect), verifier, html }.
 * Options override the request's parameters (challengeMethod 'plain', a wrong aud, …).
 */
export async function authorizeCode({ session, clientId, redirectUri, scope = 'user/*.rs', aud = `${ORIGIN}/fhir`,
  patient, challenge, challengeMethod = 'S256', decision = 'approve', extra = {} }) {
  const { createHash } = await import('node:crypto');
  const verifier = randomBytes(32).toString('base64url');
  const params = {
    response_type: 'code', client_id: clientId, redirect_uri: redirectUri, scope, state: randomBytes(6).toString('hex'), aud,
    code_challenge: challenge ?? createHash('sha256').update(verifier).digest('base64url'), code_challenge_method: challengeMethod,
    ...extra,
  };
  for (const k of Object.keys(params)) if (params[k] === undefined) delete params[k];
  const cookie = `kasama_session=${session}`;
  const page = await fetch(`${ORIGIN}/auth/authorize?${new URLSearchParams(params)}`, { headers: { cookie }, redirect: 'manual' });
  const html = await page.text();
  if (page.status !== 200) {
    const location = page.headers.get('location');
    return { status: page.status, location, params: location ? Object.fromEntries(new URL(location).searchParams) : {}, verifier, html };
  }
  const csrf = /name="csrf" value="([^"]+)"/.exec(html)?.[1];
  if (!csrf) return { status: page.status, html, verifier, params: {} };
  const res = await fetch(`${ORIGIN}/auth/authorize`, {
    method: 'POST', redirect: 'manual', headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ ...params, csrf, decision, ...(patient ? { patient } : {}) }).toString(),
  });
  const location = res.headers.get('location');
  return { status: res.status, location, params: location ? Object.fromEntries(new URL(location).searchParams) : {}, verifier, html: await res.text(), state: params.state };
}
