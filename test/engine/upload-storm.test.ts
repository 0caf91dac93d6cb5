// Regression (scale storm of 1,000 STORs, benchmarks/results/scale-storm-stor1000.json: 0/1000
// complete): many simultaneous uploads appended in fair slices of 64 KiB, and every small append
// made the backend rewrite the partial 4 MiB block it continued, so 300 uploads of 4 MiB crawled at
// 8 MB/s (155 s); append buffers were held per upload, not per request (400 MiB for 100 uploads).
// Pins: appends of at least 1 MiB, buffers only while a permit is held.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MiB, contentOf, feed, fetchFile, makePool, sha256, startFixture } from './helpers.ts';
import type { Fixture } from './helpers.ts';

let fx: Fixture;
const FILES = 300;
const SIZE = 4 * MiB;
const pool = makePool(16 * MiB, 21);

test.before(async () => {
  fx = await startFixture({ workers: 2 });
});
test.after(async () => {
  await fx.stop();
});

test('300 simultaneous uploads of 4 MiB finish promptly with append buffers bounded by the request budget', async () => {
  let peakChunkBytes = 0;
  const sampler = setInterval(() => {
    peakChunkBytes = Math.max(peakChunkBytes, fx.engine.stats().memory.chunkBytesInUse);
  }, 20);
  const started = Date.now();
  await Promise.all(
    Array.from({ length: FILES }, async (_, i) => {
      const s = fx.engine.openUpload('alice', `/storm/u${i}.bin`);
      await feed(s, contentOf(pool, i, SIZE), 64 * 1024);
      assert.is(s.metadata?.size, SIZE, `upload ${i} committed`);
    }),
  );
  const elapsedMs = Date.now() - started;
  clearInterval(sampler);
  const maxRequests = fx.engine.options.maxRequestsPerAccount;
  console.log(`  ${FILES} × 4 MiB in ${elapsedMs} ms; peak append buffers ${(peakChunkBytes / MiB).toFixed(1)} MiB`);
  // Before the fix: 155 s on this machine; after: about 7 s.
  assert.ok(elapsedMs < 60_000, `${FILES} uploads took ${elapsedMs} ms`);
  assert.ok(peakChunkBytes <= maxRequests * 4 * MiB, `append buffers peaked at ${peakChunkBytes} B for ${maxRequests} permits`);
  for (const i of [0, 1, 150, FILES - 1]) {
    const stored = await fetchFile(fx.box, fx.account.accessToken, `/storm/u${i}.bin`);
    assert.is(stored && sha256(stored), sha256(contentOf(pool, i, SIZE)), `upload ${i} stored bytes`);
  }
  assert.is(fx.engine.stats().memory.chunkBytesInUse, 0);
});

test.run();
