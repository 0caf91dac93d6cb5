// A STOR's data socket read straight into its ring (src/ftp/data/socket-reader.ts), where it is
// hardest: rings of 16-128 KiB (a memory budget of 1 MiB shared by six uploads at once, each sent
// in odd pieces with pauses), so reading pauses and resumes at every offset of the ring; uploads
// reset by their client mid-file while the kernel reads into their rings, each followed by uploads
// that get those rings again; TYPE A and APPE, whose sinks are not rings (Node's reads as before).
// Byte-exact throughout, read back with RETR.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash, randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { readPayloadCopies } from '../../src/transfer/copy-counts.ts';
import { RawFtp, download, openData, sleep, until, upload } from './helpers/raw-client.ts';
import { startStack, type Stack } from './helpers/stack.ts';
import { freePortOutsideEphemeral } from '../helpers/ports.ts';

let stack: Stack;
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

test.before(async () => {
  stack = await startStack({ engine: { memoryBudgetBytes: 1024 * 1024 } });
});

test.after(async () => {
  await stack.stop();
});

/** Writes `bytes` in pieces of varying size (7 KiB to ~300 KiB), pausing now and then. */
async function sendInPieces(socket: Socket, bytes: Buffer, seed: number): Promise<void> {
  for (let at = 0, i = seed; at < bytes.length; i++) {
    const n = Math.min(bytes.length - at, 7 * 1024 + ((i * 104_729) % (300 * 1024)));
    if (!socket.write(bytes.subarray(at, at + n))) await new Promise((resolve) => socket.once('drain', resolve));
    at += n;
    if (i % 5 === 0) await sleep(3);
  }
  socket.end();
}

test('six uploads at once into small rings: byte-exact, at most one copy per byte', async () => {
  const payloads = Array.from({ length: 6 }, (_, i) => randomBytes(2 * 1024 * 1024 + 1000 * i + 3));
  const before = readPayloadCopies();
  await Promise.all(
    payloads.map(async (payload, i) => {
      const c = await RawFtp.connect(stack.port);
      await c.login(stack.user, stack.password);
      const { port } = await c.pasv();
      const data = await openData(port);
      c.send(`STOR /small-ring-${i}.bin`);
      assert.is((await c.read()).code, 150);
      await sendInPieces(data, payload, i);
      assert.is((await c.read(60_000)).code, 226, `upload ${i}`);
      data.destroy();
      c.close();
    }),
  );
  const after = readPayloadCopies();
  const total = payloads.reduce((a, p) => a + p.length, 0);
  assert.is(after.storBytes - before.storBytes, total);
  assert.ok(after.storCopiedBytes - before.storCopiedBytes <= total, 'at most one copy per byte');
  const c = await RawFtp.connect(stack.port);
  await c.login(stack.user, stack.password);
  for (const [i, payload] of payloads.entries()) {
    const back = await download(c, `RETR /small-ring-${i}.bin`);
    assert.is(back.final.code, 226);
    assert.is(sha(back.data), sha(payload), `upload ${i} stored byte-exact`);
  }
  c.close();
});

test('uploads reset mid-file while the kernel reads into their rings: nothing committed, the next uploads into those rings byte-exact', async () => {
  const c = await RawFtp.connect(stack.port);
  await c.login(stack.user, stack.password);
  const keep = randomBytes(3 * 1024 * 1024 + 11);
  assert.is((await upload(c, 'STOR /reset.bin', keep)).final.code, 226);
  for (let round = 0; round < 4; round++) {
    const { port } = await c.pasv();
    const data = await openData(port);
    data.on('error', () => {});
    c.send('STOR /reset.bin');
    assert.is((await c.read()).code, 150);
    // Keep the socket full (reads into the ring going on), then reset it mid-file.
    const junk = randomBytes(8 * 1024 * 1024);
    data.write(junk);
    await sleep(30 + round * 40);
    data.resetAndDestroy();
    assert.is((await c.read(10_000)).code, 426, `round ${round}: the reset upload fails`);
    // Rings go back to the pool and serve the next uploads (two at once: both get a used ring).
    const next = [randomBytes(1024 * 1024 + round), randomBytes(700 * 1024 + round)];
    const c2 = await RawFtp.connect(stack.port);
    await c2.login(stack.user, stack.password);
    const [a, b] = await Promise.all([upload(c, `STOR /after-${round}-a.bin`, next[0]!), upload(c2, `STOR /after-${round}-b.bin`, next[1]!)]);
    assert.is(a.final.code, 226);
    assert.is(b.final.code, 226);
    c2.close();
    for (const [k, bytes] of next.entries()) {
      const back = await download(c, `RETR /after-${round}-${k === 0 ? 'a' : 'b'}.bin`);
      assert.is(sha(back.data), sha(bytes), `round ${round}: upload ${k} after the reset is intact`);
    }
  }
  const back = await download(c, 'RETR /reset.bin');
  assert.is(sha(back.data), sha(keep), 'the reset uploads committed nothing');
  await until(() => stack.engine.stats().activeUploads === 0, 5000, 'every upload released');
  c.close();
});

test('TYPE A STOR and APPE (sinks that are not rings) read as before: byte-exact', async () => {
  const c = await RawFtp.connect(stack.port);
  await c.login(stack.user, stack.password);
  const lines = Buffer.from(Array.from({ length: 20_000 }, (_, i) => `line ${i} ${'x'.repeat(i % 50)}\r\n`).join(''));
  assert.is((await c.cmd('TYPE A')).code, 200);
  assert.is((await upload(c, 'STOR /text.txt', lines)).final.code, 226);
  assert.is((await c.cmd('TYPE I')).code, 200);
  const stored = await download(c, 'RETR /text.txt');
  assert.is(stored.data.toString(), lines.toString().replace(/\r\n/g, '\n'), 'CRLF stored as LF');
  const head = randomBytes(1024 * 1024 + 1);
  const tail = randomBytes(2 * 1024 * 1024 + 5);
  assert.is((await upload(c, 'STOR /appended.bin', head)).final.code, 226);
  assert.is((await upload(c, 'APPE /appended.bin', tail)).final.code, 226);
  const both = await download(c, 'RETR /appended.bin');
  assert.is(sha(both.data), sha(Buffer.concat([head, tail])));
  c.close();
});

test('a passive range of one port: a taken-over connection gives its port back at accept, so a second session transfers while the first STOR runs', async () => {
  const only = await freePortOutsideEphemeral();
  const one = await startStack({ pasvPorts: { min: only, max: only } });
  try {
    const a = await RawFtp.connect(one.port);
    await a.login(one.user, one.password);
    const b = await RawFtp.connect(one.port);
    await b.login(one.user, one.password);
    const first = randomBytes(3 * 1024 * 1024 + 17);
    const { port } = await a.pasv();
    assert.is(port, only);
    const data = await openData(port);
    a.send('STOR /one-port-a.bin');
    assert.is((await a.read()).code, 150);
    data.write(first.subarray(0, 1024 * 1024));
    // The first STOR holds its data connection on that port; the second session gets the port too.
    const second = randomBytes(2 * 1024 * 1024 + 5);
    const up = await upload(b, 'STOR /one-port-b.bin', second);
    assert.is(up.final.code, 226, 'the second session transferred on the same port');
    await sendInPieces(data, first.subarray(1024 * 1024), 3);
    assert.is((await a.read(30_000)).code, 226, 'the first STOR completes');
    data.destroy();
    for (const [path, bytes] of [['/one-port-a.bin', first], ['/one-port-b.bin', second]] as const) {
      const back = await download(b, `RETR ${path}`);
      assert.is(sha(back.data), sha(bytes), `${path} byte-exact`);
    }
    a.close();
    b.close();
  } finally {
    await one.stop();
  }
});

test.run();
