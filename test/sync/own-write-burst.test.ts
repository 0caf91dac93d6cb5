// A burst of this gateway's own writes costs a few list_folder/continue calls, not one per write:
// chains asked only by own writes are spaced minBackoffMs apart, every write shows at once through
// the overlay, and the feed still catches up with all of them; refresh() is not held back; a write
// the feed already brought (its longpoll woke before the commit's reply) is not left pending.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { sleep, until } from '../helpers/wait.ts';
import { cacheTree, harness, sameTrees, serverTree, type Harness } from './helpers.ts';

let h: Harness;

test.before(async () => {
  h = await harness();
});
test.after(async () => {
  await h.cleanup();
});

test('40 own uploads in a row: every one visible at once, a handful of continue chains, then caught up', async () => {
  const cache = h.cache({ minBackoffMs: 400 });
  await cache.ready;
  const before = cache.stats().requests;
  const startedMs = Date.now();
  for (let i = 0; i < 40; i++) {
    const res = await h.sdk.filesUpload({ path: `/burst/f${i}.txt`, contents: Buffer.from(`file ${i}`) });
    cache.applyLocalWrite(res.result as never);
    assert.is(cache.stat(`/burst/f${i}.txt`)?.rev, res.result.rev, `f${i} visible at once`);
  }
  const burstMs = Date.now() - startedMs;
  const server = await serverTree(h.sdk);
  await until(() => cache.stats().pendingLocal === 0 && sameTrees(cacheTree(cache), server), 8000, 'caught up');
  const chains = cache.stats().requests - before;
  // One chain at once, then at most one per 400 ms of the burst, and the one that retires the last writes.
  const allowed = 2 + Math.ceil(burstMs / 400);
  assert.ok(chains <= allowed, `${chains} continue calls for 40 writes in ${burstMs} ms (at most ${allowed})`);
});

test('refresh() during the spacing asks the feed at once', async () => {
  const cache = h.cache({ minBackoffMs: 5000 });
  await cache.ready;
  const own = await h.sdk.filesUpload({ path: '/burst/own.txt', contents: Buffer.from('own'), mode: { '.tag': 'overwrite' } });
  cache.applyLocalWrite(own.result as never); // the first chain goes at once and spaces the next by 5 s
  await until(() => cache.stats().pendingLocal === 0, 4000, 'first chain');
  const again = await h.sdk.filesUpload({ path: '/burst/own.txt', contents: Buffer.from('own 2'), mode: { '.tag': 'overwrite' } });
  cache.applyLocalWrite(again.result as never); // waits out the spacing...
  const elsewhere = await h.sdk.filesUpload({ path: '/burst/elsewhere.txt', contents: Buffer.from('x') });
  cache.refresh(); // ...unless asked
  await until(() => cache.stat('/burst/elsewhere.txt')?.rev === elsewhere.result.rev, 2000, 'change made elsewhere visible well before the 5 s spacing');
});

test('an own write the feed already shows is not left pending for a spaced chain', async () => {
  // A short spacing, so a write left pending would draw its chain within the wait below: the parked
  // longpoll is cut 1 s after an own write, and the chain follows at most 1 s after the last one.
  const cache = h.cache({ minBackoffMs: 1000 });
  await cache.ready;
  const up = await h.sdk.filesUpload({ path: '/burst/seen-first.txt', contents: Buffer.from('seen') });
  cache.refresh(); // the feed brings the commit before the gateway applies its reply
  await until(() => cache.stat('/burst/seen-first.txt')?.rev === up.result.rev, 4000, 'feed shows the upload');
  const requests = cache.stats().requests;
  cache.applyLocalWrite(up.result as never);
  assert.is(cache.stats().pendingLocal, 0, 'the write is confirmed by the feed at once');
  assert.is(cache.stat('/burst/seen-first.txt')?.rev, up.result.rev);
  await sleep(2500);
  assert.is(cache.stats().requests, requests, 'no chain asked for it');
});

test.run();
