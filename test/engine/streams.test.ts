// Slow consumers and producers, aborts mid-transfer in both directions, and resuming an interrupted
// upload session, through the real local box. Main thread + workers + the box child.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DropftpError } from '../../src/errors.ts';
import { TransferEngine } from '../../src/transfer/index.ts';
import type { UploadStream } from '../../src/transfer/index.ts';
import { KiB, MiB, contentOf, drain, feed, fetchFile, makePool, seed, sha256, sleep, startFixture } from './helpers.ts';
import type { Fixture } from './helpers.ts';

let fx: Fixture;
const pool = makePool(24 * MiB, 11);

test.before(async () => {
  fx = await startFixture({ workers: 2 });
});
test.after(async () => {
  await fx.stop();
});

function errorOf(p: Promise<unknown>): Promise<DropftpError | null> {
  return p.then(
    () => null,
    (e: unknown) => (e instanceof DropftpError ? e : new DropftpError('DROPFTP_ERR_INTERNAL', String(e))),
  );
}

test('slow consumer: a paused reader stops the download (bounded memory) and gets every byte', async () => {
  const data = contentOf(pool, 1, 6 * MiB + 3);
  await seed(fx.box, fx.account.accessToken, '/slow/down.bin', data);
  const down = fx.engine.openDownload('alice', '/slow/down.bin');
  const chunks: Buffer[] = [];
  down.on('data', (c: Buffer) => chunks.push(c));
  await sleep(100);
  down.pause();
  await sleep(200);
  const readAtPause = chunks.reduce((n, c) => n + c.length, 0);
  await sleep(300);
  assert.is(chunks.reduce((n, c) => n + c.length, 0), readAtPause, 'nothing arrives while paused');
  assert.ok(down.readableLength <= 64 * KiB, `buffered ${down.readableLength} B on main while paused`);
  // Trickle the rest: 64 KiB every 2 ms.
  down.removeAllListeners('data');
  const rest = await new Promise<Buffer[]>((resolve, reject) => {
    const out: Buffer[] = [];
    down.on('error', reject);
    down.on('end', () => resolve(out));
    const tick = setInterval(() => {
      let c: Buffer | null;
      if ((c = down.read()) !== null) out.push(c);
    }, 2);
    down.once('end', () => clearInterval(tick));
    down.once('error', () => clearInterval(tick));
  });
  assert.is(sha256(Buffer.concat([...chunks, ...rest])), sha256(data));
});

test('a slow consumer pauses its own call only: another download on the same worker finishes meanwhile', async () => {
  const engine = await TransferEngine.start({ workers: 1 });
  try {
    engine.setAccount({ name: 'alice', apiUrl: fx.box.url, contentUrl: fx.box.url, accessToken: fx.account.accessToken });
    const big = contentOf(pool, 2, 16 * MiB);
    const small = contentOf(pool, 3, 3 * MiB);
    await seed(fx.box, fx.account.accessToken, '/slow/big.bin', big);
    await seed(fx.box, fx.account.accessToken, '/slow/small.bin', small);
    const stalled = engine.openDownload('alice', '/slow/big.bin');
    stalled.pause(); // nobody reads it for now
    await sleep(150);
    const started = Date.now();
    const got = await drain(engine.openDownload('alice', '/slow/small.bin'));
    assert.is(got.sha, sha256(small));
    assert.ok(Date.now() - started < 5000, 'the other download was not blocked behind the stalled one');
    const restP = drain(stalled);
    stalled.resume(); // an explicit pause() is not undone by a 'data' listener
    const rest = await restP;
    assert.is(rest.length, big.length);
  } finally {
    await engine.close();
  }
});

test('slow producer: an upload written in small pieces with pauses commits byte-exact', async () => {
  const data = contentOf(pool, 4, 2 * MiB + 77);
  const up = fx.engine.openUpload('alice', '/slow/up.bin');
  const done = new Promise<void>((resolve, reject) => {
    up.once('finish', resolve);
    up.once('error', reject);
  });
  for (let off = 0; off < data.length; off += 97 * KiB) {
    if (!up.write(data.subarray(off, Math.min(data.length, off + 97 * KiB)))) await new Promise((r) => up.once('drain', r));
    if (off % (485 * KiB) === 0) await sleep(30);
  }
  up.end();
  await done;
  const stored = await fetchFile(fx.box, fx.account.accessToken, '/slow/up.bin');
  assert.is(stored && sha256(stored), sha256(data));
});

test('abort mid-download: the stream fails with ABORTED, the engine returns to idle and keeps working', async () => {
  const data = contentOf(pool, 5, 12 * MiB);
  await seed(fx.box, fx.account.accessToken, '/abort/down.bin', data);
  const down = fx.engine.openDownload('alice', '/abort/down.bin');
  let seen = 0;
  const failed = errorOf(
    drain(down, (n) => {
      seen += n;
      if (seen > 2 * MiB) down.abort();
    }),
  );
  const err = await failed;
  assert.is(err?.code, 'DROPFTP_ERR_ABORTED');
  const result = await down.result;
  assert.not.ok(result.ok, 'the worker saw the abort');
  for (let i = 0; i < 50 && fx.engine.stats().activeDownloads > 0; i++) await sleep(20);
  assert.is(fx.engine.stats().activeDownloads, 0);
  const again = await drain(fx.engine.openDownload('alice', '/abort/down.bin'));
  assert.is(again.sha, sha256(data));
});

async function abortedUploadKeepsOld(path: string, stop: (up: UploadStream) => void): Promise<void> {
  const v1 = contentOf(pool, 6, 1 * MiB + 5);
  await seed(fx.box, fx.account.accessToken, path, v1);
  const v2 = contentOf(pool, 7, 10 * MiB);
  const cut = Math.floor(Math.random() * v2.length);
  const up = fx.engine.openUpload('alice', path);
  const err = errorOf(new Promise((resolve, reject) => {
    up.once('finish', resolve);
    up.once('error', reject);
  }));
  let off = 0;
  while (off < cut) {
    const piece = v2.subarray(off, Math.min(cut, off + 128 * KiB));
    off += piece.length;
    if (!up.write(piece)) await new Promise((r) => up.once('drain', r));
  }
  stop(up);
  assert.ok(await err, 'the upload failed');
  await up.result;
  await sleep(100); // a stray commit would land within a linger period
  const stored = await fetchFile(fx.box, fx.account.accessToken, path);
  assert.is(stored && sha256(stored), sha256(v1), 'the previous version is untouched');
}

test('abort mid-upload at a random point leaves the previous version untouched (abort())', async () => {
  await abortedUploadKeepsOld('/abort/up1.bin', (up) => up.abort());
});

test('destroy(err) mid-upload leaves the previous version untouched', async () => {
  await abortedUploadKeepsOld('/abort/up2.bin', (up) => up.destroy(new DropftpError('DROPFTP_ERR_CLIENT_GONE')));
});

test('an interrupted upload resumes its session from the token (REST + STOR) and commits the whole file', async () => {
  const data = contentOf(pool, 8, 13 * MiB + 999);
  const up = fx.engine.openUpload('alice', '/resume/r.bin');
  const failed = errorOf(new Promise((resolve, reject) => {
    up.once('finish', resolve);
    up.once('error', reject);
  }));
  let off = 0;
  while (off < 9 * MiB + 12345) {
    const piece = data.subarray(off, off + 64 * KiB);
    off += piece.length;
    if (!up.write(piece)) await new Promise((r) => up.once('drain', r));
  }
  await sleep(300); // let the worker append what it has
  up.destroy(new DropftpError('DROPFTP_ERR_CLIENT_GONE'));
  assert.is((await failed)?.code, 'DROPFTP_ERR_CLIENT_GONE');
  const token = await up.interrupted();
  assert.ok(token, 'a resume token');
  assert.ok(token!.offset <= token!.sessionOffset && token!.offset % (4 * MiB) === 0);
  assert.is(await fetchFile(fx.box, fx.account.accessToken, '/resume/r.bin'), null, 'nothing committed yet');
  const again = fx.engine.openUpload('alice', '/resume/r.bin', { resume: token! });
  await feed(again, data.subarray(token!.offset));
  assert.is(again.metadata?.size, data.length);
  const stored = await fetchFile(fx.box, fx.account.accessToken, '/resume/r.bin');
  assert.is(stored && sha256(stored), sha256(data));
});

test.run();
