// Regression (found by the audit): a RETR after REST n (n > 0) was a ranged read that the engine
// never checked against the file's content_hash, so a download corrupted on the wire was answered
// 226 with wrong bytes (design.md: "A RETR whose bytes do not match the file's content_hash ends
// with an error reply, never a 226"). The worker now fetches and hashes the prefix too.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startStack, type Stack } from '../ftp/helpers/stack.ts';
import { RawFtp, download } from '../ftp/helpers/raw-client.ts';
import { BoxView, boxUpload, pattern, sha256 } from '../reliability/helpers.ts';

let stack: Stack | null = null;

test.after(async () => {
  await stack?.box.setFaults({ rules: [] }).catch(() => {});
  await stack?.stop();
});

test('REST n + RETR over a corrupted download never answers 226 with wrong bytes', async () => {
  stack = await startStack();
  const view = await BoxView.open(stack.box.url, stack.dataDir);
  const original = pattern(600 * 1024, 7);
  await boxUpload(view, '/f.bin', original);
  const c = await RawFtp.connect(stack.port);
  try {
    await c.login(stack.user, stack.password);
    await c.cmd('TYPE I');
    // Every files/download body gets one byte flipped (retries included): the only right answer
    // to each RETR is an error reply, whatever its offset.
    await stack.box.setFaults({ rules: [{ kind: 'corrupt', routes: ['files/download'], afterBytes: 1000 }] });
    for (const n of [0, 100, 1000]) {
      const firedBefore = (await stack.box.faultCounts()).corrupt ?? 0;
      assert.is((await c.cmd(`REST ${n}`)).code, 350);
      const r = await download(c, 'RETR f.bin');
      const fired = ((await stack.box.faultCounts()).corrupt ?? 0) - firedBefore;
      assert.ok(fired > 0, `REST ${n}: the corrupt fault never fired, so this RETR proves nothing`);
      assert.is.not(r.final.code, 226, `REST ${n}: 226 for bytes that fail the content_hash`);
      assert.ok(r.final.code >= 400, `REST ${n}: ${r.final.code} ${r.final.text}`);
      assert.is.not(sha256(r.data), sha256(original.subarray(n)), `REST ${n}: the corrupted bytes were not the file's`);
    }
    // The same reads without the fault: 226 and the exact bytes (the check is not refusing everything).
    await stack.box.setFaults({ rules: [] });
    for (const n of [0, 1000]) {
      assert.is((await c.cmd(`REST ${n}`)).code, 350);
      const r = await download(c, 'RETR f.bin');
      assert.is(r.final.code, 226, r.final.text);
      assert.is(sha256(r.data), sha256(original.subarray(n)));
    }
  } finally {
    c.close();
  }
});

test.run();
