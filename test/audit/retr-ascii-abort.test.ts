// Audit regression: an ABORted (or client-reset) TYPE A RETR must release its engine download.
// ToCrlf sat between the engine's DownloadStream and the data socket; a failed send destroyed the
// converter only, leaving the DownloadStream paused with a full ring: the engine transfer, its
// ring and its memory share stayed taken for the process's life.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startStack, type Stack } from '../ftp/helpers/stack.ts';
import { RawFtp, openData, upload, until, sleep } from '../ftp/helpers/raw-client.ts';

let stack: Stack;

test.before(async () => {
  stack = await startStack();
});
test.after(async () => {
  // Bounded: with the defect, the leaked download kept the engine's close waiting.
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), 10_000)));
  const stopped = await Promise.race([stack?.stop().then(() => true), limit]);
  clearTimeout(timer);
  if (!stopped) {
    console.error('stack.stop() did not finish within 10 s');
    process.exit(1);
  }
});

const lines = Buffer.from('line of text\n'.repeat(400_000)); // ~5 MB, far beyond any ring

test('TYPE A RETR aborted mid-transfer releases its engine download', async () => {
  const c = await RawFtp.connect(stack.port);
  await c.login(stack.user, stack.password);
  const up = await upload(c, 'STOR text.txt', lines);
  assert.is(up.final.code, 226, up.final.text);
  assert.is((await c.cmd('TYPE A')).code, 200);
  const { port } = await c.pasv();
  const data = await openData(port);
  data.pause(); // a slow client: the ring fills
  c.send('RETR text.txt');
  assert.is((await c.read()).code, 150);
  await until(() => stack.engine.stats().activeDownloads === 1, 5000, 'download running');
  await sleep(300);
  c.send('ABOR');
  const r1 = await c.read();
  const r2 = await c.read();
  assert.is(r1.code, 426, r1.text);
  assert.is(r2.code, 226, r2.text);
  data.destroy();
  await until(() => stack.engine.stats().activeDownloads === 0, 5000, 'engine download released').catch(() => {});
  assert.is(stack.engine.stats().activeDownloads, 0, 'the aborted TYPE A download still holds its engine transfer');
  assert.is(stack.engine.stats().memory.ringBytesInUse, 0, 'ring still in use');
  c.close();
});

test.run();
