// Audit regression: an ABOR that arrives after the client ended its STOR data cleanly, while the
// upload is being committed, was answered 426 "Transfer aborted" — yet the commit went on and the
// file was replaced. A client told its upload failed believed the old version was still there.
// Once the commit has started, its own outcome makes the reply (226 only if committed).

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startStack, type Stack } from '../ftp/helpers/stack.ts';
import { RawFtp, openData, sleep, upload } from '../ftp/helpers/raw-client.ts';
import { BoxView } from '../reliability/helpers.ts';

let stack: Stack;

test.before(async () => {
  stack = await startStack();
});
test.after(async () => {
  await stack?.box.setFaults({ rules: [] }).catch(() => {});
  await stack?.stop();
});

test('ABOR during the commit of a cleanly ended STOR: the reply tells what the file holds', async () => {
  const view = await BoxView.open(stack.box.url, stack.dataDir);
  const c = await RawFtp.connect(stack.port);
  try {
    await c.login(stack.user, stack.password);
    assert.is((await upload(c, 'STOR f.bin', Buffer.from('old contents'))).final.code, 226);
    // Commits take 1.5 s: the ABOR lands in the middle of one.
    const commitRoutes = ['files/upload_session/finish_batch_v2', 'files/upload_session/finish_batch/check', 'files/upload_session/finish', 'files/upload'];
    await stack.box.setFaults({ rules: [{ kind: 'latency', latencyMs: 1500, routes: commitRoutes }] });
    const { port } = await c.pasv();
    const data = await openData(port);
    c.send('STOR f.bin');
    assert.is((await c.read()).code, 150);
    data.end(Buffer.from('new contents'));
    await sleep(700);
    c.send('ABOR');
    const transferReply = await c.read(10_000);
    const aborReply = await c.read(10_000);
    assert.ok(aborReply.code === 226 || aborReply.code === 225, aborReply.text);
    await stack.box.setFaults({ rules: [] });
    await sleep(2500); // any commit still running has landed by now
    const stored = (await view.download('/f.bin'))?.toString();
    if (transferReply.code === 226) assert.is(stored, 'new contents', 'answered 226 but the file was not replaced');
    else assert.is(stored, 'old contents', `answered ${transferReply.code} but the file was replaced`);
    data.destroy();
  } finally {
    c.close();
  }
});

test.run();
