// The file system over the local box, command by command, through real sockets, the real engine
// and the real local box: replies, bytes and what storage holds afterwards.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { RawFtp, download, upload } from './helpers/raw-client.ts';
import { adminOf } from '../../src/localbox/index.ts';
import { startStack, type Stack } from './helpers/stack.ts';

let stack: Stack;
let c: RawFtp;

test.before(async () => {
  stack = await startStack();
  c = await RawFtp.connect(stack.port);
  await c.login(stack.user, stack.password);
});

test.after(async () => {
  c.close();
  await stack.stop();
});

async function names(dir: string): Promise<string[]> {
  const { data, final } = await download(c, `NLST ${dir}`);
  assert.is(final.code, 226, final.text);
  return data.toString('utf8').split('\r\n').filter(Boolean).sort();
}

test('defect: MKD 257 shows the absolute server path (must show the client path)', async () => {
  const reply = await c.cmd('MKD /docs é');
  assert.is(reply.code, 257);
  assert.is(reply.text, '257 "/docs é" created');
  assert.is((await c.cmd('CWD /docs é')).code, 250);
  assert.is((await c.cmd('XPWD')).text, '257 "/docs é" is the current directory');
  const nested = await c.cmd('XMKD sub"q');
  assert.is(nested.text, '257 "/docs é/sub""q" created', 'quotes doubled (RFC 959), none stripped');
  assert.is((await c.cmd('CDUP')).code, 250);
  assert.is((await c.cmd('PWD')).text, '257 "/" is the current directory');
  assert.is((await c.cmd('CWD ../../..')).code, 250, 'cannot climb above the root');
  assert.is((await c.cmd('PWD')).text, '257 "/" is the current directory');
  assert.is((await c.cmd('MKD /docs é')).code, 550, 'exists');
});

test('defect: error texts leak server paths and Dropbox internals', async () => {
  for (const line of ['RETR /nope/missing.txt', 'SIZE missing', 'CWD /missing', 'DELE /missing', 'RNFR /missing']) {
    const reply = await c.cmd(line);
    assert.is(reply.code, 550, line);
    assert.is(reply.text, '550 No such file or directory', line);
  }
});

test('STOR, RETR, SIZE, MDTM, LIST, NLST, MLSD, MLST', async () => {
  const bytes = Buffer.from('héllo wörld\n', 'utf8');
  const stored = await upload(c, 'STOR /docs é/naïve.txt', bytes);
  assert.is(stored.final.code, 226, stored.final.text);
  const got = await download(c, 'RETR /docs é/naïve.txt');
  assert.is(got.final.code, 226);
  assert.ok(got.data.equals(bytes));
  assert.is((await c.cmd('SIZE /docs é/naïve.txt')).text, `213 ${bytes.length}`);
  assert.match((await c.cmd('MDTM /docs é/naïve.txt')).text, /^213 \d{14}$/);
  const list = await download(c, 'LIST -la /docs é');
  assert.match(list.data.toString(), /^-rw-r--r-- 1 ftp ftp +14 \w{3} \d\d \d\d:\d\d naïve\.txt\r\n/m);
  assert.match(list.data.toString(), /^drwxr-xr-x .* sub"q\r\n/m);
  assert.equal(await names('/docs é'), ['naïve.txt', 'sub"q']);
  const mlsd = await download(c, 'MLSD /docs é');
  assert.match(mlsd.data.toString(), /^type=file;size=14;modify=\d{14};perm=adfrw;unique=[\w-]+; naïve\.txt\r\n/m);
  assert.match(mlsd.data.toString(), /^type=dir;modify=\d{14};perm=flcdmpe;unique=[\w-]+; sub"q\r\n/m);
  const mlst = await c.cmd('MLST /docs é/naïve.txt');
  assert.is(mlst.code, 250);
  assert.match(mlst.lines[1]!, /^ type=file;size=14;.* \/docs é\/naïve\.txt$/);
  assert.is((await download(c, 'MLSD /docs é/naïve.txt')).first.code, 550, 'MLSD of a file');
  const stat = await c.cmd('STAT /docs é');
  assert.is(stat.code, 213);
  assert.ok(stat.text.includes('naïve.txt'));
});

test('RMD refuses a non-empty folder (delete_v2 is recursive); DELE refuses folders', async () => {
  assert.is((await c.cmd('RMD /docs é')).text, '550 Directory not empty');
  assert.is((await c.cmd('DELE /docs é/sub"q')).code, 550);
  assert.is((await c.cmd('RMD /docs é/naïve.txt')).text, '550 Not a directory');
  assert.is((await c.cmd('XRMD /docs é/sub"q')).code, 250);
  assert.equal(await names('/docs é'), ['naïve.txt']);
  assert.is((await c.cmd('RMD /')).code, 550);
});

test('RNFR/RNTO: move, replace a file, case-only rename', async () => {
  await upload(c, 'STOR /r/a.txt', Buffer.from('A'));
  await upload(c, 'STOR /r/b.txt', Buffer.from('BB'));
  assert.is((await c.cmd('RNFR /r/a.txt')).code, 350);
  assert.is((await c.cmd('RNTO /r/b.txt')).code, 250, 'replaces an existing file');
  assert.equal(await names('/r'), ['b.txt']);
  assert.ok((await download(c, 'RETR /r/b.txt')).data.equals(Buffer.from('A')));
  assert.is((await c.cmd('RNFR /r/b.txt')).code, 350);
  assert.is((await c.cmd('RNTO /r/B.TXT')).code, 250, 'case-only rename');
  assert.equal(await names('/r'), ['B.TXT']);
  assert.is((await c.cmd('RNTO /r/x')).code, 503, 'RNTO without RNFR');
  await c.cmd('MKD /r/d');
  assert.is((await c.cmd('RNFR /r/B.TXT')).code, 350);
  assert.is((await c.cmd('RNTO /r/d')).code, 550, 'never replaces a folder');
});

test('REST before RETR; REST beyond a kept session and APPE compose a new version', async () => {
  const bytes = Buffer.from('0123456789');
  await upload(c, 'STOR /rest.bin', bytes);
  assert.is((await c.cmd('REST 4')).code, 350);
  const tail = await download(c, 'RETR /rest.bin');
  assert.equal(tail.data.toString(), '456789');
  assert.is((await c.cmd('REST 11')).code, 350);
  assert.is((await download(c, 'RETR /rest.bin')).first.code, 554, 'offset beyond the end');
  assert.is((await c.cmd('REST 5')).code, 350);
  assert.is((await upload(c, 'STOR /rest.bin', Buffer.from('abcde'))).final.code, 226);
  assert.equal((await download(c, 'RETR /rest.bin')).data.toString(), '01234abcde', 'prefix kept, not zero-filled');
  assert.is((await upload(c, 'APPE /rest.bin', Buffer.from('XYZ'))).final.code, 226);
  assert.equal((await download(c, 'RETR /rest.bin')).data.toString(), '01234abcdeXYZ');
  assert.is((await upload(c, 'APPE /new-by-appe.bin', Buffer.from('new'))).final.code, 226);
  assert.equal((await download(c, 'RETR /new-by-appe.bin')).data.toString(), 'new');
});

test('STOU stores under a unique name', async () => {
  await upload(c, 'STOR /u.txt', Buffer.from('1'));
  const r = await upload(c, 'STOU /u.txt', Buffer.from('2'));
  assert.is(r.first.text, '150 FILE: u.txt.1');
  assert.is(r.final.code, 226);
  assert.equal((await download(c, 'RETR /u.txt.1')).data.toString(), '2');
  assert.equal((await download(c, 'RETR /u.txt')).data.toString(), '1');
});

test('a plain STOR asks Dropbox nothing before its bytes; STOR onto a folder is refused, nothing created', async () => {
  const getMetadata = async (): Promise<number> => (await adminOf(stack.box).calls()).routes['files/get_metadata']?.calls ?? 0;
  assert.is((await upload(c, 'STOR /plain-first.bin', Buffer.from('v1'))).final.code, 226);
  let before = await getMetadata();
  assert.is((await upload(c, 'STOR /plain.bin', Buffer.from('new file'))).final.code, 226);
  assert.is((await upload(c, 'STOR /plain-first.bin', Buffer.from('v2'))).final.code, 226, 'overwrite');
  assert.is((await getMetadata()) - before, 0, 'no get_metadata for a plain STOR (issue #14)');
  assert.equal((await download(c, 'RETR /plain-first.bin')).data.toString(), 'v2');
  // A folder the directory cache knows (MKD here): refused before 150.
  assert.is((await c.cmd('MKD /known-dir')).code, 257);
  const known = await upload(c, 'STOR /known-dir', Buffer.from('bytes'));
  assert.is(known.final.code, 550, known.final.text);
  // A folder made behind the gateway's back (the cache may not have seen it): the commit's own
  // path/conflict/folder refuses it, after the bytes, with nothing committed.
  const store = await stack.accounts.get('local');
  await store.rpc.createFolder('/unseen-dir');
  const unseen = await upload(c, 'STOR /unseen-dir', Buffer.from('bytes'));
  assert.is(unseen.final.code, 550, unseen.final.text);
  for (const dir of ['/known-dir', '/unseen-dir']) {
    const entry = await store.rpc.getMetadata(dir);
    assert.is(entry.tag, 'folder', `${dir} is still a folder`);
    assert.equal(await store.rpc.listFolder(dir), [], `${dir} holds nothing`);
  }
  before = await getMetadata();
  assert.is((await upload(c, 'APPE /plain.bin', Buffer.from('+'))).final.code, 226);
  assert.ok((await getMetadata()) - before >= 1, 'APPE asks what it appends to');
  assert.equal((await download(c, 'RETR /plain.bin')).data.toString(), 'new file+');
});

test('defect: TYPE A accepted but never converted', async () => {
  assert.is((await c.cmd('TYPE A')).code, 200);
  assert.is((await upload(c, 'STOR /text.txt', Buffer.from('a\r\nb\r\n'))).final.code, 226);
  assert.equal((await download(c, 'RETR /text.txt')).data.toString(), 'a\r\nb\r\n');
  assert.is((await c.cmd('TYPE I')).code, 200);
  assert.equal((await download(c, 'RETR /text.txt')).data.toString(), 'a\nb\n', 'stored with LF');
});

test('session commands: SYST, MODE, STRU, OPTS UTF8, HELP, NOOP, ALLO, STAT', async () => {
  assert.is((await c.cmd('SYST')).text, '215 UNIX Type: L8');
  assert.is((await c.cmd('MODE S')).code, 200);
  assert.is((await c.cmd('MODE B')).code, 504);
  assert.is((await c.cmd('STRU F')).code, 200);
  assert.is((await c.cmd('STRU R')).code, 504);
  assert.is((await c.cmd('OPTS UTF8 ON')).code, 200);
  assert.is((await c.cmd('OPTS UTF8 OFF')).code, 200);
  const help = await c.cmd('HELP');
  assert.is(help.code, 214);
  assert.ok(help.text.includes('MLSD'));
  // No certificate here: AUTH, PBSZ and PROT only refuse, so HELP does not list them.
  for (const verb of ['AUTH', 'PBSZ', 'PROT']) assert.not.ok(help.text.split(/\s+/).includes(verb), `HELP lists ${verb}`);
  assert.is((await c.cmd('HELP RETR')).code, 214);
  assert.is((await c.cmd('ALLO 100')).code, 202);
  assert.is((await c.cmd('STAT')).code, 211);
  // RFC 959 4.2: 500 for a verb not recognized, 502 for one of its own that is not implemented.
  assert.is((await c.cmd('FOO')).text, '500 Syntax error, command unrecognized');
  assert.is((await c.cmd('ACCT x')).code, 502);
  assert.is((await c.cmd('REIN')).code, 502);
});

test('TYPE A: the 150 of a RETR claims no byte count (CRLF makes more bytes than the file holds)', async () => {
  assert.is((await upload(c, 'STOR /lines.txt', Buffer.from('a\nb\nc\n'))).final.code, 226);
  assert.is((await c.cmd('TYPE A')).code, 200);
  const got = await download(c, 'RETR /lines.txt');
  assert.is(got.data.toString(), 'a\r\nb\r\nc\r\n');
  assert.not.match(got.first.text, /bytes/, got.first.text);
  assert.is((await c.cmd('TYPE I')).code, 200);
  assert.match((await download(c, 'RETR /lines.txt')).first.text, /\(6 bytes\)/);
});

test.run();
