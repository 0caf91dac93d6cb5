// Regressions for the FTP layer's last weak spots, each through real FTP against the whole service
// on the local box: MLSD/MLST perm facts and LIST modes follow the user's real permissions
// (read-only users and mounts), folders never show 1970, "LIST -- -x" reaches a file named "-x",
// RMD never deletes a file committed while it runs (faults on the local box's wire open the
// window), and the transfer runner emits 'transfer-end' with the handle's facts.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Dropbox } from 'dropbox';
import type { FtpSession } from '../../src/ftp/connection.ts';
import type { TransferEnd } from '../../src/ftp/transfer-runner.ts';
import { RawFtp, download, sleep, upload } from './helpers/raw-client.ts';
import { putFile, startUsersStack, type UsersStack } from '../users/helpers.ts';

let stack: UsersStack;
let sdk: Dropbox;

test.before(async () => {
  stack = await startUsersStack({
    alice: { password: 'alice-pw', root: '/alice', mounts: ['/ro=local:/shared:ro', '/rw=local:/shared'] },
    reader: { password: 'reader-pw', root: '/alice', 'read-only': true },
  });
  sdk = await stack.sdk('local');
  await putFile(sdk, '/alice/hello.txt', 'hello');
  await putFile(sdk, '/alice/sub/inner.txt', 'inner');
  await putFile(sdk, '/alice/-x', 'dash-file');
  await putFile(sdk, '/shared/doc.txt', 'doc');
});

test.after(async () => {
  await stack.stop();
});

const login = (user: string, password: string): Promise<RawFtp> => RawFtp.loggedIn(stack.port, user, password);

/** MLSD as name → facts (type, perm, modify …). */
async function mlsd(c: RawFtp, path: string): Promise<Map<string, Record<string, string>>> {
  const got = await download(c, `MLSD ${path}`);
  assert.is(got.final.code, 226, got.final.text);
  const out = new Map<string, Record<string, string>>();
  for (const line of got.data.toString().split('\r\n').filter(Boolean)) {
    const space = line.indexOf(' ');
    const facts = Object.fromEntries(line.slice(0, space).split(';').filter(Boolean).map((f) => f.split('=') as [string, string]));
    out.set(line.slice(space + 1), facts);
  }
  return out;
}

async function mlstPerm(c: RawFtp, path: string): Promise<string> {
  const reply = await c.cmd(`MLST ${path}`);
  assert.is(reply.code, 250, reply.text);
  return /perm=([a-z]*);/.exec(reply.text)![1]!;
}

test('defect: MLSD/MLST perm facts claimed every right: they follow the user and the mount', async () => {
  const alice = await login('alice', 'alice-pw');
  const root = await mlsd(alice, '/');
  assert.is(root.get('hello.txt')!.perm, 'adfrw');
  assert.is(root.get('sub')!.perm, 'flcdmpe');
  assert.is(root.get('rw')!.perm, 'lcmpe', 'a mount point can be neither deleted nor renamed');
  assert.is(root.get('ro')!.perm, 'le', 'read-only mount');
  assert.is((await mlsd(alice, '/ro')).get('doc.txt')!.perm, 'r', 'file in a read-only mount');
  assert.is((await mlsd(alice, '/rw')).get('doc.txt')!.perm, 'adfrw', 'file in a writable mount');
  assert.is(await mlstPerm(alice, '/ro/doc.txt'), 'r');
  assert.is(await mlstPerm(alice, '/'), 'lcmpe', 'the root can be neither deleted nor renamed');
  alice.close();

  const reader = await login('reader', 'reader-pw');
  const seen = await mlsd(reader, '/');
  assert.is(seen.get('hello.txt')!.perm, 'r');
  assert.is(seen.get('sub')!.perm, 'le');
  assert.is(await mlstPerm(reader, '/hello.txt'), 'r');
  assert.is(await mlstPerm(reader, '/sub'), 'le');
  const list = await download(reader, 'LIST /');
  const line = list.data.toString().split('\r\n').find((l) => l.endsWith(' hello.txt'))!;
  assert.ok(line.startsWith('-r--r--r--'), line);
  reader.close();
});

test('defect: folders showed 1970 in LIST/MLSD/MLST: they show the listing time', async () => {
  const c = await login('alice', 'alice-pw');
  const before = Date.now() - 2000;
  const modify = (await mlsd(c, '/')).get('sub')!.modify!;
  const year = Number(modify.slice(0, 4));
  assert.ok(year >= new Date(before).getUTCFullYear(), `modify=${modify}`);
  const asDate = Date.UTC(year, Number(modify.slice(4, 6)) - 1, Number(modify.slice(6, 8)), Number(modify.slice(8, 10)), Number(modify.slice(10, 12)), Number(modify.slice(12, 14)));
  assert.ok(asDate >= before - 1000 && asDate <= Date.now() + 1000, `modify=${modify}`);
  const mlst = await c.cmd('MLST /sub');
  assert.not.match(mlst.text, /modify=1970/);
  const list = await download(c, 'LIST /');
  const sub = list.data.toString().split('\r\n').find((l) => l.endsWith(' sub'))!;
  assert.ok(sub.startsWith('drwxr-xr-x') && !sub.includes('1970'), sub);
  c.close();
});

test('defect: "LIST -- -x" could not reach a file named -x; ls options are still ignored', async () => {
  const c = await login('alice', 'alice-pw');
  const names = async (line: string): Promise<string[]> => {
    const got = await download(c, line);
    assert.is(got.final.code, 226, `${line}: ${got.final.text}`);
    return got.data.toString().split('\r\n').filter(Boolean);
  };
  assert.equal(await names('NLST -- -x'), ['-x']);
  const long = await names('LIST -- -x');
  assert.is(long.length, 1);
  assert.ok(long[0]!.endsWith(' -x') && long[0]!.includes(' 9 '), long[0]);
  assert.equal(await names('NLST -a -- -x'), ['-x']);
  assert.equal(await names('NLST /-x'), ['-x'], 'full path');
  assert.equal(await names('NLST ./-x'), ['-x'], 'relative path');
  assert.ok((await names('LIST -la')).some((l) => l.endsWith(' hello.txt')), 'LIST -la lists the cwd');
  assert.equal(await names('NLST -a /sub'), ['inner.txt'], 'NLST -a /sub');
  assert.equal(await names('LIST -la sub').then((l) => l.length), 1);
  c.close();
});

async function faultCount(kind: string): Promise<number> {
  return (await stack.service.box.faultCounts())[kind] ?? 0;
}

/** Waits until the box has fired `kind` more than `before` times (counts are cumulative). */
async function waitForFault(kind: string, before: number, timeoutMs = 5000): Promise<boolean> {
  for (const end = Date.now() + timeoutMs; Date.now() < end; ) {
    if ((await faultCount(kind)) > before) return true;
    await sleep(20);
  }
  return false;
}

async function exists(path: string): Promise<boolean> {
  return sdk.filesGetMetadata({ path }).then(
    () => true,
    () => false,
  );
}

test('defect: RMD deleted a file committed between its empty check and its delete', async () => {
  const c = await login('alice', 'alice-pw');
  assert.is((await c.cmd('MKD /race')).code, 257);
  const before = await faultCount('latency');
  await stack.service.box.setFaults({ rules: [{ kind: 'latency', latencyMs: 1500, routes: ['files/delete_v2'], count: 1 }] });
  try {
    c.send('RMD /race');
    assert.ok(await waitForFault('latency', before), 'the delete reached the box');
    await putFile(sdk, '/alice/race/late.txt', 'late'); // committed while the delete waits
    const reply = await c.read(10_000);
    assert.ok([250, 550].includes(reply.code), reply.text);
  } finally {
    await stack.service.box.setFaults({ rules: [] });
  }
  assert.ok(await exists('/alice/race/late.txt'), 'the late file survives the RMD');
  c.close();
});

test('RMD that finds a file after moving the folder aside puts it back and answers 550', async () => {
  const c = await login('alice', 'alice-pw');
  assert.is((await c.cmd('MKD /race2')).code, 257);
  const before = await faultCount('latency');
  await stack.service.box.setFaults({ rules: [{ kind: 'latency', latencyMs: 1500, routes: ['files/move_v2'], count: 1 }] });
  try {
    c.send('RMD /race2');
    assert.ok(await waitForFault('latency', before), 'the move reached the box');
    await putFile(sdk, '/alice/race2/early.txt', 'early'); // committed before the move runs
    const reply = await c.read(10_000);
    assert.is(reply.code, 550, reply.text);
  } finally {
    await stack.service.box.setFaults({ rules: [] });
  }
  assert.ok(await exists('/alice/race2/early.txt'), 'the file is back at its path');
  const root = await sdk.filesListFolder({ path: '/alice' });
  assert.not.ok(root.result.entries.some((e) => e.name.startsWith('.dropftp-')), 'nothing left aside');
  assert.is((await c.cmd('RMD /race2')).code, 550, 'still not empty');
  assert.is((await c.cmd('DELE /race2/early.txt')).code, 250);
  assert.is((await c.cmd('RMD /race2')).code, 250, 'an empty folder is removed');
  assert.not.ok(await exists('/alice/race2'));
  c.close();
});

test('defect: MKD and STOR under a file said "File or directory exists": they say "Not a directory" (550)', async () => {
  const c = await login('alice', 'alice-pw');
  const mkd = await c.cmd('MKD /hello.txt/sub');
  assert.is(mkd.code, 550);
  assert.match(mkd.text, /Not a directory/);
  const stor = await upload(c, 'STOR /hello.txt/x', Buffer.from('x'));
  assert.is(stor.final.code, 550);
  assert.match(stor.final.text, /Not a directory/);
  const got = await download(c, 'RETR /hello.txt');
  assert.is(got.data.toString(), 'hello', 'the file is untouched');
  c.close();
});

test("transfer-end: the runner reports each transfer's directive, bytes and outcome", async () => {
  const ends: TransferEnd[] = [];
  const onConnect = ({ connection }: { connection: FtpSession }): void => {
    connection.on('transfer-end', (end: TransferEnd) => ends.push(end));
  };
  stack.service.ftp.on('connect', onConnect);
  try {
    const c = await login('alice', 'alice-pw');
    const got = await download(c, 'RETR /hello.txt');
    assert.is(got.final.code, 226);
    const missing = await download(c, 'RETR /nope.txt');
    assert.is(missing.final.code, 550);
    const list = await download(c, 'NLST /sub');
    assert.is(list.final.code, 226);
    c.close();
  } finally {
    stack.service.ftp.off('connect', onConnect);
  }
  assert.equal(
    ends.map((e) => [e.directive, e.bytes, e.error?.code ?? null]),
    [
      ['RETR', 5, null],
      ['NLST', 'inner.txt\r\n'.length, null],
    ],
  );
  assert.is(ends[0]!.handle.bytes, 5);
});

test.run();
