// Freeing a buffer's memory without the GC (src/util/release-memory.ts): the whole of an ordinary
// ArrayBuffer of 32 KiB or more is freed on the spot (V8's count of array-buffer memory drops at
// once); a view of a larger buffer, a small or pooled one, an untransferable one and ring memory
// (a SharedArrayBuffer) are left as they are. Over a real socket, the reads of a 256 MiB stream,
// each released once consumed, keep that count flat where, left to the GC, it climbs by tens of MiB.
import { createHash } from 'node:crypto';
import { createServer, connect, type AddressInfo } from 'node:net';
import { markAsUntransferable } from 'node:worker_threads';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { markDisposable, releaseDisposable, releaseMemory } from '../../src/util/release-memory.ts';

const KiB = 1024;
const MiB = 1024 * KiB;

function filled(n: number, v: number): Buffer {
  return Buffer.from(new Uint8Array(new ArrayBuffer(n)).fill(v).buffer);
}

test('releaseMemory frees a whole buffer at once and leaves the others as they are', () => {
  const big = filled(64 * KiB, 5);
  assert.is(releaseMemory(big.subarray(1)), false);
  assert.is(big.length, 64 * KiB);
  assert.is(big[100], 5);
  assert.is(releaseMemory(Buffer.alloc(0)), false);
  const small = filled(4 * KiB, 7); // a slow client's read: freeing it early costs more than it saves
  assert.is(releaseMemory(small), false);
  assert.is(small.length, 4 * KiB);
  const pooled = Buffer.from('pooled'); // a slice of Node's shared 8 KiB pool
  assert.is(releaseMemory(pooled), false);
  assert.is(pooled.toString(), 'pooled');
  const shared = Buffer.from(new SharedArrayBuffer(64 * KiB));
  assert.is(releaseMemory(shared), false);
  assert.is(shared.length, 64 * KiB);
  const kept = filled(64 * KiB, 9);
  markAsUntransferable(kept.buffer);
  assert.is(releaseMemory(kept), false);
  assert.is(kept[0], 9);

  const before = process.memoryUsage().arrayBuffers;
  const own = Array.from({ length: 64 }, (_, i) => filled(MiB, i));
  const held = process.memoryUsage().arrayBuffers;
  assert.ok(held - before >= 60 * MiB, `64 MiB allocated: ${held - before} B counted`);
  for (const b of own) assert.is(releaseMemory(b), true);
  assert.ok(own.every((b) => b.length === 0));
  const after = process.memoryUsage().arrayBuffers;
  assert.ok(held - after >= 60 * MiB, `64 MiB released: the count went ${held} -> ${after} B without a GC`);
});

test('only a buffer marked disposable is released by releaseDisposable, and only once', () => {
  const marked = filled(64 * KiB, 1);
  const unmarked = filled(64 * KiB, 2);
  markDisposable(marked);
  assert.is(releaseDisposable(unmarked), false);
  assert.is(unmarked.length, 64 * KiB);
  assert.is(releaseDisposable(marked), true);
  assert.is(marked.length, 0);
  assert.is(releaseDisposable(marked), false);
  const slice = filled(128 * KiB, 3).subarray(0, 64 * KiB);
  markDisposable(slice);
  assert.is(releaseDisposable(slice), false, 'a view of a larger buffer is never freed');
  assert.is(slice[0], 3);
});

/** Streams `total` bytes over loopback; the receiver copies each read and maybe releases it. Returns the peak array-buffer count above the start. */
async function receive(total: number, release: boolean): Promise<{ peak: number; received: number; freed: number; digest: string }> {
  const ring = Buffer.allocUnsafe(4 * MiB);
  const block = Buffer.from(Uint8Array.from({ length: MiB }, (_, i) => (i * 7) % 251));
  let at = 0;
  let received = 0;
  let freed = 0;
  const hash = createHash('sha256');
  let peak = 0;
  const base = process.memoryUsage().arrayBuffers;
  await new Promise<void>((resolve, reject) => {
    const server = createServer((socket) => {
      socket.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        let off = 0;
        while (off < chunk.length) {
          const n = Math.min(chunk.length - off, ring.length - at);
          chunk.copy(ring, at, off, off + n);
          off += n;
          at = (at + n) % ring.length;
        }
        received += chunk.length;
        if (release) {
          const n = chunk.length;
          markDisposable(chunk);
          if (releaseDisposable(chunk)) freed += n;
        }
        if ((received & (MiB - 1)) < chunk.length) peak = Math.max(peak, process.memoryUsage().arrayBuffers - base);
      });
      socket.on('end', () => {
        server.close();
        resolve();
      });
      socket.on('error', reject);
    }).listen(0, '127.0.0.1', () => {
      const c = connect((server.address() as AddressInfo).port, '127.0.0.1', () => {
        let sent = 0;
        const pump = (): void => {
          while (sent < total) {
            sent += block.length;
            if (!c.write(block)) return void c.once('drain', pump);
          }
          c.end();
        };
        pump();
      });
      c.on('error', reject);
    });
  });
  return { peak, received, freed, digest: hash.digest('hex') };
}

test('socket reads released once copied keep the array-buffer count flat', async () => {
  const total = 256 * MiB;
  // The peaks depend on when V8 collects (the reads left to it, under 32 KiB, pile up between
  // scavenges, more of them on a loaded machine): eight runs on an idle 2-core machine, released
  // 4.8-13.5 MiB against kept 22.9-30.3; with two busy processes beside it 0.0-20.4 against
  // 26.1-32.1; 18.7 released during a full test run (2026-12-07), and once in a fresh-clone CI run
  // 23.0 against 24.0. So the peaks are compared over up to three pairs of runs, and one pair that
  // shows the difference passes; a release that frees nothing fails the `freed` checks of every pair
  // whatever the peaks, and without releases the peaks are alike in every pair.
  const seen: string[] = [];
  for (let attempt = 0; attempt < 3; attempt++) {
    const released = await receive(total, true);
    assert.is(released.received, total);
    const kept = await receive(total, false);
    assert.is(kept.received, total);
    assert.is(released.digest, kept.digest);
    // Left to the GC, dead reads pile up until V8's external-memory mark (64 MiB above the last
    // mark-compact) forces a collection; released, no more than a few reads are alive at a time.
    // Reads under 32 KiB (a sender that fell behind) are left to the GC.
    assert.ok(released.freed >= total / 2, `${released.freed} B of ${total} freed at once`);
    assert.is(kept.freed, 0);
    seen.push(`released ${(released.peak / MiB).toFixed(1)} MiB, left to the GC ${(kept.peak / MiB).toFixed(1)} MiB`);
    if (released.peak < 24 * MiB && kept.peak > released.peak + 4 * MiB) return;
  }
  assert.unreachable(`peaks of read buffers in three pairs of runs: ${seen.join('; ')}`);
});

test.run();
