// Audit regression: APPE (and REST n + STOR below the file's size) copy the file's current bytes
// through the engine's download before the client's. The copy stopped reading as soon as it had
// its prefix, before the download's end — and the end is where the file's content_hash is checked.
// A download corrupted on the wire was committed as the file's new content, answered 226.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startStack, type Stack } from '../ftp/helpers/stack.ts';
import { RawFtp, upload } from '../ftp/helpers/raw-client.ts';
import { BoxView, boxUpload, pattern, sha256 } from '../reliability/helpers.ts';

let stack: Stack;
let view: BoxView;

test.before(async () => {
  stack = await startStack();
  view = await BoxView.open(stack.box.url, stack.dataDir);
});
test.after(async () => {
  await stack?.box.setFaults({ rules: [] }).catch(() => {});
  await stack?.stop();
});

const original = pattern(600 * 1024, 7);
const tail = Buffer.from('appended tail\n');

async function run(name: string, commands: string[], expected: Buffer): Promise<void> {
  await stack.box.setFaults({ rules: [] });
  const path = `/${name}`;
  // The file as another Dropbox client wrote it, straight into the store.
  await boxUpload(view, path, original);
  const c = await RawFtp.connect(stack.port);
  try {
    await c.login(stack.user, stack.password);
    for (const line of commands.slice(0, -1)) assert.ok((await c.cmd(line)).code < 400, line);
    // Every download of the file now carries one flipped byte (corrupt fires on files/download only).
    await stack.box.setFaults({ rules: [{ kind: 'corrupt', routes: ['files/download'], afterBytes: 1000 }] });
    const { final } = await upload(c, commands.at(-1)!, tail);
    await stack.box.setFaults({ rules: [] });
    const stored = await view.download(path);
    if (final.code === 226) {
      assert.is(sha256(stored!), sha256(expected), `${commands.at(-1)} answered 226 but the file holds other bytes`);
    } else {
      assert.is(sha256(stored!), sha256(original), `${commands.at(-1)} failed (${final.code}) and the file changed`);
    }
  } finally {
    c.close();
  }
}

test('APPE over a corrupted download never commits the corrupted prefix', async () => {
  await run('appe.bin', ['TYPE I', `APPE appe.bin`], Buffer.concat([original, tail]));
});

test('REST n + STOR (n below the size) over a corrupted download never commits the corrupted prefix', async () => {
  const n = 300 * 1024;
  await run('rest.bin', ['TYPE I', `REST ${n}`, `STOR rest.bin`], Buffer.concat([original.subarray(0, n), tail]));
});

test.run();
