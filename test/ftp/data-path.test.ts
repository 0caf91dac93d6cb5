// The main thread's payload path (issue #14 item 5): RETR writes its data socket from views into
// ring memory (no copy; a view goes back to the ring only when its write completed), and a plain
// STOR data socket reads straight into ring memory (src/ftp/data/socket-reader.ts: no copy but its
// first read). Byte-exact under slow sockets, plain and TLS, passive and active, with the copy
// counters checked; an abort while views are lent leaks nothing and corrupts nothing.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import { readPayloadCopies } from '../../src/transfer/copy-counts.ts';
import { RawFtp, download, listenData, openData, openSecureData, sleep, until, upload } from './helpers/raw-client.ts';
import { startStack, type Stack } from './helpers/stack.ts';

let stack: Stack;
let dir: string;
const big = randomBytes(20 * 1024 * 1024 + 333);
const other = randomBytes(6 * 1024 * 1024 + 7);

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

test.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'dropftp-data-path-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', '/CN=localhost', '-days', '1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
  stack = await startStack({ tls: { certFile: join(dir, 'cert.pem'), keyFile: join(dir, 'key.pem') } });
  const c = await RawFtp.connect(stack.port);
  await c.login(stack.user, stack.password);
  assert.is((await upload(c, 'STOR /big.bin', big)).final.code, 226);
  assert.is((await upload(c, 'STOR /other.bin', other)).final.code, 226);
  c.close();
});

test.after(async () => {
  await stack.stop();
  rmSync(dir, { recursive: true, force: true });
});

/**
 * Reads `socket` to its close like a slow client: stops reading for `stallMs` (the kernel buffers
 * fill and the server's writes wait on lent views), then takes bursts with pauses between them.
 */
function readSlowly(socket: Socket, stallMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let received = 0;
    let burst = 0;
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      received += chunk.length;
      burst += chunk.length;
      if (received === chunk.length) {
        socket.pause();
        setTimeout(() => socket.resume(), stallMs);
      } else if (burst > 2 * 1024 * 1024) {
        burst = 0;
        socket.pause();
        setTimeout(() => socket.resume(), 40);
      }
    });
    socket.once('error', reject);
    socket.once('close', () => resolve(Buffer.concat(chunks)));
  });
}

test('RETR with a slow client: byte-exact, written from ring views (no copy on the main thread)', async () => {
  const c = await RawFtp.connect(stack.port);
  await c.login(stack.user, stack.password);
  const before = readPayloadCopies();
  const { port } = await c.pasv();
  const data = await openData(port);
  const received = readSlowly(data, 600);
  c.send('RETR /big.bin');
  assert.is((await c.read()).code, 150);
  const bytes = await received;
  assert.is((await c.read(30_000)).code, 226);
  assert.is(bytes.length, big.length);
  assert.is(sha(bytes), sha(big), 'bytes arrive exactly (a view released before its write completed gets overwritten)');
  const after = readPayloadCopies();
  assert.is(after.retrBytes - before.retrBytes, big.length);
  assert.is(after.retrCopiedBytes - before.retrCopiedBytes, 0, 'no RETR byte copied on the main thread');
  c.close();
});

test('RETR over TLS (PROT P) with a slow client: byte-exact; only the encryption copies', async () => {
  const c = await RawFtp.connect(stack.port);
  await c.authTls();
  await c.login(stack.user, stack.password);
  assert.is((await c.cmd('PBSZ 0')).code, 200);
  assert.is((await c.cmd('PROT P')).code, 200);
  const session = await c.waitForSession();
  const before = readPayloadCopies();
  const { port } = await c.pasv();
  const data = await openSecureData(port, { session });
  const received = readSlowly(data as unknown as Socket, 600);
  c.send('RETR /big.bin');
  assert.is((await c.read()).code, 150);
  const bytes = await received;
  assert.is((await c.read(30_000)).code, 226);
  assert.is(sha(bytes), sha(big));
  const after = readPayloadCopies();
  assert.is(after.retrCopiedBytes - before.retrCopiedBytes, 0);
  assert.is(after.tlsBytes - before.tlsBytes, big.length, 'TLS bytes counted apart');
  c.close();
});

test('RETR aborted while views are lent (client reset mid-transfer): nothing leaks, the next RETR is byte-exact', async () => {
  const c = await RawFtp.connect(stack.port);
  await c.login(stack.user, stack.password);
  for (let round = 0; round < 3; round++) {
    const { port } = await c.pasv();
    const data = await openData(port);
    let got = 0;
    data.on('data', (chunk: Buffer) => {
      got += chunk.length;
      if (got > 3 * 1024 * 1024) data.pause(); // the server's writes now wait on lent views
    });
    data.on('error', () => {});
    c.send('RETR /big.bin');
    assert.is((await c.read()).code, 150);
    await until(() => got > 3 * 1024 * 1024, 10_000, 'first bytes');
    await sleep(200);
    data.resetAndDestroy();
    assert.is((await c.read(10_000)).code, 426);
    // The ring goes back to the pool only once every lent view came back; then it serves the next RETR.
    const next = await download(c, 'RETR /other.bin');
    assert.is(next.final.code, 226);
    assert.is(sha(next.data), sha(other), `round ${round}: the next download is intact`);
  }
  await until(() => stack.engine.stats().activeDownloads === 0, 5000, 'every download released');
  c.close();
});

// The one read that goes to the scratch buffer: the socket's first (its buffer was set before the STOR).
const FIRST_READ_BYTES = 64 * 1024;

test('STOR passive and active (PORT): byte-exact, read straight into the ring', async () => {
  const c = await RawFtp.connect(stack.port);
  await c.login(stack.user, stack.password);
  const payload = randomBytes(9 * 1024 * 1024 + 5);
  let before = readPayloadCopies();
  assert.is((await upload(c, 'STOR /up-passive.bin', payload)).final.code, 226);
  let after = readPayloadCopies();
  assert.is(after.storBytes - before.storBytes, payload.length);
  assert.ok(after.storCopiedBytes - before.storCopiedBytes <= FIRST_READ_BYTES, `the kernel reads into ring memory: ${after.storCopiedBytes - before.storCopiedBytes} B copied`);

  before = readPayloadCopies();
  const listener = await listenData();
  const { port } = listener;
  assert.is((await c.cmd(`PORT 127,0,0,1,${port >> 8},${port & 255}`)).code, 200);
  c.send('STOR /up-active.bin');
  const socket = await listener.accepted;
  assert.ok(socket, 'the server connected');
  assert.is((await c.read()).code, 150);
  // Slow sender: pieces with pauses, so reads land at every offset of the ring.
  for (let at = 0; at < payload.length; ) {
    const n = Math.min(payload.length - at, 100_000 + ((at * 7) % 900_000));
    if (!socket!.write(payload.subarray(at, at + n))) await new Promise((resolve) => socket!.once('drain', resolve));
    at += n;
    if (at % 3 === 0) await sleep(5);
  }
  socket!.end();
  assert.is((await c.read(30_000)).code, 226);
  listener.close();
  after = readPayloadCopies();
  assert.is(after.storBytes - before.storBytes, payload.length);
  assert.ok(after.storCopiedBytes - before.storCopiedBytes <= FIRST_READ_BYTES, `active too: ${after.storCopiedBytes - before.storCopiedBytes} B copied`);

  for (const path of ['/up-passive.bin', '/up-active.bin']) {
    const back = await download(c, `RETR ${path}`);
    assert.is(back.final.code, 226);
    assert.is(sha(back.data), sha(payload), `${path} stored byte-exact`);
  }
  c.close();
});

test.run();
