// The engine through the real local box: round trips of edge sizes, ranged reads, metadata, both
// executors (workers and main-thread baseline), and the error paths a client sees (missing file,
// bad offset, unknown account). Main thread + the engine's workers + the box child.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DropftpError } from '../../src/errors.ts';
import { contentHash } from '../../src/transfer/index.ts';
import { KiB, MiB, contentOf, drain, feed, fetchFile, makePool, seed, sha256, startFixture } from './helpers.ts';
import type { Fixture } from './helpers.ts';

let fx: Fixture;
const pool = makePool(12 * MiB, 7);

test.before(async () => {
  fx = await startFixture({ workers: 2 });
});
test.after(async () => {
  await fx.stop();
});

test('uploads of edge sizes commit byte-exact and report the committed metadata', async () => {
  const sizes = [0, 1, 4 * MiB - 1, 4 * MiB, 4 * MiB + 1, 9 * MiB + 333];
  await Promise.all(
    sizes.map(async (size, i) => {
      const data = contentOf(pool, i, size);
      const up = fx.engine.openUpload('alice', `/edge/f${size}.bin`);
      await feed(up, data, 100 * KiB + 7);
      assert.ok(up.metadata, 'metadata after finish');
      assert.is(up.metadata!.size, size);
      assert.is(up.metadata!.content_hash, contentHash(data));
      const stored = await fetchFile(fx.box, fx.account.accessToken, `/edge/f${size}.bin`);
      assert.is(stored && sha256(stored), sha256(data), `stored bytes of ${size}`);
    }),
  );
});

test('downloads of edge sizes arrive byte-exact and verified', async () => {
  const sizes = [0, 1, 4 * MiB, 4 * MiB + 1, 9 * MiB + 333];
  await Promise.all(sizes.map((size, i) => seed(fx.box, fx.account.accessToken, `/dl/f${size}.bin`, contentOf(pool, 50 + i, size))));
  await Promise.all(
    sizes.map(async (size, i) => {
      const down = fx.engine.openDownload('alice', `/dl/f${size}.bin`);
      const got = await drain(down);
      assert.is(got.length, size);
      assert.is(got.sha, sha256(contentOf(pool, 50 + i, size)));
      assert.is(down.metadata?.size, size);
      assert.ok(down.verified, 'whole-file read verified against content_hash');
    }),
  );
});

test('a download from an offset returns the tail', async () => {
  const data = contentOf(pool, 99, 5 * MiB + 17);
  await seed(fx.box, fx.account.accessToken, '/dl/offset.bin', data);
  for (const offset of [1, 4 * MiB, 5 * MiB + 16, 5 * MiB + 17]) {
    const got = await drain(fx.engine.openDownload('alice', '/dl/offset.bin', { offset }));
    assert.is(got.sha, sha256(data.subarray(offset)), `offset ${offset}`);
  }
});

test('a missing file fails with DROPFTP_ERR_NOT_FOUND; an unknown account throws at once', async () => {
  const err = await drain(fx.engine.openDownload('alice', '/nope.bin')).then(
    () => null,
    (e: unknown) => e,
  );
  assert.instance(err, DropftpError);
  assert.is((err as DropftpError).code, 'DROPFTP_ERR_NOT_FOUND');
  assert.throws(() => fx.engine.openDownload('mallory', '/x'), (e: unknown) => e instanceof DropftpError && e.code === 'DROPFTP_ERR_CONFIG');
  assert.throws(() => fx.engine.openDownload('alice', '/x', { offset: -1 }), (e: unknown) => e instanceof DropftpError && e.code === 'DROPFTP_ERR_BAD_OFFSET');
});

test('the main-thread baseline moves the same bytes through the same code', async () => {
  const { TransferEngine } = await import('../../src/transfer/index.ts');
  const engine = await TransferEngine.start({ onlyMainThread: true });
  try {
    engine.setAccount({ name: 'alice', apiUrl: fx.box.url, contentUrl: fx.box.url, accessToken: fx.account.accessToken });
    const data = contentOf(pool, 7, 6 * MiB + 5);
    const up = engine.openUpload('alice', '/main/a.bin');
    await feed(up, data);
    const got = await drain(engine.openDownload('alice', '/main/a.bin'));
    assert.is(got.sha, sha256(data));
    assert.is(engine.stats().threads, 0);
  } finally {
    await engine.close();
  }
});

test('stats report the memory budget and the account budget, and return to idle', async () => {
  const s = fx.engine.stats();
  assert.is(s.threads, 2);
  assert.is(s.activeDownloads + s.activeUploads, 0);
  assert.is(s.memory.ringBytesInUse, 0);
  assert.is(s.memory.chunkBytesInUse, 0);
  assert.ok(s.accounts.alice!.callsPerSecond >= 1);
  assert.is(s.accounts.alice!.inFlight, 0);
});

test.run();
