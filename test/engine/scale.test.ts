// Acceptance: 200 simultaneous uploads and 200 simultaneous downloads of random sizes (0 B to 64 MiB)
// all arrive byte-exact, through the real local box. Sizes: the edges (0, 1, 4 MiB ± 1, 64 MiB)
// plus a log-uniform spread, so the whole range is covered while the file stays well under 2 min.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MiB, contentOf, drain, feed, fetchFile, makePool, seed, sha256, startFixture } from './helpers.ts';
import type { Fixture } from './helpers.ts';

let fx: Fixture;
const pool = makePool(72 * MiB, 3);

function sizes(n: number, seed: number): number[] {
  let x = seed;
  const rand = () => ((x = (Math.imul(x, 1103515245) + 12345) >>> 0) / 2 ** 32);
  const fixed = [0, 1, 4 * MiB - 1, 4 * MiB, 4 * MiB + 1, 64 * MiB];
  const out = [...fixed];
  while (out.length < n) out.push(Math.floor(2 ** (rand() * 23))); // 1 B .. 8 MiB, log-uniform
  return out;
}

test.before(async () => {
  fx = await startFixture({ workers: 2 });
});
test.after(async () => {
  await fx.stop();
});

test('200 uploads and 200 downloads at once, random sizes 0 B..64 MiB, all byte-exact', async () => {
  const up = sizes(200, 17);
  const down = sizes(200, 23);
  await Promise.all(down.map((size, i) => seed(fx.box, fx.account.accessToken, `/scale/d${i}.bin`, contentOf(pool, 1000 + i, size))));
  const uploads = up.map(async (size, i) => {
    const data = contentOf(pool, i, size);
    const s = fx.engine.openUpload('alice', `/scale/u${i}.bin`);
    await feed(s, data, 64 * 1024 + (i % 7) * 1000);
    assert.is(s.metadata?.size, size);
  });
  const downloads = down.map(async (size, i) => {
    const got = await drain(fx.engine.openDownload('alice', `/scale/d${i}.bin`));
    assert.is(got.length, size, `download ${i}`);
    assert.is(got.sha, sha256(contentOf(pool, 1000 + i, size)), `download ${i} bytes`);
  });
  await Promise.all([...uploads, ...downloads]);
  // Every uploaded file, read back around the engine.
  for (let i = 0; i < up.length; i += 1) {
    const stored = await fetchFile(fx.box, fx.account.accessToken, `/scale/u${i}.bin`);
    assert.is(stored && sha256(stored), sha256(contentOf(pool, i, up[i]!)), `upload ${i} stored bytes`);
  }
  const s = fx.engine.stats();
  assert.ok(s.commits.calls < 200, `uploads were committed in batches (${s.commits.calls} calls for 200)`);
  assert.is(s.memory.ringBytesInUse, 0);
  assert.is(s.memory.chunkBytesInUse, 0);
});

test.run();
