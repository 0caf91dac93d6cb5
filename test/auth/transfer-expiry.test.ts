// Regression, defect "a transfer running when its access token expires fails": the engine's workers
// took the account's token when a transfer started and treated a 401 as fatal, so an upload or
// download mid-way when Dropbox expired the token (every 4 h, or early) ended in 451. Now a worker
// that gets a 401 asks the main thread, whose refresh hook is the token manager's
// refreshAfterExpired (one refresh per account), and goes on with the new token.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { TokenManager } from '../../src/auth/token-manager.ts';
import { adminOf, startLocalBox, type LocalBox } from '../../src/localbox/index.ts';
import { TransferEngine } from '../../src/transfer/index.ts';
import { MiB, fetchFile, makePool, seed, sha256, sleep } from '../engine/helpers.ts';

let dir = '';
let box: LocalBox;
let engine: TransferEngine;
let tokens: TokenManager;

async function tokenRequests(): Promise<number> {
  return (await box.faultCounts()).latency ?? 0;
}

test.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'dropftp-xfer-expiry-'));
  box = await startLocalBox({ dataDir: join(dir, 'box') });
  const alice = await box.createAccount('alice');
  engine = await TransferEngine.start({ workers: 1 });
  tokens = new TokenManager();
  tokens.add({ name: 'alice', apiUrl: box.url, contentUrl: box.url, appKey: alice.appKey, refreshToken: alice.refreshToken });
  tokens.onToken((t) => engine.setAccount(t));
  const [first] = await tokens.start();
  engine.setAccount(first!, { refresh: (stale) => tokens.refreshAfterExpired('alice', stale) });
  await box.setFaults({ rules: [{ kind: 'latency', routes: ['oauth2/token'], latencyMs: 1 }] });
});

test.after(async () => {
  tokens.close();
  await engine.destroy();
  await box.close();
  rmSync(dir, { recursive: true, force: true });
});

test('an upload and a download mid-way through an expiry finish, whole, after one refresh', async () => {
  const pool = makePool(16 * MiB, 5);
  const stored = pool.subarray(0, 12 * MiB);
  await seed(box, await tokens.accessToken('alice'), '/stored.bin', stored);
  const before = await tokenRequests();

  const upload = engine.openUpload('alice', '/sent.bin');
  const sent = pool.subarray(1 * MiB, 9 * MiB);
  const finished = new Promise<void>((resolve, reject) => (upload.once('finish', resolve), upload.once('error', reject)));
  upload.write(sent.subarray(0, 4 * MiB));
  const download = engine.openDownload('alice', '/stored.bin');
  download.pause();
  const chunks: Buffer[] = [];
  const ended = new Promise<void>((resolve, reject) => (download.once('end', resolve), download.once('error', reject)));
  download.on('data', (c: Buffer) => chunks.push(c));
  download.resume();
  await sleep(300);
  download.pause(); // slow consumer: the rest is fetched after the expiry

  await adminOf(box).adminCall('POST', 'expire-tokens', { account: 'alice' });
  upload.end(sent.subarray(4 * MiB));
  download.resume();
  await Promise.all([finished, ended]);

  assert.is(sha256(Buffer.concat(chunks)), sha256(stored));
  assert.is(sha256((await fetchFile(box, await tokens.accessToken('alice'), '/sent.bin'))!), sha256(sent));
  assert.is(await tokenRequests(), before + 1, 'one refresh for both transfers');
});

test.run();
