// A download that outruns its reader copies the rest of a body piece the ring could not take into a
// buffer of the worker's pool (workers/download-task.ts), given back once the ring took it. Three
// slow readers on one worker, with resets and short bodies on the wire, share that pool: a buffer
// given back too early would carry another download's bytes into this one's ring.
// Main thread + 1 worker + the box child.

import type { Readable } from 'node:stream';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { KiB, MiB, contentOf, makePool, seed, sha256, startFixture } from './helpers.ts';
import type { Fixture } from './helpers.ts';

let fx: Fixture;
const pool = makePool(16 * MiB, 41);

test.before(async () => {
  fx = await startFixture({ workers: 1 });
});
test.after(async () => {
  await fx.stop();
});

/** Reads the stream in bursts with pauses between them, so the worker keeps finding its ring full. */
function slowRead(stream: Readable): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let turn = 0;
    const tick = setInterval(() => {
      if (turn++ % 2 === 0) stream.pause();
      else stream.resume();
    }, 3);
    stream.on('data', (c: Buffer) => chunks.push(Buffer.from(c)));
    stream.once('end', () => {
      clearInterval(tick);
      resolve(Buffer.concat(chunks));
    });
    stream.once('error', (err) => {
      clearInterval(tick);
      reject(err);
    });
  });
}

test('slow downloads sharing a worker get their own bytes while resets and short bodies fly', async () => {
  const files = [contentOf(pool, 1, 5 * MiB + 17), contentOf(pool, 2, 4 * MiB + 333), contentOf(pool, 3, 6 * MiB)];
  for (let i = 0; i < files.length; i++) await seed(fx.box, fx.account.accessToken, `/dp/f${i}.bin`, files[i]!);
  await fx.box.setFaults({
    seed: 5,
    rules: [
      { kind: 'reset', probability: 0.3, afterBytes: 700 * KiB + 3, routes: ['files/download'] },
      { kind: 'short_body', probability: 0.2, bytes: 900 * KiB + 1, routes: ['files/download'] },
    ],
  });
  const got = await Promise.all(files.map((_, i) => slowRead(fx.engine.openDownload('alice', `/dp/f${i}.bin`))));
  await fx.box.setFaults({ rules: [] });
  for (let i = 0; i < files.length; i++) {
    assert.is(got[i]!.length, files[i]!.length, `f${i} length`);
    assert.is(sha256(got[i]!), sha256(files[i]!), `f${i} bytes`);
  }
  // Every pooled rest came back (nothing stays charged).
  assert.is(fx.engine.stats().memory.chunkBytesInUse, 0);
});

test.run();
