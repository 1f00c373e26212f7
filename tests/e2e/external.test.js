// A server started with KASAMA_DB (an external MariaDB, here a database of its own in the
// main fixture's MariaDB): it applies its migrations there, starts no private MariaDB, and
// serves the same API.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { request, freshIdentifier } from './lib/client.js';

describe('KASAMA_DB: the server runs on an external MariaDB', () => {
  it('starts no private MariaDB under its data dir', () => {
    const dir = process.env.KASAMA_TEST_DATA_DIR;
    assert.ok(dir, 'KASAMA_TEST_DATA_DIR is set');
    assert.ok(existsSync(path.join(dir, 'tls', 'server.crt')), 'the data dir is the server\'s');
    assert.equal(existsSync(path.join(dir, 'mariadb')), false, 'no private MariaDB was created');
  });

  it('R-44 answers health, and create/read/update/delete/history work', async () => {
    const health = await request('GET', new URL('/health', process.env.KASAMA_TEST_URL).href);
    assert.equal(health.status, 200);
    assert.equal(health.json.status, 'ok');
    const ident = freshIdentifier();
    const created = await request('POST', 'Patient', {
      body: { resourceType: 'Patient', identifier: [ident], name: [{ text: '外部\u3000太郎' }] },
    });
    assert.equal(created.status, 201, created.text);
    const id = created.json.id;
    const read = await request('GET', `Patient/${id}`);
    assert.equal(read.status, 200);
    assert.equal(read.json.name[0].text, '外部\u3000太郎');
    const updated = await request('PUT', `Patient/${id}`, {
      headers: { 'if-match': 'W/"1"' },
      body: { ...read.json, active: true },
    });
    assert.equal(updated.status, 200, updated.text);
    assert.equal(updated.json.meta.versionId, '2');
    const found = await request('GET', `Patient?identifier=${encodeURIComponent(`${ident.system}|${ident.value}`)}`);
    assert.equal(found.json.total, 1);
    assert.equal((await request('DELETE', `Patient/${id}`)).status, 200);
    assert.equal((await request('GET', `Patient/${id}`)).status, 410);
    const history = await request('GET', `Patient/${id}/_history`);
    assert.equal(history.json.total, 3);
  });
});
