// The upload spool: an upload's unacknowledged bytes beyond its memory share go to a spool file
// (mode 0600) under the spool folder, which is removed at the commit and at an abort; files left by
// an earlier run are swept when an engine starts; past the spool limit an upload is held back
// (backpressure), never failed; a full disk fails that STOR with 452 and commits nothing. Main thread
// + 2 workers + the box child.

import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DropftpError } from '../../src/errors.ts';
import { TransferEngine } from '../../src/transfer/index.ts';
import type { UploadStream } from '../../src/transfer/index.ts';
import { KiB, MiB, contentOf, fetchFile, finished, makePool, sha256, sleep, startFixture, withFullDiskSpool, writeAll } from './helpers.ts';
import { until } from '../helpers/wait.ts';
import type { Fixture } from './helpers.ts';

let fx: Fixture;
let spoolDir: string;
const pool = makePool(24 * MiB, 23);

test.before(async () => {
  spoolDir = mkdtempSync(join(tmpdir(), 'dropftp-spool-test-'));
  // Leftovers of a "killed" gateway, and a file that is not ours.
  writeFileSync(join(spoolDir, '3-17-0.spool'), Buffer.alloc(1000));
  writeFileSync(join(spoolDir, '9-1-2.spool'), Buffer.alloc(10));
  writeFileSync(join(spoolDir, 'notes.txt'), 'keep me');
  fx = await startFixture({ workers: 2, spoolDir, appendMemoryBytes: 256 * KiB, spoolBytes: 64 * MiB });
});
test.after(async () => {
  await fx.stop();
  rmSync(spoolDir, { recursive: true, force: true });
});

const spoolFiles = (): string[] => readdirSync(spoolDir).filter((n) => n.endsWith('.spool'));

test('spool files left by an earlier run are swept at start; other files stay', () => {
  assert.equal(readdirSync(spoolDir).sort(), ['notes.txt']);
});

test('beyond its memory share an upload spools to a 0600 file, removed once committed', async () => {
  const data = contentOf(pool, 1, 12 * MiB + 99);
  const up = fx.engine.openUpload('alice', '/spool/a.bin');
  const done = finished(up);
  await writeAll(up, data.subarray(0, 6 * MiB));
  await until(() => fx.engine.stats().spool.bytesInUse > 4 * MiB, 10_000, 'spooled bytes');
  const files = spoolFiles();
  assert.ok(files.length >= 1, 'a spool file exists while the upload runs');
  for (const f of files) assert.is(statSync(join(spoolDir, f)).mode & 0o777, 0o600, `${f} is private`);
  // The retained pieces, plus a read-back buffer (a quarter of the share) if a call's body is
  // reading the spool; spool writes take none (they write from the ring's memory).
  const charged = fx.engine.stats().memory.chunkBytesInUse;
  assert.ok(charged <= 256 * KiB + 64 * KiB, `memory retention stays within appendMemoryBytes (${charged} B charged)`);
  await writeAll(up, data.subarray(6 * MiB));
  up.end();
  await done;
  assert.is(up.metadata?.size, data.length);
  const stored = await fetchFile(fx.box, fx.account.accessToken, '/spool/a.bin');
  assert.is(stored && sha256(stored), sha256(data));
  await until(() => spoolFiles().length === 0 && fx.engine.stats().spool.bytesInUse === 0, 10_000, 'spool emptied');
});

test('an aborted upload removes its spool file and commits nothing', async () => {
  const up = fx.engine.openUpload('alice', '/spool/aborted.bin');
  const failed = new Promise((resolve) => up.once('error', resolve));
  await writeAll(up, contentOf(pool, 2, 5 * MiB));
  await until(() => fx.engine.stats().spool.bytesInUse > 2 * MiB, 10_000, 'spooled bytes');
  up.abort();
  await failed;
  await up.result;
  await until(() => spoolFiles().length === 0 && fx.engine.stats().spool.bytesInUse === 0, 10_000, 'spool emptied');
  assert.is(await fetchFile(fx.box, fx.account.accessToken, '/spool/aborted.bin'), null);
});

test('past the spool limit uploads are held back, then all commit byte-exact', async () => {
  const engine = await TransferEngine.start({ workers: 2, spoolDir, appendMemoryBytes: 256 * KiB, spoolBytes: 6 * MiB });
  try {
    engine.setAccount({ name: 'alice', apiUrl: fx.box.url, contentUrl: fx.box.url, accessToken: fx.account.accessToken });
    let peak = 0;
    const sampler = setInterval(() => (peak = Math.max(peak, engine.stats().spool.bytesInUse)), 10);
    const datas = [0, 1, 2, 3].map((i) => contentOf(pool, 10 + i, 5 * MiB + i));
    await Promise.all(
      datas.map(async (data, i) => {
        const up = engine.openUpload('alice', `/spool/limit${i}.bin`);
        const done = finished(up);
        await writeAll(up, data);
        up.end();
        await done;
      }),
    );
    clearInterval(sampler);
    assert.ok(peak <= 6 * MiB, `spool peaked at ${peak} B for a limit of 6 MiB`);
    for (let i = 0; i < datas.length; i++) {
      const stored = await fetchFile(fx.box, fx.account.accessToken, `/spool/limit${i}.bin`);
      assert.is(stored && sha256(stored), sha256(datas[i]!), `upload ${i}`);
    }
  } finally {
    await engine.close();
  }
  assert.is(spoolFiles().length, 0);
});

test('spooling uploads hold no spool I/O buffer of their own between writes (worker memory stays near the budget)', async () => {
  const engine = await TransferEngine.start({ workers: 1, spoolDir, appendMemoryBytes: 256 * KiB, spoolBytes: 512 * MiB, memoryBudgetBytes: 16 * MiB });
  const ups: UploadStream[] = [];
  try {
    engine.setAccount({ name: 'alice', apiUrl: fx.box.url, contentUrl: fx.box.url, accessToken: fx.account.accessToken });
    const datas = Array.from({ length: 40 }, (_, i) => contentOf(pool, 40 + i, 2 * MiB + i));
    const dones = datas.map((_, i) => {
      const up = engine.openUpload('alice', `/spool/many${i}.bin`);
      ups.push(up);
      return finished(up);
    });
    for (const d of dones) d.catch(() => {}); // awaited below; a failed assertion aborts them
    // Every upload spools and none has ended: no call has taken their bytes yet.
    await Promise.all(ups.map((up, i) => writeAll(up, datas[i]!)));
    await until(() => engine.stats().spool.bytesInUse >= 40 * (2 * MiB - 512 * KiB), 10_000, 'spooled bytes');
    await sleep(2500); // the worker publishes its heap every 2 s
    const external = engine.stats().workerHeaps.reduce((sum, h) => sum + h.externalBytes, 0);
    assert.ok(external < 32 * MiB, `worker external memory ${(external / MiB).toFixed(1)} MiB for a 16 MiB budget`);
    for (const up of ups) up.end();
    await Promise.all(dones);
    for (const i of [0, 39]) {
      const stored = await fetchFile(fx.box, fx.account.accessToken, `/spool/many${i}.bin`);
      assert.is(stored && sha256(stored), sha256(datas[i]!), `upload ${i}`);
    }
  } finally {
    for (const up of ups) if (!up.writableFinished) up.abort();
    await engine.close();
  }
  await until(() => spoolFiles().length === 0, 10_000, 'spool emptied');
});

test('a full disk under the spool fails that STOR with 452 and commits nothing', async () => {
  await withFullDiskSpool(fx, 256 * KiB, async (engine) => {
    const up = engine.openUpload('alice', '/spool/full.bin');
    const failed = new Promise<unknown>((resolve) => up.once('error', resolve));
    void writeAll(up, contentOf(pool, 3, 2 * MiB)).then(() => up.end(), () => {});
    const err = await failed;
    assert.instance(err, DropftpError);
    assert.is((err as DropftpError).code, 'DROPFTP_ERR_LOCAL_SPACE');
    assert.is((err as DropftpError).ftpCode, 452);
    assert.is(await fetchFile(fx.box, fx.account.accessToken, '/spool/full.bin'), null, 'nothing committed');
    assert.is(engine.stats().spool.bytesInUse, 0);
  });
});

test.run();
