// Audit regression: STOR took the kept upload session of an interrupted STOR out of the resume
// store before asking Dropbox for the file's metadata. When that get_metadata failed (5xx after
// its retries), the session was gone: SIZE no longer reported it, and a REST n + STOR from there
// was refused (554) — the client had to send the whole file again. Faults injected by the local box.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { startStack, type Stack } from '../ftp/helpers/stack.ts';
import { RawFtp, download, openData, sleep, upload } from '../ftp/helpers/raw-client.ts';

let stack: Stack;

test.before(async () => {
  stack = await startStack();
});
test.after(async () => {
  await stack?.box.setFaults({ rules: [] }).catch(() => {});
  await stack?.stop();
});

test('a STOR whose get_metadata fails keeps the interrupted session; REST n + STOR still continue it', async () => {
  const c = await RawFtp.connect(stack.port);
  try {
    await c.login(stack.user, stack.password);
    await c.cmd('TYPE I');
    const whole = randomBytes(8 * 1024 * 1024 + 17);
    // 1. An interrupted STOR: part of the bytes, then a reset. Nothing is committed; the session is kept.
    const { port } = await c.pasv();
    const data = await openData(port);
    c.send('STOR kept.bin');
    assert.is((await c.read()).code, 150);
    await new Promise<void>((resolve, reject) => data.write(whole.subarray(0, 6 * 1024 * 1024), (err) => (err ? reject(err) : resolve())));
    await sleep(1000);
    data.resetAndDestroy();
    assert.is((await c.read(10_000)).code, 426);
    let size = await c.cmd('SIZE kept.bin');
    for (let i = 0; i < 30 && size.code !== 213; i++) {
      await sleep(100);
      size = await c.cmd('SIZE kept.bin');
    }
    assert.is(size.code, 213, 'the kept session is reported');
    const kept = Number(size.text.slice(4));
    assert.ok(kept > 0 && kept < whole.length, `kept ${kept}`);

    // 2. The next resume attempt fails before its transfer: every get_metadata answers 503.
    await stack.box.setFaults({ rules: [{ kind: 'server_error', status: 503, routes: ['files/get_metadata'] }] });
    assert.is((await c.cmd(`REST ${kept}`)).code, 350);
    const failed = await upload(c, 'STOR kept.bin', whole.subarray(kept));
    assert.ok(failed.final.code >= 400, `the STOR failed: ${failed.final.code} ${failed.final.text}`);
    assert.ok(((await stack.box.faultCounts()).server_error ?? 0) > 0, 'the fault fired');
    await stack.box.setFaults({ rules: [] });

    // 3. The session is still there and a clean resume continues it, byte-exact.
    assert.is((await c.cmd('SIZE kept.bin')).text, `213 ${kept}`, 'the kept session survived the failed STOR');
    assert.is((await c.cmd(`REST ${kept}`)).code, 350);
    const resumed = await upload(c, 'STOR kept.bin', whole.subarray(kept));
    assert.is(resumed.final.code, 226, resumed.final.text);
    const back = await download(c, 'RETR kept.bin');
    assert.is(back.final.code, 226);
    assert.ok(back.data.equals(whole), 'resumed file is byte-exact');
  } finally {
    c.close();
  }
});

test.run();
