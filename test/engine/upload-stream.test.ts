// An upload whose client runs as far ahead of Dropbox as its lead allows (workers/upload-lead.ts)
// goes out in a call of unknown length that takes the bytes as they come, then a closing call: the
// client is held to the pace its bytes leave, the file commits byte-exact with its content_hash, and
// a reset in the middle of such a call's body is retried from retention, invisibly. The lead is set
// small with a test hook (a real storm needs a thousand uploads per thread to get there). Main
// thread + 2 workers + the box child, over HTTP.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { contentHash } from '../../src/localbox/index.ts';
import { KiB, MiB, contentOf, feed, fetchFile, makePool, sha256, startFixture } from './helpers.ts';
import type { Fixture } from './helpers.ts';

let fx: Fixture;
const pool = makePool(16 * MiB, 31);

test.before(async () => {
  fx = await startFixture({ workers: 2 });
});
test.after(async () => {
  await fx.stop();
});

/** start and append_v2 calls the engine made, whatever their answer. */
function uploadCalls(): { start: number; append: number } {
  const r = fx.engine.stats().requests;
  const sum = (route: string): number => Object.values(r[route] ?? {}).reduce((a, b) => a + b, 0);
  return { start: sum('files/upload_session/start'), append: sum('files/upload_session/append_v2') };
}

async function upload(path: string, data: Buffer): Promise<Record<string, unknown> | undefined> {
  const up = fx.engine.openUpload('alice', path, { testHooks: { leadBytes: 256 * KiB } });
  await feed(up, data, 64 * KiB);
  return up.metadata as Record<string, unknown> | undefined;
}

test('a client at its lead streams: one call of unknown length, one closing call, byte-exact', async () => {
  const data = contentOf(pool, 1, 6 * MiB + 12345);
  const before = uploadCalls();
  const meta = await upload('/lead/a.bin', data);
  const after = uploadCalls();
  assert.is(meta?.size, data.length);
  assert.is(meta?.content_hash, contentHash(data));
  const stored = await fetchFile(fx.box, fx.account.accessToken, '/lead/a.bin');
  assert.is(stored && sha256(stored), sha256(data));
  // Held to a 256 KiB lead with calls of known length, 6 MiB would have taken 24 or more calls.
  assert.is(after.start - before.start, 1, 'one start (streamed)');
  assert.is(after.append - before.append, 1, 'one append (the closing one)');
});

test('a reset in the middle of a streamed body is sent again from retention; the file commits byte-exact', async () => {
  await fx.box.setFaults({
    rules: [{ kind: 'reset', routes: ['files/upload_session/start', 'files/upload_session/append_v2'], afterBytes: 1536 * KiB, count: 2 }],
  });
  try {
    const data = contentOf(pool, 2, 9 * MiB + 7);
    const before = uploadCalls();
    const meta = await upload('/lead/b.bin', data);
    const after = uploadCalls();
    assert.is(meta?.size, data.length);
    assert.is(meta?.content_hash, contentHash(data));
    const stored = await fetchFile(fx.box, fx.account.accessToken, '/lead/b.bin');
    assert.is(stored && sha256(stored), sha256(data));
    const counts = await fx.box.faultCounts();
    assert.is(counts.reset, 2, 'both resets fired');
    assert.ok(after.start + after.append - before.start - before.append >= 4, 'the reset calls were sent again');
  } finally {
    await fx.box.setFaults({ rules: [] });
  }
});

test.run();
