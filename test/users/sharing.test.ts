// Sharing through mounts and listings served from the per-account directory cache, through real
// FTP against the whole service on the local box: two users of different accounts and roots share
// one folder and see each other's writes at once; a read-only mount reads but never writes; mount
// points cannot be removed, renamed or written over; a change made through the local box's HTTP API
// shows in an FTP listing within 5 s; a `reset` of the change feed rebuilds the cache.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Dropbox } from 'dropbox';
import { DirectoryCache } from '../../src/sync/index.ts';
import { RawFtp, download, upload } from '../ftp/helpers/raw-client.ts';
import { putFile, readFileText, startUsersStack, storeTree, type UsersStack } from './helpers.ts';

let stack: UsersStack;
let team: Dropbox;
let local: Dropbox;
let alice: RawFtp;
let bob: RawFtp;
let carol: RawFtp;

test.before(async () => {
  stack = await startUsersStack({
    alice: { password: 'a', account: 'local', root: '/alice', mounts: ['/shared=team:/proj'] },
    bob: { password: 'b', account: 'team', root: '/bob', mounts: [{ path: '/shared', account: 'team', folder: '/proj' }] },
    carol: { password: 'c', account: 'local', root: '/carol', mounts: ['/pub=team:/proj:ro', '/deep/nested/share=team:/proj'] },
  });
  team = await stack.sdk('team');
  local = await stack.sdk('local');
  alice = await RawFtp.connect(stack.port);
  await alice.login('alice', 'a');
  bob = await RawFtp.connect(stack.port);
  await bob.login('bob', 'b');
  carol = await RawFtp.connect(stack.port);
  await carol.login('carol', 'c');
});

test.after(async () => {
  for (const c of [alice, bob, carol]) c?.close();
  await stack.stop();
});

async function names(c: RawFtp, dir: string): Promise<string[]> {
  const { final, data } = await download(c, `NLST ${dir}`);
  assert.is(final.code, 226, `NLST ${dir}: ${final.text}`);
  return data.toString('utf8').split('\r\n').filter(Boolean).sort();
}

async function within(ms: number, what: string, check: () => Promise<boolean>): Promise<number> {
  const started = Date.now();
  while (!(await check())) {
    if (Date.now() - started > ms) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return Date.now() - started;
}

test('two users of different accounts share a folder and see each other\'s writes at once', async () => {
  assert.ok((await names(alice, '/')).includes('shared'), 'the mount shows in alice\'s root');
  assert.is((await upload(alice, 'STOR /shared/from-alice.txt', Buffer.from('hello from alice'))).final.code, 226);
  assert.ok((await names(bob, '/shared')).includes('from-alice.txt'), 'bob lists alice\'s file in the very next listing');
  const got = await download(bob, 'RETR /shared/from-alice.txt');
  assert.is(got.data.toString(), 'hello from alice');
  assert.is((await upload(bob, 'STOR /shared/from-bob.txt', Buffer.from('bob here'))).final.code, 226);
  assert.ok((await names(alice, '/shared')).includes('from-bob.txt'));
  assert.is((await download(alice, 'RETR shared/from-bob.txt')).data.toString(), 'bob here');
  assert.is((await alice.cmd('MKD /shared/sub')).code, 257);
  assert.ok((await names(bob, '/shared')).includes('sub'));
  assert.is((await bob.cmd('RNFR /shared/from-alice.txt')).code, 350);
  assert.is((await bob.cmd('RNTO /shared/sub/moved.txt')).code, 250);
  assert.equal(await names(alice, '/shared/sub'), ['moved.txt']);
  assert.ok(!(await names(alice, '/shared')).includes('from-alice.txt'));
  assert.is((await alice.cmd('SIZE /shared/sub/moved.txt')).text, '213 16');
  // Where it really lives: team's /proj, neither alice's nor bob's root.
  assert.is(await readFileText(team, '/proj/sub/moved.txt'), 'hello from alice');
  const localTree = await storeTree(local);
  assert.ok(![...localTree.keys()].some((p) => p.includes('moved') || p.includes('from-bob')), 'nothing of it in alice\'s own account');
  assert.ok(!(await storeTree(team)).has('/bob/from-bob.txt'), 'bob\'s write went to the shared folder, not his root');
});

test('a read-only mount reads and lists, refuses every write; the user\'s own root stays writable', async () => {
  assert.ok((await names(carol, '/pub')).includes('from-bob.txt'));
  assert.is((await download(carol, 'RETR /pub/from-bob.txt')).data.toString(), 'bob here');
  for (const line of ['STOR /pub/x.txt', 'APPE /pub/from-bob.txt', 'STOR /pub/from-bob.txt', 'STOU /pub/x']) {
    assert.ok([550, 553].includes((await upload(carol, line, Buffer.from('no'))).first.code), line);
  }
  for (const line of ['DELE /pub/from-bob.txt', 'MKD /pub/d', 'XMKD /pub/d', 'RMD /pub/sub', 'XRMD /pub/sub', 'RNFR /pub/from-bob.txt']) {
    const r = await carol.cmd(line);
    assert.ok([550, 553].includes(r.code), `${line}: ${r.text}`);
  }
  assert.is((await upload(carol, 'STOR /mine.txt', Buffer.from('mine'))).final.code, 226);
  // The same folder, mounted read-write deeper in carol's tree (its parents exist only virtually).
  assert.equal(await names(carol, '/deep'), ['nested']);
  assert.is((await carol.cmd('CWD /deep/nested/share')).code, 250);
  assert.ok((await names(carol, '.')).includes('from-bob.txt'));
  assert.is((await upload(carol, 'STOR carol.txt', Buffer.from('rw here'))).final.code, 226);
  assert.is(await readFileText(team, '/proj/carol.txt'), 'rw here');
  assert.is((await carol.cmd('CWD /')).code, 250);
  assert.equal((await storeTree(team)).get('/proj/from-bob.txt')?.startsWith('file '), true, 'still there');
});

test('mount points cannot be removed, renamed, written over; nothing moves across accounts', async () => {
  for (const line of ['RMD /shared', 'XRMD /shared', 'DELE /shared', 'MKD /shared']) {
    const r = await alice.cmd(line);
    assert.ok([550, 553].includes(r.code), `${line}: ${r.text}`);
  }
  assert.ok([550, 553].includes((await upload(alice, 'STOR /shared', Buffer.from('x'))).first.code));
  assert.is((await alice.cmd('RNFR /shared')).code, 550, 'RNFR of a mount point');
  assert.is((await alice.cmd('RNFR /shared/from-bob.txt')).code, 350);
  assert.is((await alice.cmd('RNTO /stolen.txt')).code, 550, 'cross-account rename refused');
  assert.is((await carol.cmd('RMD /deep')).code, 550, 'a folder holding a mount point');
  assert.ok((await names(alice, '/shared')).includes('from-bob.txt'));
  assert.ok((await names(alice, '/')).includes('shared'));
});

test('a file uploaded through the local box HTTP API shows in FTP listings within 5 s; a delete too', async () => {
  const store = await stack.service.accounts.get('team');
  assert.ok(store.cache?.isReady, 'team\'s directory cache is following its feed');
  const hitsBefore = store.stats.cacheHits;
  await putFile(team, '/proj/via-http.txt', 'made elsewhere');
  const seenMs = await within(5000, 'alice lists via-http.txt', async () => (await names(alice, '/shared')).includes('via-http.txt'));
  assert.ok(seenMs < 5000, `seen after ${seenMs} ms`);
  assert.ok(store.stats.cacheHits > hitsBefore, 'listings were served from the cache');
  assert.ok((await names(bob, '/shared')).includes('via-http.txt'));
  await putFile(local, '/alice/own-http.txt', 'local account too');
  await within(5000, 'alice lists own-http.txt', async () => (await names(alice, '/')).includes('own-http.txt'));
  await team.filesDeleteV2({ path: '/proj/via-http.txt' });
  await within(5000, 'the delete shows', async () => !(await names(bob, '/shared')).includes('via-http.txt'));
});

test('a reset of the change feed rebuilds the cache; listings stay right', async () => {
  const store = await stack.service.accounts.get('team');
  const cache = store.cache!;
  const resetsBefore = cache.stats().resets;
  // A cursor of another account: the box answers continue with 409 reset (dropbox-api.md §3.6).
  const foreign = await local.filesListFolderGetLatestCursor({ path: '', recursive: true });
  await putFile(team, '/proj/during-reset.txt', 'r');
  cache._setCursorForTests(foreign.result.cursor);
  await within(5000, 'reset handled', async () => cache.stats().resets > resetsBefore);
  await within(5000, 'listing after reset', async () => (await names(alice, '/shared')).includes('during-reset.txt'));
  assert.ok((await names(bob, '/shared')).includes('from-bob.txt'));
  await putFile(team, '/proj/after-reset.txt', 'a');
  await within(5000, 'feed continues after the rebuild', async () => (await names(bob, '/shared')).includes('after-reset.txt'));
});

test('the feed asks a token provider for each request (short-lived tokens rotate under a long-running cache)', async () => {
  const token = await stack.service.accounts.accessToken('team');
  let asked = 0;
  const cache = new DirectoryCache({ apiUrl: stack.service.box.url, accessToken: 'an-expired-token', tokens: { get: async () => (asked++, token) }, name: 'rotating' }).start();
  try {
    await Promise.race([cache.ready, new Promise((_, reject) => setTimeout(() => reject(new Error('cache never ready')), 5000))]);
    assert.ok(asked > 0);
    assert.ok(cache.list('/proj')!.some((e) => e.name === 'from-bob.txt'));
  } finally {
    await cache.close();
  }
});

test.run();
