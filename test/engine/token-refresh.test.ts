// Issue 4 / token manager hook: a 401 expired_access_token in the middle of transfers (the local box's
// admin/expire-tokens) makes the engine ask its account's refresh hook for a fresh token on the main
// thread — once for all of them (single flight) — and every download, upload and commit goes on with
// it, byte-exact; without a hook the transfers fail with DROPFTP_ERR_UPSTREAM_AUTH.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DropftpError } from '../../src/errors.ts';
import { TransferEngine } from '../../src/transfer/index.ts';
import type { DownloadStream, UploadStream } from '../../src/transfer/index.ts';
import { MiB, contentOf, drain, fetchFile, makePool, seed, sha256, sleep, startFixture } from './helpers.ts';
import type { Fixture } from './helpers.ts';

let fx: Fixture;
const pool = makePool(24 * MiB, 31);
const SIZE = 12 * MiB;

test.before(async () => {
  // Six transfers: the downloads' calls started with the first token stream on; the uploads' calls
  // (all their bytes retained until the client ends) and their commits start after the expiry.
  fx = await startFixture({ workers: 2 });
});
test.after(async () => {
  await fx.stop();
});

/** The OAuth2 refresh grant against the box, as the token manager would do it. */
async function refreshGrant(): Promise<string> {
  const res = await fetch(`${fx.box.url}/oauth2/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: fx.account.refreshToken, client_id: fx.account.appKey, client_secret: fx.account.appSecret }),
  });
  const body = (await res.json()) as { access_token?: string };
  if (!res.ok || !body.access_token) throw new Error(`refresh grant: HTTP ${res.status}`);
  return body.access_token;
}

async function expireTokens(): Promise<void> {
  await (fx.box as unknown as { adminCall(m: string, p: string, b: unknown): Promise<unknown> }).adminCall('POST', 'expire-tokens', { account: 'alice' });
}

/** Opens a download that stops reading after its first bytes until `go` resolves. */
function pausedDownload(engine: TransferEngine, path: string, go: Promise<void>): { stream: DownloadStream; result: Promise<{ sha: string; length: number }> } {
  const stream = engine.openDownload('alice', path);
  stream.once('data', () => {
    stream.pause();
    void go.then(() => stream.resume());
  });
  return { stream, result: drain(stream) };
}

/** Writes the first half now and the rest once `go` resolves; resolves on 'finish'. */
async function splitUpload(stream: UploadStream, data: Buffer, go: Promise<void>): Promise<void> {
  const finished = new Promise<void>((resolve, reject) => {
    stream.once('finish', resolve);
    stream.once('error', reject);
  });
  const write = async (piece: Buffer) => {
    for (let off = 0; off < piece.length; off += 256 * 1024) {
      if (!stream.write(piece.subarray(off, off + 256 * 1024))) await new Promise((r) => stream.once('drain', r));
    }
  };
  await write(data.subarray(0, data.length / 2));
  await go;
  await write(data.subarray(data.length / 2));
  stream.end();
  return finished;
}

async function runAcrossExpiry(engine: TransferEngine, tag: string): Promise<void> {
  const downs = [0, 1, 2].map((i) => contentOf(pool, 10 + i, SIZE));
  for (let i = 0; i < downs.length; i++) await seed(fx.box, fx.account.accessToken, `/tok/${tag}-d${i}.bin`, downs[i]!);
  let release!: () => void;
  const go = new Promise<void>((resolve) => (release = resolve));
  const downloads = downs.map((_, i) => pausedDownload(engine, `/tok/${tag}-d${i}.bin`, go));
  const ups = [0, 1, 2].map((i) => contentOf(pool, 20 + i, SIZE));
  const uploads = ups.map((data, i) => splitUpload(engine.openUpload('alice', `/tok/${tag}-u${i}.bin`), data, go));
  await sleep(300); // every transfer has moved bytes with the first token
  const oldToken = fx.account.accessToken;
  await expireTokens();
  assert.is(await fetchFile(fx.box, oldToken, '/tok/none').catch((e: Error) => e.message.slice(0, 9)), 'fetch /to', 'the old token is refused now');
  release();
  const got = await Promise.all(downloads.map((d) => d.result));
  got.forEach((g, i) => assert.is(g.sha, sha256(downs[i]!), `${tag} download ${i} bytes`));
  await Promise.all(uploads);
  const fresh = await refreshGrant();
  for (let i = 0; i < ups.length; i++) {
    const stored = await fetchFile(fx.box, fresh, `/tok/${tag}-u${i}.bin`);
    assert.is(stored && sha256(stored), sha256(ups[i]!), `${tag} upload ${i} stored bytes`);
  }
  fx.account.accessToken = fresh;
}

test('tokens expire mid-transfer (workers): one refresh on the main thread, every transfer and commit goes on', async () => {
  let calls = 0;
  fx.engine.setAccount(
    { name: 'alice', apiUrl: fx.box.url, contentUrl: fx.box.url, accessToken: fx.account.accessToken },
    {
      refresh: async () => {
        calls++;
        await sleep(50); // let the other transfers' 401s pile onto this one refresh
        return refreshGrant();
      },
    },
  );
  await runAcrossExpiry(fx.engine, 'w');
  assert.is(calls, 1, 'single flight: one refresh for six transfers');
});

test('tokens expire mid-transfer (main thread only): the same hook, the same outcome', async () => {
  const engine = await TransferEngine.start({ onlyMainThread: true });
  try {
    let calls = 0;
    engine.setAccount(
      { name: 'alice', apiUrl: fx.box.url, contentUrl: fx.box.url, accessToken: fx.account.accessToken },
      { refresh: async () => (calls++, refreshGrant()) },
    );
    await runAcrossExpiry(engine, 'm');
    assert.is(calls, 1);
  } finally {
    await engine.close();
  }
});

test('without a refresh hook a 401 fails the transfer with DROPFTP_ERR_UPSTREAM_AUTH', async () => {
  const engine = await TransferEngine.start({ workers: 1 });
  try {
    engine.setAccount({ name: 'alice', apiUrl: fx.box.url, contentUrl: fx.box.url, accessToken: fx.account.accessToken });
    await seed(fx.box, fx.account.accessToken, '/tok/n.bin', contentOf(pool, 5, 4 * MiB));
    await expireTokens();
    const err = await drain(engine.openDownload('alice', '/tok/n.bin')).then(
      () => null,
      (e: unknown) => e,
    );
    assert.ok(err instanceof DropftpError, String(err));
    assert.is((err as DropftpError).code, 'DROPFTP_ERR_UPSTREAM_AUTH');
    fx.account.accessToken = await refreshGrant();
  } finally {
    await engine.close();
  }
});

test.run();
