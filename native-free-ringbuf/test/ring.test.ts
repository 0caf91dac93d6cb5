// Tests of the ring itself: edges, wrap-around, canaries, end/abort/error, and cross-thread
// stress with a producer in a real worker (and the reverse), checking every byte by sequence.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Worker } from 'node:worker_threads';
import {
  HEADER_BYTES,
  RingReader,
  RingWriter,
  createRing,
  initRing,
  ringByteLength,
} from '../src/index.ts';
import type { RingHandle } from '../src/index.ts';
import { useNodeCopy } from '../src/ring.ts';
import { checkSeq, fillSeq, prng } from './fixtures/sequence.ts';
import type { PeerJob } from './fixtures/ring-peer.ts';

const BOOT = new URL('./fixtures/ts-worker.mjs', import.meta.url);
const PEER = new URL('./fixtures/ring-peer.ts', import.meta.url).href;

function runPeer(job: PeerJob): Promise<any> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(BOOT, { workerData: { entry: PEER, job } });
    let reply: any;
    worker.once('message', (m) => (reply = m));
    worker.once('error', reject);
    worker.once('exit', (code) => {
      if (!reply) return reject(new Error(`peer exited with ${code} and no reply`));
      if (!reply.ok) return reject(new Error(reply.message));
      resolve(reply);
    });
  });
}

test('empty and full edges', () => {
  const h = createRing(16);
  const w = new RingWriter(h);
  const r = new RingReader(h);
  const out = new Uint8Array(32);
  assert.is(r.readable(), 0);
  assert.is(w.writable(), 16);
  assert.is(r.read(out), 0, 'read from an empty ring copies nothing');
  assert.is(r.peek(), 0);
  const src = Uint8Array.from({ length: 20 }, (_, i) => i + 1);
  assert.is(w.write(src), 16, 'a write larger than the ring is accepted up to capacity');
  assert.is(w.writable(), 0);
  assert.is(r.readable(), 16);
  assert.is(w.write(src), 0, 'a full ring accepts nothing');
  assert.is(w.reserve(), 0);
  assert.is(r.read(out, 0, 1), 1);
  assert.is(out[0], 1);
  assert.is(w.writable(), 1);
  assert.is(w.write(src, 16, 4), 1, 'exactly the freed byte is accepted');
  assert.is(r.read(out), 16);
  assert.equal([...out.subarray(0, 16)], [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17]);
  assert.is(r.readable(), 0);
  assert.is(w.write(src, 0, 0), 0, 'a zero-length write is a no-op');
});

test('bad capacities are refused', () => {
  assert.throws(() => createRing(15), /power of two/);
  assert.throws(() => createRing(8), /power of two/);
  assert.throws(() => createRing(0), /power of two/);
  assert.throws(() => initRing(new SharedArrayBuffer(100), 0, 64), /does not fit/);
  assert.throws(() => new RingReader({ sab: new SharedArrayBuffer(512), byteOffset: 0 }), /bad magic/);
});

function skewedCopies(): void {
  // Under the portable path, 1 KiB and up is staged when (ring address - source address) is not a multiple of 8; pieces of
  // more than the 64 KiB stage go in several steps. Every skew 0-7 on both sides, across the wrap.
  const cap = 256 * 1024;
  const rnd = prng(7);
  const data = new Uint8Array(300 * 1024 + 16);
  for (let i = 0; i < data.length; i++) data[i] = Math.floor(rnd() * 256);
  for (let skew = 0; skew < 8; skew++) {
    for (const len of [1023, 1024, 4099, 65536, 65536 + 13, 150 * 1024 + 5, cap - 3]) {
      const h = createRing(cap);
      const w = new RingWriter(h);
      const r = new RingReader(h);
      // Positions moved to near the end (so the copy wraps) by a skewed amount.
      const lead = cap - 4096 - skew;
      const junk = new Uint8Array(lead);
      assert.is(w.write(junk), lead);
      assert.is(r.read(new Uint8Array(lead)), lead);
      const srcAt = (skew * 3) % 8 + 1;
      assert.is(w.write(data, srcAt, len), len, `write ${len} at skew ${skew}`);
      const out = new Uint8Array(len + 16);
      const dstAt = (skew * 5) % 8;
      assert.is(r.read(out, dstAt, len), len);
      for (let i = 0; i < len; i++) {
        if (out[dstAt + i] !== data[srcAt + i]) assert.unreachable(`byte ${i} of ${len} at skew ${skew}: ${out[dstAt + i]} != ${data[srcAt + i]}`);
      }
    }
  }
}

test('copies at every skew of source, ring position and destination are byte-exact, wrapping (through Node memcpy)', () => {
  skewedCopies();
});

test('copies whose source and ring position are aligned differently (staged, where there is no Buffer) are byte-exact, wrapping, any skew', () => {
  useNodeCopy(false);
  try {
    skewedCopies();
  } finally {
    useNodeCopy(true);
  }
});

test('wrap-around at every offset and every length of a small ring', () => {
  const cap = 16;
  for (let start = 0; start < cap; start++) {
    for (let len = 1; len <= cap; len++) {
      const h = createRing(cap);
      const w = new RingWriter(h);
      const r = new RingReader(h);
      const scratch = new Uint8Array(cap);
      // advance both positions to `start`
      assert.is(w.write(new Uint8Array(start)), start);
      assert.is(r.read(scratch, 0, start), start);
      const src = new Uint8Array(len);
      fillSeq(start * 31 + len, 0, src);
      assert.is(w.write(src), len, `write ${len} at ${start}`);
      assert.is(r.readable(), len);
      const out = new Uint8Array(len);
      assert.is(r.read(out), len, `read ${len} at ${start}`);
      assert.is(checkSeq(start * 31 + len, 0, out), -1, `bytes intact for len ${len} at offset ${start}`);
      // zero-copy path: reserve/commit and peek/consume across the same wrap
      let written = 0;
      while (written < len) {
        const span = w.reserve();
        const at = w.reserveIndex();
        const n = Math.min(span, len - written);
        w.storage.set(src.subarray(written, written + n), at);
        assert.is(w.commit(n), n);
        written += n;
      }
      let read = 0;
      while (read < len) {
        const span = r.peek();
        const at = r.peekIndex();
        assert.ok(span > 0, 'peek sees the bytes');
        assert.is(checkSeq(start * 31 + len, read, r.storage.subarray(at, at + span)), -1);
        read += r.consume(span);
      }
      assert.is(read, len);
    }
  }
});

test('peekAt: views lent past the read position, at every offset of a small ring, released in order', () => {
  const cap = 16;
  for (let start = 0; start < cap; start++) {
    for (let lent = 0; lent <= cap; lent++) {
      const h = createRing(cap);
      const w = new RingWriter(h);
      const r = new RingReader(h);
      assert.is(w.write(new Uint8Array(start)), start);
      assert.is(r.read(new Uint8Array(cap), 0, start), start);
      const src = new Uint8Array(cap);
      fillSeq(start * 17 + lent, 0, src);
      assert.is(w.write(src, 0, lent), lent);
      // Lend every readable byte as views without consuming any: the producer must see a full ring.
      const views: [number, number][] = [];
      let skip = 0;
      for (;;) {
        const span = r.peekAt(skip);
        if (span === 0) break;
        const at = r.peekIndexAt(skip);
        assert.ok(at + span <= cap, 'a span never crosses the end of storage');
        assert.is(checkSeq(start * 17 + lent, skip, r.storage.subarray(at, at + span)), -1, `bytes at skip ${skip}`);
        views.push([at, span]);
        skip += span;
      }
      assert.is(skip, lent, `all ${lent} bytes seen from offset ${start}`);
      assert.ok(views.length <= 2, 'at most two spans (one wrap)');
      assert.is(r.peekAt(lent), 0, 'nothing past the written bytes');
      assert.is(r.peekAt(-1), 0, 'a negative skip sees nothing');
      assert.is(w.writable(), cap - lent, 'lent bytes are not free for the producer');
      for (const [, span] of views) assert.is(r.consume(span), span);
      assert.is(r.readable(), 0);
      assert.is(w.writable(), cap);
    }
  }
});

test('peekAt with delayed release: a worker producer never overwrites a lent view (seeded, every byte checked at release)', async () => {
  for (const [cap, seed, totalBytes] of [
    [64, 21, 512 * 1024 + 7],
    [4096, 22, 8 * 1024 * 1024 + 7],
  ] as const) {
    const h = createRing(cap);
    const producing = runPeer({ role: 'produce', handles: [h], seed, totalBytes, maxChunkBytes: cap * 2 });
    const r = new RingReader(h);
    const rand = prng(seed);
    const lent: Uint8Array[] = [];
    let lentBytes = 0;
    let pos = 0;
    for (;;) {
      const span = r.peekAt(lentBytes);
      if (span > 0) {
        const n = 1 + Math.floor(rand() * span);
        const at = r.peekIndexAt(lentBytes);
        lent.push(r.storage.subarray(at, at + n)); // a view, as a socket write would hold it
        lentBytes += n;
      }
      // Release the oldest views now and then (as write callbacks would), checking their bytes only
      // now: had the producer been let into lent memory, the check fails.
      while (lent.length > 0 && (span === 0 || rand() < 0.3)) {
        const view = lent.shift()!;
        const bad = checkSeq(seed, pos, view);
        if (bad >= 0) {
          r.abort(2);
          assert.unreachable(`byte ${pos + bad} changed while lent (cap ${cap})`);
        }
        assert.is(r.consume(view.length), view.length);
        pos += view.length;
        lentBytes -= view.length;
        if (rand() < 0.5) break;
      }
      if (span > 0 || lent.length > 0) {
        if (rand() < 0.05) await new Promise((resolve) => setImmediate(resolve)); // let the producer run into the lent span
        continue;
      }
      if (r.isEnded()) break;
      assert.is(await r.waitReadable(lentBytes + 1), 'ready');
    }
    const reply = await producing;
    assert.is(pos, totalBytes);
    assert.equal(reply.written, [totalBytes]);
  }
});

test('positions survive the 2^32 wrap of the free-running counters', () => {
  const h = createRing(64);
  const words = new Int32Array(h.sab, h.byteOffset, HEADER_BYTES / 4);
  // put both positions 10 bytes short of 2^32
  Atomics.store(words, 16, -10);
  Atomics.store(words, 32, -10);
  const w = new RingWriter(h);
  const r = new RingReader(h);
  const src = new Uint8Array(40);
  fillSeq(9, 0, src);
  assert.is(w.write(src), 40);
  assert.is(r.readable(), 40);
  assert.is(w.writable(), 24);
  const out = new Uint8Array(40);
  assert.is(r.read(out), 40);
  assert.is(checkSeq(9, 0, out), -1);
});

test('canaries around a ring placed inside a larger buffer stay intact', () => {
  const cap = 256;
  const offset = 128;
  const sab = new SharedArrayBuffer(offset + ringByteLength(cap) + 128);
  const all = new Uint8Array(sab);
  all.fill(0xa5);
  initRing(sab, offset, cap);
  const h: RingHandle = { sab, byteOffset: offset };
  const w = new RingWriter(h);
  const r = new RingReader(h);
  const rand = prng(1234);
  const buf = new Uint8Array(cap * 2);
  let wpos = 0;
  let rpos = 0;
  for (let i = 0; i < 20000; i++) {
    const n = Math.floor(rand() * cap * 1.5);
    fillSeq(77, wpos, buf, n);
    wpos += w.write(buf, 0, n);
    const m = r.read(buf, 0, Math.floor(rand() * cap * 1.5));
    assert.is(checkSeq(77, rpos, buf, m), -1);
    rpos += m;
  }
  for (let i = 0; i < offset; i++) if (all[i] !== 0xa5) assert.unreachable(`canary before the ring changed at ${i}`);
  for (let i = offset + ringByteLength(cap); i < all.length; i++) {
    if (all[i] !== 0xa5) assert.unreachable(`canary after the ring changed at ${i}`);
  }
  assert.ok(wpos > cap * 100, 'the stress moved many ring lengths');
});

test('end: the consumer reads every byte, then sees the end; writes after end are refused', async () => {
  for (const k of [0, 1, 7, 16, 33]) {
    const h = createRing(16);
    const w = new RingWriter(h);
    const r = new RingReader(h);
    const src = new Uint8Array(k);
    fillSeq(k, 0, src);
    const writing = (async () => {
      let off = 0;
      while (off < k) {
        off += w.write(src, off);
        if (off < k) assert.is(await w.waitWritable(), 'ready');
      }
      w.end();
    })();
    const out = new Uint8Array(k);
    let got = 0;
    for (;;) {
      const n = r.read(out, got);
      got += n;
      if (n) continue;
      if (r.isEnded()) break;
      assert.is(await r.waitReadable(), 'ready');
    }
    await writing;
    assert.is(got, k);
    assert.is(checkSeq(k, 0, out), -1);
    assert.is(w.write(src), 0, 'no write after end');
    assert.is(await r.waitReadable(), 'ready', 'a wait after the end returns at once');
  }
});

test('abort by the producer at any point carries its code; unread bytes are dropped', async () => {
  for (let at = 0; at <= 20; at++) {
    const h = createRing(32);
    const w = new RingWriter(h);
    const r = new RingReader(h);
    w.write(new Uint8Array(at));
    const waiting = r.waitReadable(64);
    w.abort(40 + at);
    assert.is(await waiting, 'closed');
    assert.ok(r.producerAborted());
    assert.is(r.producerError(), 40 + at);
    assert.not.ok(r.isEnded(), 'an abort is not an end');
    assert.is(w.write(new Uint8Array(1)), 0);
  }
});

test('abort by the consumer at any point stops the producer and carries its code', async () => {
  for (let at = 0; at <= 20; at++) {
    const h = createRing(32);
    const w = new RingWriter(h);
    const r = new RingReader(h);
    const src = new Uint8Array(64);
    const accepted = w.write(src);
    r.read(new Uint8Array(at));
    const waiting = w.waitWritable(32);
    r.abort(900 + at);
    assert.is(await waiting, 'closed');
    assert.ok(w.consumerGone());
    assert.is(w.consumerError(), 900 + at);
    assert.is(w.write(src), 0, 'writes after the consumer left are refused');
    assert.is(r.read(new Uint8Array(16)), 0, 'an aborted consumer reads nothing');
    assert.is(accepted, 32);
  }
});

test('waits time out when asked to, and report it', async () => {
  const h = createRing(16);
  const r = new RingReader(h);
  const w = new RingWriter(h);
  const t0 = Date.now();
  assert.is(await r.waitReadable(1, 50), 'timeout');
  assert.ok(Date.now() - t0 >= 45);
  w.write(new Uint8Array(16));
  assert.is(await w.waitWritable(1, 30), 'timeout');
});

test('waitReadable with a target function: one wait follows the consumer lending and consuming meanwhile', async () => {
  const h = createRing(64);
  const r = new RingReader(h);
  const w = new RingWriter(h);
  w.write(new Uint8Array(16));
  let lent = 16; // all 16 readable bytes lent out as views: wait for one more
  let ready = false;
  const waiting = r.waitReadable(() => lent + 1, 2000).then((res) => {
    ready = true;
    return res;
  });
  // The views come back and are consumed: the same wait now wants one byte past what is still lent.
  r.consume(10);
  lent -= 10;
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.not.ok(ready, 'no new byte yet');
  const t0 = Date.now();
  w.write(new Uint8Array(1));
  assert.is(await waiting, 'ready');
  // With the target fixed at 17 it would wait for 10 more bytes (or its 2 s timeout).
  assert.ok(Date.now() - t0 < 1000, 'woken by the one new byte');
});

test('seeded stress: producer in a worker, consumer on the main thread, every byte checked', async () => {
  for (const [cap, maxChunk, seed, totalBytes] of [
    [16, 40, 1, 256 * 1024 + 13],
    [1024, 3000, 2, 4 * 1024 * 1024 + 13],
    [65536, 100000, 3, 16 * 1024 * 1024 + 13],
  ] as const) {
    const h = createRing(cap);
    const total: number = totalBytes;
    const producing = runPeer({ role: 'produce', handles: [h], seed, totalBytes: total, maxChunkBytes: maxChunk });
    const r = new RingReader(h);
    const rand = prng(seed * 13);
    const buf = new Uint8Array(maxChunk);
    let pos = 0;
    for (;;) {
      const n = r.read(buf, 0, 1 + Math.floor(rand() * maxChunk));
      if (n > 0) {
        const bad = checkSeq(seed, pos, buf, n);
        if (bad >= 0) {
          r.abort(2); // let the worker go before failing
          assert.unreachable(`byte ${pos + bad} wrong (cap ${cap})`);
        }
        pos += n;
        continue;
      }
      if (r.isEnded()) break;
      assert.is(await r.waitReadable(), 'ready');
    }
    const reply = await producing;
    assert.is(pos, total, `all bytes through a ${cap} B ring`);
    assert.equal(reply.written, [total]);
  }
});

test('seeded stress, reversed: producer on the main thread, consumer in a worker', async () => {
  for (const [cap, maxChunk, seed, totalBytes] of [
    [16, 40, 11, 256 * 1024 + 5],
    [4096, 10000, 12, 4 * 1024 * 1024 + 5],
  ] as const) {
    const h = createRing(cap);
    const total: number = totalBytes;
    const consuming = runPeer({ role: 'consume', handles: [h], seed, totalBytes: total, maxChunkBytes: maxChunk });
    const w = new RingWriter(h);
    const rand = prng(seed * 17);
    const buf = new Uint8Array(maxChunk);
    let pos = 0;
    while (pos < total) {
      const n = Math.min(total - pos, 1 + Math.floor(rand() * maxChunk));
      fillSeq(seed, pos, buf, n);
      let off = 0;
      while (off < n) {
        off += w.write(buf, off, n - off);
        if (off < n) assert.is(await w.waitWritable(), 'ready');
      }
      pos += n;
    }
    w.end();
    const reply = await consuming;
    assert.equal(reply.results, [{ bytes: total, badAt: -1, ended: true }]);
  }
});

test('abort across threads: a worker producer aborting mid-stream is seen with its code', async () => {
  const h = createRing(256);
  const producing = runPeer({ role: 'produce', handles: [h], seed: 5, totalBytes: 10_000, maxChunkBytes: 300, abortCode: 77 });
  const r = new RingReader(h);
  const buf = new Uint8Array(100);
  let pos = 0;
  for (;;) {
    const n = r.read(buf);
    pos += n;
    if (n) continue;
    if ((await r.waitReadable()) === 'closed') break;
  }
  await producing;
  assert.ok(r.producerAborted());
  assert.is(r.producerError(), 77);
  assert.ok(pos <= 10_000);
});

test('abort across threads: a worker consumer leaving mid-stream stops the main-thread producer', async () => {
  const h = createRing(256);
  const consuming = runPeer({ role: 'consume', handles: [h], seed: 6, totalBytes: 5000, maxChunkBytes: 100, abortCode: 99 });
  const w = new RingWriter(h);
  const buf = new Uint8Array(128);
  let pos = 0;
  let closed = false;
  while (!closed && pos < 1_000_000) {
    fillSeq(6, pos, buf);
    const n = w.write(buf);
    pos += n;
    if (n === 0) closed = (await w.waitWritable()) === 'closed';
  }
  const reply = await consuming;
  assert.ok(closed, 'the producer learned that the consumer left');
  assert.is(w.consumerError(), 99);
  assert.equal(reply.results, [{ bytes: 5000, badAt: -1, ended: false }]);
});

test('1,000 rings in flight at once between one worker and the main thread', async () => {
  const handles = Array.from({ length: 1000 }, () => createRing(1024));
  const seed = 1000;
  const total = 20_000;
  const producing = runPeer({ role: 'produce', handles, seed, totalBytes: total, maxChunkBytes: 700 });
  const results = await Promise.all(
    handles.map(async (h, i) => {
      const r = new RingReader(h);
      const buf = new Uint8Array(512);
      let pos = 0;
      for (;;) {
        const n = r.read(buf);
        if (n) {
          if (checkSeq(seed + i, pos, buf, n) >= 0) {
            r.abort(2);
            return -1;
          }
          pos += n;
          continue;
        }
        if (r.isEnded()) return pos;
        if ((await r.waitReadable()) === 'closed') return -2;
      }
    }),
  );
  await producing;
  assert.ok(results.every((n) => n === total), 'every ring delivered every byte intact');
});

test('1 GiB through one ring, verified byte for byte', async () => {
  const h = createRing(1 << 20);
  const blockBytes = (1 << 20) + 7;
  const total = 1 << 30;
  const seed = 4242;
  const producing = runPeer({ role: 'produce', handles: [h], seed, totalBytes: total, maxChunkBytes: blockBytes, fast: true });
  const block = new Uint8Array(blockBytes);
  fillSeq(seed, 0, block);
  const r = new RingReader(h);
  let pos = 0;
  let bad = -1;
  for (;;) {
    const span = r.peek();
    if (span > 0) {
      const at = r.peekIndex();
      const s = r.storage;
      let j = pos % blockBytes;
      for (let k = 0; k < span; k++) {
        if (s[at + k] !== block[j]) {
          bad = pos + k;
          break;
        }
        if (++j === blockBytes) j = 0;
      }
      if (bad >= 0) break;
      pos += r.consume(span);
      continue;
    }
    if (r.isEnded()) break;
    await r.waitReadable();
  }
  if (bad >= 0) r.abort(3);
  await producing;
  assert.is(bad, -1, 'no byte differs');
  assert.is(pos, total);
});

test.run();
