// This gateway's own writes show at once and survive the feed catching up without ever flapping
// back to an older state (the feed is slowed down on the wire and paged one change at a time so
// that it lags behind the writes); SyncRegistry shares one cache per account.
import { test } from 'uvu';
import { until } from '../helpers/wait.ts';
import * as assert from 'uvu/assert';
import { SyncRegistry, type DirectoryCache } from '../../src/sync/index.ts';
import { adminOf } from '../../src/localbox/index.ts';
import { cacheTree, diffTrees, harness, sameTrees, serverTree, type Harness } from './helpers.ts';

let h: Harness;

test.before(async () => {
  h = await harness();
  await h.sdk.filesUpload({ path: '/D.txt', contents: Buffer.from('d0') });
  await h.sdk.filesCreateFolderV2({ path: '/Tree/A/B' });
  for (let i = 0; i < 5; i++) await h.sdk.filesUpload({ path: `/Tree/A/f${i}.txt`, contents: Buffer.from(`${i}`) });
});
test.after.each(async () => {
  await h.box.setFaults({ rules: [] });
  await Promise.all(h.caches.splice(0).map((c) => c.close()));
});
test.after(async () => {
  await h.cleanup();
});

/** Records every distinct value of `read()` until stop() (sampled every tick, and on every event). */
function watch<T>(cache: DirectoryCache, path: string, read: () => T): { values: T[]; stop: () => void } {
  const values: T[] = [read()];
  const note = (): void => {
    const v = read();
    if (v !== values.at(-1)) values.push(v);
  };
  const unsubscribe = cache.subscribe(path, note);
  const timer = setInterval(note, 1).unref();
  return { values, stop: () => (unsubscribe(), clearInterval(timer)) };
}

async function slowFeed(): Promise<void> {
  await h.box.setFaults({ rules: [{ kind: 'latency', latencyMs: 150, routes: ['files/list_folder/continue'] }] });
}

async function caughtUp(cache: DirectoryCache): Promise<void> {
  const server = await serverTree(h.sdk);
  try {
    await until(() => cache.stats().pendingLocal === 0 && sameTrees(cacheTree(cache), server), 8000, 'caught up');
  } catch (err) {
    throw new Error(`${(err as Error).message}: ${JSON.stringify(cache.stats())}\n${diffTrees(cacheTree(cache), server)}`);
  }
}

test('an own overwrite shows at once; the older version the lagging feed reports later never shows again', async () => {
  const cache = h.cache({ pageLimit: 1 });
  await cache.ready;
  await slowFeed();
  const v1 = await h.sdk.filesUpload({ path: '/W.txt', contents: Buffer.from('v1 elsewhere'), mode: { '.tag': 'overwrite' } });
  const v2 = await h.sdk.filesUpload({ path: '/W.txt', contents: Buffer.from('v2 from this gateway'), mode: { '.tag': 'overwrite' } });
  cache.applyLocalWrite(v2.result as never);
  const seen = watch(cache, '/w.txt', () => cache.stat('/w.txt')?.rev ?? null);
  assert.is(cache.stat('/W.TXT')!.rev, v2.result.rev, 'visible at once');
  assert.is(cache.list('/')!.filter((e) => e.pathLower === '/w.txt').length, 1, 'listed once, at once');
  await caughtUp(cache);
  seen.stop();
  assert.equal(seen.values, [v2.result.rev], `never flapped to v1 (${v1.result.rev}): ${JSON.stringify(seen.values)}`);
  // The overlay is gone: a later change made elsewhere shows.
  const v3 = await h.sdk.filesUpload({ path: '/W.txt', contents: Buffer.from('v3 elsewhere'), mode: { '.tag': 'overwrite' } });
  await until(() => cache.stat('/w.txt')?.rev === v3.result.rev, 5000, 'v3 visible');
});

test('an own delete hides the file at once; the lagging feed never brings it back', async () => {
  const cache = h.cache({ pageLimit: 1 });
  await cache.ready;
  assert.ok(cache.stat('/d.txt'));
  await slowFeed();
  await h.sdk.filesUpload({ path: '/D.txt', contents: Buffer.from('d1 elsewhere'), mode: { '.tag': 'overwrite' } });
  await h.sdk.filesDeleteV2({ path: '/D.txt' });
  cache.applyLocalDelete('/D.txt');
  const seen = watch(cache, '/d.txt', () => cache.stat('/d.txt')?.rev ?? null);
  await caughtUp(cache);
  seen.stop();
  assert.equal(seen.values, [null], JSON.stringify(seen.values));
});

test('an own upload into new folders shows the folders (Dropbox creates parents) and the file at once', async () => {
  const cache = h.cache();
  await cache.ready;
  await slowFeed();
  const up = await h.sdk.filesUpload({ path: '/New Top/Deeper/Fresh.TXT', contents: Buffer.from('fresh') });
  cache.applyLocalWrite(up.result as never);
  assert.is(cache.stat('/new top')!.name, 'New Top');
  assert.is(cache.stat('/new top/deeper')!.tag, 'folder');
  assert.equal(cache.list('/new top/deeper')!.map((e) => e.name), ['Fresh.TXT']);
  await caughtUp(cache);
  assert.is(cache.stat('/new top/deeper/fresh.txt')!.rev, up.result.rev);
});

test('an own folder move shows the whole subtree at its new place at once; the old place is empty', async () => {
  const cache = h.cache({ pageLimit: 1 });
  await cache.ready;
  await slowFeed();
  const moved = await h.sdk.filesMoveV2({ from_path: '/Tree/A', to_path: '/Tree/Renamed A' });
  cache.applyLocalMove('/Tree/A', moved.result.metadata as never);
  assert.is(cache.stat('/tree/a'), null);
  assert.is(cache.stat('/tree/a/f1.txt'), null);
  assert.equal(cache.list('/tree/renamed a')!.map((e) => e.name).sort(), ['B', 'f0.txt', 'f1.txt', 'f2.txt', 'f3.txt', 'f4.txt']);
  assert.is(cache.stat('/tree/renamed a/f3.txt')!.size, 1);
  const seen = watch(cache, '/tree/renamed a/f3.txt', () => cache.stat('/tree/renamed a/f3.txt') !== null);
  await caughtUp(cache);
  seen.stop();
  assert.equal(seen.values, [true], 'never disappeared while the feed caught up');
});

test('an own mkdir after an own delete of the same folder does not resurrect the old children', async () => {
  const cache = h.cache();
  await cache.ready;
  await slowFeed();
  await h.sdk.filesDeleteV2({ path: '/Tree' });
  cache.applyLocalDelete('/Tree');
  const made = await h.sdk.filesCreateFolderV2({ path: '/tree' });
  cache.applyLocalWrite({ '.tag': 'folder', ...made.result.metadata } as never);
  assert.equal(cache.list('/tree'), []);
  assert.is(cache.stat('/tree/renamed a'), null);
  await caughtUp(cache);
  assert.equal(cache.list('/tree'), []);
});

test('defect: every own write aborted the parked longpoll — the write wakes it instead; all writes retire', async () => {
  // An abort closes the longpoll's keep-alive connection (the box records it as a reset): lftp's
  // mirror of 1,100 small files paid one per file. The write is a change of the feed, so the parked
  // longpoll answers by itself and the chain after it retires the write.
  const cache = h.cache({ longpollTimeoutSec: 480 });
  await cache.ready;
  // Each longpoll reaches the box's change log 300 ms after it was sent: writes made meanwhile find
  // it on its way (the mirror's case: its answer still unread when the commit's reply comes back).
  await h.box.setFaults({ rules: [{ kind: 'latency', latencyMs: 300, routes: ['files/list_folder/longpoll'] }] });
  await new Promise((r) => setTimeout(r, 100));
  const before = (await adminOf(h.box).calls()).routes['files/list_folder/longpoll']?.status.reset ?? 0;
  for (let i = 0; i < 8; i++) {
    const up = await h.sdk.filesUpload({ path: `/Own/w${i}.txt`, contents: Buffer.from(`own ${i}`) });
    cache.applyLocalWrite(up.result as never);
    assert.is(cache.stat(`/own/w${i}.txt`)!.rev, up.result.rev, 'visible at once');
    await new Promise((r) => setTimeout(r, 30));
  }
  await caughtUp(cache);
  const resets = ((await adminOf(h.box).calls()).routes['files/list_folder/longpoll']?.status.reset ?? 0) - before;
  assert.ok(resets <= 1, `${resets} longpolls cut off by the gateway for 8 own writes`);
});

test('SyncRegistry: one cache per account, shared; closed after the last holder left and the linger passed', async () => {
  const registry = new SyncRegistry({ lingerMs: 50, minBackoffMs: 50 });
  const account = { name: 'alice', apiUrl: h.box.url, accessToken: h.account.accessToken };
  const a = registry.acquire(account);
  const b = registry.acquire(account);
  assert.ok(a.cache === b.cache);
  await a.cache.ready;
  a.release();
  a.release(); // idempotent
  await new Promise((r) => setTimeout(r, 100));
  assert.is(registry.stats().length, 1, 'still held by b');
  b.release();
  await until(() => registry.stats().length === 0, 2000, 'closed after linger');
  const c = registry.acquire(account);
  assert.ok(c.cache !== a.cache, 'a fresh cache after the old one closed');
  await registry.close();
});

test.run();
