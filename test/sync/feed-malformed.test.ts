// The directory cache's feed against a real HTTP server that answers list_folder with a body that is
// not JSON, then with JSON that is not a page: each is a clear DROPFTP_ERR_UPSTREAM_MALFORMED
// failure for the feed loop (logged through onError, backed off, asked again), never a crash, and
// the next good page makes the cache ready with its entries.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DirectoryCache } from '../../src/sync/index.ts';
import { scriptedServer, type Scripted } from '../dropbox/helpers.ts';

let server: Scripted;

test.before(async () => {
  server = await scriptedServer();
  server.fallback = { status: 200, body: { entries: [], cursor: 'c1', has_more: false, changes: false } };
});
test.after(async () => {
  await server.close();
});

test('a list_folder answer that is not JSON, then not a page: logged and retried; the good page is used', async () => {
  const file = { '.tag': 'file', name: 'a.txt', path_lower: '/a.txt', path_display: '/a.txt', id: 'id:a', size: 3, rev: '0123456789a', client_modified: '2026-01-01T00:00:00Z', server_modified: '2026-01-01T00:00:00Z' };
  server.script({ status: 200, body: '{"entries": [' }, { status: 200, body: { entries: 'nope', cursor: 7 } }, { status: 200, body: { entries: [file], cursor: 'c1', has_more: false } });
  const errors: Error[] = [];
  const cache = new DirectoryCache({ apiUrl: server.url, accessToken: 't', name: 'm', minBackoffMs: 20, maxBackoffMs: 100, onError: (e) => errors.push(e) }).start();
  try {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([cache.ready, new Promise((_, reject) => (timer = setTimeout(() => reject(new Error('not ready within 5 s')), 5000)))]);
    clearTimeout(timer);
    assert.is(cache.stat('/a.txt')?.size, 3);
    assert.is(errors.length, 2, errors.map((e) => e.message).join(' | '));
    assert.match(errors[0]!.message, /not JSON/);
    assert.match(errors[1]!.message, /DROPFTP_ERR_UPSTREAM_MALFORMED/);
    assert.ok(server.seen.filter((s) => s.url.endsWith('/list_folder')).length >= 3);
  } finally {
    await cache.close();
  }
});

test.run();
