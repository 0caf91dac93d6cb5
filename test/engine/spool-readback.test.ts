// Spool read-back buffers are reused (workers/retention.ts RECYCLE_MIN_BYTES): a piece's buffer goes
// back to the thread's pool only once the request asked for the next piece. Two spooling uploads on
// one worker share that pool while the box reads slowly (latency) and resets appends mid-body, so a
// buffer recycled while its socket write was still pending would carry the other upload's bytes.
// Twice: with 1 MiB pieces, and with the smallest reused pieces (64 KiB, a 256 KiB memory share, as
// among a thousand uploads). Main thread + 1 worker + the box child, one fixture per case.

import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { UploadStream } from '../../src/transfer/index.ts';
import { KiB, MiB, contentOf, fetchFile, makePool, sha256, sleep, startFixture } from './helpers.ts';
import type { Fixture } from './helpers.ts';

let fx: Fixture;
let spoolDir: string;
const pool = makePool(64 * MiB, 31);

test.before(() => {
  spoolDir = mkdtempSync(join(tmpdir(), 'dropftp-readback-test-'));
});
test.after(async () => {
  await fx?.stop();
  rmSync(spoolDir, { recursive: true, force: true });
});

async function upload(path: string, data: Buffer): Promise<UploadStream> {
  const up = fx.engine.openUpload('alice', path);
  const done = new Promise<void>((resolve, reject) => {
    up.once('finish', resolve);
    up.once('error', reject);
  });
  for (let off = 0; off < data.length; off += 64 * KiB) {
    if (!up.write(data.subarray(off, off + 64 * KiB))) await new Promise((r) => up.once('drain', r));
  }
  up.end();
  await done;
  return up;
}

/** Two uploads of ~40 MiB at once through a fresh fixture, appends slowed and reset mid-body. */
async function twoSpooledUploads(appendMemoryBytes: number, spoolBytes: number, resetAfter: number): Promise<void> {
  await fx?.stop();
  fx = await startFixture({ workers: 1, spoolDir, appendMemoryBytes, spoolBytes });
  await fx.box.setFaults({
    seed: 11,
    rules: [
      { kind: 'latency', probability: 1, latencyMs: 100, routes: ['files/upload_session/append_v2'] },
      { kind: 'reset', probability: 0.3, afterBytes: resetAfter, routes: ['files/upload_session/append_v2'] },
    ],
  });
  const a = contentOf(pool, 1, 40 * MiB + 77);
  const b = contentOf(pool, 2, 37 * MiB + 5);
  const [ua, ub] = await Promise.all([upload('/rb/a.bin', a), upload('/rb/b.bin', b)]);
  await fx.box.setFaults({ rules: [] });
  assert.is(ua.metadata?.size, a.length);
  assert.is(ub.metadata?.size, b.length);
  assert.is(sha256((await fetchFile(fx.box, fx.account.accessToken, '/rb/a.bin'))!), sha256(a));
  assert.is(sha256((await fetchFile(fx.box, fx.account.accessToken, '/rb/b.bin'))!), sha256(b));
  const stats = fx.engine.stats();
  assert.ok(stats.spool.bytesInUse === 0 || (await sleep(200), fx.engine.stats().spool.bytesInUse === 0), 'spool given back');
  // Every read-back buffer's charge was returned (reused or dropped), none leaked.
  assert.is(fx.engine.stats().memory.chunkBytesInUse, 0);
  assert.equal(readdirSync(spoolDir).filter((n) => n.endsWith('.spool')), []);
}

test('spooled uploads read back through reused 1 MiB buffers commit byte-exact under slow and reset appends', async () => {
  // A 4 MiB memory share: 1 MiB spool pieces, above RECYCLE_MIN_BYTES; 8 MiB appends (half of what
  // retention holds), so reads back overlap the spool writes of the other upload.
  await twoSpooledUploads(4 * MiB, 16 * MiB, 3 * MiB + 12_345);
});

test('... and through reused 64 KiB buffers (a 256 KiB memory share)', async () => {
  // A quarter of the share per spool piece: 64 KiB, RECYCLE_MIN_BYTES itself.
  await twoSpooledUploads(256 * KiB, 8 * MiB, 1 * MiB + 4_321);
});

test.run();
