// The slab pool under every retention and scratch buffer (workers/chunk-slabs.ts): slot sizes, reuse
// of touched slots before new ones, lost slots never handed out again, and whole slabs let go only
// when no slot is in use. Pure: no threads, no sockets.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ChunkSlabs, MIN_SLOT_BYTES, slotBytesFor } from '../../workers/chunk-slabs.ts';

const KiB = 1024;
const MiB = 1024 * KiB;

test('slot sizes are powers of two, at least MIN_SLOT_BYTES', () => {
  assert.is(slotBytesFor(1), MIN_SLOT_BYTES);
  assert.is(slotBytesFor(16 * KiB), 16 * KiB);
  assert.is(slotBytesFor(16 * KiB + 1), 32 * KiB);
  assert.is(slotBytesFor(256 * KiB), 256 * KiB);
  assert.is(slotBytesFor(3 * MiB), 4 * MiB);
});

test('buffers are exactly as long as asked, disjoint, and the slab is one ArrayBuffer', () => {
  const slabs = new ChunkSlabs(1 * MiB);
  const a = slabs.take(100 * KiB);
  const b = slabs.take(100 * KiB);
  assert.is(a.buf.length, 100 * KiB);
  assert.is(a.slotBytes, 128 * KiB);
  assert.ok(a.fresh && b.fresh);
  assert.is(a.buf.buffer, b.buf.buffer, 'one slab');
  assert.is(b.buf.byteOffset - a.buf.byteOffset, 128 * KiB);
  a.buf.fill(1);
  b.buf.fill(2);
  assert.ok(a.buf.every((x) => x === 1), 'writing one slot leaves the other alone');
  assert.is(slabs.slabBytes, 1 * MiB);
});

test('a slot given back is handed out again before any new one, and counts as idle meanwhile', () => {
  const slabs = new ChunkSlabs(1 * MiB);
  const a = slabs.take(64 * KiB);
  slabs.take(64 * KiB);
  assert.not.ok(slabs.hasIdle(64 * KiB));
  const r = slabs.give(a.buf, true);
  assert.equal(r, { slotBytes: 64 * KiB, emptied: false });
  assert.is(slabs.idleBytes, 64 * KiB);
  assert.ok(slabs.hasIdle(64 * KiB));
  assert.not.ok(slabs.hasIdle(128 * KiB), 'idle slots serve their own size only');
  const c = slabs.take(64 * KiB);
  assert.not.ok(c.fresh, 'touched slot reused');
  assert.is(c.buf.byteOffset, a.buf.byteOffset);
  assert.is(slabs.idleBytes, 0);
});

test('a full slab gets another, as large as the live ones together up to the most; slots larger than that get their own', () => {
  const slabs = new ChunkSlabs(512 * KiB, 128 * KiB);
  const taken = Array.from({ length: 16 }, () => slabs.take(64 * KiB));
  const sizes = [...new Set(taken.map((t) => t.buf.buffer))].map((b) => b.byteLength);
  assert.equal(sizes, [128 * KiB, 128 * KiB, 256 * KiB, 512 * KiB]);
  const big = slabs.take(1 * MiB);
  assert.is(big.buf.buffer.byteLength, 1 * MiB);
  assert.is(slabs.slabBytes, 1 * MiB + 1 * MiB);
});

test('a lost slot is never handed out again, and its slab goes once the rest is free', () => {
  const slabs = new ChunkSlabs(128 * KiB);
  const a = slabs.take(64 * KiB);
  const b = slabs.take(64 * KiB);
  assert.equal(slabs.give(a.buf, false), { slotBytes: 64 * KiB, emptied: false });
  assert.is(slabs.idleBytes, 0, 'a lost slot is not idle memory');
  const c = slabs.take(64 * KiB);
  assert.is.not(c.buf.buffer, a.buf.buffer, 'full slab (one slot lost, one in use): a new one');
  assert.equal(slabs.give(b.buf, true), { slotBytes: 64 * KiB, emptied: true });
  // The slab with the lost slot goes even though `keep` would keep it.
  const dropped: number[] = [];
  slabs.trimEmpty(() => true, (idle) => dropped.push(idle));
  assert.equal(dropped, [64 * KiB]);
  assert.is(slabs.idleBytes, 0);
  assert.is(slabs.slabBytes, 128 * KiB, 'the slab in use stays');
  const d = slabs.take(64 * KiB);
  assert.is(d.buf.buffer, c.buf.buffer);
});

test('trimEmpty keeps what `keep` accepts, asked with idleBytes current, and never a slab in use', () => {
  const slabs = new ChunkSlabs(64 * KiB);
  const bufs = Array.from({ length: 4 }, () => slabs.take(64 * KiB).buf);
  const inUse = slabs.take(32 * KiB);
  for (const b of bufs) slabs.give(b, true);
  assert.is(slabs.idleBytes, 256 * KiB);
  const seen: number[] = [];
  const dropped = slabs.trimEmpty(() => {
    seen.push(slabs.idleBytes);
    return slabs.idleBytes <= 128 * KiB;
  });
  assert.is(dropped, 128 * KiB);
  assert.equal(seen, [256 * KiB, 192 * KiB, 128 * KiB, 128 * KiB]);
  assert.is(slabs.idleBytes, 128 * KiB);
  assert.is(slabs.trimEmpty(), 128 * KiB);
  assert.is(slabs.idleBytes, 0);
  assert.is(slabs.slabBytes, 64 * KiB, 'the 32 KiB slot in use keeps its slab');
  assert.ok(slabs.give(inUse.buf, true).emptied);
});

test('a slab let go with no lost slot is freed at once; one with a lost slot is left to the GC', () => {
  const slabs = new ChunkSlabs(128 * KiB);
  const a = slabs.take(64 * KiB);
  const b = slabs.take(64 * KiB);
  const memory = a.buf.buffer;
  slabs.give(a.buf, true);
  slabs.give(b.buf, true);
  const before = process.memoryUsage().arrayBuffers;
  assert.is(slabs.trimEmpty(), 128 * KiB);
  assert.is(memory.byteLength, 0, 'detached: its memory is gone without a GC');
  assert.is(a.buf.length, 0, 'a free slot\'s buffer reads as empty');
  assert.ok(before - process.memoryUsage().arrayBuffers >= 128 * KiB, 'V8 counts it gone');

  const c = slabs.take(64 * KiB);
  const d = slabs.take(64 * KiB);
  slabs.give(c.buf, false); // something else may still read it
  slabs.give(d.buf, true);
  slabs.trimEmpty();
  assert.is(c.buf.length, 64 * KiB, 'the lost slot still reads its bytes');
  assert.is(c.buf.buffer.byteLength, 128 * KiB);
});

test('a buffer that is not from the pool is ignored', () => {
  const slabs = new ChunkSlabs(64 * KiB);
  assert.equal(slabs.give(Buffer.alloc(1024), true), { slotBytes: 0, emptied: false });
  assert.is(slabs.idleBytes, 0);
});

test.run();
