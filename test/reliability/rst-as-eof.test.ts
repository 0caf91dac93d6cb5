// Regression: a client that resets its STOR data connection while some of its bytes still wait in
// the server's receive queue must not get 226 nor a committed prefix. libuv reports EOF instead of
// ECONNRESET when POLLHUP arrives after a partial read (its uv__stream_io short-cut), so the FTP
// layer saw a clean end; src/ftp/data/clean-end.ts now probes the socket before committing.
// Without the probe most of the 20 attempts here committed a prefix (290,789 of 307,200 bytes).

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { RawFtp, openData } from '../ftp/helpers/raw-client.ts';
import { startStack, type Stack } from '../ftp/helpers/stack.ts';
import { BoxView, KiB, pattern, sha256, sleep } from './helpers.ts';

const ATTEMPTS = 20;
let stack: Stack;

test.before(async () => {
  stack = await startStack({ engineWorkers: 1 });
});
test.after(async () => {
  await stack.stop();
});

test('a STOR reset with bytes in flight is never answered 226 nor committed', async () => {
  const view = await BoxView.open(stack.box.url, stack.dataDir);
  const wrong: string[] = [];
  for (let i = 0; i < ATTEMPTS; i++) {
    const c = await RawFtp.connect(stack.port);
    await c.login(stack.user, stack.password);
    const { port } = await c.pasv();
    const data = await openData(port);
    data.on('error', () => {});
    c.send(`STOR /rst/${i}.bin`);
    assert.is((await c.read()).code, 150);
    const bytes = pattern(300 * KiB, i);
    data.write(bytes);
    await sleep(5);
    data.resetAndDestroy();
    const reply = await c.read(10_000);
    const stored = await view.download(`/rst/${i}.bin`);
    if (reply.code === 226 || (stored && sha256(stored) !== sha256(bytes))) wrong.push(`#${i}: ${reply.code}, stored ${stored?.length ?? 'nothing'} of ${bytes.length} bytes`);
    c.close();
  }
  assert.equal(wrong, []);
});

test.run();
