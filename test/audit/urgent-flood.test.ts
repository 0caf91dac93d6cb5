// Audit regression: during a transfer, urgent commands (NOOP, STAT-like, ABOR, QUIT) bypass the
// command queue, whose length is what pauses reading the control socket. A client that pipelines
// NOOPs during a transfer and never reads its replies made the server buffer every reply: memory
// grew with what the peer sent. The file is large and its data socket paused, so the RETR is
// still running when the flood ends (checked: a flood after the transfer tests nothing).

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startStack, type Stack } from '../ftp/helpers/stack.ts';
import { RawFtp, openData, upload, until, sleep } from '../ftp/helpers/raw-client.ts';
import { pattern } from '../reliability/helpers.ts';

let stack: Stack;

test.before(async () => {
  stack = await startStack();
});
test.after(async () => {
  await stack?.stop();
});

test('NOOPs pipelined during a transfer, replies unread: the server buffers a bounded amount', async () => {
  const c = await RawFtp.connect(stack.port);
  await c.login(stack.user, stack.password);
  assert.is((await upload(c, 'STOR big.bin', pattern(16 * 1024 * 1024, 3))).final.code, 226);
  const { port } = await c.pasv();
  const data = await openData(port);
  data.pause(); // the transfer stays running
  c.send('RETR big.bin');
  assert.is((await c.read()).code, 150);
  const session = [...stack.ftp.sessions.values()][0]!;
  c.socket.pause(); // never read a reply again
  const burst = Buffer.from('NOOP\r\n'.repeat(50_000)); // 300 KB per write
  let maxBuffered = 0;
  let sentBytes = 0;
  let serverStoppedReading = false;
  let transferEndedEarly = false;
  for (let i = 0; i < 80; i++) {
    if (!session.transfer) {
      transferEndedEarly = true;
      break;
    }
    // Write only when the kernel takes it (the client's own side stays bounded).
    const took = c.socket.write(burst);
    sentBytes += burst.length;
    if (!took) {
      // Once the server stops reading, the kernel buffers fill and drain never comes: done.
      const drained = await Promise.race([new Promise((r) => c.socket.once('drain', () => r(true))), sleep(2000).then(() => false)]);
      maxBuffered = Math.max(maxBuffered, session.commandSocket.writableLength);
      if (!drained) {
        serverStoppedReading = true;
        break;
      }
    }
    maxBuffered = Math.max(maxBuffered, session.commandSocket.writableLength);
    if (i % 8 === 0) await sleep(5);
    if (maxBuffered > 64 * 1024 * 1024) break;
  }
  // The server may still be reading what the kernel holds (a busy CPU lags the flood): let it catch
  // up, until its reply backlog stops growing for a second.
  let last = -1;
  let stableSince = Date.now();
  const settleUntil = Date.now() + 20_000;
  while (Date.now() < settleUntil && Date.now() - stableSince < 1000) {
    await sleep(100);
    const now = session.commandSocket.writableLength;
    maxBuffered = Math.max(maxBuffered, now);
    if (now !== last) stableSince = Date.now();
    last = now;
  }
  // The flood must have met a running transfer, or it tested the ordinary queue instead.
  assert.not.ok(transferEndedEarly, `the RETR ended after ${sentBytes} B of NOOPs: nothing was tested`);
  assert.ok(session.transfer, 'the RETR still runs after the flood');
  // Up to ~24 MB of NOOPs sent: about 2.5x that in replies would pile up without flow control.
  assert.ok(maxBuffered < 8 * 1024 * 1024, `the server buffered ${maxBuffered} B of unread replies`);
  assert.ok(serverStoppedReading, `the server never stopped reading (${sentBytes} B of NOOPs sent, ${maxBuffered} B of replies buffered)`);
  c.close();
  data.destroy();
  await until(() => stack.ftp.sessions.size === 0, 5000, 'session closed');
});

test.run();
