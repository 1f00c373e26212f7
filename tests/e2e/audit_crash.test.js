// kill -9 under load leaves no answered request unaudited. A server of its own (the
// `crash` fixture) takes a mix of reads and writes from 12 clients; the server and its
// MariaDB are killed with SIGKILL mid-stream; after a restart on the same data dir, every
// request that got an answer has its audit record, every answered write its resource, and
// the hash chain holds.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { request, uid, sleep } from './lib/client.js';

const HARNESS = process.env.KASAMA_TEST_HARNESS;
const BINARY = process.env.KASAMA_TEST_BINARY;
const DIR = process.env.KASAMA_TEST_DATA_DIR;
const PORT = new URL(process.env.KASAMA_TEST_URL).port;
const SOCKET = path.join(DIR, 'mariadb', 'mysqld.sock');

const sql = (statement) => execFileSync('mariadb', ['--no-defaults', '-S', SOCKET, '-u', 'root', '-N', '-B', 'kasama', '-e', statement], { encoding: 'utf8' }).trim();
const pidOf = (file) => Number(readFileSync(path.join(DIR, file), 'utf8').trim());

describe('R-30: audit records survive kill -9 under load', () => {
  it('every answered request is audited after SIGKILL of the server and MariaDB', async () => {
    const prefix = uid('crash');
    const answered = new Map();  // request id → { status, location }
    let n = 0;
    let stop = false;
    const seed = await request('POST', '/Patient', { body: { resourceType: 'Patient', name: [{ family: 'Crash' }] } });
    assert.equal(seed.status, 201);
    // A clean restart first: its journal is loaded and removed, and the next run's journal
    // must not reuse its number (the loaded position of the old file would skip the new one).
    for (let i = 0; i < 200; i++) assert.equal((await request('GET', `/Patient/${seed.json.id}`)).status, 200);
    execFileSync(HARNESS, ['stop', DIR], { encoding: 'utf8' });
    execFileSync(HARNESS, ['resume', DIR, PORT, BINARY], { encoding: 'utf8' });
    const worker = async (w) => {
      while (!stop) {
        const id = `${prefix}-${w}-${n++}`;
        const kind = n % 3;
        try {
          const r = kind === 0
            ? await request('POST', '/Patient', { body: { resourceType: 'Patient', name: [{ family: `Crash${n}` }] }, headers: { 'x-request-id': id } })
            : kind === 1
              ? await request('GET', `/Patient/${seed.json.id}`, { headers: { 'x-request-id': id } })
              : await request('GET', '/Patient?_count=3', { headers: { 'x-request-id': id } });
          answered.set(id, { status: r.status, location: r.headers.get('location') });
        } catch {
          // cut off by the kill: no answer, nothing to require
          await sleep(20);
        }
      }
    };
    const workers = Array.from({ length: 12 }, (_, w) => worker(w));
    await sleep(3000);
    const before = answered.size;
    assert.ok(before > 50, `load before the kill: ${before} answers`);
    process.kill(pidOf('server.pid'), 'SIGKILL');
    process.kill(pidOf('mariadb/mariadbd.pid'), 'SIGKILL');
    await sleep(1500);
    stop = true;
    await Promise.all(workers);
    const ok = [...answered.values()].filter((a) => a.status < 500).length;
    assert.ok(ok > 50, `answers: ${answered.size} (${ok} below 500)`);

    execFileSync(HARNESS, ['resume', DIR, PORT, BINARY], { encoding: 'utf8' });
    const recorded = new Set(sql(`SELECT request_id FROM audit_event WHERE request_id LIKE '${prefix}-%'`).split('\n').filter(Boolean));
    const missing = [...answered.keys()].filter((id) => !recorded.has(id));
    assert.deepEqual(missing, [], `answered but not audited: ${missing.length} of ${answered.size}`);
    // Each answered create is there, and its record names it.
    const creates = [...answered.entries()].filter(([, a]) => a.status === 201);
    assert.ok(creates.length > 5);
    for (const [, a] of creates.slice(0, 20)) {
      const p = new URL(a.location).pathname.split('/');
      const r = await request('GET', `/Patient/${p[3]}`);
      assert.equal(r.status, 200, `created before the kill: ${a.location}`);
    }
    // The chain holds over what was written before and after the crash.
    await sleep(1000);
    const out = execFileSync(BINARY, ['audit-verify'], { env: { ...process.env, KASAMA_DATA_DIR: DIR, KASAMA_PORT: PORT }, encoding: 'utf8' });
    const v = JSON.parse(out);
    assert.equal(v.result, true, out);
    assert.ok(v.checked >= recorded.size, out);
  });

  it('R-34: the maintenance user purges the records before a cut-off, the purge is recorded and the rest verifies', async () => {
    const env = { ...process.env, KASAMA_DATA_DIR: DIR, KASAMA_PORT: PORT };
    // Without a retention period nothing is purged.
    const none = spawnSync(BINARY, ['audit-purge'], { env: { ...env, KASAMA_AUDIT_RETENTION_DAYS: '0' }, encoding: 'utf8' });
    assert.equal(none.status, 2, none.stderr);
    assert.match(none.stderr, /KASAMA_AUDIT_RETENTION_DAYS is 0/);
    // A retention of ten years removes nothing of today's.
    const kept = JSON.parse(execFileSync(BINARY, ['audit-purge'], { env: { ...env, KASAMA_AUDIT_RETENTION_DAYS: '3650' }, encoding: 'utf8' }));
    assert.equal(kept.removed, 0);
    const before = Number(sql('SELECT COUNT(*) FROM audit_event'));
    const cut = new Date(Date.now() + 1000).toISOString();
    await sleep(1500);
    const out = execFileSync(BINARY, ['audit-purge', '--before', cut], { env, encoding: 'utf8' });
    const r = JSON.parse(out);
    assert.ok(r.removed > 0, out);
    assert.equal(r.chain, true, out);
    assert.ok(r.anchorId > 0, 'the last purged block anchors the chain');
    assert.match(r.maintenanceUser, /^root@/, 'the maintenance user, not the server\'s');
    const after = Number(sql('SELECT COUNT(*) FROM audit_event'));
    assert.equal(after, before - r.removed + 1, 'the purge removed what it says and recorded itself');
    // The record of the first run (which removed nothing) was older than the cut-off itself.
    assert.equal(Number(sql("SELECT COUNT(*) FROM audit_event WHERE method='CLI' AND path LIKE 'audit-purge%'")), 1);
    const rec = sql("SELECT path, detail FROM audit_event WHERE method='CLI' AND path LIKE 'audit-purge%' ORDER BY id DESC LIMIT 1");
    assert.match(rec, new RegExp(`removed=${r.removed}`));
    assert.match(rec, /R-34/);
    await sleep(1500);
    const v = JSON.parse(execFileSync(BINARY, ['audit-verify'], { env, encoding: 'utf8' }));
    assert.equal(v.result, true, JSON.stringify(v));
    assert.equal(v.anchorId, r.anchorId);
  });
});
