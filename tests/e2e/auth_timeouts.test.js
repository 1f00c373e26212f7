// R-17 and token lifetimes, on a server of its own with short settings
// (KASAMA_IDLE_TIMEOUT=3, KASAMA_ACCESS_TOKEN_LIFETIME=5, KASAMA_BACKEND_TOKEN_LIFETIME=2):
// idle sessions and user tokens lock after the idle time, tokens end at their absolute
// lifetime however busy, and the idle limit cannot be set above 15 minutes.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { request, sleep } from './lib/client.js';
import { TOKEN_ENDPOINT, api, demoCredentials, firstLogin, authorizeCode, postForm, backendToken } from './lib/auth.js';

const bearer = (t) => ({ headers: { authorization: `Bearer ${t}` } });
const status = async (t) => (await request('GET', 'Patient?_count=1', bearer(t))).status;

describe('timeouts (R-17) and token lifetimes', () => {
  let demo, user, conf;
  before(async () => {
    demo = demoCredentials();
    conf = demo['confidential-client'];
    user = { id: demo.practitioner.id, ...(await firstLogin(demo.practitioner.id, demo.practitioner.password)) };
  });

  async function userToken() {
    const fresh = await api('POST', '/auth/login', { body: { id: user.id, password: user.password } });
    assert.equal(fresh.status, 200, fresh.text);
    const a = await authorizeCode({ session: fresh.json.session_token, clientId: conf.clientId, redirectUri: 'https://localhost/demo-callback', scope: 'user/*.rs online_access' });
    assert.equal(a.status, 302, a.html);
    const t = await postForm(TOKEN_ENDPOINT, { grant_type: 'authorization_code', code: a.params.code, redirect_uri: 'https://localhost/demo-callback', code_verifier: a.verifier },
      { basic: [conf.clientId, conf.clientSecret] });
    assert.equal(t.status, 200, t.text);
    return { ...t.json, session: fresh.json.session_token };
  }

  it('a backend token ends at its lifetime (expired token refused)', async () => {
    const t = await backendToken(demo['backend-client']);
    assert.equal(t.expires_in, 2);
    assert.equal(await status(t.access_token), 200);
    await sleep(2600);
    const r = await request('GET', 'Patient?_count=1', bearer(t.access_token));
    assert.equal(r.status, 401);
    assert.match(r.headers.get('www-authenticate'), /invalid_token/);
  });

  it('R-17: a session and a user token in use stay valid; idle for longer than the limit, both lock', async () => {
    const t = await userToken();
    for (let i = 0; i < 3; i++) {
      await sleep(1500);  // under the 3 s idle limit each time, 4.5 s in all
      assert.equal(await status(t.access_token), 200, `use ${i}`);
      assert.equal((await api('GET', '/admin/me', { session: t.session })).status, 200);
    }
    await sleep(3600);
    assert.equal(await status(t.access_token), 401, 'the idle token is locked');
    assert.equal((await api('GET', '/admin/me', { session: t.session })).status, 401, 'the idle session is locked');
    // The refresh token (online_access, bounded by the login session's absolute lifetime) still
    // gets a new access token: the app's own lifetime rules, not the idle lock, end it.
    const r = await postForm(TOKEN_ENDPOINT, { grant_type: 'refresh_token', refresh_token: t.refresh_token }, { basic: [conf.clientId, conf.clientSecret] });
    assert.equal(r.status, 200, r.text);
    assert.equal(await status(r.json.access_token), 200);
  });

  it('a user access token ends at its absolute lifetime however busy it is', async () => {
    const t = await userToken();
    assert.equal(t.expires_in, 5);
    const start = Date.now();
    while (Date.now() - start < 4000) {
      assert.equal(await status(t.access_token), 200);
      await sleep(700);
    }
    await sleep(Math.max(0, 5300 - (Date.now() - start)));
    assert.equal(await status(t.access_token), 401);
  });

  it('R-10, R-11: bootstrap-owner beside the running server is refused once an owner exists, and leaves the server up', async () => {
    const r = spawnSync(process.env.KASAMA_TEST_BINARY, ['bootstrap-owner', 'Second Owner'], {
      env: { ...process.env, KASAMA_DATA_DIR: process.env.KASAMA_TEST_DATA_DIR }, encoding: 'utf8', timeout: 60_000,
    });
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /owner account exists already/);
    const health = await fetch(new URL('/health', process.env.KASAMA_TEST_URL));
    assert.equal(health.status, 200, 'the CLI did not stop the server\'s MariaDB');
    assert.equal(await status((await backendToken(demo['backend-client'])).access_token), 200);
  });

  it('the idle limit cannot be configured above 15 minutes', () => {
    const r = spawnSync(process.env.KASAMA_TEST_BINARY, [], { env: { ...process.env, KASAMA_IDLE_TIMEOUT: '901', KASAMA_DATA_DIR: '/nonexistent/never' }, encoding: 'utf8', timeout: 30_000 });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr + r.stdout, /KASAMA_IDLE_TIMEOUT/);
  });
});
