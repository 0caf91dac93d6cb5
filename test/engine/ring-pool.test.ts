// The engine's pool of finished transfers' rings: the rings stay counted in the memory budget while
// pooled (the uploads' share and the workers' idle buffers do not grow into memory that is still
// mapped), new transfers reuse them, pooled rings never make the engine refuse a transfer it has room
// for, and the pool is emptied once no transfer has run for RING_POOL_IDLE_MS.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { RING_POOL_IDLE_MS } from '../../src/transfer/index.ts';
import { KiB, MiB, contentOf, drain, makePool, seed, sha256, sleep, startFixture } from './helpers.ts';
import type { Fixture } from './helpers.ts';

let fx: Fixture;
const BUDGET = 1 * MiB;
const pool = makePool(1 * MiB, 27);
const data = contentOf(pool, 0, 200 * KiB);

test.before(async () => {
  fx = await startFixture({ workers: 1, memoryBudgetBytes: BUDGET });
  await seed(fx.box, fx.account.accessToken, '/p/f.bin', data);
});
test.after(async () => {
  await fx.stop();
});

/** Opens downloads of /p/f.bin until the engine refuses one (or `most`); returns the open ones. */
function openUntilRefused(most: number): { streams: ReturnType<Fixture['engine']['openDownload']>[]; refused: string | null } {
  const streams = [];
  for (let i = 0; i < most; i++) {
    try {
      streams.push(fx.engine.openDownload('alice', '/p/f.bin'));
    } catch (e) {
      return { streams, refused: (e as { code?: string }).code ?? String(e) };
    }
  }
  return { streams, refused: null };
}

test('pooled rings count in the budget, are reused, never cause a refusal, and go when the engine idles', async () => {
  const first = openUntilRefused(200);
  assert.is(first.refused, 'DROPFTP_ERR_OVERLOADED', 'a 1 MiB budget refuses at its floors');
  const admitted = first.streams.length;
  assert.ok(admitted >= 8, `admitted ${admitted}`);
  for (const r of await Promise.all(first.streams.map((s) => drain(s)))) assert.is(r.sha, sha256(data));
  // Every ring went to the pool and is still held: the budget shows it and shares out only the rest.
  let s = fx.engine.stats();
  assert.is(s.memory.ringBytesInUse, 0);
  const pooled = s.memory.pooledRingBytes;
  assert.ok(pooled >= admitted * 16 * KiB, `pooled ${pooled} B after ${admitted} transfers`);

  // A second wave at once: the pool is nearly the whole budget, yet as many are admitted as before
  // (pooled rings are reused, and let go where a floor needs their room), and every one is byte-exact.
  const second = openUntilRefused(admitted);
  assert.is(second.refused, null, `refused after ${second.streams.length} of ${admitted}`);
  s = fx.engine.stats();
  assert.ok(s.memory.ringBytesInUse + s.memory.pooledRingBytes <= BUDGET, `held ${s.memory.ringBytesInUse} + ${s.memory.pooledRingBytes} B`);
  for (const r of await Promise.all(second.streams.map((st) => drain(st)))) assert.is(r.sha, sha256(data));
  assert.ok(fx.engine.stats().memory.pooledRingBytes > 0, 'the second wave\'s rings are pooled too');

  // Idle: the pool is let go after RING_POOL_IDLE_MS, not before.
  await sleep(RING_POOL_IDLE_MS / 4);
  assert.ok(fx.engine.stats().memory.pooledRingBytes > 0, 'kept while the engine may still be busy');
  const until = Date.now() + RING_POOL_IDLE_MS + 5000;
  while (fx.engine.stats().memory.pooledRingBytes > 0 && Date.now() < until) await sleep(50);
  assert.is(fx.engine.stats().memory.pooledRingBytes, 0, 'pool emptied once idle');
  // And the engine still works after it.
  assert.is((await drain(fx.engine.openDownload('alice', '/p/f.bin'))).sha, sha256(data));
});

test.run();
