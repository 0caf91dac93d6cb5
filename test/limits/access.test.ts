// Connection caps, login-failure delay and bans, measured over real TCP sockets against a tiny
// server that uses AccessLimiter the way the FTP layer does (tiny-server.ts).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AccessLimiter, addressKey, resolveLimits, type LimitsOptions } from '../../src/limits/index.ts';
import { LineClient, startTinyServer, type TinyServer } from './tiny-server.ts';

const PASSWORDS = { alice: 'right', bob: 'also-right' };
const open: LineClient[] = [];
let server: TinyServer | null = null;

async function serve(options: LimitsOptions): Promise<TinyServer> {
  server = await startTinyServer(new AccessLimiter(options), PASSWORDS);
  return server;
}
function client(host: '127.0.0.1' | '::1'): LineClient {
  const c = new LineClient(host, host === '::1' ? server!.port6 : server!.port4);
  open.push(c);
  return c;
}
async function until(check: () => boolean, timeoutMs = 2000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

test.after.each(async () => {
  for (const c of open.splice(0)) c.socket.destroy();
  await server?.close();
  server = null;
});

test('the 4th connection from one address is refused with 421 when the per-address limit is 3; others unaffected', async () => {
  const s = await serve({ maxConnectionsPerAddress: 3 });
  const three = [client('127.0.0.1'), client('127.0.0.1'), client('127.0.0.1')];
  for (const c of three) assert.is(await c.line(), '220 ready');
  const fourth = client('127.0.0.1');
  assert.is(await fourth.line(), '421 Too many connections');
  await fourth.closed; // the server hung up
  const other = client('::1');
  assert.is(await other.line(), '220 ready', 'another address still gets in');
  await three[0]!.close();
  await until(() => s.limiter.stats().connections === 3);
  const again = client('127.0.0.1');
  assert.is(await again.line(), '220 ready', 'a closed connection frees its slot');
  assert.is(s.limiter.stats().refused.address_full, 1);
});

test('overall cap: the connection beyond maxConnections is refused whatever its address', async () => {
  const s = await serve({ maxConnections: 2 });
  assert.is(await client('127.0.0.1').line(), '220 ready');
  assert.is(await client('::1').line(), '220 ready');
  assert.is(await client('::1').line(), '421 Too many connections');
  assert.is(s.limiter.stats().refused.server_full, 1);
});

test('per-user cap counts logged-in sessions of one user across addresses; others still log in', async () => {
  const s = await serve({ maxConnectionsPerUser: 2 });
  const a = client('127.0.0.1');
  const b = client('::1');
  const c = client('127.0.0.1');
  for (const x of [a, b, c]) await x.line();
  assert.is(await a.login('alice', 'right'), '230 logged in');
  assert.is(await b.login('alice', 'right'), '230 logged in');
  assert.is(await c.login('alice', 'right'), '421 Too many connections');
  await c.closed;
  const d = client('127.0.0.1');
  await d.line();
  assert.is(await d.login('bob', 'also-right'), '230 logged in');
  await a.close();
  await until(() => s.limiter.stats().connections === 2);
  const e = client('::1');
  await e.line();
  assert.is(await e.login('alice', 'right'), '230 logged in', 'a closed session frees the user slot');
});

test('brute force from one address: delays grow, then a ban; another address logs in at once; the ban expires', async () => {
  const s = await serve({ loginDelayBaseMs: 80, loginDelayMaxMs: 320, banAfterFailures: 5, banMs: 1200, failureWindowMs: 60_000 });
  const attacker = client('127.0.0.1');
  await attacker.line();
  await attacker.send('USER alice');
  const delays: number[] = [];
  for (let i = 0; i < 5; i++) {
    const started = performance.now();
    assert.is(await attacker.send(`PASS guess${i}`), '530 Login incorrect');
    delays.push(performance.now() - started);
  }
  await attacker.closed; // the 5th failure banned the address and the server closed
  const expected = [80, 160, 320, 320, 320];
  delays.forEach((ms, i) => assert.ok(ms >= expected[i]! - 5 && ms < expected[i]! + 250, `failure ${i + 1}: ${ms.toFixed(0)} ms, expected ~${expected[i]}`));
  const bannedAt = performance.now();

  const retry = client('127.0.0.1');
  assert.is(await retry.line(), '421 Too many failed logins from your address; try again later');
  const other = client('::1');
  assert.is(await other.line(), '220 ready');
  const started = performance.now();
  assert.is(await other.login('alice', 'right'), '230 logged in');
  assert.ok(performance.now() - started < 80, 'no delay for an address without failures');
  assert.is(s.limiter.stats().bans, 1);

  await new Promise((r) => setTimeout(r, Math.max(0, 1200 - (performance.now() - bannedAt)) + 50));
  const later = client('127.0.0.1');
  assert.is(await later.line(), '220 ready', 'the ban expired');
  assert.is(await later.login('alice', 'right'), '230 logged in');
});

test('a session already connected when its address is banned cannot try more passwords', async () => {
  await serve({ loginDelayBaseMs: 0, banAfterFailures: 2, banMs: 60_000 });
  const first = client('127.0.0.1');
  const second = client('127.0.0.1');
  await first.line();
  await second.line();
  await second.send('USER alice');
  await first.send('USER alice');
  assert.is(await first.send('PASS x'), '530 Login incorrect');
  assert.is(await first.send('PASS y'), '530 Login incorrect');
  await first.closed;
  assert.is(await second.send('PASS right'), '421 Too many failed logins from your address; try again later');
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
  assert.ok(elapsedMs < 2000, `200k connect+fail+release took ${elapsedMs.toFixed(0)} ms`);
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
