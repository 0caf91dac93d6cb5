// AccessLimiter: connection caps, login-failure delay and bans, measured over real TCP sockets
// against the real FtpServer (with a login check of its own, no storage) and the shared raw FTP
// client; then its pure parts (window, memory bound, IPv6 /64 keys, option errors) directly.
// test/limits/ftp-limits.test.ts covers the same limits through the whole service.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DropftpError } from '../../src/errors.ts';
import { FtpServer } from '../../src/ftp/server.ts';
import type { SessionFs } from '../../src/ftp/fs/types.ts';
import { AccessLimiter, addressKey, resolveLimits, type LimitsOptions } from '../../src/limits/index.ts';
import { RawFtp, type Reply } from '../ftp/helpers/raw-client.ts';
import { until } from '../helpers/wait.ts';

const PASSWORDS: Record<string, string> = { alice: 'right', bob: 'also-right' };
const open: RawFtp[] = [];
let server: FtpServer | null = null;
let limiter: AccessLimiter;
let port = 0;

/** Two client addresses on loopback: the limiter sees them as two clients. */
type Address = '127.0.0.1' | '127.0.0.2';

async function serve(options: LimitsOptions): Promise<{ limiter: AccessLimiter }> {
  limiter = new AccessLimiter(options);
  server = new FtpServer({
    host: '127.0.0.1',
    port: 0,
    access: limiter,
    maxLoginFailures: 100, // the limiter's own delays and bans are under test, not the session's cap
    authenticate: async ({ username, password }) => {
      if (PASSWORDS[username] === undefined || PASSWORDS[username] !== password) throw new DropftpError('DROPFTP_ERR_LOGIN_FAILED');
      return { fs: { cwd: '/', resolve: (arg: string) => arg } as unknown as SessionFs };
    },
  });
  port = (await server.listen()).port;
  return { limiter };
}

/** Connects from `from`; the first reply (220, or the refusal) is read. */
async function client(from: Address): Promise<{ c: RawFtp; first: Reply | null }> {
  const { ftp, first } = await RawFtp.open({ port, localAddress: from });
  open.push(ftp);
  return { c: ftp, first };
}

async function greeted(from: Address): Promise<RawFtp> {
  const { c, first } = await client(from);
  assert.is(first?.code, 220, `greeting from ${from}: ${first?.text}`);
  return c;
}

async function closedByServer(c: RawFtp): Promise<void> {
  await until(() => c.closed, 5000, 'the server closes the connection');
}

test.after.each(async () => {
  for (const c of open.splice(0)) c.close();
  await server?.destroy();
  server = null;
});

test('the 4th connection from one address is refused with 421 when the per-address limit is 3; others unaffected', async () => {
  const s = await serve({ maxConnectionsPerAddress: 3 });
  const three = [await greeted('127.0.0.1'), await greeted('127.0.0.1'), await greeted('127.0.0.1')];
  const fourth = await client('127.0.0.1');
  assert.is(fourth.first?.code, 421);
  assert.is(fourth.first?.text, '421 Too many connections');
  await closedByServer(fourth.c);
  await greeted('127.0.0.2'); // another address still gets in
  three[0]!.close();
  await until(() => s.limiter.stats().connections === 3, 2000, 'slot freed');
  await greeted('127.0.0.1'); // a closed connection frees its slot
  assert.is(s.limiter.stats().refused.address_full, 1);
});

test('overall cap: the connection beyond maxConnections is refused whatever its address', async () => {
  const s = await serve({ maxConnections: 2 });
  await greeted('127.0.0.1');
  await greeted('127.0.0.2');
  assert.is((await client('127.0.0.2')).first?.text, '421 Too many connections');
  assert.is(s.limiter.stats().refused.server_full, 1);
});

test('per-user cap counts logged-in sessions of one user across addresses; others still log in', async () => {
  const s = await serve({ maxConnectionsPerUser: 2 });
  const a = await greeted('127.0.0.1');
  const b = await greeted('127.0.0.2');
  const c = await greeted('127.0.0.1');
  assert.is((await a.tryLogin('alice', 'right')).code, 230);
  assert.is((await b.tryLogin('alice', 'right')).code, 230);
  assert.is((await c.tryLogin('alice', 'right')).code, 421);
  await closedByServer(c);
  const d = await greeted('127.0.0.1');
  assert.is((await d.tryLogin('bob', 'also-right')).code, 230);
  a.close();
  await until(() => s.limiter.stats().connections === 2, 2000, 'slot freed');
  const e = await greeted('127.0.0.2');
  assert.is((await e.tryLogin('alice', 'right')).code, 230, 'a closed session frees the user slot');
});

test('brute force from one address: delays grow, then a ban; another address logs in at once; the ban expires', async () => {
  const s = await serve({ loginDelayBaseMs: 80, loginDelayMaxMs: 320, banAfterFailures: 5, banMs: 1200, failureWindowMs: 60_000 });
  const attacker = await greeted('127.0.0.1');
  const delays: number[] = [];
  let last: Reply | null = null;
  for (let i = 0; i < 5; i++) {
    assert.is((await attacker.cmd('USER alice')).code, 331);
    const started = performance.now();
    last = await attacker.cmd(`PASS guess${i}`);
    delays.push(performance.now() - started);
    if (i < 4) assert.is(last.code, 530, last.text);
  }
  // The 5th failure banned the address: its reply says so and the server closes.
  assert.is(last?.text, '421 Too many failed logins from your address; try again later');
  await closedByServer(attacker);
  const expected = [80, 160, 320, 320, 320];
  delays.forEach((ms, i) => assert.ok(ms >= expected[i]! - 5 && ms < expected[i]! + 250, `failure ${i + 1}: ${ms.toFixed(0)} ms, expected ~${expected[i]}`));
  const bannedAt = performance.now();

  const retry = await client('127.0.0.1');
  assert.is(retry.first?.text, '421 Too many failed logins from your address; try again later');
  const other = await greeted('127.0.0.2');
  const started = performance.now();
  assert.is((await other.tryLogin('alice', 'right')).code, 230);
  assert.ok(performance.now() - started < 80, 'no delay for an address without failures');
  assert.is(s.limiter.stats().bans, 1);

  await new Promise((r) => setTimeout(r, Math.max(0, 1200 - (performance.now() - bannedAt)) + 50));
  const later = await greeted('127.0.0.1'); // the ban expired
  assert.is((await later.tryLogin('alice', 'right')).code, 230);
});

test('a session already connected when its address is banned cannot try more passwords', async () => {
  await serve({ loginDelayBaseMs: 0, banAfterFailures: 2, banMs: 60_000 });
  const first = await greeted('127.0.0.1');
  const second = await greeted('127.0.0.1');
  assert.is((await second.cmd('USER alice')).code, 331);
  assert.is((await first.tryLogin('alice', 'x')).code, 530);
  assert.is((await first.tryLogin('alice', 'y')).code, 421, 'the failure that bans');
  await closedByServer(first);
  assert.is((await second.cmd('PASS right')).text, '421 Too many failed logins from your address; try again later');
});

test('failures are forgotten after the window; delays restart from the base (injected clock)', () => {
  let now = 0;
  const limiter = new AccessLimiter({ loginDelayBaseMs: 100, loginDelayMaxMs: 10_000, banAfterFailures: 4, failureWindowMs: 1000, banMs: 5000 }, () => now);
  const ticket = (limiter.connect('10.0.0.1') as { ok: true; ticket: import('../../src/limits/index.ts').ConnectionTicket }).ticket;
  assert.equal([ticket.loginFailed(), ticket.loginFailed(), ticket.loginFailed()].map((f) => f.delayMs), [100, 200, 400]);
  now += 1001;
  assert.equal(ticket.loginFailed(), { delayMs: 100, banned: false }, 'window passed: counting restarts');
  ticket.loginFailed();
  ticket.loginFailed();
  assert.equal(ticket.loginFailed(), { delayMs: 800, banned: true });
  assert.ok(!limiter.connect('10.0.0.1').ok, 'banned');
  assert.ok(limiter.connect('10.0.0.2').ok, 'a neighbour is not');
  now += 5000;
  assert.ok(limiter.connect('10.0.0.1').ok, 'ban over');
});

test('memory is bounded: 200,000 failing addresses keep at most maxTrackedAddresses records, O(1) each', () => {
  const limiter = new AccessLimiter({ maxTrackedAddresses: 1000, loginDelayBaseMs: 0, banAfterFailures: 3 });
  const started = performance.now();
  for (let i = 0; i < 200_000; i++) {
    const admission = limiter.connect(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
    if (!admission.ok) continue;
    admission.ticket.loginFailed();
    admission.ticket.release();
  }
  const elapsedMs = performance.now() - started;
  const stats = limiter.stats();
  assert.is(stats.trackedAddresses, 1000);
  assert.is(stats.connections, 0);
  assert.is(stats.addresses, 0);
  // O(1) each: ~1 s idle; a linear scan of the tracked records would take minutes (generous for a busy CI).
  assert.ok(elapsedMs < 10_000, `200k connect+fail+release took ${elapsedMs.toFixed(0)} ms`);
});

test('IPv6 clients count per /64; IPv4-mapped addresses count as IPv4', () => {
  assert.is(addressKey('2001:db8:1:2::5', 64), addressKey('2001:db8:1:2:ffff::9', 64));
  assert.is.not(addressKey('2001:db8:1:2::5', 64), addressKey('2001:db8:1:3::5', 64));
  assert.is(addressKey('::ffff:192.0.2.7', 64), '192.0.2.7');
  const limiter = new AccessLimiter({ maxConnectionsPerAddress: 1 });
  assert.ok(limiter.connect('2001:db8:1:2::5').ok);
  assert.not.ok(limiter.connect('2001:db8:1:2::6').ok, 'same /64');
  assert.ok(limiter.connect('2001:db8:1:3::5').ok);
});

test('bad options throw a config error naming the option', () => {
  assert.throws(() => resolveLimits({ maxConnectionsPerAddress: -1 }), /limits\.maxConnectionsPerAddress/);
  assert.throws(() => resolveLimits({ bandwidth: { downloadBytesPerSec: 10 } }), /limits\.bandwidth\.downloadBytesPerSec/);
  assert.throws(() => resolveLimits({ loginDelayBaseMs: 500, loginDelayMaxMs: 100 }), /limits\.loginDelayMaxMs/);
  assert.is(resolveLimits({ maxConnections: 0 }).maxConnections, Infinity);
});

test.run();
