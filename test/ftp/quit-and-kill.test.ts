// How a transfer ends when its client leaves: QUIT during a transfer lets it finish (RFC 959 4.1.1:
// the result, then the close), even when the client closes its side right after the QUIT; a client
// that goes without QUIT (killed: the kernel closes its data and control connections together) is
// interrupted, and its upload commits nothing though its data connection ended cleanly. The box's
// latency fault holds the upload's call to Dropbox, so the control connection's close reliably
// comes between the data's end and the commit. Found by a client-interop probe: QUIT threw a
// complete upload away (426), and a killed client's truncated upload replaced the file.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startStack, type Stack } from './helpers/stack.ts';
import { RawFtp, download, openData, readAll, sendUpload, sleep, upload } from './helpers/raw-client.ts';
import { pattern } from '../reliability/helpers.ts';

let stack: Stack;

test.before(async () => {
  stack = await startStack();
});
test.after(async () => {
  await stack?.stop();
});

const login = async (): Promise<RawFtp> => {
  const c = await RawFtp.connect(stack.port);
  await c.login(stack.user, stack.password);
  return c;
};

/** Holds the upload's calls that carry its bytes for `ms`. */
const holdUploads = (ms = 1500): Promise<void> =>
  stack.box.setFaults({ rules: [{ kind: 'latency', latencyMs: ms, routes: ['files/upload_session/start', 'files/upload_session/append_v2', 'files/upload'], count: 1 }] });

async function fetch(path: string): Promise<Buffer | null> {
  const c = await login();
  const got = await download(c, `RETR ${path}`);
  c.close();
  return got.final.code === 226 ? got.data : null;
}

/** Waits until the server has no session left (the one that quit, or went, is settled). */
async function sessionsGone(timeoutMs = 10_000): Promise<void> {
  for (const end = Date.now() + timeoutMs; Date.now() < end; await sleep(20)) if (stack.ftp.sessions.size === 0) return;
  throw new Error(`${stack.ftp.sessions.size} sessions left`);
}

test('QUIT sent right after an upload\'s bytes, before its 226: the file is stored, then 226 and 221', async () => {
  const bytes = pattern(3 * 1024 * 1024, 7);
  const c = await login();
  await holdUploads();
  try {
    await sendUpload(c, 'STOR /quit-stor.bin', bytes);
    c.send('QUIT'); // at once: the server may not have read the bytes yet
    const final = await c.read(10_000);
    assert.is(final.code, 226, final.text);
    assert.is((await c.read(10_000)).code, 221);
  } finally {
    await stack.box.setFaults({ rules: [] });
  }
  assert.equal(await fetch('/quit-stor.bin'), bytes);
});

test('QUIT during a download: every byte arrives, then 226 and 221', async () => {
  const bytes = pattern(8 * 1024 * 1024, 9);
  const up = await login();
  assert.is((await upload(up, 'STOR /quit-retr.bin', bytes)).final.code, 226);
  up.close();
  const c = await login();
  const { port } = await c.pasv();
  const data = await openData(port);
  const received = readAll(data);
  c.send('RETR /quit-retr.bin');
  assert.is((await c.read()).code, 150);
  c.send('QUIT');
  assert.equal(await received, bytes);
  assert.is((await c.read(10_000)).code, 226);
  assert.is((await c.read(10_000)).code, 221);
});

test('QUIT and then the client closes its side at once: the upload is still stored', async () => {
  const bytes = pattern(1024 * 1024, 3);
  const c = await login();
  await holdUploads();
  try {
    await sendUpload(c, 'STOR /quit-fin.bin', bytes);
    c.send('QUIT');
    c.socket.end(); // a script's stdin ends: FIN right behind the QUIT
    await sessionsGone();
  } finally {
    await stack.box.setFaults({ rules: [] });
  }
  // The session is gone at once; its upload finishes behind it (the held call, then the commit).
  let stored: Buffer | null = null;
  for (const end = Date.now() + 10_000; Date.now() < end && !stored; await sleep(100)) stored = await fetch('/quit-fin.bin');
  assert.equal(stored, bytes);
});

test('a client killed mid-upload (data and control closed together) commits nothing; the old file stays', async () => {
  const old = Buffer.from('the previous version');
  const first = await login();
  assert.is((await upload(first, 'STOR /killed.bin', old)).final.code, 226);
  first.close();
  const c = await login();
  await holdUploads();
  try {
    // What the kernel does for a process killed after 2 MB of a larger file: FIN on both. The
    // control's FIN here comes once the server has taken the data's end as clean (it closes its
    // side of the data connection then), while the upload's call is still held.
    const { data } = await sendUpload(c, 'STOR /killed.bin', pattern(2 * 1024 * 1024, 5));
    await new Promise((resolve) => data.once('close', resolve));
    c.socket.end();
    await sessionsGone();
    await sleep(2000); // past the held call: a commit, if any, has happened
  } finally {
    await stack.box.setFaults({ rules: [] });
  }
  assert.equal(await fetch('/killed.bin'), old, 'the truncated upload was not committed');
});

test('a client gone while its upload\'s closing call runs leaves no kept session that could not be resumed', async () => {
  // Past the 16 MiB lead: a streamed upload_session/start, then a closing append_v2, held here.
  const c = await login();
  const before = (await stack.box.faultCounts()).latency ?? 0;
  await stack.box.setFaults({ rules: [{ kind: 'latency', latencyMs: 1500, routes: ['files/upload_session/append_v2'], count: 1 }] });
  try {
    const { data } = await sendUpload(c, 'STOR /closing.bin', pattern(20 * 1024 * 1024, 11));
    await new Promise((resolve) => data.once('close', resolve));
    for (let i = 0; i < 200 && ((await stack.box.faultCounts()).latency ?? 0) === before; i++) await sleep(25);
    c.socket.end(); // gone while the closing call is held
    await sessionsGone();
    await sleep(2000);
  } finally {
    await stack.box.setFaults({ rules: [] });
  }
  // That call closed the session at Dropbox: an offer to resume it (SIZE) led every APPE into a 451.
  const d = await login();
  assert.is((await d.cmd('SIZE /closing.bin')).code, 550, 'nothing committed, nothing offered');
  const bytes = pattern(5 * 1024 * 1024, 12);
  assert.is((await upload(d, 'STOR /closing.bin', bytes)).final.code, 226);
  assert.equal((await download(d, 'RETR /closing.bin')).data, bytes);
  d.close();
});

test.run();
