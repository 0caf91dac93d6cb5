// Connection caps and login throttling on the real FTP server, with dropftp's own login check over
// the local box (startStack): per-address cap (4th of 3 refused, another loopback address still
// served), per-user cap, failed-login delay growing per failure then a ban of the address while
// other addresses still log in, and per-user bandwidth caps on RETR/STOR (byte-exact, paced).

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { FtpServer, type FtpServerOptions } from '../../src/ftp/server.ts';
import type { LimitsOptions } from '../../src/limits/index.ts';
import { startStack, type Stack } from '../ftp/helpers/stack.ts';
import { RawFtp, openData, readAll, sleep } from '../ftp/helpers/raw-client.ts';

let stack: Stack;
const servers: FtpServer[] = [];
const clients: RawFtp[] = [];

const CAP = { downloadBytesPerSec: 256 * 1024, uploadBytesPerSec: 256 * 1024 };

test.before(async () => {
  // The first-run user is "ftp"; its bandwidth cap comes through startDropftp's `access` option.
  stack = await startStack({ access: { userBandwidth: { ftp: CAP } } });
});
test.after.each(async () => {
  for (const c of clients.splice(0)) c.close();
  for (const s of servers.splice(0)) await s.close();
});
test.after(async () => {
  await stack.stop();
});

async function serve(access: LimitsOptions, extra: Partial<FtpServerOptions> = {}): Promise<number> {
  const server = new FtpServer({ host: '127.0.0.1', port: 0, access, maxLoginFailures: 100, authenticate: stack.authenticate, ...extra });
  servers.push(server);
  return (await server.listen()).port;
}
async function open(port: number, localAddress: string): Promise<{ ftp: RawFtp; first: string }> {
  const { ftp, first } = await RawFtp.open({ port, localAddress });
  clients.push(ftp);
  return { ftp, first: first?.text ?? 'closed without a reply' };
}
async function closedSoon(ftp: RawFtp): Promise<boolean> {
  for (let i = 0; i < 100 && !ftp.closed; i++) await sleep(20);
  return ftp.closed;
}

test('per-address cap 3: the 4th connection from 127.0.0.1 gets 421 and is closed; 127.0.0.2 still connects; a freed slot is reusable', async () => {
  const port = await serve({ maxConnectionsPerAddress: 3 });
  const three = [];
  for (let i = 0; i < 3; i++) three.push(await open(port, '127.0.0.1'));
  for (const c of three) assert.match(c.first, /^220 /);
  const fourth = await open(port, '127.0.0.1');
  assert.match(fourth.first, /^421 Too many connections/);
  assert.ok(await closedSoon(fourth.ftp), 'refused connection is closed');
  const other = await open(port, '127.0.0.2');
  assert.match(other.first, /^220 /);
  assert.is((await other.ftp.tryLogin(stack.user, stack.password)).code, 230);
  three[0]!.ftp.close();
  await sleep(100);
  const again = await open(port, '127.0.0.1');
  assert.match(again.first, /^220 /, 'the closed session released its slot');
});

test('per-user cap 2 and server cap 4: the third session of a user gets 421 after PASS; the 5th connection is refused', async () => {
  const port = await serve({ maxConnectionsPerUser: 2, maxConnections: 4 });
  const a = await open(port, '127.0.0.1');
  const b = await open(port, '127.0.0.2');
  const c = await open(port, '127.0.0.3');
  assert.is((await a.ftp.tryLogin(stack.user, stack.password)).code, 230);
  assert.is((await b.ftp.tryLogin(stack.user, stack.password)).code, 230);
  const third = await c.ftp.tryLogin(stack.user, stack.password);
  assert.is(third.code, 421, third.text);
  assert.ok(await closedSoon(c.ftp));
  await open(port, '127.0.0.4');
  await open(port, '127.0.0.5');
  const fifth = await open(port, '127.0.0.6');
  assert.match(fifth.first, /^421 /);
});

test('bad passwords from one address: 530 after a growing delay, then 421 ban; banned at connect; other addresses still log in', async () => {
  const port = await serve({ loginDelayBaseMs: 150, loginDelayMaxMs: 600, banAfterFailures: 4, banMs: 60_000 });
  const { ftp } = await open(port, '127.0.0.7');
  const delays: number[] = [];
  for (let i = 0; i < 3; i++) {
    const started = Date.now();
    const reply = await ftp.tryLogin(stack.user, 'wrong-password');
    delays.push(Date.now() - started);
    assert.is(reply.code, 530, reply.text);
  }
  assert.ok(delays[0]! >= 140, `first failure delayed (${delays})`);
  assert.ok(delays[1]! >= 290 && delays[2]! >= 590, `delay doubles (${delays})`);
  const banned = await ftp.tryLogin(stack.user, 'wrong-password');
  assert.is(banned.code, 421, banned.text);
  assert.match(banned.text, /failed logins/);
  assert.ok(await closedSoon(ftp), 'the banning failure closes the connection');
  const later = await open(port, '127.0.0.7');
  assert.match(later.first, /^421 Too many failed logins/);
  // Even the right password from the banned address is refused at connect; another address logs in at once.
  const started = Date.now();
  const other = await open(port, '127.0.0.8');
  assert.is((await other.ftp.tryLogin(stack.user, stack.password)).code, 230);
  assert.ok(Date.now() - started < 2000);
});

test('reconfigure (SIGHUP): a lowered per-address cap refuses new connections at once, a raised one admits them; bans survive', async () => {
  const port = await serve({ maxConnectionsPerAddress: 3, loginDelayBaseMs: 0, banAfterFailures: 1, banMs: 60_000 });
  const server = servers.at(-1)!;
  await open(port, '127.0.0.10');
  await open(port, '127.0.0.10');
  server.access.reconfigure({ maxConnectionsPerAddress: 2, loginDelayBaseMs: 0, banAfterFailures: 1, banMs: 60_000 });
  assert.match((await open(port, '127.0.0.10')).first, /^421 Too many connections/);
  const { ftp } = await open(port, '127.0.0.11');
  assert.is((await ftp.tryLogin(stack.user, 'wrong')).code, 421, 'one failure bans under these limits');
  server.access.reconfigure({ maxConnectionsPerAddress: 3, loginDelayBaseMs: 0, banAfterFailures: 1, banMs: 60_000 });
  assert.match((await open(port, '127.0.0.10')).first, /^220 /);
  assert.match((await open(port, '127.0.0.11')).first, /^421 Too many failed logins/, 'the ban is kept');
  assert.throws(() => server.access.reconfigure({ maxConnectionsPerAddress: -1 }), /maxConnectionsPerAddress/);
  assert.is(server.access.limits.maxConnectionsPerAddress, 3, 'a bad reload leaves the old limits');
});

test('bandwidth caps (access.userBandwidth): 256 KiB/s down and up moves 384 KiB each way byte-exact in about 1.5 s; reconfigureAccess lifts the cap live', async () => {
  assert.is(stack.user, 'ftp');
  const port = await serve({});
  const { ftp } = await open(port, '127.0.0.1');
  assert.is((await ftp.tryLogin(stack.user, stack.password)).code, 230);
  const bytes = randomBytes(384 * 1024);
  let started = Date.now();
  let data = await openData(await ftp.epsv());
  ftp.send('STOR /bw.bin');
  assert.is((await ftp.read()).code, 150);
  data.end(bytes);
  assert.is((await ftp.read(20_000)).code, 226);
  const upMs = Date.now() - started;
  started = Date.now();
  data = await openData(await ftp.epsv());
  const got = readAll(data);
  ftp.send('RETR /bw.bin');
  assert.is((await ftp.read()).code, 150);
  assert.ok((await got).equals(bytes), 'download byte-exact');
  assert.is((await ftp.read(20_000)).code, 226);
  const downMs = Date.now() - started;
  // Reload lifts the download cap: the same session's next RETR is no longer paced.
  stack.reconfigureAccess({ userBandwidth: { ftp: { uploadBytesPerSec: CAP.uploadBytesPerSec } } });
  started = Date.now();
  data = await openData(await ftp.epsv());
  const again = readAll(data);
  ftp.send('RETR /bw.bin');
  assert.is((await ftp.read()).code, 150);
  assert.ok((await again).equals(bytes));
  assert.is((await ftp.read(20_000)).code, 226);
  const liftedMs = Date.now() - started;
  // 384 KiB at 256 KiB/s with a 25.6 KiB burst: at least ~1.4 s each way; uncapped it is ~50 ms.
  assert.ok(upMs >= 1200 && upMs < 6000, `upload took ${upMs} ms`);
  assert.ok(downMs >= 1200 && downMs < 6000, `download took ${downMs} ms`);
  assert.ok(liftedMs < 1000, `download after the cap was lifted took ${liftedMs} ms`);
});

test.run();
