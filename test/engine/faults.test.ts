// Acceptance under injected faults (the local box on the wire): with 429s, 5xx, latency and
// mid-body resets on 20% of requests every transfer completes byte-exact; with a corrupted byte a
// download fails with DROPFTP_ERR_INTEGRITY and never ends as a success.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DropftpError } from '../../src/errors.ts';
import { KiB, MiB, contentOf, drain, feed, fetchFile, makePool, seed, sha256, startFixture } from './helpers.ts';
import type { Fixture } from './helpers.ts';

let fx: Fixture;
const pool = makePool(20 * MiB, 5);
const N = 40;
const sizeOf = (i: number) => [0, 1, 4 * MiB + 1, 9 * MiB][i] ?? Math.floor(2 ** (8 + ((i * 37) % 15))) + i;

test.before(async () => {
  fx = await startFixture({ workers: 2 });
});
test.after(async () => {
  await fx.stop();
});

test('with 20% of requests faulted (429, 5xx, latency, resets) every transfer completes byte-exact', async () => {
  await Promise.all(Array.from({ length: N }, (_, i) => seed(fx.box, fx.account.accessToken, `/f/d${i}.bin`, contentOf(pool, 100 + i, sizeOf(i)))));
  await fx.box.setFaults({
    seed: 42,
    rules: [
      { kind: 'too_many_requests', probability: 0.05, retryAfterSec: 0 },
      { kind: 'server_error', probability: 0.05, status: 503 },
      { kind: 'latency', probability: 0.05, latencyMs: 80 },
      { kind: 'reset', probability: 0.05, afterBytes: 100 * KiB },
    ],
  });
  const uploads = Array.from({ length: N }, async (_, i) => {
    const data = contentOf(pool, i, sizeOf(i));
    const up = fx.engine.openUpload('alice', `/f/u${i}.bin`);
    await feed(up, data, 128 * KiB);
  });
  const downloads = Array.from({ length: N }, async (_, i) => {
    const got = await drain(fx.engine.openDownload('alice', `/f/d${i}.bin`));
    assert.is(got.sha, sha256(contentOf(pool, 100 + i, sizeOf(i))), `download ${i}`);
  });
  await Promise.all([...uploads, ...downloads]);
  const counts = await fx.box.faultCounts();
  await fx.box.setFaults({ rules: [] });
  const fired = ['too_many_requests', 'server_error', 'latency', 'reset'].filter((kind) => (counts[kind] ?? 0) > 0);
  assert.ok(fired.length >= 3, `faults fired: ${JSON.stringify(counts)}`);
  assert.ok(fx.engine.stats().retries > 0);
  for (let i = 0; i < N; i++) {
    const stored = await fetchFile(fx.box, fx.account.accessToken, `/f/u${i}.bin`);
    assert.is(stored && sha256(stored), sha256(contentOf(pool, i, sizeOf(i))), `upload ${i}`);
  }
});

test('a corrupted byte fails the download with DROPFTP_ERR_INTEGRITY, never a clean end', async () => {
  const data = contentOf(pool, 7, 6 * MiB + 1);
  await seed(fx.box, fx.account.accessToken, '/f/corrupt.bin', data);
  await fx.box.setFaults({ rules: [{ kind: 'corrupt', routes: ['files/download'], afterBytes: 5 * MiB, count: 1 }] });
  const down = fx.engine.openDownload('alice', '/f/corrupt.bin');
  const outcome = await drain(down).then(
    (r) => ({ ended: true as const, r }),
    (e: unknown) => ({ ended: false as const, e }),
  );
  await fx.box.setFaults({ rules: [] });
  assert.not.ok(outcome.ended, 'the stream must not end cleanly');
  if (!outcome.ended) {
    assert.instance(outcome.e, DropftpError);
    assert.is((outcome.e as DropftpError).code, 'DROPFTP_ERR_INTEGRITY');
  }
  assert.not.ok(down.verified);
  // Without the fault the same file reads clean.
  const clean = await drain(fx.engine.openDownload('alice', '/f/corrupt.bin'));
  assert.is(clean.sha, sha256(data));
});

test('an upload aborted while faults fly commits nothing', async () => {
  const v1 = contentOf(pool, 8, 300 * KiB);
  await seed(fx.box, fx.account.accessToken, '/f/keep.bin', v1);
  await fx.box.setFaults({ seed: 7, rules: [{ kind: 'server_error', probability: 0.2 }, { kind: 'reset', probability: 0.2, afterBytes: 1000 }] });
  const up = fx.engine.openUpload('alice', '/f/keep.bin');
  const failed = new Promise((resolve) => up.once('error', resolve));
  up.write(contentOf(pool, 9, 3 * MiB));
  setTimeout(() => up.abort(), 50);
  await failed;
  await up.result;
  await fx.box.setFaults({ rules: [] });
  const stored = await fetchFile(fx.box, fx.account.accessToken, '/f/keep.bin');
  assert.is(stored && sha256(stored), sha256(v1));
});

test.run();
