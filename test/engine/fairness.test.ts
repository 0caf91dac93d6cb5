// Acceptance: with the local box capping the account at 8 concurrent requests, 500 simultaneous
// downloads of 8 MiB each all receive bytes at least every 2 seconds until they finish (none waits
// for others to finish), and every one arrives byte-exact. The 500 files are 25 distinct contents
// copied 20 times each with copy_v2, so seeding moves 200 MiB, not 4 GiB.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { request } from 'undici';
import { MiB, contentOf, drain, makePool, seed, sha256, startFixture } from './helpers.ts';
import type { Fixture } from './helpers.ts';

let fx: Fixture;
// The acceptance number is 500 (ENGINE_FAIR_FILES changes it for experiments).
const FILES = Number(process.env.ENGINE_FAIR_FILES ?? 500);
const DISTINCT = 25;
const SIZE = 8 * MiB;
const MAX_GAP_MS = 2000;
const pool = makePool(16 * MiB, 9);

test.before(async () => {
  fx = await startFixture({ workers: 2 });
});
test.after(async () => {
  await fx.stop();
});

async function copy(from: string, to: string): Promise<void> {
  const res = await request(`${fx.box.url}/2/files/copy_v2`, {
    method: 'POST',
    headers: { authorization: `Bearer ${fx.account.accessToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ from_path: from, to_path: to }),
  });
  const text = await res.body.text();
  if (res.statusCode !== 200) throw new Error(`copy ${from}: ${res.statusCode} ${text}`);
}

// Was gated (worst gap 2.9–3.8 s): a 429 from the cap paused the whole account for retry_after and
// halved its limit, the throttled request lost its turn, and a slice larger than the ring held its
// permit through the main thread's reads. Now: 429s at a proven level are retried in the same turn,
// contended slices fit the ring (worst gap about 1.3 s here, 500 × 8 MiB in about 25 s).
test('500 downloads of 8 MiB under a cap of 8 concurrent requests: every one gets bytes every 2 s', async () => {
  const shas: string[] = [];
  for (let d = 0; d < DISTINCT; d++) {
    const data = contentOf(pool, d, SIZE);
    shas.push(sha256(data));
    await seed(fx.box, fx.account.accessToken, `/fair/src${d}.bin`, data);
  }
  for (let i = 0; i < FILES; i += 50) {
    await Promise.all(Array.from({ length: 50 }, (_, k) => copy(`/fair/src${(i + k) % DISTINCT}.bin`, `/fair/f${i + k}.bin`)));
  }
  // Boot the workers before the clock starts.
  await drain(fx.engine.openDownload('alice', '/fair/src0.bin'));
  await fx.box.setFaults({ rules: [], concurrencyPerAccount: 8 });

  const started = Date.now();
  const gaps = new Array<number>(FILES).fill(0);
  const results = await Promise.all(
    Array.from({ length: FILES }, async (_, i) => {
      let last = Date.now();
      const got = await drain(fx.engine.openDownload('alice', `/fair/f${i}.bin`), () => {
        const now = Date.now();
        gaps[i] = Math.max(gaps[i]!, now - last);
        last = now;
      });
      gaps[i] = Math.max(gaps[i]!, Date.now() - last);
      return got;
    }),
  );
  const elapsedMs = Date.now() - started;
  const counts = await fx.box.faultCounts();
  await fx.box.setFaults({ rules: [] });
  results.forEach((r, i) => assert.is(r.sha, shas[i % DISTINCT], `file ${i} bytes`));
  const worst = Math.max(...gaps);
  const stalled = gaps.filter((g) => g > MAX_GAP_MS).length;
  console.log(`  ${FILES} × 8 MiB in ${elapsedMs} ms; worst gap ${worst} ms; 429s from the cap ${counts.concurrency_limit ?? 0}`);
  assert.is(stalled, 0, `${stalled} transfers went more than ${MAX_GAP_MS} ms without a byte (worst ${worst} ms)`);
});

test.run();
