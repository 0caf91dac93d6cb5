// Several storage accounts side by side through the whole service: the embedded local box's own
// account and an account of the credentials file that points at another base URL (a second local
// box standing in for Dropbox). Each FTP user names one; files land in the right store; expiring
// the second store's tokens refreshes that account only, and its users carry on; an account linked
// while the server runs is picked up by a reload.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { Client } from 'basic-ftp';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { saveAccount } from '../../src/auth/credentials-file.ts';
import { adminOf, startLocalBox, type LocalBox, type LocalBoxAccount } from '../../src/localbox/index.ts';
import { startDropftp, type Dropftp } from '../../src/server.ts';
import { fetchFile } from '../engine/helpers.ts';
import { writeUsers } from '../users/helpers.ts';

let dir = '';
let remote: LocalBox;
let carol: LocalBoxAccount;
let service: Dropftp;

async function ftp(user: string): Promise<Client> {
  const client = new Client(20_000);
  await client.access({ host: '127.0.0.1', port: service.port, user, password: `${user}-secret` });
  return client;
}

test.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'dropftp-accounts-'));
  remote = await startLocalBox({ dataDir: join(dir, 'remote') });
  carol = await remote.createAccount('carol');
  // What `dropftp auth --account ext --api-url <remote>` stores (that flow has its own test).
  await saveAccount(join(dir, 'data', 'credentials.yaml'), 'ext', {
    appKey: carol.appKey,
    refreshToken: carol.refreshToken,
    apiUrl: remote.url,
    contentUrl: remote.url,
  });
  await writeUsers(join(dir, 'data', 'users.yaml'), {
    loc: { password: 'loc-secret' },
    far: { password: 'far-secret', account: 'ext' },
  });
  service = await startDropftp({ dataDir: join(dir, 'data'), host: '127.0.0.1', port: 0, engineWorkers: 1 });
});

test.after(async () => {
  await service?.close();
  await remote?.close();
  rmSync(dir, { recursive: true, force: true });
});

test('each user stores into the account it names; the credentials account lives at its own base URL', async () => {
  const near = Buffer.alloc(20_000, 1);
  const far = Buffer.alloc(30_000, 2);
  const a = await ftp('loc');
  const b = await ftp('far');
  await a.uploadFrom(Readable.from([near]), 'near.bin');
  await b.uploadFrom(Readable.from([far]), 'far.bin');
  a.close();
  b.close();
  const remoteToken = await service.tokens.accessToken('ext');
  assert.ok((await fetchFile(remote, remoteToken, '/far.bin'))!.equals(far));
  assert.is(await fetchFile(remote, remoteToken, '/near.bin'), null);
  const localToken = await service.tokens.accessToken('local');
  assert.ok((await fetchFile(service.box, localToken, '/near.bin'))!.equals(near));
  assert.is(await fetchFile(service.box, localToken, '/far.bin'), null);
});

test("the remote account's tokens expire mid-run: only it is refreshed, its user carries on", async () => {
  const localBefore = service.tokens.current('local');
  const extBefore = service.tokens.current('ext');
  const client = await ftp('far');
  await adminOf(remote).adminCall('POST', 'expire-tokens', { account: 'carol' });
  await client.ensureDir('/made-after');
  const data = Buffer.alloc(10_000, 9);
  await client.uploadFrom(Readable.from([data]), 'later.bin');
  client.close();
  assert.is.not(service.tokens.current('ext'), extBefore);
  assert.is(service.tokens.current('local'), localBefore);
  assert.ok((await fetchFile(remote, service.tokens.current('ext')!, '/made-after/later.bin'))!.equals(data));
  const m = service.metrics.tokenRefreshes;
  assert.is(m.get({ account: 'ext', reason: 'expired_access_token', result: 'ok' }), 1);
  assert.is(m.get({ account: 'local', reason: 'expired_access_token', result: 'ok' }), 0);
});

test('a STOR and a RETR running when the tokens expire finish whole (the engine asks for one refresh)', async () => {
  const stored = Buffer.alloc(6 * 1024 * 1024);
  for (let i = 0; i < stored.length; i += 4) stored.writeUInt32LE((i * 2654435761) >>> 0, i);
  const seeder = await ftp('far');
  await seeder.uploadFrom(Readable.from([stored]), 'stored.bin');
  seeder.close();
  const refreshesBefore = service.metrics.tokenRefreshes.get({ account: 'ext', reason: 'expired_access_token', result: 'ok' });
  const up = await ftp('far');
  const down = await ftp('far');
  const sent = Buffer.from(stored).reverse();
  let expire!: () => void;
  const expired = new Promise<void>((resolve) => (expire = resolve));
  const half = 3 * 1024 * 1024;
  // The client sends half, the expiry happens, then it sends the rest: the upload spans the expiry.
  const source = Readable.from((async function* () {
    yield sent.subarray(0, half);
    await expired;
    yield sent.subarray(half);
  })());
  const received: Buffer[] = [];
  let got = 0;
  let gate: (() => void) | null = null;
  // A slow reader: after 1 MiB it stops until the expiry happened.
  const sink = new Writable({
    write(chunk: Buffer, _e, cb) {
      received.push(chunk);
      got += chunk.length;
      if (got >= 1024 * 1024 && gate === null) {
        gate = cb;
        void expired.then(() => cb());
      } else cb();
    },
  });
  const uploading = up.uploadFrom(source, 'spanning.bin');
  const downloading = down.downloadTo(sink, 'stored.bin');
  await new Promise((resolve) => setTimeout(resolve, 500));
  await adminOf(remote).adminCall('POST', 'expire-tokens', { account: 'carol' });
  expire();
  await Promise.all([uploading, downloading]);
  up.close();
  down.close();
  assert.ok(Buffer.concat(received).equals(stored), 'RETR got the whole file');
  assert.ok((await fetchFile(remote, await service.tokens.accessToken('ext'), '/spanning.bin'))!.equals(sent), 'STOR stored the whole file');
  assert.is(service.metrics.tokenRefreshes.get({ account: 'ext', reason: 'expired_access_token', result: 'ok' }), refreshesBefore + 1);
});

test('an account linked while the server runs serves its users after a reload', async () => {
  const dave = await remote.createAccount('dave');
  await saveAccount(join(dir, 'data', 'credentials.yaml'), 'late', { appKey: dave.appKey, refreshToken: dave.refreshToken, apiUrl: remote.url, contentUrl: remote.url });
  await writeUsers(join(dir, 'data', 'users.yaml'), {
    loc: { password: 'loc-secret' },
    far: { password: 'far-secret', account: 'ext' },
    newcomer: { password: 'newcomer-secret', account: 'late' },
  });
  await service.reload();
  const client = await ftp('newcomer');
  const data = Buffer.alloc(5_000, 4);
  await client.uploadFrom(Readable.from([data]), 'hello.bin');
  client.close();
  const token = await service.tokens.accessToken('late');
  assert.ok((await fetchFile(remote, token, '/hello.bin'))!.equals(data));
  assert.is(await fetchFile(remote, await service.tokens.accessToken('ext'), '/hello.bin'), null, "not in carol's account");
});

test.run();
