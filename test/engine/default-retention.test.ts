// The default engine.appendMemoryBytes (64 MiB): an upload alone of 40 MiB (past its 16 MiB lead, so
// a streamed call takes it while its client sends) keeps every unacknowledged byte in memory and
// writes nothing to the spool; the same upload with the old default of 8 MiB spills what its call
// sent. Both commit byte-exact. Main thread + 1 worker (one engine per test) + the box child.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startLocalBox } from '../../src/localbox/index.ts';
import type { LocalBox, LocalBoxAccount } from '../../src/localbox/index.ts';
import { TransferEngine } from '../../src/transfer/index.ts';
import { ENGINE_DEFAULTS } from '../../src/transfer/options.ts';
import type { EngineOptions } from '../../src/transfer/index.ts';
import { MiB, fetchFile, finished, makePool, sha256, writeAll } from './helpers.ts';

let box: LocalBox;
let account: LocalBoxAccount;
let dataDir: string;
let spoolDir: string;
const data = makePool(40 * MiB + 4321, 43);

test.before(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'dropftp-default-retention-box-'));
  spoolDir = mkdtempSync(join(tmpdir(), 'dropftp-default-retention-test-'));
  box = await startLocalBox({ dataDir });
  account = await box.createAccount('alice');
});
test.after(async () => {
  await box.close().catch(() => box.kill());
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(spoolDir, { recursive: true, force: true });
});

/** Uploads `data` alone through a fresh engine; returns the spool traffic it counted. */
async function uploadAlone(options: EngineOptions, path: string): Promise<{ spooled: number; spilled: number; readBack: number }> {
  const engine = await TransferEngine.start({ workers: 1, spoolDir, spoolBytes: 256 * MiB, ...options });
  try {
    engine.setAccount({ name: 'alice', apiUrl: box.url, contentUrl: box.url, accessToken: account.accessToken });
    const up = engine.openUpload('alice', path);
    const done = finished(up);
    await writeAll(up, data);
    up.end();
    await done;
    const stored = await fetchFile(box, account.accessToken, path);
    assert.is(stored && sha256(stored), sha256(data), `${path} byte-exact`);
    const s = engine.stats().spool;
    return { spooled: s.spooledBytes, spilled: s.spilledBytes, readBack: s.readBackBytes };
  } finally {
    await engine.close();
  }
}

test('the default keeps a 40 MiB upload alone in memory: nothing spooled, spilled or read back', async () => {
  assert.is(ENGINE_DEFAULTS.appendMemoryBytes, 64 * MiB);
  const io = await uploadAlone({}, '/retention/default.bin');
  assert.equal(io, { spooled: 0, spilled: 0, readBack: 0 });
});

test('with 8 MiB the same upload spills what its call sent', async () => {
  const io = await uploadAlone({ appendMemoryBytes: 8 * MiB }, '/retention/eight.bin');
  assert.ok(io.spooled + io.spilled >= 16 * MiB, `spool traffic ${JSON.stringify(io)}`);
});

test.run();
