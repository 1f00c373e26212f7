// End-to-end tests of the server's TLS endpoint with node:tls: old protocol versions are
// refused by the server, TLS 1.2 and 1.3 work, weak ciphers are refused, and the certificate
// verifies for real against KASAMA_TEST_CA for the host name localhost.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import tls from 'node:tls';
import net from 'node:net';
import https from 'node:https';
import crypto from 'node:crypto';
import { caCert, host, port, target } from './lib/raw.js';

// The client side is opened up as far as OpenSSL allows (SECLEVEL=0), so that a refusal
// really comes from the server and not from the client refusing to offer the protocol.
function handshake(options) {
  return new Promise((resolve) => {
    let socket;
    try {
      socket = tls.connect({ host, port, servername: host, ca: caCert(), ...options });
    } catch (e) {
      resolve({ ok: false, code: e.code, message: e.message, local: true });
      return;
    }
    const done = (result) => {
      socket.destroy();
      resolve(result);
    };
    socket.setTimeout(10_000, () => done({ ok: false, code: 'TIMEOUT' }));
    socket.on('secureConnect', () => {
      done({
        ok: true,
        protocol: socket.getProtocol(),
        cipher: socket.getCipher(),
        authorized: socket.authorized,
        authorizationError: socket.authorizationError,
        cert: socket.getPeerCertificate(true),
        ephemeral: socket.getEphemeralKeyInfo(),
      });
    });
    socket.on('error', (e) => done({ ok: false, code: e.code, message: e.message }));
  });
}

const SERVER_REFUSED = /ALERT_PROTOCOL_VERSION|UNSUPPORTED_PROTOCOL|WRONG_VERSION_NUMBER|ECONNRESET|ALERT_HANDSHAKE_FAILURE/;

describe('TLS protocol versions', () => {
  const cases = [
    { version: 'TLSv1', accepted: false },
    { version: 'TLSv1.1', accepted: false },
    { version: 'TLSv1.2', accepted: true },
    { version: 'TLSv1.3', accepted: true },
  ];
  for (const c of cases) {
    test(`${c.version} is ${c.accepted ? 'accepted' : 'refused by the server'}`, async () => {
      const r = await handshake({ minVersion: c.version, maxVersion: c.version, ciphers: 'DEFAULT@SECLEVEL=0' });
      if (c.accepted) {
        assert.ok(r.ok, `handshake failed: ${r.code} ${r.message}`);
        assert.equal(r.protocol, c.version);
        assert.equal(r.authorized, true, `certificate verified: ${r.authorizationError}`);
      } else {
        assert.equal(r.ok, false, `${c.version} must be refused, got ${r.protocol}`);
        assert.match(r.code ?? '', SERVER_REFUSED, `refused by the server (alert), not by the client: ${r.code} ${r.message}`);
        assert.doesNotMatch(r.message ?? '', /no protocols available/i, 'the client really offered the protocol');
      }
    });
  }

  test('a client that allows everything from TLS 1.0 up gets TLS 1.3', async () => {
    const r = await handshake({ minVersion: 'TLSv1', ciphers: 'DEFAULT@SECLEVEL=0' });
    assert.ok(r.ok, r.message);
    assert.equal(r.protocol, 'TLSv1.3');
  });

  for (const version of ['TLSv1.2', 'TLSv1.3']) {
    test(`an HTTPS request over ${version} gets /health 200`, async () => {
      const status = await new Promise((resolve, reject) => {
        const req = https.get(
          { host, port, path: '/health', servername: host, ca: caCert(), minVersion: version, maxVersion: version, agent: false },
          (res) => {
            res.resume();
            resolve({ status: res.statusCode, protocol: res.socket.getProtocol?.() });
          },
        );
        req.on('error', reject);
      });
      assert.equal(status.status, 200);
    });
  }
});

describe('TLS ciphers (TLS 1.2)', () => {
  const refused = [
    { name: 'static RSA key exchange, CBC, SHA-1', ciphers: 'AES128-SHA:AES256-SHA' },
    { name: 'CBC with SHA-1 (ECDHE)', ciphers: 'ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES256-SHA' },
    { name: '3DES', ciphers: 'DES-CBC3-SHA:ECDHE-RSA-DES-CBC3-SHA' },
    { name: 'RC4 and NULL', ciphers: 'RC4-SHA:NULL-SHA:NULL-SHA256:ECDHE-ECDSA-NULL-SHA' },
    { name: 'anonymous', ciphers: 'aNULL' },
  ];
  for (const c of refused) {
    test(`${c.name} is refused`, async (t) => {
      const r = await handshake({ minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2', ciphers: `${c.ciphers}@SECLEVEL=0` });
      if (r.local) {
        t.skip(`this Node's OpenSSL cannot offer these ciphers (${r.code})`);
        return;
      }
      assert.equal(r.ok, false, `negotiated ${r.cipher?.name}`);
      assert.match(r.code ?? '', /HANDSHAKE_FAILURE|NO_SHARED_CIPHER|ECONNRESET|INSUFFICIENT_SECURITY/, `refused by the server: ${r.code} ${r.message}`);
    });
  }

  test('the negotiated TLS 1.2 cipher is an AEAD with forward secrecy', async () => {
    const r = await handshake({ minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' });
    assert.ok(r.ok, r.message);
    assert.match(r.cipher.name, /^(ECDHE|DHE)-.*(GCM|CHACHA20)/, r.cipher.name);
    assert.ok(['ECDH', 'DH'].includes(r.ephemeral.type), `ephemeral key ${JSON.stringify(r.ephemeral)}`);
  });
});

describe('certificate', () => {
  test('verifies against KASAMA_TEST_CA for the host name localhost', async () => {
    const r = await handshake({ minVersion: 'TLSv1.2' });
    assert.ok(r.ok, `${r.code} ${r.message}`);
    assert.equal(r.authorized, true, r.authorizationError);
    assert.equal(tls.checkServerIdentity('localhost', r.cert), undefined, 'the certificate names localhost');
    assert.match(r.cert.subjectaltname ?? '', /DNS:localhost/);
    const ca = new crypto.X509Certificate(caCert());
    assert.equal(r.cert.fingerprint256, ca.fingerprint256, 'the server presents the certificate given to the tests');
  });

  test('is currently valid and not a weak key', async () => {
    const r = await handshake({ minVersion: 'TLSv1.2' });
    assert.ok(r.ok);
    const now = Date.now();
    assert.ok(Date.parse(r.cert.valid_from) <= now, `valid_from ${r.cert.valid_from}`);
    assert.ok(Date.parse(r.cert.valid_to) > now + 24 * 3600_000, `valid_to ${r.cert.valid_to}`);
    if (r.cert.bits) {
      const ec = /EC|prime256|secp/i.test(`${r.cert.asn1Curve ?? ''}${r.cert.nistCurve ?? ''}`) || r.cert.bits < 1024;
      assert.ok(ec ? r.cert.bits >= 256 : r.cert.bits >= 2048, `key of ${r.cert.bits} bits`);
    }
  });

  test('fails verification for another host name', async () => {
    const r = await handshake({ servername: 'not-localhost.example', checkServerIdentity: (h, cert) => tls.checkServerIdentity('not-localhost.example', cert) });
    assert.equal(r.ok, false);
    assert.equal(r.code, 'ERR_TLS_CERT_ALTNAME_INVALID');
  });

  test('fails verification against the public roots only (verification is real)', async () => {
    const r = await handshake({ ca: tls.rootCertificates });
    assert.equal(r.ok, false, 'a self-signed certificate must not verify against the public roots');
    assert.match(r.code ?? '', /SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER/);
  });

  test('fetch (undici) verifies with NODE_EXTRA_CA_CERTS', async () => {
    const res = await fetch(`${target.origin}/health`);
    assert.equal(res.status, 200);
  });
});

describe('no plain HTTP on the TLS port', () => {
  test('a plain-text HTTP request gets no HTTP answer and leaks nothing', async () => {
    const got = await new Promise((resolve) => {
      const s = net.connect({ host, port });
      const chunks = [];
      s.setTimeout(5000, () => s.destroy());
      s.on('connect', () => s.write(`GET ${target.pathname}/metadata HTTP/1.1\r\nHost: ${target.host}\r\n\r\n`));
      s.on('data', (d) => chunks.push(d));
      s.on('error', () => {});
      s.on('close', () => resolve(Buffer.concat(chunks)));
    });
    assert.ok(!got.toString('latin1').includes('CapabilityStatement'), 'no FHIR content over plain text');
    assert.ok(!/^HTTP\/1\.[01] 200/.test(got.toString('latin1')), 'no 200 over plain text');
  });
});
