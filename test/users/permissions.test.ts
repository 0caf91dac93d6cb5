// Access control through real FTP over real sockets against the whole service on the local box:
// a user can neither read, list nor write outside its root folder, whatever the path form, and a
// read-only user can RETR and LIST while every write verb and alias is refused with 550/553 and
// nothing changes in the store (checked over the local box's own HTTP API).

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Dropbox } from 'dropbox';
import { RawFtp, download, upload } from '../ftp/helpers/raw-client.ts';
import { putFile, readFileText, startUsersStack, storeTree, type UsersStack } from './helpers.ts';

let stack: UsersStack;
let sdk: Dropbox;
let before: Map<string, string>;
let secretId = '';
let secretRev = '';

test.before(async () => {
  stack = await startUsersStack({
    alice: { password: 'alice-pw', root: '/alice' },
    bob: { password: 'bob-pw', root: '/bob' },
    reader: { password: 'reader-pw', root: '/alice', 'read-only': true },
  });
  sdk = await stack.sdk('local');
  await putFile(sdk, '/alice/hello.txt', 'alice-data');
  await putFile(sdk, '/alice/sub/inner.txt', 'inner');
  await putFile(sdk, '/bob/secret.txt', 'BOB-SECRET');
  await putFile(sdk, '/top-secret.txt', 'TOP-SECRET');
  const meta = (await sdk.filesGetMetadata({ path: '/bob/secret.txt' })).result as { id: string; rev: string };
  secretId = meta.id;
  secretRev = meta.rev;
  before = await storeTree(sdk);
});

test.after(async () => {
  await stack.stop();
});

const login = (user: string, password: string): Promise<RawFtp> => RawFtp.loggedIn(stack.port, user, password);

/** Every way we know to name bob's file or the account root from alice's session. */
function escapes(): string[] {
  return [
    '../bob/secret.txt', '../../bob/secret.txt', '/../bob/secret.txt', '/../../../bob/secret.txt', 'sub/../../bob/secret.txt',
    './../bob/secret.txt', '//../bob/secret.txt', '/alice/../bob/secret.txt', '~/../bob/secret.txt', '../top-secret.txt',
    '%2e%2e/bob/secret.txt', '%2e%2e%2fbob%2fsecret.txt', '..%2fbob%2fsecret.txt', '%252e%252e%252fbob%252fsecret.txt', '%2E%2E/top-secret.txt',
    '\uFF0E\uFF0E/bob/secret.txt', '\uFF0E\uFF0E\uFF0Fbob\uFF0Fsecret.txt', '..\uFF0Fbob\uFF0Fsecret.txt', '\u2025/bob/secret.txt', '\u2024\u2024/top-secret.txt',
    '..\u2215bob\u2215secret.txt', '..\u2044top-secret.txt', '\uFE52\uFE52/top-secret.txt', '..\uFF3Cbob\uFF3Csecret.txt',
    '..\\bob\\secret.txt', '\\bob\\secret.txt', '..\\top-secret.txt', '.. /bob/secret.txt', '..\u200B/bob/secret.txt',
    `${secretId}`, `/${secretId}`, `rev:${secretRev}`, `ns:1/bob/secret.txt`, 'id:../bob/secret.txt',
    'x -> ../../bob/secret.txt',
  ];
}

test('positive control: alice reads her own files by absolute, relative and dotted paths', async () => {
  const c = await login('alice', 'alice-pw');
  for (const path of ['hello.txt', '/hello.txt', 'sub/../hello.txt', '/sub/../../hello.txt']) {
    const got = await download(c, `RETR ${path}`);
    assert.is(got.final.code, 226, `${path}: ${got.final.text}`);
    assert.is(got.data.toString(), 'alice-data', path);
  }
  const list = await download(c, 'NLST /');
  assert.equal(list.data.toString().split('\r\n').filter(Boolean).sort(), ['hello.txt', 'sub']);
  c.close();
});

test('no path form reads, stats or lists outside the root', async () => {
  const c = await login('alice', 'alice-pw');
  for (const path of escapes()) {
    const got = await download(c, `RETR ${path}`);
    assert.ok(!got.data.toString().includes('SECRET'), `RETR ${path} leaked`);
    assert.ok([550, 553].includes(got.final.code), `RETR ${path}: ${got.final.text}`);
    for (const verb of ['SIZE', 'MDTM', 'MLST']) {
      const reply = await c.cmd(`${verb} ${path}`);
      assert.ok([550, 553].includes(reply.code), `${verb} ${path}: ${reply.text}`);
    }
    const dir = path.replace(/secret\.txt$|top-secret\.txt$/, '') || '..';
    for (const verb of ['LIST', 'NLST', 'MLSD']) {
      const listed = await download(c, `${verb} ${dir}`);
      assert.ok(!/secret/i.test(listed.data.toString()), `${verb} ${dir} listed a secret: ${listed.data}`);
    }
    const stat = await c.cmd(`STAT ${dir}`);
    assert.ok(!/secret/i.test(stat.text), `STAT ${dir}: ${stat.text}`);
  }
  c.close();
});

test('CWD then relative paths stay inside; CDUP stops at the root', async () => {
  const c = await login('alice', 'alice-pw');
  assert.is((await c.cmd('CWD sub')).code, 250);
  for (const path of ['../../bob/secret.txt', '../../../top-secret.txt', '..\\..\\bob\\secret.txt', '%2e%2e/%2e%2e/bob/secret.txt']) {
    const got = await download(c, `RETR ${path}`);
    assert.ok([550, 553].includes(got.final.code) && got.data.length === 0, `RETR ${path} from /sub: ${got.final.text}`);
  }
  for (const dir of ['../..', '../../bob', '%2e%2e', '\uFF0E\uFF0E']) {
    const reply = await c.cmd(`CWD ${dir}`);
    if (reply.code === 250) {
      const listed = await download(c, 'NLST');
      assert.ok(!/secret|bob/i.test(listed.data.toString()), `after CWD ${dir}: ${listed.data}`);
      assert.is((await c.cmd('CWD /sub')).code, 250);
    } else assert.ok([550, 553].includes(reply.code), `CWD ${dir}: ${reply.text}`);
  }
  for (let i = 0; i < 5; i++) await c.cmd('CDUP');
  assert.is((await c.cmd('PWD')).text, '257 "/" is the current directory');
  assert.equal((await download(c, 'NLST')).data.toString().split('\r\n').filter(Boolean).sort(), ['hello.txt', 'sub']);
  c.close();
});

test('no path form writes, deletes, creates or renames outside the root', async () => {
  const c = await login('alice', 'alice-pw');
  for (const path of escapes()) {
    const stored = await upload(c, `STOR ${path}`, Buffer.from('EVIL'));
    assert.ok([226, 550, 553].includes(stored.final.code), `STOR ${path}: ${stored.final.text}`);
    const appended = await upload(c, `APPE ${path}`, Buffer.from('EVIL'));
    assert.ok([226, 550, 553].includes(appended.final.code), `APPE ${path}: ${appended.final.text}`);
    assert.ok([250, 550, 553].includes((await c.cmd(`DELE ${path}`)).code), `DELE ${path}`);
    assert.ok([250, 550, 553].includes((await c.cmd(`RMD ${path}`)).code), `RMD ${path}`);
    await c.cmd(`MKD ${path}.d`);
    await c.cmd('RNFR hello.txt');
    await c.cmd(`RNTO ${path}`);
    // Whatever happened, hello.txt may have moved, but only inside alice's root: put it back.
    await c.cmd(`RNFR ${path}`);
    await c.cmd('RNTO /hello.txt');
  }
  c.close();
  const after = await storeTree(sdk);
  for (const [path, state] of before) {
    if (!path.startsWith('/alice/')) assert.is(after.get(path), state, `${path} changed`);
  }
  for (const path of after.keys()) assert.ok(path === '/alice' || path.startsWith('/alice/') || before.has(path), `${path} appeared outside /alice`);
  assert.is(await readFileText(sdk, '/bob/secret.txt'), 'BOB-SECRET');
  assert.is(await readFileText(sdk, '/top-secret.txt'), 'TOP-SECRET');
});

test('read-only user: RETR, LIST, NLST, MLSD, SIZE, MDTM, MLST, STAT, CWD work', async () => {
  const c = await login('reader', 'reader-pw');
  const got = await download(c, 'RETR /hello.txt');
  assert.is(got.final.code, 226);
  assert.ok(got.data.toString() === 'alice-data' || got.data.length > 0);
  for (const verb of ['LIST', 'NLST', 'MLSD']) {
    const listed = await download(c, `${verb} /`);
    assert.is(listed.final.code, 226, `${verb}: ${listed.final.text}`);
    assert.ok(listed.data.toString().includes('hello.txt'), verb);
  }
  assert.is((await c.cmd('SIZE hello.txt')).code, 213);
  assert.is((await c.cmd('MDTM hello.txt')).code, 213);
  assert.is((await c.cmd('MLST hello.txt')).code, 250);
  assert.is((await c.cmd('STAT /')).code, 213);
  assert.is((await c.cmd('CWD sub')).code, 250);
  assert.is((await c.cmd('XCWD /')).code, 250);
  c.close();
});

test('read-only user: every write verb and alias is refused and the store is unchanged', async () => {
  const start = await storeTree(sdk);
  const c = await login('reader', 'reader-pw');
  for (const line of ['STOR new.txt', 'STOR hello.txt', 'APPE hello.txt', 'APPE new.txt', 'STOU', 'STOU new.txt', 'stor lower.txt', 'Appe hello.txt']) {
    const r = await upload(c, line, Buffer.from('WRITE'));
    assert.ok([550, 553].includes(r.first.code), `${line}: ${r.first.text}`);
  }
  const refused = [
    'DELE hello.txt', 'dele hello.txt', 'RMD sub', 'XRMD sub', 'RMD /sub', 'MKD newdir', 'XMKD newdir', 'xmkd newdir', 'MKD /sub/deeper',
    'RNFR hello.txt', 'RNTO renamed.txt', 'RNFR sub', 'SITE CHMOD 777 hello.txt', 'SITE UTIME 20200101000000 hello.txt',
  ];
  for (const line of refused) {
    const r = await c.cmd(line);
    assert.ok([550, 553, 503].includes(r.code), `${line}: ${r.text}`);
    if (line.startsWith('RNTO')) assert.ok(r.code !== 250, line);
  }
  for (const line of ['MFMT 20200101000000 hello.txt', 'MFCT 20200101000000 hello.txt', 'SITE SYMLINK hello.txt x']) {
    const r = await c.cmd(line);
    assert.ok(r.code >= 500 && r.code < 600, `${line}: ${r.text}`);
  }
  c.close();
  assert.equal([...(await storeTree(sdk))].sort(), [...start].sort(), 'store unchanged');
});

test('a user without mkdir/delete but with write: MKD/XMKD and DELE/RMD/XRMD refused, STOR works', async () => {
  const path = stack.usersFile;
  const { writeUsers } = await import('./helpers.ts');
  await writeUsers(path, {
    alice: { password: 'alice-pw', root: '/alice' },
    bob: { password: 'bob-pw', root: '/bob' },
    reader: { password: 'reader-pw', root: '/alice', 'read-only': true },
    dropper: { password: 'dropper-pw', root: '/drop', permissions: ['write'] },
  });
  await stack.service.reload();
  const c = await login('dropper', 'dropper-pw');
  assert.is((await upload(c, 'STOR in.txt', Buffer.from('dropped'))).final.code, 226);
  for (const line of ['MKD d', 'XMKD d', 'DELE in.txt', 'RMD /', 'XRMD x', 'RNFR in.txt', 'SIZE in.txt', 'MDTM in.txt', 'MLST in.txt']) {
    const r = await c.cmd(line);
    assert.ok([550, 553].includes(r.code), `${line}: ${r.text}`);
  }
  assert.ok([550, 553].includes((await download(c, 'RETR in.txt')).first.code), 'RETR refused');
  assert.ok([550, 553].includes((await download(c, 'LIST')).first.code), 'LIST refused');
  c.close();
  assert.is(await readFileText(sdk, '/drop/in.txt'), 'dropped');
});

test.run();
