// Audit regression: resumes in TYPE A. Stored files hold LF; in TYPE A the client sends and counts
// CRLF (RFC 959 3.1.1.1), and a stream-mode restart marker is an octet offset into that data
// stream (RFC 3659 5.1). The gateway took REST n as a stored offset: REST n + STOR kept n stored
// bytes of the old file and appended the client's rest — shifted by one byte per line before n, a
// corrupt file answered 226; REST n + RETR sent the wrong bytes; an interrupted TYPE A STOR left a
// session whose offset (stored bytes) a client then resumed from its own count. Now, as vsftpd:
// REST n > 0 with RETR/STOR/STOU in TYPE A is refused (550), APPE in TYPE A over a kept session is
// refused, and a TYPE A upload leaves no session. TYPE I resumes work as before.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startStack, type Stack } from '../ftp/helpers/stack.ts';
import { RawFtp, download, resetStor, sleep, upload } from '../ftp/helpers/raw-client.ts';
import { pattern } from '../reliability/helpers.ts';

let stack: Stack;
let c: RawFtp;

/** `lines` lines of text with LF ends, as stored. */
function text(lines: number): Buffer {
  return Buffer.from(Array.from({ length: lines }, (_, i) => `line ${i} of the ascii resume test`).join('\n') + '\n');
}
const crlf = (b: Buffer) => Buffer.from(b.toString('latin1').replace(/\n/g, '\r\n'), 'latin1');

test.before(async () => {
  stack = await startStack();
  c = await RawFtp.connect(stack.port);
  await c.login(stack.user, stack.password);
});
test.after(async () => {
  c?.close();
  await stack?.stop();
});

async function stored(path: string): Promise<Buffer> {
  assert.is((await c.cmd('TYPE I')).code, 200);
  const r = await download(c, `RETR ${path}`);
  assert.is(r.final.code, 226, r.final.text);
  return r.data;
}

test('REST n + STOR / STOU in TYPE A: 550, the file unchanged; REST n + STOR in TYPE I still resumes', async () => {
  const original = text(100);
  assert.is((await c.cmd('TYPE A')).code, 200);
  assert.is((await upload(c, 'STOR /a.txt', crlf(original))).final.code, 226);
  assert.ok((await stored('/a.txt')).equals(original), 'TYPE A STOR stores LF');

  // The client sent 20 lines (CRLF) before an interruption and resumes at its own count.
  assert.is((await c.cmd('TYPE A')).code, 200);
  const sent = crlf(text(20)).length;
  assert.is((await c.cmd(`REST ${sent}`)).code, 350);
  const changed = Buffer.from(original.toString().replace('line 50 ', 'LINE 50 '));
  const stor = await upload(c, 'STOR /a.txt', crlf(changed).subarray(sent));
  assert.is(stor.final.code, 550, `REST + STOR in TYPE A: ${stor.final.text}`);
  assert.ok(stor.final.text.includes('TYPE I'), stor.final.text);
  assert.ok((await stored('/a.txt')).equals(original), 'the file is unchanged');

  assert.is((await c.cmd('TYPE A')).code, 200);
  assert.is((await c.cmd('REST 10')).code, 350);
  assert.is((await upload(c, 'STOU /a.txt', Buffer.from('x\r\n'))).final.code, 550, 'REST + STOU in TYPE A');

  // REST applies to one command only: a plain TYPE A STOR afterwards works.
  assert.is((await upload(c, 'STOR /b.txt', crlf(original))).final.code, 226);

  // TYPE I: REST n + STOR keeps n bytes and appends the rest, byte-exact.
  assert.is((await c.cmd('TYPE I')).code, 200);
  assert.is((await c.cmd(`REST ${original.length / 2}`)).code, 350);
  assert.is((await upload(c, 'STOR /a.txt', changed.subarray(original.length / 2))).final.code, 226);
  assert.ok((await stored('/a.txt')).equals(Buffer.concat([original.subarray(0, original.length / 2), changed.subarray(original.length / 2)])));
});

test('REST n + RETR in TYPE A: 550, no bytes; in TYPE I it sends the tail', async () => {
  const original = text(50);
  assert.is((await c.cmd('TYPE I')).code, 200);
  assert.is((await upload(c, 'STOR /r.txt', original)).final.code, 226);
  assert.is((await c.cmd('TYPE A')).code, 200);
  assert.is((await c.cmd('REST 40')).code, 350);
  const r = await download(c, 'RETR /r.txt');
  assert.is(r.final.code, 550, `REST + RETR in TYPE A: ${r.final.text}`);
  assert.is(r.data.length, 0);
  // Without REST, TYPE A RETR converts as before.
  assert.ok((await download(c, 'RETR /r.txt')).data.equals(crlf(original)));
  assert.is((await c.cmd('TYPE I')).code, 200);
  assert.is((await c.cmd('REST 40')).code, 350);
  assert.ok((await download(c, 'RETR /r.txt')).data.equals(original.subarray(40)));
});

/** Sends `bytes` partly, then resets the data connection: the STOR ends 426. */
function interruptedStor(path: string, bytes: Buffer, sendBytes: number): Promise<void> {
  return resetStor(c, path, bytes, sendBytes, 1000);
}

async function sizeReply(path: string): Promise<string> {
  let size = await c.cmd(`SIZE ${path}`);
  for (let i = 0; i < 20 && size.code !== 213; i++) {
    await sleep(100);
    size = await c.cmd(`SIZE ${path}`);
  }
  return size.text;
}

test('an interrupted TYPE A STOR keeps no session; APPE in TYPE A never continues a TYPE I one', async () => {
  // TYPE A: nothing kept (its offset would count stored bytes, the client's count is CRLF).
  const lines = crlf(text(160_000)); // ~6.7 MB on the wire
  assert.is((await c.cmd('TYPE A')).code, 200);
  await interruptedStor('/t.txt', lines, 5 * 1024 * 1024);
  await sleep(500);
  assert.is((await c.cmd('SIZE /t.txt')).code, 550, 'no kept session, nothing committed');

  // TYPE I: a session is kept; APPE in TYPE A is refused and leaves it; TYPE I resumes it.
  const whole = pattern(6 * 1024 * 1024 + 5, 11);
  assert.is((await c.cmd('TYPE I')).code, 200);
  await interruptedStor('/k.bin', whole, 5 * 1024 * 1024);
  const kept = Number((await sizeReply('/k.bin')).slice(4));
  assert.ok(kept > 0 && kept < whole.length, `kept ${kept}`);
  assert.is((await c.cmd('TYPE A')).code, 200);
  const appe = await upload(c, 'APPE /k.bin', whole.subarray(kept));
  assert.is(appe.final.code, 550, `APPE in TYPE A over a kept session: ${appe.final.text}`);
  assert.is((await c.cmd('SIZE /k.bin')).text, `213 ${kept}`, 'the session is still kept');
  assert.is((await c.cmd('TYPE I')).code, 200);
  assert.is((await c.cmd(`REST ${kept}`)).code, 350);
  assert.is((await upload(c, 'STOR /k.bin', whole.subarray(kept))).final.code, 226);
  assert.ok((await stored('/k.bin')).equals(whole), 'TYPE I resume is byte-exact');

  // APPE in TYPE A with no kept session appends the converted lines to the committed file.
  assert.is((await c.cmd('TYPE A')).code, 200);
  assert.is((await upload(c, 'STOR /p.txt', Buffer.from('one\r\n'))).final.code, 226);
  assert.is((await upload(c, 'APPE /p.txt', Buffer.from('two\r\n'))).final.code, 226);
  assert.is((await stored('/p.txt')).toString(), 'one\ntwo\n');
});

test.run();
