// The box's pool of download buffers (store/buffer-pool.ts): a buffer given back is the one taken
// next for its size (no allocation per chunk), a view gives back its whole buffer, sizes never mix,
// the free lists hold at most their cap, a size now read pushes other sizes out of full lists, and
// what the pool lets go is freed at once (its ArrayBuffer detached).
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

test('full lists of one size make room for the size read now; what is let go is freed', () => {
  // The lists full of 1 MiB buffers, as after a few downloads read 1 MiB at a time.
  const big = Array.from({ length: 64 }, () => takeBuffer(1024 * KiB));
  const extra = takeBuffer(1024 * KiB);
  for (const b of big) giveBuffer(b);
  assert.is(pooledFreeBytes(), 64 * 1024 * KiB);
  giveBuffer(extra); // no room, and nothing of another size to push out: freed
  assert.is(extra.buffer.byteLength, 0);
  // Many downloads now read 256 KiB: a buffer given back stays, in place of a 1 MiB one.
  const small = takeBuffer(256 * KiB);
  giveBuffer(small);
  assert.is(takeBuffer(256 * KiB).buffer, small.buffer);
  assert.ok(pooledFreeBytes() <= 64 * 1024 * KiB, String(pooledFreeBytes()));
  const evicted = big.filter((b) => b.buffer.byteLength === 0).length;
  assert.is(evicted, 1, 'one 1 MiB buffer freed to make room');
});

test.run();
