// Tests of the ring pool (reuse, generations, stale sides) and of the keep-alive a thread holds
// while it waits on a ring (a pending waitAsync keeps nothing alive, nodejs/node#44729).

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Worker } from 'node:worker_threads';
import { RingPool, RingReader, RingWriter, createRing, pendingWaits } from '../src/index.ts';

const BOOT = new URL('./fixtures/ts-worker.mjs', import.meta.url);
const PEER = new URL('./fixtures/wait-peer.ts', import.meta.url).href;

function runPeer(job: Record<string, unknown>): Promise<any> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(BOOT, { workerData: { entry: PEER, job } });
    let reply: any;
    worker.once('message', (m) => (reply = m));
    worker.once('error', reject);
    worker.once('exit', (code) => (reply ? resolve(reply.result) : reject(new Error(`peer exited ${code} without a reply`))));
  });
}

test('a worker whose only pending work is a ring wait stays alive until the data arrives', async () => {
  const h = createRing(64);
  const waiting = runPeer({ handle: h });
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

test('a ring wait that nothing wakes ends at its timeout, through the fallback re-checks', async () => {
  const r = new RingReader(createRing(64));
  r.fallbackMs = 40;
  const t0 = Date.now();
  assert.is(await r.waitReadable(1, 150), 'timeout');
  const ms = Date.now() - t0;
  assert.ok(ms >= 140 && ms < 2000, `waited ${ms} ms`);
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

test('RingPool.trim drops idle rings down to what it keeps, and a dropped ring is not handed out again', () => {
  const pool = new RingPool({ maxIdleBytes: 1 << 20 });
  const small = [pool.acquire(4096), pool.acquire(4096)];
  const big = pool.acquire(8192);
  for (const h of [...small, big]) pool.release(h);
  const all = 2 * (4096 + 192) + 8192 + 192;
  assert.is(pool.idle(), all);
  const dropped = pool.trim(4096 + 192);
  assert.is(dropped + pool.idle(), all, 'what was dropped left the idle count');
  assert.ok(pool.idle() <= 4096 + 192, `kept ${pool.idle()} B`);
  const kept = pool.idle();
  assert.is(pool.trim(), kept, 'trim() drops the rest');
  assert.is(pool.idle(), 0);
  const again = [pool.acquire(4096), pool.acquire(4096), pool.acquire(8192)];
  for (const h of again) assert.ok(![...small, big].some((old) => old.sab === h.sab), 'a trimmed ring came back');
  assert.is(pool.allocated, 6);
  assert.is(pool.trim(), 0, 'rings in use are not the pool\'s to drop');
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
  assert.is(staleReader.peekAt(0), 0, 'a stale reader lends no views');
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
