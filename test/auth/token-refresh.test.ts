// The token manager against the local box's /oauth2/token: a 401 expired_access_token in the middle
// of a run is refreshed exactly once for any number of concurrent callers (the box counts token
// requests: a latency rule on the oauth2/token route fires once per request), the RPC calls go on,
// and the engine's new transfers run with the new token; a token near its expiry is refreshed on
// use, once; a refused refresh token is a clear error, not a retry loop.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { TokenManager, type RefreshEvent } from '../../src/auth/token-manager.ts';
import { DropboxRpc, closeSharedAgent } from '../../src/dropbox/rpc.ts';
import { DropftpError } from '../../src/errors.ts';
import { adminOf, startLocalBox, type LocalBox, type LocalBoxAccount } from '../../src/localbox/index.ts';
import { TransferEngine } from '../../src/transfer/index.ts';
import { drain, feed, sha256 } from '../engine/helpers.ts';

let dir = '';
let box: LocalBox;
let alice: LocalBoxAccount;
let engine: TransferEngine;
let offsetMs = 0;
const events: RefreshEvent[] = [];
let tokens: TokenManager;

async function tokenRequests(): Promise<number> {
  return (await box.faultCounts()).latency ?? 0;
}

test.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'dropftp-tokens-'));
  box = await startLocalBox({ dataDir: join(dir, 'box') });
  alice = await box.createAccount('alice');
  engine = await TransferEngine.start({ workers: 1 });
  tokens = new TokenManager({ clock: () => Date.now() + offsetMs, onRefresh: (e) => events.push(e) });
  tokens.add({ name: 'alice', apiUrl: box.url, contentUrl: box.url, appKey: alice.appKey, refreshToken: alice.refreshToken });
  tokens.onToken((t) => engine.setAccount(t));
  await tokens.start();
  // Every token request from here on is counted by the box (and slowed, so that callers overlap).
  await box.setFaults({ rules: [{ kind: 'latency', routes: ['oauth2/token'], latencyMs: 150 }] });
});

test.after(async () => {
  tokens.close();
  await engine.destroy();
  await closeSharedAgent();
  await box.close();
  rmSync(dir, { recursive: true, force: true });
});

test('401 expired_access_token mid-run: 20 concurrent RPC calls cause one refresh, all succeed; new transfers use the new token', async () => {
  const rpc = new DropboxRpc({ name: 'alice', apiUrl: box.url, tokens: tokens.provider('alice') });
  const data = Buffer.alloc(300_000, 7);
  await feed(engine.openUpload('alice', '/before.bin'), data);
  await rpc.createFolder('/dir');
  const before = tokens.current('alice');
  const requestsBefore = await tokenRequests();

  const { expired } = await adminOf(box).adminCall<{ expired: number }>('POST', 'expire-tokens', { account: 'alice' });
  assert.ok(expired >= 1);
  // 20 calls at once, none shared by the RPC client's in-flight dedup (hasChildren is not shared).
  const results = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? rpc.hasChildren('') : rpc.hasChildren('/dir'))));
  assert.equal(results, Array.from({ length: 20 }, (_, i) => i % 2 === 1));
  assert.is(await tokenRequests(), requestsBefore + 1, 'one refresh request for 20 callers');
  assert.is.not(tokens.current('alice'), before);
  assert.equal(events.filter((e) => e.reason === 'expired_access_token').map((e) => e.ok), [true]);

  // The engine got the new token: a new upload and a download both work after the expiry.
  await feed(engine.openUpload('alice', '/after.bin'), data);
  const read = await drain(engine.openDownload('alice', '/before.bin'));
  assert.is(read.sha, sha256(data));
  assert.is((await rpc.getMetadata('/after.bin')).size, data.length);
  assert.is(await tokenRequests(), requestsBefore + 1, 'nothing refreshed again');
});

test('a token near its expiry is refreshed on use, once for many callers, and handed to the engine', async () => {
  const rpc = new DropboxRpc({ name: 'alice', apiUrl: box.url, tokens: tokens.provider('alice') });
  const before = tokens.current('alice');
  const requestsBefore = await tokenRequests();
  let engineGot = '';
  const off = tokens.onToken((t) => (engineGot = t.accessToken));
  // The box grants 14,400 s; 60 s before the end is inside the 5 min margin.
  offsetMs = 14_400_000 - 60_000;
  const got = await Promise.all(Array.from({ length: 10 }, () => tokens.accessToken('alice')));
  off();
  assert.is(new Set(got).size, 1);
  assert.is.not(got[0], before);
  assert.is(engineGot, got[0]);
  assert.is(await tokenRequests(), requestsBefore + 1);
  assert.ok(events.some((e) => e.reason === 'expiry' && e.ok));
  // No 401 was needed: the old token still works on the box, but the new one is what calls use.
  assert.is((await rpc.currentAccount()).accountId, alice.accountId);
  offsetMs = 0;
});

test('a refused refresh token fails with DROPFTP_ERR_UPSTREAM_AUTH after one request (no retry loop)', async () => {
  const broken = new TokenManager();
  broken.add({ name: 'gone', apiUrl: box.url, contentUrl: box.url, appKey: alice.appKey, refreshToken: 'revoked-or-wrong' });
  const requestsBefore = await tokenRequests();
  try {
    await broken.accessToken('gone');
    assert.unreachable('refresh should fail');
  } catch (err) {
    assert.instance(err, DropftpError);
    assert.is((err as DropftpError).code, 'DROPFTP_ERR_UPSTREAM_AUTH');
    assert.match((err as Error).message, /invalid_grant/);
  }
  assert.is(await tokenRequests(), requestsBefore + 1);
  broken.close();
  try {
    await tokens.accessToken('nobody');
    assert.unreachable('unknown account');
  } catch (err) {
    assert.match((err as Error).message, /dropftp auth --account nobody/);
  }
});

test.run();
