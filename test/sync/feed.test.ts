// The directory cache against the real local box: initial sync over many pages, changes made
// through the HTTP API (uploads, deletes, folder moves) within 5 s, fan-out to subscribers,
// reset, 429/5xx on the feed routes, and a prompt close.
import { test } from 'uvu';
import { until } from '../helpers/wait.ts';
import * as assert from 'uvu/assert';
import type { CacheChange } from '../../src/sync/index.ts';
import { cacheTree, diffTrees, harness, sameTrees, sdkFor, serverTree, type Harness } from './helpers.ts';

let h: Harness;

test.before(async () => {
  h = await harness();
  // 12 folders × (1 subfolder + 20 files) + mixed-case names: ~290 entries.
  const uploads: Promise<unknown>[] = [];
  for (let f = 0; f < 12; f++) {
    await h.sdk.filesCreateFolderV2({ path: `/Dir${f}/Sub` });
    for (let i = 0; i < 20; i++) uploads.push(h.sdk.filesUpload({ path: `/Dir${f}/File ${i}.TXT`, contents: Buffer.from(`f${f} i${i}`) }));
    await Promise.all(uploads.splice(0));
  }
  await h.sdk.filesUpload({ path: '/MixedCase Ünïcode.Bin', contents: Buffer.alloc(1000, 7) });
});
test.after.each(async () => {
  // Faults are per route, not per cache: only the current test's cache may consume them.
  await Promise.all(h.caches.splice(0).map((c) => c.close()));
});
test.after(async () => {
  await h.cleanup();
});

async function matchesServer(cache: ReturnType<Harness['cache']>, timeoutMs = 5000): Promise<void> {
  const server = await serverTree(h.sdk);
  try {
    await until(() => sameTrees(cacheTree(cache), server), timeoutMs, 'cache equals the server listing');
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${diffTrees(cacheTree(cache), server)}`);
  }
}

test('initial sync over many pages equals the server listing; keys case-insensitive, names case-preserving', async () => {
  const cache = h.cache({ pageLimit: 25 });
  await cache.ready;
  const server = await serverTree(h.sdk);
  assert.ok(server.size > 250);
  assert.ok(cache.stats().requests >= Math.ceil(server.size / 25), `pages: ${cache.stats().requests}`);
  assert.is(cache.size, server.size);
  assert.ok(sameTrees(cacheTree(cache), server), diffTrees(cacheTree(cache), server));
  const e = cache.stat('/mixedcase ünïcode.bin')!;
  assert.is(e.name, 'MixedCase Ünïcode.Bin');
  assert.is(e.size, 1000);
  assert.equal(cache.stat('/MIXEDCASE ÜNÏCODE.BIN'), e);
  assert.is(cache.stat('/Dir3/FILE 7.txt')!.name, 'File 7.TXT');
  assert.is(cache.stat('/')!.tag, 'folder');
  assert.is(cache.list('/dir3')!.length, 21);
  assert.is(cache.list('/dir3/file 7.txt'), null, 'a file is not a folder');
  assert.is(cache.stat('/nope'), null);
});

test('a file uploaded through the HTTP API appears within 5 s, and subscribers of its folder hear of it', async () => {
  const cache = h.cache();
  await cache.ready;
  const heard: CacheChange[] = [];
  const unsubscribe = cache.subscribe('/Dir1', (c) => heard.push(c));
  const elsewhere: CacheChange[] = [];
  cache.subscribe('/Dir2', (c) => elsewhere.push(c));
  const uploaded = await h.sdk.filesUpload({ path: '/Dir1/Sub/New One.txt', contents: Buffer.from('hello') });
  const ms = await until(() => cache.stat('/dir1/sub/new one.txt')?.rev === uploaded.result.rev, 5000, 'upload visible');
  assert.ok(ms < 5000);
  assert.is(cache.stat('/dir1/sub/new one.txt')!.contentHash, uploaded.result.content_hash!);
  assert.ok(heard.some((c) => c.kind === 'upsert' && c.pathLower === '/dir1/sub/new one.txt'));
  assert.is(elsewhere.length, 0, 'a subscriber of another subtree hears nothing');
  unsubscribe();
  await h.sdk.filesUpload({ path: '/Dir1/After.txt', contents: Buffer.from('x') });
  await until(() => cache.stat('/dir1/after.txt') !== null, 5000, 'second upload');
  assert.not.ok(heard.some((c) => c.kind === 'upsert' && c.pathLower === '/dir1/after.txt'), 'no events after unsubscribe');
  console.log(`    upload → visible in cache: ${ms.toFixed(0)} ms`);
});

test('deletes and folder moves (with children) propagate; watchers below a removed folder hear it', async () => {
  const cache = h.cache();
  await cache.ready;
  const heard: CacheChange[] = [];
  cache.subscribe('/dir4/sub', (c) => heard.push(c));
  await h.sdk.filesUpload({ path: '/Dir4/Sub/deep.txt', contents: Buffer.from('deep') });
  await until(() => cache.stat('/dir4/sub/deep.txt') !== null, 5000, 'deep file');
  await h.sdk.filesDeleteV2({ path: '/Dir5' });
  await h.sdk.filesMoveV2({ from_path: '/Dir4', to_path: '/Moved/Dir4 Renamed' });
  await until(() => cache.stat('/dir4') === null && cache.stat('/dir5') === null && cache.stat('/moved/dir4 renamed/sub/deep.txt') !== null, 5000, 'move and delete');
  assert.is(cache.list('/moved/dir4 renamed')!.length, 21);
  assert.is(cache.stat('/moved/dir4 renamed')!.name, 'Dir4 Renamed');
  assert.is(cache.stat('/dir4/file 1.txt'), null, 'children of the moved folder left the old place');
  assert.is(cache.stat('/dir5/file 1.txt'), null, 'children of the deleted folder are gone');
  assert.ok(heard.some((c) => c.kind === 'delete' && (c.pathLower === '/dir4' || c.pathLower === '/dir4/sub')), JSON.stringify(heard));
  await matchesServer(cache);
});

test('reset: the cache rebuilds from scratch, announces it, equals the server and keeps following', async () => {
  const cache = h.cache({ pageLimit: 50 });
  await cache.ready;
  const resets: CacheChange[] = [];
  cache.subscribe('/dir6', (c) => c.kind === 'reset' && resets.push(c));
  // A cursor of another account's namespace: the box answers continue with 409 reset (reference §3.6).
  const bob = await h.box.createAccount(`bob${Date.now()}`);
  const foreign = await sdkFor(h.box, bob).filesListFolderGetLatestCursor({ path: '', recursive: true });
  const requestsBefore = cache.stats().requests;
  await h.sdk.filesUpload({ path: '/During Reset.txt', contents: Buffer.from('r') });
  cache._setCursorForTests(foreign.result.cursor);
  await until(() => cache.stats().resets === 1 && resets.length === 1, 5000, 'reset handled');
  assert.ok(cache.stats().requests - requestsBefore >= 1 + Math.ceil(cache.size / 50), 'a full listing was made again');
  await matchesServer(cache);
  await h.sdk.filesUpload({ path: '/After Reset.txt', contents: Buffer.from('a') });
  await until(() => cache.stat('/after reset.txt') !== null, 5000, 'feed continues after the rebuild');
});

test('429 (retry_after honoured) and 5xx on list_folder and continue lose no change', async () => {
  await h.box.setFaults({
    rules: [
      { kind: 'server_error', status: 503, routes: ['files/list_folder'], count: 1 },
      { kind: 'too_many_requests', routes: ['files/list_folder/continue'], retryAfterSec: 1, count: 1 },
    ],
  });
  const cache = h.cache({ pageLimit: 40 });
  const started = performance.now();
  await cache.ready;
  assert.ok(performance.now() - started >= 950, 'the 429 retry_after of 1 s was honoured');
  await matchesServer(cache);
  await h.box.setFaults({
    rules: [
      { kind: 'too_many_requests', routes: ['files/list_folder/continue'], retryAfterSec: 1, count: 1 },
      { kind: 'server_error', status: 500, routes: ['files/list_folder/continue'], count: 2 },
      { kind: 'server_error', status: 502, routes: ['files/list_folder/longpoll'], count: 1 },
    ],
  });
  for (let i = 0; i < 5; i++) await h.sdk.filesUpload({ path: `/Faulty/${i}.txt`, contents: Buffer.from(`v${i}`) });
  await h.sdk.filesDeleteV2({ path: '/Faulty/2.txt' });
  await h.sdk.filesMoveV2({ from_path: '/Faulty/3.txt', to_path: '/Faulty/three.txt' });
  await matchesServer(cache, 8000);
  const counts = await h.box.faultCounts();
  assert.ok((counts.too_many_requests ?? 0) >= 2 && (counts.server_error ?? 0) >= 3, JSON.stringify(counts));
  assert.ok(cache.stats().retries >= 4, JSON.stringify(cache.stats()));
  await h.box.setFaults({ rules: [] });
});

test('close() during a parked longpoll returns promptly', async () => {
  const cache = h.cache({ longpollTimeoutSec: 480 });
  await cache.ready;
  await new Promise((r) => setTimeout(r, 100)); // now parked in longpoll
  const started = performance.now();
  await cache.close();
  const ms = performance.now() - started;
  assert.ok(ms < 500, `close took ${ms.toFixed(0)} ms`);
  assert.ok(cache.stat('/dir1') !== null, 'the last known state stays readable after close');
});

test.run();
