// Many uploads at once whose clients run into a small lead, pause at random and write pieces of
// random sizes (seeded: src/util/prng.ts), some with resets in the middle of their calls' bodies,
// 503s answered before a body is read, slow answers, and small memory shares that send bytes through
// the spool: every one commits byte-exact, and none hangs (each must finish within a deadline). The
// reader, the sender and a streamed call's body of an upload wake each other; a wake-up lost among
// them would park an upload for ever. Main thread + 2 workers + the box child, over HTTP.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Writable } from 'node:stream';
import { contentHash } from '../../src/localbox/index.ts';
import { mulberry32 } from '../../src/util/prng.ts';
import { KiB, MiB, contentOf, fetchFile, makePool, sha256, sleep, startFixture } from './helpers.ts';
import type { Fixture } from './helpers.ts';

let fx: Fixture;
const pool = makePool(16 * MiB, 47);
const DEADLINE_MS = 90_000;
const UPLOAD_ROUTES = ['files/upload_session/start', 'files/upload_session/append_v2'];

test.before(async () => {
  // 4 MiB of rings and retention for 24 uploads: most bytes of a call wait in the spool.
  fx = await startFixture({ workers: 2, memoryBudgetBytes: 4 * MiB, appendMemoryBytes: 256 * KiB });
});
test.after(async () => {
  await fx.stop();
});

/** Writes `data` in pieces of 1 KiB-512 KiB, pausing up to 30 ms before one piece in four. */
async function feedJittery(stream: Writable, data: Buffer, rand: () => number): Promise<void> {
  const finished = new Promise<void>((resolve, reject) => {
    stream.once('error', reject);
    stream.once('finish', resolve);
  });
  let off = 0;
  while (off < data.length) {
    if (rand() < 0.25) await sleep(Math.floor(rand() * 30));
    const n = Math.min(data.length - off, 1024 + Math.floor(rand() * 511 * KiB));
    const ok = stream.write(data.subarray(off, off + n));
    off += n;
    if (!ok) await new Promise<void>((resolve) => stream.once('drain', () => resolve()));
  }
  stream.end();
  await finished;
}

for (const seed of [1, 2, 3]) {
  test(`24 uploads at a 64-256 KiB lead, jittery clients, resets mid-body (seed ${seed}): all byte-exact, none hangs`, async () => {
    const rand = mulberry32(seed * 7919);
    await fx.box.setFaults({
      rules: [
        { kind: 'reset', routes: UPLOAD_ROUTES, afterBytes: 700 * KiB, count: 6 },
        // An answer before the body is read: the request is over while its body may still be parked.
        { kind: 'server_error', status: 503, routes: UPLOAD_ROUTES, probability: 0.2, count: 6 },
        { kind: 'latency', latencyMs: 40, routes: UPLOAD_ROUTES, probability: 0.3 },
      ],
    });
    try {
      const jobs = Array.from({ length: 24 }, (_, i) => {
        const data = contentOf(pool, seed * 100 + i, 512 * KiB + Math.floor(rand() * 6 * MiB));
        const path = `/stress/${seed}/${i}.bin`;
        const lead = (64 + Math.floor(rand() * 192)) * KiB;
        const up = fx.engine.openUpload('alice', path, { testHooks: { leadBytes: lead } });
        const done = feedJittery(up, data, mulberry32(seed * 31 + i)).then(() => up.metadata as Record<string, unknown> | undefined);
        return { data, path, done };
      });
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`uploads still running after ${DEADLINE_MS} ms`)), DEADLINE_MS);
      });
      try {
        const metas = await Promise.race([Promise.all(jobs.map((j) => j.done)), deadline]);
        for (const [i, job] of jobs.entries()) {
          assert.is(metas[i]?.size, job.data.length, `${job.path} size`);
          assert.is(metas[i]?.content_hash, contentHash(job.data), `${job.path} content_hash`);
          const stored = await fetchFile(fx.box, fx.account.accessToken, job.path);
          assert.is(stored && sha256(stored), sha256(job.data), `${job.path} stored bytes`);
        }
      } finally {
        clearTimeout(timer);
      }
    } finally {
      await fx.box.setFaults({ rules: [] });
    }
  });
}

test.run();
