// A download lets other connections be served while it streams (src/localbox/context.ts,
// streamBody): against a client that reads as fast as the box writes, reads served inline and
// writes taken at once used to settle in microtasks only, and one download ran to its end before
// the box so much as parsed another request. Real sockets, a real box, a raw client on `net`.

import { connect } from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { LocalBoxAccount } from '../../src/localbox/index.ts';
import { makeBox, type TestBox } from './helpers.ts';

let t: TestBox;
let acc: LocalBoxAccount;
const BIG = 256 * 1024 * 1024;

test.before(async () => {
  t = await makeBox();
  acc = await t.box.createAccount('turns');
  const sdk = t.sdk(acc);
  // 64 blocks of one 4 MiB pattern: the box stores one block, the file reads from the page cache
  const block = Buffer.alloc(4 * 1024 * 1024, 7);
  const start = await sdk.filesUploadSessionStart({ contents: block });
  let offset = block.length;
  while (offset < BIG - block.length) {
    await sdk.filesUploadSessionAppendV2({ cursor: { session_id: start.result.session_id, offset }, contents: block });
    offset += block.length;
  }
  await sdk.filesUploadSessionFinish({ cursor: { session_id: start.result.session_id, offset }, commit: { path: '/big.bin' }, contents: block });
  await sdk.filesUpload({ path: '/small.txt', contents: 'small' });
});
test.after(async () => {
  await t.cleanup();
});

/** A raw download read as fast as the kernel hands it over; resolves with when its last byte came. */
function download(path: string, onHead?: () => void): Promise<{ bytes: number; endedAt: number }> {
  const url = new URL(t.box.url);
  const sink = Buffer.allocUnsafe(256 * 1024);
  return new Promise((resolve, reject) => {
    let head = '';
    let body = 0;
    let length = -1;
    const socket = connect({
      host: url.hostname,
      port: Number(url.port),
      onread: {
        buffer: sink,
        callback: (n: number) => {
          let from = 0;
          if (length < 0) {
            head += sink.subarray(0, n).toString('latin1');
            const end = head.indexOf('\r\n\r\n');
            if (end < 0) return true;
            length = Number(/content-length: (\d+)/i.exec(head.slice(0, end))?.[1]);
            from = n - (head.length - end - 4);
            onHead?.();
          }
          body += n - from;
          if (body >= length) {
            socket.destroy();
            resolve({ bytes: body, endedAt: performance.now() });
          }
          return true;
        },
      },
    });
    socket.on('error', reject);
    socket.write(
      `POST /2/files/download HTTP/1.1\r\nHost: ${url.host}\r\nAuthorization: Bearer ${acc.accessToken}\r\n` +
        `Dropbox-API-Arg: ${JSON.stringify({ path })}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`,
    );
  });
}

test('a small download asked for while a big one streams is answered before the big one ends', async () => {
  // each try: the big download streams; once its head arrived the small one is asked for
  for (let i = 0; i < 3; i++) {
    let small: Promise<{ bytes: number; endedAt: number }> | null = null;
    const big = await download('/big.bin', () => {
      small = download('/small.txt');
    });
    assert.is(big.bytes, BIG);
    const s = await small!;
    assert.is(s.bytes, 5);
    assert.ok(s.endedAt < big.endedAt, `try ${i}: the small download ended ${(s.endedAt - big.endedAt).toFixed(1)} ms after the big one`);
  }
});

test.run();
