// A raw HTTP/1.1 exchange over a verified TLS connection, for what fetch cannot do: read a
// response the server sends while the request body is still being written (413), send
// Expect: 100-continue, or send bytes that are not valid HTTP. rawExchange and pipelined send
// the heads as given: a request to a non-public endpoint needs the caller's authLine() in it.
import tls from 'node:tls';
import https from 'node:https';
import fs from 'node:fs';
import { BASE, systemToken } from './client.js';

export const target = new URL(BASE);
export const port = Number(target.port || 443);
export const host = target.hostname;

export function caCert() {
  const file = process.env.KASAMA_TEST_CA ?? process.env.NODE_EXTRA_CA_CERTS;
  if (!file) throw new Error('KASAMA_TEST_CA is not set');
  return fs.readFileSync(file);
}

/** Parse the first HTTP response(s) in a byte buffer: [{ status, headers, body }] (1xx first). */
export function parseResponses(buf) {
  const out = [];
  let rest = buf;
  while (rest.length) {
    const end = rest.indexOf('\r\n\r\n');
    if (end < 0) break;
    const head = rest.subarray(0, end).toString('latin1').split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(head[0]);
    if (!m) break;
    const headers = {};
    for (const line of head.slice(1)) {
      const i = line.indexOf(':');
      if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
    }
    const status = Number(m[1]);
    rest = rest.subarray(end + 4);
    let body = Buffer.alloc(0);
    if (status >= 200) {
      const len = Number(headers['content-length'] ?? rest.length);
      body = rest.subarray(0, len);
      rest = rest.subarray(len);
    }
    out.push({ status, headers, body: body.toString('utf8') });
  }
  return out;
}

/**
 * Send head, then body in chunks, stopping as soon as the server answers. With
 * waitForContinue, the body is only sent after a 100 Continue (or never, if a final
 * response comes first). Resolves { responses, error, bytesSent } once the connection closes
 * or timeoutMs passes.
 */
export function rawExchange(head, body = Buffer.alloc(0), { chunk = 64 * 1024, waitForContinue = false, timeoutMs = 30_000 } = {}) {
  return new Promise((resolve) => {
    const socket = tls.connect({ host, port, servername: host, ca: caCert() });
    socket.setMaxListeners(0);
    const got = [];
    let error;
    let bytesSent = 0;
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ responses: parseResponses(Buffer.concat(got)), error, bytesSent });
    };
    const timer = setTimeout(finish, timeoutMs);
    const finalResponse = () => parseResponses(Buffer.concat(got)).some((r) => r.status >= 200 && r.body.length >= Number(r.headers['content-length'] ?? 0));
    let onData = () => {};
    socket.on('data', (d) => {
      got.push(d);
      onData();
      if (finalResponse()) setTimeout(finish, 50);
    });
    socket.on('error', (e) => {
      error = e.code ?? e.message;
    });
    socket.on('close', finish);
    socket.on('secureConnect', async () => {
      socket.write(head);
      if (waitForContinue) {
        await new Promise((r) => {
          onData = () => {
            const rs = parseResponses(Buffer.concat(got));
            if (rs.length) r();
          };
          onData();
        });
        if (finalResponse()) return;
      }
      for (let off = 0; off < body.length; off += chunk) {
        if (finished || error || finalResponse() || socket.destroyed) return;
        const ok = socket.write(body.subarray(off, off + chunk));
        bytesSent = off + Math.min(chunk, body.length - off);
        if (!ok) {
          await new Promise((r) => {
            const done = () => {
              socket.off('drain', done);
              socket.off('close', done);
              socket.off('data', done);
              r();
            };
            socket.on('drain', done);
            socket.on('close', done);
            socket.on('data', done);
          });
        }
      }
    });
  });
}

/**
 * Like client.request, but on a connection of its own (or of the given https.Agent) that is closed afterwards, so that a
 * server that mishandles the connection cannot disturb later requests. Same result shape. Like client.request, it sends
 * the system token unless headers.authorization is given (null: none at all).
 */
export async function requestOnFreshConnection(method, path, { headers = {}, body, agent, timeoutMs } = {}) {
  const given = Object.keys(headers).some((k) => k.toLowerCase() === 'authorization');
  const token = given ? undefined : await systemToken();
  return new Promise((resolve, reject) => {
    const h = { accept: 'application/fhir+json', ...(agent ? {} : { connection: 'close' }), ...(token ? { authorization: `Bearer ${token}` } : {}) };
    for (const [k, v] of Object.entries(headers)) h[k.toLowerCase()] = v;
    let payload = body;
    if (body !== undefined && typeof body !== 'string' && !(body instanceof Uint8Array)) payload = JSON.stringify(body);
    if (payload !== undefined && !('content-type' in h)) h['content-type'] = 'application/fhir+json';
    if (payload !== undefined) h['content-length'] = Buffer.byteLength(payload);
    for (const k of Object.keys(h)) if (h[k] === null) delete h[k];
    const url = /^https?:/.test(path) ? new URL(path) : new URL(BASE + (path && !path.startsWith('?') && !path.startsWith('/') ? '/' : '') + path);
    const req = https.request(url, { method, headers: h, agent: agent ?? false, ca: caCert(), servername: host, signal: timeoutMs ? AbortSignal.timeout(timeoutMs) : undefined }, (res) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('end', () => {
        const bytes = Buffer.concat(chunks);
        const text = bytes.toString('utf8');
        let json;
        try {
          json = text ? JSON.parse(text) : undefined;
        } catch {
          json = undefined;
        }
        const hdrs = new Headers();
        for (const [k, v] of Object.entries(res.headers)) hdrs.set(k, Array.isArray(v) ? v.join(', ') : String(v));
        resolve({ status: res.statusCode, headers: hdrs, text, bytes, json });
      });
    });
    req.on('error', (e) => reject(e.name === 'AbortError' ? Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: 'TIMEOUT' }) : e));
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

/** Write several raw requests back to back on one connection; resolves the parsed responses. */
export function pipelined(requests, { timeoutMs = 10_000 } = {}) {
  return new Promise((resolve) => {
    const socket = tls.connect({ host, port, servername: host, ca: caCert() });
    const got = [];
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(parseResponses(Buffer.concat(got)));
    };
    const timer = setTimeout(finish, timeoutMs);
    socket.on('data', (d) => got.push(d));
    socket.on('error', () => {});
    socket.on('close', finish);
    socket.on('secureConnect', () => {
      for (const r of requests) socket.write(r);
    });
  });
}
