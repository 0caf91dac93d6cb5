// A worker that dies mid-transfer (test hook: process.exit in the worker) fails only the transfers
// pinned to it, with DROPFTP_ERR_WORKER_CRASHED; the others finish byte-exact; piscina replaces the
// worker, the dead worker's calls and retention are reclaimed (no call counted in flight, no buffer
// charged), and new transfers work. Uploads on the dead worker commit nothing.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DropftpError } from '../../src/errors.ts';
import { MiB, contentOf, drain, feed, fetchFile, makePool, seed, sha256, sleep, startFixture } from './helpers.ts';
import type { Fixture } from './helpers.ts';

let fx: Fixture;
const pool = makePool(12 * MiB, 13);

test.before(async () => {
  fx = await startFixture({ workers: 2 });
});
test.after(async () => {
  await fx.stop();
});

test('a worker crash fails only its own transfers; the pool and the request budget recover', async () => {
  const files = Array.from({ length: 8 }, (_, i) => contentOf(pool, i, 6 * MiB + i));
  await Promise.all(files.map((data, i) => seed(fx.box, fx.account.accessToken, `/c/d${i}.bin`, data)));
  await fetchFile(fx.box, fx.account.accessToken, '/c/d0.bin');
  await fx.box.setFaults({ rules: [{ kind: 'latency', latencyMs: 20 }] }); // keep transfers in flight a while
  const victim = fx.engine.openDownload('alice', '/c/d0.bin', { testHooks: { crashWorkerAfterBytes: 256 * 1024 } });
  const others = files.slice(1).map((_, k) => fx.engine.openDownload('alice', `/c/d${k + 1}.bin`));
  const upload = fx.engine.openUpload('alice', '/c/up.bin');
  const upDone = feed(upload, contentOf(pool, 20, 5 * MiB)).then(
    () => null,
    (e: unknown) => e as DropftpError,
  );
  const outcomes = await Promise.all(
    [victim, ...others].map((s, i) =>
      drain(s).then(
        (r) => ({ i, ok: true as const, sha: r.sha }),
        (e: unknown) => ({ i, ok: false as const, code: (e as DropftpError).code }),
      ),
    ),
  );
  await fx.box.setFaults({ rules: [] });
  const v = outcomes[0]!;
  assert.not.ok(v.ok, 'the transfer on the crashing worker failed');
  if (!v.ok) assert.is(v.code, 'DROPFTP_ERR_WORKER_CRASHED');
  let survivors = 0;
  for (const o of outcomes.slice(1)) {
    if (o.ok) {
      survivors++;
      assert.is(o.sha, sha256(files[o.i]!), `transfer ${o.i} bytes`);
    } else {
      assert.is(o.code, 'DROPFTP_ERR_WORKER_CRASHED', `transfer ${o.i}`);
    }
  }
  assert.ok(survivors > 0, 'transfers on the other worker finished');
  const upErr = await upDone;
  if (upErr) {
    assert.is(upErr.code, 'DROPFTP_ERR_WORKER_CRASHED');
    assert.is(await fetchFile(fx.box, fx.account.accessToken, '/c/up.bin'), null, 'a crashed upload commits nothing');
  }
  assert.ok(fx.engine.stats().workerCrashes >= 1);
  // Recovery: more transfers than the account budget, all through the rebuilt pool.
  await sleep(200);
  const again = await Promise.all(files.slice(0, 6).map((_, i) => drain(fx.engine.openDownload('alice', `/c/d${i}.bin`))));
  again.forEach((r, i) => assert.is(r.sha, sha256(files[i]!), `after the crash, file ${i}`));
  const s = fx.engine.stats();
  assert.is(s.accounts.alice!.inFlight, 0, 'no call left in flight by the dead worker');
  assert.is(s.spool.bytesInUse, 0, 'no spool accounting leaked by the dead worker');
  assert.is(s.memory.chunkBytesInUse, 0, 'no buffer accounting leaked by the dead worker');
  // The dead worker's spares are uncounted with its slot, the others' dropped after 2 s idle.
  const until = Date.now() + 10_000;
  while (fx.engine.stats().memory.spareBytes > 0 && Date.now() < until) await sleep(100);
  assert.is(fx.engine.stats().memory.spareBytes, 0, 'no spare accounting leaked by the dead worker');
});

test.run();
