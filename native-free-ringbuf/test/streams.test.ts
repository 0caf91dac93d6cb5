// Tests of the Node stream adapters (RingWritable/RingReadable) with the far side in a real
// worker, of the ring pool, and of the keep-alive held while a thread waits on a ring.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Worker } from 'node:worker_threads';
import { once } from 'node:events';
import { pipeline } from 'node:stream/promises';
import { Readable, Writable } from 'node:stream';
import { RingAbortedError, RingPool, RingReadable, RingReader, RingWritable, RingWriter, createRing, pendingWaits } from '../src/index.ts';
import { checkSeq, fillSeq } from './fixtures/sequence.ts';

const BOOT = new URL('./fixtures/ts-worker.mjs', import.meta.url);
const PEER = new URL('./fixtures/stream-peer.ts', import.meta.url).href;

function runPeer(job: Record<string, unknown>): Promise<any> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(BOOT, { workerData: { entry: PEER, job } });
    let reply: any;
    worker.once('message', (m) => (reply = m));
    worker.once('error', reject);
    worker.once('exit', (code) => (reply ? resolve(reply.result) : reject(new Error(`peer exited ${code} without a reply`))));
  });
}

function seqSource(seed: number, total: number, chunk: number): Readable {
  let pos = 0;
  return new Readable({
    read() {
      if (pos >= total) return void this.push(null);
      const n = Math.min(chunk, total - pos);
      const b = Buffer.allocUnsafe(n);
      fillSeq(seed, pos, b);
      pos += n;
      this.push(b);
    },
  });
}

function seqSink(seed: number, delayMs = 0): Writable & { bytes: number; badAt: number } {
  const sink = new Writable({
    write(chunk: Buffer, _e, cb) {
      const bad = checkSeq(seed, sink.bytes, chunk);
      if (bad >= 0 && sink.badAt < 0) sink.badAt = sink.bytes + bad;
      sink.bytes += chunk.length;
      if (delayMs) setTimeout(cb, delayMs);
      else cb();
    },
  }) as Writable & { bytes: number; badAt: number };
  sink.bytes = 0;
  sink.badAt = -1;
  return sink;
}

test('RingReadable drains a ring filled by a worker, every byte in order', async () => {
  const h = createRing(8192);
  const total = 2 * 1024 * 1024 + 3;
  const producing = runPeer({ mode: 'produce', handle: h, seed: 21, totalBytes: total, chunkBytes: 5000 });
  const sink = seqSink(21);
  await pipeline(new RingReadable(new RingReader(h), { chunkBytes: 4096 }), sink);
  assert.is(await producing, total);
  assert.is(sink.bytes, total);
  assert.is(sink.badAt, -1);
});

test('RingReadable with a slow consumer: backpressure holds the producer, nothing is lost', async () => {
  const h = createRing(1024);
  const total = 64 * 1024;
  const producing = runPeer({ mode: 'produce', handle: h, seed: 22, totalBytes: total, chunkBytes: 3000 });
  const sink = seqSink(22, 2);
  const readable = new RingReadable(new RingReader(h), { chunkBytes: 512, highWaterMark: 512 });
  await pipeline(readable, sink);
  assert.is(await producing, total);
  assert.is(sink.bytes, total);
  assert.is(sink.badAt, -1);
});

test('RingReadable errors with the code of a producer that aborted mid-stream', async () => {
  const h = createRing(4096);
  const producing = runPeer({ mode: 'produce', handle: h, seed: 23, totalBytes: 50_000, chunkBytes: 1000, abortCode: 1234 });
  const sink = seqSink(23);
  const err = await pipeline(new RingReadable(new RingReader(h)), sink).then(
    () => null,
    (e: Error) => e,
  );
  await producing;
  assert.instance(err, RingAbortedError);
  assert.is((err as RingAbortedError).ringCode, 1234);
  assert.is(sink.badAt, -1, 'the bytes delivered before the abort are intact');
});

test('destroying a RingReadable mid-stream aborts the ring, and the worker producer stops', async () => {
  const h = createRing(1024);
  const producing = runPeer({ mode: 'produce', handle: h, seed: 24, totalBytes: 10_000_000, chunkBytes: 1000 });
  const readable = new RingReadable(new RingReader(h), { codeForError: () => 4321 });
  let got = 0;
  readable.on('data', (chunk: Buffer) => {
    got += chunk.length;
    if (got > 20_000 && !readable.destroyed) readable.destroy(new Error('socket closed'));
  });
  const errors: Error[] = [];
  readable.on('error', (e) => errors.push(e));
  await new Promise((resolve) => readable.on('close', resolve));
  assert.is(errors[0]?.message, 'socket closed');
  const written = await producing;
  assert.ok(written < 10_000_000, 'the producer stopped early');
  assert.is(new RingWriter(h).consumerError(), 4321, 'codeForError chose the code');
});

test('RingWritable: write() returns false when the ring is full, drain follows, worker gets every byte', async () => {
  const h = createRing(4096);
  const total = 256 * 1024;
  const consuming = runPeer({ mode: 'consume-slow', handle: h, seed: 25, totalBytes: total, chunkBytes: 1024, delayMs: 1 });
  const w = new RingWritable(new RingWriter(h), { highWaterMark: 2048 });
  let sawFalse = 0;
  let drains = 0;
  w.on('drain', () => drains++);
  let pos = 0;
  while (pos < total) {
    const n = Math.min(1500, total - pos);
    const b = Buffer.allocUnsafe(n);
    fillSeq(25, pos, b);
    pos += n;
    if (!w.write(b)) {
      sawFalse++;
      await once(w, 'drain');
    }
  }
  w.end();
  await once(w, 'finish');
  const result = await consuming;
  assert.ok(sawFalse > 0, 'write() said the ring was full');
  assert.ok(drains >= sawFalse, 'a drain followed each false');
  assert.equal(result, { bytes: total, badAt: -1, ended: true });
});

test('RingWritable piped from a source: end() ends the ring after the last byte', async () => {
  const h = createRing(65536);
  const total = 5 * 1024 * 1024 + 1;
  const consuming = runPeer({ mode: 'consume-slow', handle: h, seed: 26, totalBytes: total, chunkBytes: 65536 });
  await pipeline(seqSource(26, total, 60_000), new RingWritable(new RingWriter(h)));
  assert.equal(await consuming, { bytes: total, badAt: -1, ended: true });
});

test('RingWritable errors when the worker consumer leaves, and carries its code', async () => {
  const h = createRing(2048);
  const consuming = runPeer({ mode: 'consume-then-abort', handle: h, seed: 27, totalBytes: 10_000, chunkBytes: 700, abortCode: 66 });
  const err = await pipeline(seqSource(27, 1_000_000, 900), new RingWritable(new RingWriter(h))).then(
    () => null,
    (e: Error) => e,
  );
  const result = await consuming;
  assert.instance(err, RingAbortedError);
  assert.is((err as RingAbortedError).ringCode, 66);
  assert.equal(result, { bytes: 10_000, badAt: -1, ended: false });
});

test('destroying a RingWritable before end aborts the ring: the consumer never sees a clean end', async () => {
  const h = createRing(4096);
  const w = new RingWritable(new RingWriter(h), { codeForError: () => 808 });
  const r = new RingReader(h);
  w.write(Buffer.alloc(100, 1));
  w.on('error', () => {});
  w.destroy(new Error('client reset'));
  await new Promise((resolve) => w.on('close', resolve));
  assert.ok(r.producerAborted());
  assert.is(r.producerError(), 808);
  assert.not.ok(r.isEnded());
});

test('a worker whose only pending work is a ring wait stays alive until the data arrives', async () => {
  const h = createRing(64);
  const waiting = runPeer({ mode: 'produce-after-wait', handle: h, seed: 0, totalBytes: 0, chunkBytes: 16 });
  await new Promise((r) => setTimeout(r, 300));
  new RingWriter(h).write(new Uint8Array(5));
  const result = await waiting;
  assert.equal(result, { signalBytes: 5 });
});

test('the keep-alive handle is released when waits finish (the process can exit)', async () => {
  const h = createRing(64);
  const r = new RingReader(h);
  const p = r.waitReadable();
  assert.is(pendingWaits(), 1);
  new RingWriter(h).end();
  await p;
  assert.is(pendingWaits(), 0);
});

test('RingPool reuses released rings with a fresh header and a new generation', () => {
  const pool = new RingPool({ maxIdleBytes: 1 << 20 });
  const a = pool.acquire(4096);
  const w = new RingWriter(a);
  w.write(new Uint8Array(100));
  w.abort(9);
  const genA = w.generation();
  pool.release(a);
  const b = pool.acquire(4096);
  assert.is(b.sab, a.sab, 'the same memory came back');
  const r = new RingReader(b);
  assert.is(r.readable(), 0, 'positions were reset');
  assert.not.ok(r.producerAborted(), 'state was reset');
  assert.is(r.generation(), genA + 1);
  const c = pool.acquire(8192);
  assert.is.not(c.sab, a.sab, 'another size gets its own ring');
  assert.is(pool.inUse, 2);
  assert.is(pool.allocated, 2);
  pool.release(b);
  pool.release(c);
  assert.is(pool.inUse, 0);
  assert.is(pool.idle(), 4096 + 192 + 8192 + 192);
});

test('sides left attached to a released ring are inert once the pool hands it out again', async () => {
  // The defect this guards: an aborted upload's pending write woke after its ring went back to the
  // pool and wrote into the next transfer's ring (a download then returned extra bytes).
  const pool = new RingPool({ maxIdleBytes: 1 << 20 });
  const a = pool.acquire(4096);
  const staleWriter = new RingWriter(a);
  const staleReader = new RingReader(a);
  staleWriter.write(new Uint8Array(4096));
  const pendingWrite = staleWriter.waitWritable(1); // full ring: waits
  pool.release(a);
  const b = pool.acquire(4096);
  assert.is(b.sab, a.sab, 'the same memory came back');
  const writer = new RingWriter(b);
  const reader = new RingReader(b);
  assert.ok(staleWriter.stale() && staleReader.stale());
  assert.not.ok(writer.stale() || reader.stale());
  writer.write(new Uint8Array([1, 2, 3]));
  assert.is(await pendingWrite, 'closed', 'a wait begun before the release ends as closed');
  assert.is(staleWriter.write(new Uint8Array([9, 9, 9, 9])), 0, 'a stale writer writes nothing');
  assert.is(staleWriter.reserve(), 0);
  assert.is(staleWriter.commit(4), 0);
  assert.ok(staleWriter.consumerGone());
  assert.is(await staleWriter.waitWritable(1), 'closed');
  staleWriter.end();
  staleWriter.abort(7);
  assert.is(staleReader.read(new Uint8Array(16)), 0, 'a stale reader reads nothing');
  assert.is(staleReader.peek(), 0);
  assert.is(await staleReader.waitReadable(1), 'closed');
  staleReader.abort(5);
  assert.is(reader.producerState(), 0, 'the live transfer is still open');
  assert.is(writer.consumerState(), 0);
  const got = new Uint8Array(16);
  assert.is(reader.read(got), 3, 'only the live writer\'s bytes are there');
  assert.equal([...got.subarray(0, 3)], [1, 2, 3]);
  writer.end();
  assert.ok(reader.isEnded());
  pool.release(b);
});

test('RingPool keeps at most maxIdleBytes of idle rings', () => {
  const pool = new RingPool({ maxIdleBytes: 3 * (1024 + 192) });
  const rings = Array.from({ length: 10 }, () => pool.acquire(1024));
  for (const h of rings) pool.release(h);
  assert.is(pool.idle(), 3 * (1024 + 192));
  pool.clear();
  assert.is(pool.idle(), 0);
});

test.run();
