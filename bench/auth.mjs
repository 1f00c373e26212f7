#!/usr/bin/env node
// Bearer tokens for the bench clients. The FHIR API needs `Authorization: Bearer …` (only
// /fhir/metadata, /health and /fhir/.well-known/* are public). The servers run.sh and search.sh
// start (tests/harness/server.sh: KASAMA_DEMO_DATA=accounts, backend tokens of an hour) write
// DATA_DIR/demo-credentials.json; its backend client (private_key_jwt, system/*.cruds) gets a
// client_credentials token, with the client assertion of tests/e2e/lib/auth.js.
//   node auth.mjs BASE_URL CA_FILE DATA_DIR    prints one token (run.sh and search.sh: wrk, curl)
import fs from 'node:fs';
import path from 'node:path';
import https from 'node:https';
import { pathToFileURL } from 'node:url';
import { clientAssertion } from '../tests/e2e/lib/auth.js';

/**
 * An async function giving the system token for the server at base (its FHIR base URL), taken
 * from dataDir/demo-credentials.json; cached, and renewed a minute before it expires. ca: the
 * CA certificate (Buffer), else NODE_EXTRA_CA_CERTS applies.
 */
export function tokenSource({ base, dataDir, ca }) {
  if (!dataDir) throw new Error('a data dir is needed for the bearer token (DATA_DIR/demo-credentials.json)');
  const file = path.join(dataDir, 'demo-credentials.json');
  const endpoint = `${new URL(base).origin}/auth/token`;
  let cached; // { token, expires }
  let pending;
  const fetchToken = async () => {
    let creds;
    try {
      creds = JSON.parse(fs.readFileSync(file, 'utf8'))['backend-client'];
    } catch (e) {
      throw new Error(`no backend client in ${file} (a server started with KASAMA_DEMO_DATA=accounts writes it): ${e.message}`);
    }
    const form = new URLSearchParams({
      grant_type: 'client_credentials',
      scope: 'system/*.cruds',
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: clientAssertion({ clientId: creds.clientId, privateKeyPem: creds.privateKeyPem, kid: creds.kid, alg: creds.alg, aud: endpoint }),
    }).toString();
    const r = await new Promise((resolve, reject) => {
      const req = https.request(endpoint, {
        method: 'POST',
        agent: false,
        ...(ca ? { ca } : {}),
        headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json', 'Content-Length': Buffer.byteLength(form) },
      }, (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode, text: Buffer.concat(chunks).toString('utf8') }));
      });
      req.on('error', reject);
      req.end(form);
    });
    if (r.status !== 200) throw new Error(`POST ${endpoint}: HTTP ${r.status} ${r.text.slice(0, 300)}`);
    const t = JSON.parse(r.text);
    cached = { token: t.access_token, expires: Date.now() + t.expires_in * 1000 };
    return cached.token;
  };
  return async () => {
    if (cached && cached.expires - Date.now() > 60_000) return cached.token;
    pending ??= fetchToken().finally(() => { pending = undefined; });
    return pending;
  };
}

/**
 * For a bench script: the token source for its server, checked once up front; exits with a
 * message naming the script when --data-dir is missing or no token can be had.
 */
export async function benchBearer(name, { base, dataDir, ca }) {
  if (!dataDir) {
    console.error(`${name}: --data-dir DIR is needed for the bearer token (DIR/demo-credentials.json)`);
    process.exit(2);
  }
  const bearer = tokenSource({ base, dataDir, ca });
  try {
    await bearer();
  } catch (e) {
    console.error(`${name}: ${e.message}`);
    process.exit(1);
  }
  return bearer;
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const [base, caFile, dataDir] = process.argv.slice(2);
  if (!base || !caFile || !dataDir) {
    console.error('usage: node auth.mjs BASE_URL CA_FILE DATA_DIR');
    process.exit(2);
  }
  try {
    console.log(await tokenSource({ base, dataDir, ca: fs.readFileSync(caFile) })());
  } catch (e) {
    console.error(`auth: ${e.message}`);
    process.exit(1);
  }
}
