// Regressions for protocol details a new user met with ftplib against `dropftp serve` (issue 16):
// OPTS MLST selects the facts MLST/MLSD send (RFC 3659 7.9); REST takes a safe integer only;
// TYPE L 8 is binary (RFC 959 3.1.1.4, RFC 1123 4.1.2.1); RNFR of the root is refused; USER after
// a login changes the user (the previous login dropped, its per-user count released).

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Dropbox } from 'dropbox';
import { DropftpError } from '../../src/errors.ts';
import { FtpServer } from '../../src/ftp/server.ts';
import { RawFtp, download } from './helpers/raw-client.ts';
import { putFile, startUsersStack, type UsersStack } from '../users/helpers.ts';

let stack: UsersStack;
let sdk: Dropbox;

test.before(async () => {
  stack = await startUsersStack({
    alice: { password: 'alice-pw', root: '/alice' },
    bob: { password: 'bob-pw', root: '/bob' },
  });
  sdk = await stack.sdk('local');
  await putFile(sdk, '/alice/hello.txt', 'hello');
  await putFile(sdk, '/bob/bob-only.txt', 'bob');
});

test.after(async () => {
  await stack.stop();
});

const login = (user: string, password: string): Promise<RawFtp> => RawFtp.loggedIn(stack.port, user, password);

/** The fact names of one MLST/MLSD entry line ("type=file;size=5; name" → ['size', 'type']). */
function factNames(line: string): string[] {
  const facts = line.trim().slice(0, line.trim().indexOf(' '));
  return facts.split(';').filter(Boolean).map((fact) => fact.split('=')[0]!).sort();
}

test('OPTS MLST size;type;perm; — MLST and MLSD then send only those facts; FEAT marks them', async () => {
  const c = await login('alice', 'alice-pw');
  const before = await c.cmd('MLST /hello.txt');
  assert.equal(factNames(before.lines[1]!), ['modify', 'perm', 'size', 'type', 'unique']);
  const set = await c.cmd('OPTS MLST size;type;perm;');
  assert.is(set.code, 200, set.text);
  assert.ok(/MLST OPTS type;size;perm;$/.test(set.text.trim()), set.text);
  const mlst = await c.cmd('MLST /hello.txt');
  assert.is(mlst.code, 250, mlst.text);
  const entry = mlst.lines[1]!;
  assert.equal(factNames(entry), ['perm', 'size', 'type'], entry);
  assert.ok(entry.includes('size=5;'), entry);
  const mlsd = await download(c, 'MLSD /');
  assert.is(mlsd.final.code, 226, mlsd.final.text);
  const lines = mlsd.data.toString().split('\r\n').filter(Boolean);
  assert.ok(lines.length >= 1);
  for (const line of lines) {
    const names = factNames(line);
    assert.ok(names.every((name) => ['perm', 'size', 'type'].includes(name)) && names.includes('type'), line);
  }
  const feat = await c.cmd('FEAT');
  assert.ok(feat.text.includes('MLST type*;size*;modify;perm*;unique;'), feat.text);
  // Unknown facts are ignored; an empty list selects none (RFC 3659 7.9).
  assert.ok((await c.cmd('OPTS MLST bogus;modify;')).text.trim().endsWith('MLST OPTS modify;'));
  assert.equal(factNames((await c.cmd('MLST /hello.txt')).lines[1]!), ['modify']);
  assert.is((await c.cmd('OPTS MLST')).code, 200);
  assert.is((await c.cmd('MLST /hello.txt')).lines[1]!.trim(), '/hello.txt');
  c.close();
});

test('REST takes a safe integer only: 99999999999999999999999 and friends get 501', async () => {
  const c = await login('alice', 'alice-pw');
  for (const arg of ['99999999999999999999999', '9007199254740992', '1e+23', '1e3', '-1', '12abc', '0x10', '', ' ']) {
    const reply = await c.cmd(`REST ${arg}`);
    assert.is(reply.code, 501, `REST ${arg}: ${reply.text}`);
  }
  assert.is((await c.cmd('REST 9007199254740991')).code, 350);
  const rest = await c.cmd('REST 2');
  assert.is(rest.code, 350, rest.text);
  const got = await download(c, 'RETR /hello.txt');
  assert.is(got.final.code, 226, got.final.text);
  assert.is(got.data.toString(), 'llo', 'the accepted offset applies to the next RETR');
  c.close();
});

test('TYPE L 8 is binary (RFC 959 3.1.1.4, RFC 1123 4.1.2.1); other byte sizes and E are refused', async () => {
  const c = await login('alice', 'alice-pw');
  await putFile(sdk, '/alice/lines.txt', 'a\nb\n');
  assert.is((await c.cmd('TYPE A')).code, 200);
  assert.is((await download(c, 'RETR /lines.txt')).data.toString(), 'a\r\nb\r\n', 'TYPE A converts');
  for (const arg of ['L 8', 'l 8', 'L8']) {
    assert.is((await c.cmd('TYPE A')).code, 200);
    const reply = await c.cmd(`TYPE ${arg}`);
    assert.is(reply.code, 200, `TYPE ${arg}: ${reply.text}`);
    assert.ok((await c.cmd('STAT')).text.includes('TYPE: BINARY'), `TYPE ${arg} is binary`);
  }
  assert.is((await download(c, 'RETR /lines.txt')).data.toString(), 'a\nb\n', 'TYPE L 8 moves the bytes as they are');
  assert.is((await c.cmd('TYPE A N')).code, 200);
  assert.ok((await c.cmd('STAT')).text.includes('TYPE: ASCII'));
  for (const arg of ['L 7', 'L 36', 'E', 'A T', 'I I']) assert.is((await c.cmd(`TYPE ${arg}`)).code, 504, `TYPE ${arg}`);
  for (const arg of ['X', '', 'A N X']) assert.is((await c.cmd(`TYPE ${arg}`)).code, 501, `TYPE ${arg}`);
  assert.ok((await c.cmd('STAT')).text.includes('TYPE: ASCII'), 'a refused TYPE changes nothing');
  c.close();
});

test('RNFR / (the user root) answers 550 and leaves no rename pending', async () => {
  const c = await login('alice', 'alice-pw');
  for (const path of ['/', '.', '..', '/..', '//']) {
    const reply = await c.cmd(`RNFR ${path}`);
    assert.is(reply.code, 550, `RNFR ${path}: ${reply.text}`);
  }
  assert.is((await c.cmd('RNTO /renamed-root')).code, 503, 'no rename pending after a refused RNFR');
  assert.is((await c.cmd('RNFR /hello.txt')).code, 350, 'a file still renames');
  assert.is((await c.cmd('RNTO /hello2.txt')).code, 250);
  assert.is((await c.cmd('RNFR /hello2.txt')).code, 350);
  assert.is((await c.cmd('RNTO /hello.txt')).code, 250);
  c.close();
});

test('USER after login changes the user (as pyftpdlib): the previous login is dropped first', async () => {
  const c = await login('alice', 'alice-pw');
  assert.is((await c.cmd('SIZE /hello.txt')).code, 213);
  assert.is((await c.cmd('USER bob')).code, 331);
  assert.is((await c.cmd('SIZE /hello.txt')).code, 530, "alice's login is gone as soon as USER comes");
  assert.is((await c.cmd('PASS wrong')).code, 530);
  assert.is((await c.cmd('PWD')).code, 530, 'a failed PASS leaves nobody logged in');
  assert.is((await c.cmd('USER bob')).code, 331);
  assert.is((await c.cmd('PASS bob-pw')).code, 230);
  assert.is((await c.cmd('SIZE /bob-only.txt')).code, 213, "bob's tree");
  assert.is((await c.cmd('SIZE /hello.txt')).code, 550, "alice's files are not in bob's tree");
  assert.is((await c.cmd('PASS bob-pw')).code, 503, 'PASS after login is out of sequence');
  c.close();
});

test('USER after login releases the per-user session count (maxConnectionsPerUser)', async () => {
  const users: Record<string, string> = { alice: 'a', bob: 'b' };
  const server = new FtpServer({
    host: '127.0.0.1',
    port: 0,
    access: { maxConnectionsPerUser: 1 },
    authenticate: async ({ username, password }) => {
      if (users[username] !== password) throw new DropftpError('DROPFTP_ERR_LOGIN_FAILED');
      return { fs: { cwd: '/', resolve: (arg: string) => arg } as never };
    },
  });
  const { port } = await server.listen();
  try {
    const first = await RawFtp.connect(port);
    await first.login('alice', 'a');
    const second = await RawFtp.connect(port);
    await second.cmd('USER alice');
    assert.is((await second.cmd('PASS a')).code, 421, 'the cap holds while the first session is alice');
    second.close();
    assert.is((await first.cmd('USER bob')).code, 331);
    assert.is((await first.cmd('PASS b')).code, 230);
    const third = await RawFtp.connect(port);
    await third.cmd('USER alice');
    assert.is((await third.cmd('PASS a')).code, 230, "alice's count went back when the session became bob");
    first.close();
    third.close();
  } finally {
    await server.destroy();
  }
});

test('folders made by MKD show their own unique fact at once (RFC 3659 7.5.2), not unique=0', async () => {
  const c = await login('alice', 'alice-pw');
  assert.is((await c.cmd('MKD /uq')).code, 257);
  assert.is((await c.cmd('MKD /uq/a')).code, 257);
  assert.is((await c.cmd('MKD /uq/b')).code, 257);
  const unique = async (path: string): Promise<string> => {
    const reply = await c.cmd(`MLST ${path}`);
    assert.is(reply.code, 250, reply.text);
    return /unique=([^;]*);/.exec(reply.text)![1]!;
  };
  const ids = [await unique('/uq'), await unique('/uq/a'), await unique('/uq/b')];
  assert.ok(!ids.includes('0'), `no unique=0: ${ids.join(', ')}`);
  assert.is(new Set(ids).size, 3, `three folders, three values: ${ids.join(', ')}`);
  c.close();
});

test('names with CR or LF (made through the Dropbox API) are left out of listings instead of breaking them', async () => {
  await putFile(sdk, '/alice/crlf/cr\rname', 'x');
  await putFile(sdk, '/alice/crlf/nl\nname', 'y');
  await putFile(sdk, '/alice/crlf/plain.txt', 'z');
  const c = await login('alice', 'alice-pw');
  for (const verb of ['NLST', 'LIST', 'MLSD']) {
    const got = await download(c, `${verb} /crlf`);
    assert.is(got.final.code, 226, `${verb}: ${got.final.text}`);
    const lines = got.data.toString().split('\r\n').filter(Boolean);
    assert.is(lines.length, 1, `${verb}: ${JSON.stringify(lines)}`);
    assert.ok(lines[0]!.endsWith('plain.txt'), lines[0]);
  }
  c.close();
});

test.run();
