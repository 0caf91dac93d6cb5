// Fresh retention memory (workers/retention.ts FRESH_TOTAL_BYTES): an upload alone keeps its whole
// memory share in memory, while among many uploads alive each takes at most FRESH_MEMORY_BYTES of
// memory touched for the first time and spools the rest; both commit byte-exact. Main thread + 1
// worker + the box child.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { UploadStream } from '../../src/transfer/index.ts';
import { FRESH_MEMORY_BYTES } from '../../workers/retention.ts';
import { KiB, MiB, contentOf, fetchFile, finished, makePool, sha256, startFixture, writeAll } from './helpers.ts';
import { until } from '../helpers/wait.ts';
import type { Fixture } from './helpers.ts';

let fx: Fixture;
let spoolDir: string;
const pool = makePool(8 * MiB, 31);

test.before(async () => {
  spoolDir = mkdtempSync(join(tmpdir(), 'dropftp-fresh-test-'));
  fx = await startFixture({ workers: 1, spoolDir, appendMemoryBytes: 8 * MiB, spoolBytes: 256 * MiB });
});
test.after(async () => {
  await fx.stop();
  rmSync(spoolDir, { recursive: true, force: true });
});

/** The upload retention held now: memory pieces and spool bytes. */
function retainedNow(): { memory: number; spool: number } {
  const s = fx.engine.stats();
  return { memory: s.memory.chunkBytesInUse, spool: s.spool.bytesInUse };
}

/** Waits until the engine retains at least `bytes` (memory pieces plus spool), then returns the split. */
async function retained(bytes: number): Promise<{ memory: number; spool: number }> {
  await until(() => {
    const r = retainedNow();
    return r.memory + r.spool >= bytes;
  }, 10_000, () => `${bytes} B retained (${JSON.stringify(retainedNow())})`);
  return retainedNow();
}

async function finish(up: UploadStream, data: Buffer, path: string): Promise<void> {
  const done = finished(up);
  up.end();
  await done;
  const stored = await fetchFile(fx.box, fx.account.accessToken, path);
  assert.is(stored && sha256(stored), sha256(data), `${path} byte-exact`);
}

test('among 80 uploads alive, one takes ~1 MiB fresh memory and spools the rest', async () => {
  // 80 uploads: the budget's share is 4 MiB each, FRESH_TOTAL_BYTES / 80 under the 1 MiB floor.
  // First in this file: the worker holds no spare pieces yet (those it is given are touched already,
  // and an upload takes them whatever its allowance).
  const idle = Array.from({ length: 79 }, (_, i) => fx.engine.openUpload('alice', `/fresh/idle-${i}.bin`));
  const data = contentOf(pool, 2, 4 * MiB);
  const up = fx.engine.openUpload('alice', '/fresh/crowded.bin');
  try {
    await writeAll(up, data);
    const r = await retained(3.5 * MiB);
    // Pieces of 256 KiB (the last may start just under the allowance), and a spool write's scratch
    // buffer (a quarter of the 4 MiB share) charged while a write runs.
    assert.ok(r.memory <= FRESH_MEMORY_BYTES + 256 * KiB + 1 * MiB, `memory ${r.memory} B`);
    assert.ok(r.spool >= 2 * MiB, `spooled ${r.spool} B`);
    await finish(up, data, '/fresh/crowded.bin');
  } finally {
    up.on('error', () => {}); // a failed check above: the engine's shutdown errors it
    for (const u of idle) {
      u.on('error', () => {}); // aborted: DROPFTP_ERR_ABORTED, expected
      u.abort();
    }
  }
  // The next test counts on this one's uploads being gone (the share of fresh memory is per upload alive).
  await until(() => fx.engine.stats().activeUploads === 0, 10_000, 'the aborted uploads to end');
});

test('an upload alone keeps its memory share in memory: nothing spooled', async () => {
  const data = contentOf(pool, 1, 4 * MiB);
  const up = fx.engine.openUpload('alice', '/fresh/alone.bin');
  try {
    await writeAll(up, data);
    const r = await retained(3.5 * MiB);
    assert.is(r.spool, 0, `spooled ${r.spool} B with the whole 8 MiB share free`);
    await finish(up, data, '/fresh/alone.bin');
  } finally {
    up.on('error', () => {}); // a failed check above: the engine's shutdown errors it
  }
});

test.run();
