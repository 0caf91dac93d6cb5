// While a streamed call takes an upload's bytes as they come, the bytes it has not sent yet stay in
// memory and what it sent moves to the spool (workers/retention.ts spillSent), so a spool file is
// read only when a call is sent again. A single upload through one worker with a 1 MiB memory
// share: without faults most of its bytes are spilled and few read back; with resets in the middle
// of the streamed body the retry reads the spilled bytes back, and the file still commits
// byte-exact; a spill that cannot be written (a full disk) costs the upload its spool, not the
// upload: it goes on in memory. Main thread + 1 worker + the box child, over HTTP.

import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { contentHash } from '../../src/localbox/index.ts';
import { KiB, MiB, contentOf, feed, fetchFile, makePool, sha256, sleep, startFixture, withFullDiskSpool } from './helpers.ts';
import type { Fixture } from './helpers.ts';

let fx: Fixture;
let spoolDir: string;
const pool = makePool(48 * MiB, 17);

test.before(async () => {
  spoolDir = mkdtempSync(join(tmpdir(), 'dropftp-spill-test-'));
  fx = await startFixture({ workers: 1, spoolDir, appendMemoryBytes: 1 * MiB, spoolBytes: 256 * MiB });
});
test.after(async () => {
  await fx?.stop();
  rmSync(spoolDir, { recursive: true, force: true });
});

interface SpoolTraffic {
  spooled: number;
  spilled: number;
  readBack: number;
}

function traffic(): SpoolTraffic {
  const s = fx.engine.stats().spool;
  return { spooled: s.spooledBytes, spilled: s.spilledBytes, readBack: s.readBackBytes };
}

async function upload(path: string, data: Buffer): Promise<{ meta: Record<string, unknown> | undefined; spool: SpoolTraffic }> {
  const before = traffic();
  // A 2 MiB lead: the call of unknown length starts early and takes the rest of the file.
  const up = fx.engine.openUpload('alice', path, { testHooks: { leadBytes: 2 * MiB } });
  await feed(up, data, 64 * KiB);
  const after = traffic();
  const stored = await fetchFile(fx.box, fx.account.accessToken, path);
  assert.is(stored && sha256(stored), sha256(data), `${path} byte-exact`);
  const meta = up.metadata as Record<string, unknown> | undefined;
  assert.is(meta?.size, data.length);
  assert.is(meta?.content_hash, contentHash(data));
  return { meta, spool: { spooled: after.spooled - before.spooled, spilled: after.spilled - before.spilled, readBack: after.readBack - before.readBack } };
}

async function assertAllGivenBack(): Promise<void> {
  for (let i = 0; i < 20 && (fx.engine.stats().spool.bytesInUse > 0 || fx.engine.stats().memory.chunkBytesInUse > 0); i++) await sleep(50);
  assert.is(fx.engine.stats().spool.bytesInUse, 0, 'spool allowance given back');
  assert.is(fx.engine.stats().memory.chunkBytesInUse, 0, 'every buffer given back');
  assert.equal(readdirSync(spoolDir).filter((n) => n.endsWith('.spool')), [], 'no spool file left');
}

test('a streamed call sends from memory and spills what it sent: little is read back', async () => {
  const data = contentOf(pool, 1, 40 * MiB + 4321);
  const { spool } = await upload('/spill/a.bin', data);
  // Retained until the call's answer: all 40 MiB, 1 MiB of it in memory. Spilled after sending
  // rather than spooled before and read back.
  assert.ok(spool.spilled >= 20 * MiB, `spilled ${spool.spilled} B`);
  assert.ok(spool.readBack <= 12 * MiB, `read back ${spool.readBack} B (spooled ${spool.spooled} B)`);
  await assertAllGivenBack();
});

test('resets in the middle of a streamed body: the retry reads the spilled bytes back, byte-exact', async () => {
  await fx.box.setFaults({
    seed: 5,
    rules: [{ kind: 'reset', routes: ['files/upload_session/start', 'files/upload_session/append_v2'], afterBytes: 24 * MiB + 777, count: 2 }],
  });
  try {
    const data = contentOf(pool, 2, 44 * MiB + 99);
    const { spool } = await upload('/spill/b.bin', data);
    assert.ok(spool.spilled >= 20 * MiB, `spilled ${spool.spilled} B`);
    // The retry sends the ~24 MiB the reset call had sent again, from the spool.
    assert.ok(spool.readBack >= 16 * MiB, `read back ${spool.readBack} B`);
  } finally {
    await fx.box.setFaults({ rules: [] });
  }
  await assertAllGivenBack();
});

test('a spill that fails (disk full) leaves the bytes in memory: the upload goes on without its spool and commits byte-exact', async () => {
  await withFullDiskSpool(fx, 1 * MiB, async (engine, dir, warnings) => {
    const data = contentOf(pool, 3, 8 * MiB + 5);
    // A lead below the memory share: the streamed call starts before anything is spooled, so the
    // first spool write is a spill of bytes that call already sent.
    const up = engine.openUpload('alice', '/spill/full.bin', { testHooks: { leadBytes: 512 * KiB } });
    await feed(up, data, 64 * KiB);
    const stored = await fetchFile(fx.box, fx.account.accessToken, '/spill/full.bin');
    assert.is(stored && sha256(stored), sha256(data), 'byte-exact');
    assert.is((up.metadata as Record<string, unknown> | undefined)?.content_hash, contentHash(data));
    const spool = engine.stats().spool;
    assert.ok(spool.spillFailures >= 1, `spill failures ${spool.spillFailures}`);
    assert.is(spool.spilledBytes, 0, 'nothing spilled');
    assert.is(spool.spooledBytes, 0, 'nothing spooled after the failure');
    assert.is(spool.bytesInUse, 0, 'spool allowance given back');
    assert.is(engine.stats().memory.chunkBytesInUse, 0, 'every buffer given back');
    assert.equal(readdirSync(dir), [], 'the failed spool file is gone');
    for (let i = 0; i < 20 && !warnings.some((w) => w.obj.event === 'spool-spill-failed'); i++) await sleep(25);
    const warned = warnings.find((w) => w.obj.event === 'spool-spill-failed');
    assert.ok(warned, `a warning names the failed spill: ${JSON.stringify(warnings)}`);
    assert.is(warned!.obj.dir, dir);
    assert.match(warned!.msg, /in memory only/);
  });
});

test.run();
