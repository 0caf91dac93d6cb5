// The box's pool of download buffers (store/buffer-pool.ts): a buffer given back is the one taken
// next for its size (no allocation per chunk), a view gives back its whole buffer, sizes never mix,
// and the free lists hold at most their cap.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { giveBuffer, pooledFreeBytes, takeBuffer } from '../../src/localbox/store/buffer-pool.ts';

const KiB = 1024;

test('a buffer given back is reused for the same size, never for another', () => {
  const a = takeBuffer(64 * KiB);
  assert.is(a.length, 64 * KiB);
  giveBuffer(a.subarray(0, 100)); // a view: its whole ArrayBuffer goes back
  const other = takeBuffer(128 * KiB);
  assert.is.not(other.buffer, a.buffer);
  const again = takeBuffer(64 * KiB);
  assert.is(again.buffer, a.buffer);
  assert.is(again.length, 64 * KiB);
});

test('the free lists keep at most 64 MiB', () => {
  const before = pooledFreeBytes();
  const taken = Array.from({ length: 80 }, () => takeBuffer(1024 * KiB));
  for (const b of taken) giveBuffer(b);
  assert.ok(pooledFreeBytes() <= 64 * 1024 * KiB, String(pooledFreeBytes()));
  assert.ok(pooledFreeBytes() > before);
});

test.run();
