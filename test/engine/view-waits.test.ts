// A download read as lent views (the RETR data path) keeps one ring wait at a time on the main
// thread while its views come back one by one, and delivers every byte. Main thread + a worker +
// the local box child.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { pendingWaits } from 'native-free-ringbuf';
import { createHash } from 'node:crypto';
import { KiB, MiB, contentOf, makePool, seed, sha256, startFixture } from './helpers.ts';
import type { Fixture } from './helpers.ts';

let fx: Fixture;
const pool = makePool(24 * MiB, 5);

test.before(async () => {
  fx = await startFixture({ workers: 1 });
});
test.after(async () => {
  await fx.stop();
});

test('view mode: views released one at a time, each a tick later, never leave waits behind', async () => {
  const data = contentOf(pool, 3, 24 * MiB - 5 * KiB);
  await seed(fx.box, fx.account.accessToken, '/views/big.bin', data);
  const down = fx.engine.openDownload('alice', '/views/big.bin');
  assert.ok(down.lendViews(), 'a fresh download lends views');
  const hash = createHash('sha256');
  let length = 0;
  let mostWaits = 0;
  // As a socket does: each view is handed back by its write's callback, a tick or two later, in
  // order; meanwhile the stream lends the next ones and waits on the ring when it runs dry.
  const lent: number[] = [];
  const giveBack = (): void => {
    mostWaits = Math.max(mostWaits, pendingWaits());
    const n = lent.shift();
    if (n !== undefined) down.release(n);
  };
  await new Promise<void>((resolve, reject) => {
    down.on('data', (view: Buffer) => {
      hash.update(view);
      length += view.length;
      lent.push(view.length);
      setImmediate(giveBack);
    });
    down.once('end', resolve);
    down.once('error', reject);
  });
  assert.is(length, data.length);
  assert.is(hash.digest('hex'), sha256(data));
  // Before the fix every release started a new wait and left the old one pending until a bell or
  // its 1 s fallback: dozens at once, each re-armed at every bell (garbage promoted by the heap).
  assert.ok(mostWaits <= 2, `at most one wait pending for the download (plus the engine's own), saw ${mostWaits}`);
});

test.run();
