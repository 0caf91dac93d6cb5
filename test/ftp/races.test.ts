// Commands of several sessions (and of Dropbox's other clients) on the same names at once, through
// real FTP against the whole service on the local box. Each race is opened on purpose: the box's
// latency fault holds one call at its door while the other writer acts (the fault count says when
// the call got there). Found by a concurrency probe, each failed before its fix: RNTO over a file
// deleted that file when its source had gone meanwhile; a case-only rename raced by a commit left
// the folder's files under a hidden name; racing STOUs got one "unique" name and overwrote each
// other; APPE copied the first bytes of whatever version was current and overwrote whatever was
// there at its commit; DELE refused to delete a newer version but said "File or directory exists".

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Dropbox } from 'dropbox';
import { RawFtp, download, sendUpload, sleep, upload, type Reply } from './helpers/raw-client.ts';
import { putFile, readFileText, startUsersStack, type UsersStack } from '../users/helpers.ts';

let stack: UsersStack;
let sdk: Dropbox;

test.before(async () => {
  stack = await startUsersStack({ alice: { password: 'alice-pw', root: '/alice' } });
  sdk = await stack.sdk('local');
  await putFile(sdk, '/alice/.keep', '');
});

test.after(async () => {
  await stack.stop();
});

const login = (): Promise<RawFtp> => RawFtp.loggedIn(stack.port, 'alice', 'alice-pw');

async function faultCount(): Promise<number> {
  return (await stack.service.box.faultCounts()).latency ?? 0;
}

/** Waits until the box has held `n` more calls than `before` (counts are cumulative). */
async function held(before: number, n = 1, timeoutMs = 10_000): Promise<void> {
  for (const end = Date.now() + timeoutMs; Date.now() < end; ) {
    if ((await faultCount()) >= before + n) return;
    await sleep(20);
  }
  throw new Error(`the box held ${(await faultCount()) - before} of ${n} calls`);
}

/** Holds the next `count` calls of `route` for `ms`. */
function hold(route: string, count = 1, ms = 1500): Promise<void> {
  return stack.service.box.setFaults({ rules: [{ kind: 'latency', latencyMs: ms, routes: [route], count }] });
}

/**
 * An upload (`line` with `bytes`) whose call to `route` the box holds while the other writer acts
 * (`meanwhile`); resolves with the upload's final reply.
 */
async function uploadRacedAt(c: RawFtp, route: string, line: string, bytes: Buffer, meanwhile: () => Promise<void>): Promise<Reply> {
  const before = await faultCount();
  await hold(route);
  try {
    const { data } = await sendUpload(c, line, bytes);
    await held(before);
    await meanwhile();
    const reply = await c.read(10_000);
    data.destroy();
    return reply;
  } finally {
    await stack.service.box.setFaults({ rules: [] });
  }
}

/**
 * A case-only rename whose second move_v2 (from the hidden name to the new one) the box holds while
 * the other writer acts (`meanwhile`); resolves with the RNTO's reply.
 */
async function caseRenameRaced(c: RawFtp, from: string, to: string, meanwhile: () => Promise<void>): Promise<Reply> {
  const before = await faultCount();
  await hold('files/move_v2', 2);
  try {
    assert.is((await c.cmd(`RNFR ${from}`)).code, 350);
    c.send(`RNTO ${to}`);
    await held(before, 2);
    await meanwhile();
    return await c.read(10_000);
  } finally {
    await stack.service.box.setFaults({ rules: [] });
  }
}

async function names(folder: string): Promise<string[]> {
  const res = await sdk.filesListFolder({ path: folder });
  return res.result.entries.map((e) => e.name).sort();
}

const hidden = (list: string[]): string[] => list.filter((n) => n.startsWith('.dropftp-'));

test('RNTO over a file whose source another client moved meanwhile answers 550 and keeps the file', async () => {
  const c = await login();
  await putFile(sdk, '/alice/rn/src.txt', 'source');
  await putFile(sdk, '/alice/rn/dst.txt', 'destination');
  assert.is((await c.cmd('RNFR /rn/src.txt')).code, 350);
  const before = await faultCount();
  // The first move finds dst.txt taken; the replace then looks dst.txt up: held there.
  await hold('files/get_metadata');
  try {
    c.send('RNTO /rn/dst.txt');
    await held(before);
    await sdk.filesMoveV2({ from_path: '/alice/rn/src.txt', to_path: '/alice/rn/elsewhere.txt' });
    const reply = await c.read(10_000);
    assert.is(reply.code, 550, reply.text);
  } finally {
    await stack.service.box.setFaults({ rules: [] });
  }
  assert.is(await readFileText(sdk, '/alice/rn/dst.txt'), 'destination', 'a failed RNTO changes nothing');
  assert.is(await readFileText(sdk, '/alice/rn/elsewhere.txt'), 'source');
  assert.equal(hidden(await names('/alice/rn')), [], 'nothing left aside');
  // And the replace itself still works.
  assert.is((await c.cmd('RNFR /rn/elsewhere.txt')).code, 350);
  assert.is((await c.cmd('RNTO /rn/dst.txt')).code, 250);
  assert.is(await readFileText(sdk, '/alice/rn/dst.txt'), 'source');
  assert.equal(await names('/alice/rn'), ['dst.txt']);
  c.close();
});

test('a case-only rename of a folder raced by a commit into it loses no file and hides none', async () => {
  const c = await login();
  for (let i = 0; i < 3; i++) await putFile(sdk, `/alice/cf/dir/f${i}.txt`, `old ${i}`);
  await putFile(sdk, '/alice/cf/dir/clash.txt', 'old clash');
  // Two moves: dir to a hidden name, then to DIR. The commits land while the second is held.
  const reply = await caseRenameRaced(c, '/cf/dir', '/cf/DIR', async () => {
    await putFile(sdk, '/alice/cf/dir/new.txt', 'new');
    await putFile(sdk, '/alice/cf/dir/clash.txt', 'new clash');
  });
  assert.is(reply.code, 550, reply.text);
  assert.equal(hidden(await names('/alice/cf')), [], 'nothing left under a hidden name');
  assert.equal(await names('/alice/cf/dir'), ['clash.txt', 'f0.txt', 'f1.txt', 'f2.txt', 'new.txt']);
  for (let i = 0; i < 3; i++) assert.is(await readFileText(sdk, `/alice/cf/dir/f${i}.txt`), `old ${i}`);
  assert.is(await readFileText(sdk, '/alice/cf/dir/clash.txt'), 'new clash', 'the later commit wins a name both hold');
  const list = await download(c, 'NLST /cf/dir');
  assert.is(list.data.toString().split('\r\n').filter(Boolean).length, 5, 'FTP sees every file');
  c.close();
});

test('a case-only rename of a file raced by a STOR of it leaves the newer file and no hidden one', async () => {
  const c = await login();
  await putFile(sdk, '/alice/cs/a.txt', 'old');
  const reply = await caseRenameRaced(c, '/cs/a.txt', '/cs/A.TXT', () => putFile(sdk, '/alice/cs/a.txt', 'newer'));
  assert.is(reply.code, 550, reply.text);
  assert.equal(await names('/alice/cs'), ['a.txt'], 'no hidden copy left behind');
  assert.is(await readFileText(sdk, '/alice/cs/a.txt'), 'newer');
  c.close();
});

test('STOUs racing in one folder get different names and keep their own bytes', async () => {
  const clients = await Promise.all([login(), login(), login(), login()]);
  const results = await Promise.all(clients.map((c, i) => upload(c, 'STOU /stou/up.txt', Buffer.from(`client ${i}`))));
  const taken = results.map((r) => {
    assert.is(r.final.code, 226, r.final.text);
    return /FILE: (.+)$/.exec(r.first.text)![1]!;
  });
  assert.is(new Set(taken).size, 4, `four names: ${taken.join(', ')}`);
  for (let i = 0; i < 4; i++) assert.is(await readFileText(sdk, `/alice/stou/${taken[i]}`), `client ${i}`);
  for (const c of clients) c.close();
});

test("STOU whose name another client takes before its commit fails and leaves that client's file", async () => {
  const c = await login();
  const final = await uploadRacedAt(c, 'files/upload_session/finish_batch_v2', 'STOU /stou2/name.txt', Buffer.from('from STOU'), () => putFile(sdk, '/alice/stou2/name.txt', 'from another client'));
  assert.is(final.code, 550, final.text);
  assert.match(final.text, /taken/);
  assert.is(await readFileText(sdk, '/alice/stou2/name.txt'), 'from another client', 'never overwritten');
  c.close();
});

test('APPE over a file replaced while its first bytes are read fails; the new version stays whole', async () => {
  const c = await login();
  await putFile(sdk, '/alice/ap/log', 'o'.repeat(1000));
  // Held: the download of the current version's first bytes.
  const reply = await uploadRacedAt(c, 'files/download', 'APPE /ap/log', Buffer.from('[tail]'), () => putFile(sdk, '/alice/ap/log', 'N'.repeat(3000)));
  assert.is.not(reply.code, 226, `no 226 for a mix: ${reply.text}`);
  assert.is(await readFileText(sdk, '/alice/ap/log'), 'N'.repeat(3000), 'the other writer\'s version, whole');
  c.close();
});

test("APPE over a file replaced before its commit fails and keeps the other writer's bytes", async () => {
  const c = await login();
  await putFile(sdk, '/alice/ap2/log', 'line1\n');
  const reply = await uploadRacedAt(c, 'files/upload_session/finish_batch_v2', 'APPE /ap2/log', Buffer.from('line2\n'), () => putFile(sdk, '/alice/ap2/log', 'replaced\n'));
  assert.is(reply.code, 550, reply.text);
  assert.match(reply.text, /changed/);
  assert.is(await readFileText(sdk, '/alice/ap2/log'), 'replaced\n');
  // Nothing raced: APPE appends.
  const again = await upload(c, 'APPE /ap2/log', Buffer.from('line2\n'));
  assert.is(again.final.code, 226, again.final.text);
  assert.is(await readFileText(sdk, '/alice/ap2/log'), 'replaced\nline2\n');
  c.close();
});

test('DELE of a file replaced after it was looked up keeps the new version and says why', async () => {
  const c = await login();
  await putFile(sdk, '/alice/dl/f.txt', 'old');
  const before = await faultCount();
  await hold('files/delete_v2');
  let reply;
  try {
    c.send('DELE /dl/f.txt');
    await held(before);
    await putFile(sdk, '/alice/dl/f.txt', 'new');
    reply = await c.read(10_000);
  } finally {
    await stack.service.box.setFaults({ rules: [] });
  }
  assert.is(reply.code, 550, reply.text);
  assert.match(reply.text, /changed meanwhile; not deleted/);
  assert.is(await readFileText(sdk, '/alice/dl/f.txt'), 'new');
  c.close();
});

test.run();
