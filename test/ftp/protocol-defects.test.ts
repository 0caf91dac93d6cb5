// Regression tests for ftp-srv 4.6.3 protocol defects (shared/reference/ftp-srv.md), each named
// after the defect; none needs storage. Real sockets on loopback.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createServer, type Server } from 'node:net';
import { FtpServer } from '../../src/ftp/server.ts';
import { parseCommand, splitListOptions } from '../../src/ftp/commands/types.ts';
import { RawFtp, openData, sleep, tcpHandles, timers, until } from './helpers/raw-client.ts';
import { startProtocolServer } from './helpers/protocol-server.ts';

/** n consecutive ports below the ephemeral range, free right now (other tests run beside us). */
async function freeRange(n: number): Promise<number> {
  for (;;) {
    const base = 20000 + Math.floor(Math.random() * 12000);
    const held: Server[] = [];
    let ok = true;
    for (let p = base; p < base + n && ok; p++) {
      const probe = createServer();
      ok = await new Promise<boolean>((resolve) => {
        probe.once('error', () => resolve(false));
        probe.listen(p, '127.0.0.1', () => resolve(true));
      });
      if (ok) held.push(probe);
    }
    await Promise.all(held.map((h) => new Promise((resolve) => h.close(resolve))));
    if (ok) return base;
  }
}

let unhandled: unknown[] = [];
process.on('unhandledRejection', (err) => unhandled.push(err));
process.on('uncaughtException', (err) => unhandled.push(err));

test.after.each(() => {
  assert.equal(unhandled, [], 'no unhandled rejection or exception');
  unhandled = [];
});

test('defect: commands split across TCP packets are read as one line', async () => {
  const { server, port } = await startProtocolServer();
  const c = await RawFtp.connect(port);
  c.sendRaw('NO');
  await sleep(50);
  c.sendRaw('OP\r\n');
  const reply = await c.read();
  assert.is(reply.code, 200);
  assert.is(await c.readOrNull(200), null, 'exactly one reply');
  c.close();
  await server.close();
});

test('defect: multi-byte UTF-8 split across packets survives', async () => {
  const { server, port } = await startProtocolServer();
  const c = await RawFtp.connect(port);
  const line = Buffer.from('USER jé\r\n', 'utf8');
  const cut = line.indexOf(0xc3) + 1; // inside the two bytes of é
  c.sendRaw(line.subarray(0, cut));
  await sleep(50);
  c.sendRaw(line.subarray(cut));
  assert.is((await c.read()).code, 331);
  const stat = await c.cmd('STAT');
  assert.ok(stat.text.includes('Logged in as jé'), stat.text);
  c.close();
  await server.close();
});

test('defect: unbounded command line (max line length)', async () => {
  const { server, port } = await startProtocolServer({ maxLineBytes: 1024 });
  const c = await RawFtp.connect(port);
  c.sendRaw('NOOP ' + 'A'.repeat(5000));
  await sleep(20);
  c.sendRaw('A'.repeat(5000) + '\r\n');
  assert.is((await c.read()).code, 500);
  assert.is((await c.cmd('NOOP')).code, 200, 'the connection still works after an overlong line');
  c.close();
  await server.close();
});

test('defect: Telnet IAC IP/DM before ABOR is stripped', async () => {
  const { server, port } = await startProtocolServer();
  const c = await RawFtp.connect(port);
  c.sendRaw(Buffer.concat([Buffer.from([0xff, 0xf4, 0xff, 0xf2]), Buffer.from('NOOP\r\n')]));
  assert.is((await c.read()).code, 200);
  c.close();
  await server.close();
});

test('a connection that does not log in within loginTimeoutMs is closed (421), however busy it keeps the line', async () => {
  const LOGIN_MS = 1200;
  const { server, port } = await startProtocolServer({ loginTimeoutMs: LOGIN_MS, idleTimeoutMs: 60_000 });
  const trickle = await RawFtp.connect(port); // a byte now and then, never a whole line
  const noops = await RawFtp.connect(port); // NOOPs, never a login
  const user = await RawFtp.connect(port); // logs in in time: stays
  await user.login('alice', 'secret');
  const relogin = await RawFtp.connect(port); // logs in, then USER drops the login: its clock starts again
  await relogin.login('alice', 'secret');
  assert.is((await relogin.cmd('USER bob')).code, 331);
  const started = Date.now();
  const bytes = Buffer.from('NOOP NOOP NOOP');
  for (let i = 0; !trickle.closed && Date.now() - started < LOGIN_MS * 4; i++) {
    if (i < bytes.length) trickle.sendRaw(bytes.subarray(i, i + 1));
    if (!noops.closed) noops.send('NOOP');
    await sleep(100);
  }
  await until(() => trickle.closed && noops.closed && relogin.closed, LOGIN_MS * 4, 'all three closed');
  assert.ok(Date.now() - started >= LOGIN_MS - 300, 'not before the timeout');
  let last = '';
  for (let i = 0; i < 200; i++) {
    const r = await noops.read(500).catch(() => null);
    if (!r) break;
    last = `${r.code} ${r.text}`;
  }
  assert.match(last, /^421 .*Login timeout/);
  assert.not.ok(user.closed, 'a logged-in session is not cut');
  assert.is((await user.cmd('NOOP')).code, 200);
  user.close();
  await server.close();
});

test('defect: a blank line or a leading space got "500 Command line too long"; PASV after EPSV ALL got 501', async () => {
  const { server, port } = await startProtocolServer();
  const c = await RawFtp.loggedIn(port, 'alice', 'secret');
  for (const line of ['   ', ' NOOP']) {
    const r = await c.cmd(line);
    assert.is(r.code, 500, JSON.stringify(line));
    assert.match(r.text, /command unrecognized/);
  }
  assert.is((await c.cmd('EPSV ALL')).code, 200);
  const pasv = await c.cmd('PASV');
  assert.is(pasv.code, 503, 'as for PORT and EPRT');
  assert.match(pasv.text, /EPSV ALL/);
  assert.is((await c.cmd(`NOOP ${'x'.repeat(10_000)}`)).code, 500, 'a line too long is still that');
  c.close();
  await server.close();
});

test('defect: quote stripping and -x flag eating in arguments', async () => {
  assert.equal(parseCommand('MKD a"b'), { directive: 'MKD', arg: 'a"b' });
  assert.equal(parseCommand('dele -x'), { directive: 'DELE', arg: '-x' });
  assert.equal(parseCommand('RETR  two spaces '), { directive: 'RETR', arg: ' two spaces ' });
  assert.equal(splitListOptions('-la dir -x'), { options: '-la', path: 'dir -x' });
  assert.equal(splitListOptions('-x'), { options: '-x', path: '' });
  const { server, port } = await startProtocolServer();
  const c = await RawFtp.connect(port);
  await c.cmd('USER "q" -x');
  const stat = await c.cmd('STAT');
  assert.ok(stat.text.includes('Logged in as "q" -x'), stat.text);
  c.close();
  await server.close();
});

test('defect: a throwing or rejecting login handler kills the process', async () => {
  for (const handler of [
    async () => {
      throw new Error('boom at /srv/secret/path');
    },
    () => {
      throw new Error('sync boom /srv/secret');
    },
  ]) {
    const server = new FtpServer({ host: '127.0.0.1', port: 0 });
    server.on('login', handler);
    const { port } = await server.listen();
    const c = await RawFtp.connect(port);
    await c.cmd('USER bob');
    const reply = await c.cmd('PASS x');
    assert.is(reply.code, 530);
    assert.not.ok(reply.text.includes('/srv'), 'no server path in the reply');
    assert.is((await c.cmd('NOOP')).code, 200, 'the server is alive');
    c.close();
    await server.close();
  }
});

test('defect: PASS can be retried without limit', async () => {
  const { server, port } = await startProtocolServer({ maxLoginFailures: 3 });
  const c = await RawFtp.connect(port);
  for (let i = 0; i < 2; i++) {
    await c.cmd('USER alice');
    assert.is((await c.cmd('PASS wrong')).code, 530);
  }
  await c.cmd('USER alice');
  assert.is((await c.cmd('PASS wrong')).code, 530);
  assert.is((await c.read()).code, 421);
  await until(() => c.closed, 2000, 'connection closed');
  await server.close();
});

test('defect: the constructor installs process-wide SIGTERM/SIGINT/SIGQUIT handlers', async () => {
  const before = ['SIGTERM', 'SIGINT', 'SIGQUIT'].map((s) => process.listenerCount(s));
  const server = new FtpServer({ port: 0 });
  const after = ['SIGTERM', 'SIGINT', 'SIGQUIT'].map((s) => process.listenerCount(s));
  assert.equal(after, before);
  await server.close();
});

test('defect: disconnectClient leaves a timer per disconnect; O(n) connection counting', async () => {
  const { server, port } = await startProtocolServer();
  const counts: number[] = [];
  server.on('connect', ({ newConnectionCount }: { newConnectionCount: number }) => counts.push(newConnectionCount));
  await sleep(50);
  const baseline = timers();
  const clients = await Promise.all(Array.from({ length: 20 }, () => RawFtp.connect(port)));
  assert.equal(counts, Array.from({ length: 20 }, (_, i) => i + 1));
  assert.is(server.connectionCount, 20);
  for (const c of clients) c.close();
  await until(() => server.connectionCount === 0, 2000, 'all disconnected');
  await sleep(50);
  assert.ok(timers() <= baseline, `timers ${timers()} > baseline ${baseline}`);
  await server.close();
});

test('defect: repeated PASV/EPSV leak passive listeners until the range is exhausted', async () => {
  const base = await freeRange(3);
  const { server, port } = await startProtocolServer({ pasvPorts: { min: base, max: base + 2 } });
  const c = await RawFtp.connect(port);
  await c.login();
  const seen: number[] = [];
  for (let i = 0; i < 10; i++) seen.push(i % 2 ? await c.epsv() : (await c.pasv()).port);
  assert.is(server.passivePorts.open, 1, 'one pending listener per session');
  const stale = seen[seen.length - 2]!;
  const refused = await openData(stale).then((s) => (s.destroy(), false), () => true);
  assert.ok(refused, 'the replaced listener is closed');
  c.close();
  await until(() => server.passivePorts.open === 0, 2000, 'listener closed with the session');
  await server.close();
});

test('defect: one client can exhaust the passive port range', async () => {
  const base = await freeRange(2);
  const { server, port } = await startProtocolServer({ pasvPorts: { min: base, max: base + 1 } });
  const greedy = await RawFtp.connect(port);
  await greedy.login();
  for (let i = 0; i < 20; i++) await greedy.pasv();
  const other = await RawFtp.connect(port);
  await other.login();
  const { port: dataPort } = await other.pasv();
  assert.ok(dataPort === base || dataPort === base + 1);
  greedy.close();
  other.close();
  await server.close();
});

test('defect: passive connect-then-close leaves a listener and a CLOSE-WAIT socket forever', async () => {
  const { server, port } = await startProtocolServer({ unusedDataTimeoutMs: 300 });
  const c = await RawFtp.connect(port);
  await c.login();
  await sleep(50);
  const baseline = tcpHandles();
  const { port: dataPort } = await c.pasv();
  const data = await openData(dataPort);
  await until(() => server.passivePorts.open === 0, 2000, 'listener closed once connected');
  data.end();
  await until(() => tcpHandles() <= baseline, 3000, 'server-side data socket destroyed');
  assert.is((await c.cmd('NOOP')).code, 200);
  c.close();
  await server.close();
});

test('defect: a failed command after PASV leaks the passive listener', async () => {
  const { server, port } = await startProtocolServer();
  const c = await RawFtp.connect(port);
  await c.login();
  await c.pasv();
  assert.is(server.passivePorts.open, 1);
  const reply = await c.cmd('RETR');
  assert.is(reply.code, 501);
  assert.is(server.passivePorts.open, 0, 'listener closed after the failed command');
  const reply2 = await c.cmd('LIST -la /x', 15000); // storage unreachable: 451, and no leak
  assert.is(reply2.code, 451);
  c.close();
  await server.close();
});

test('defect: EADDRINUSE race on the passive port never replies', async () => {
  const base = await freeRange(2);
  const blockers: Server[] = [];
  for (const p of [base, base + 1]) {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(p, '127.0.0.1', resolve));
    blockers.push(blocker);
  }
  const { server, port } = await startProtocolServer({ pasvPorts: { min: base, max: base + 1 } });
  const c = await RawFtp.connect(port);
  await c.login();
  const reply = await c.cmd('PASV', 2000);
  assert.is(reply.code, 425);
  await new Promise((resolve) => blockers.pop()!.close(resolve));
  const { port: got } = await c.pasv();
  assert.is(got, base + 1);
  c.close();
  for (const b of blockers) b.close();
  await server.close();
});

test('defect: PASV needs pasv_url (502 without it)', async () => {
  const { server, port } = await startProtocolServer();
  const c = await RawFtp.connect(port);
  await c.login();
  const { host } = await c.pasv();
  assert.is(host, '127.0.0.1');
  c.close();
  await server.close();
});

test('defect: data connections accepted from any address; PORT/EPRT to any address (bounce)', async () => {
  const { server, port } = await startProtocolServer();
  const c = await RawFtp.connect(port);
  await c.login();
  const { port: dataPort } = await c.pasv();
  const intruder = await openData(dataPort, '127.0.0.1', '127.0.0.2');
  await new Promise((resolve) => intruder.once('close', resolve));
  assert.is(server.passivePorts.open, 1, 'listener still waits for the real client');
  assert.is((await c.cmd('PORT 127,0,0,2,200,10')).code, 501);
  assert.is((await c.cmd('EPRT |1|127.0.0.2|51210|')).code, 501);
  assert.is((await c.cmd('EPRT |1|10.1.2.3|51210|')).code, 501);
  assert.is((await c.cmd('EPRT |3|x|1|')).code, 522);
  c.close();
  await server.close();
});

test("defect: PORT/EPRT to a privileged port of the client's own address was accepted (RFC 2577)", async () => {
  const { server, port } = await startProtocolServer();
  const c = await RawFtp.connect(port);
  await c.login();
  // The client's own address, but its SMTP, SSH or FTP port: uploaded bytes would be sent to them.
  for (const line of ['PORT 127,0,0,1,0,25', 'PORT 127,0,0,1,3,255', 'EPRT |1|127.0.0.1|22|', 'EPRT |1|127.0.0.1|21|']) {
    const reply = await c.cmd(line);
    assert.is(reply.code, 504, `${line}: ${reply.text}`);
    assert.match(reply.text, /ports below 1024/);
  }
  assert.is((await c.cmd('PORT 127,0,0,1,4,0')).code, 200, 'port 1024 is allowed');
  assert.is((await c.cmd('EPRT |1|127.0.0.1|65535|')).code, 200);
  c.close();
  await server.close();
});

test('defect: FEAT does not list EPSV, EPRT, MLST, REST STREAM, TVFS', async () => {
  const { server, port } = await startProtocolServer();
  const c = await RawFtp.connect(port);
  const feat = await c.cmd('FEAT');
  assert.is(feat.code, 211);
  for (const f of ['EPSV', 'EPRT', 'MLST type*;size*;modify*;perm*;unique*;', 'REST STREAM', 'SIZE', 'MDTM', 'UTF8', 'TVFS', 'PASV']) {
    assert.ok(feat.lines.includes(` ${f}`), `FEAT lists ${f}`);
  }
  c.close();
  await server.close();
});

test('defect: blacklists bypassed by aliases (XMKD/XRMD/XCWD/XCUP/XPWD, APPE/STOU, SITE)', async () => {
  const { server, port } = await startProtocolServer({ blacklist: ['MKD', 'RMD', 'CWD', 'PWD', 'STOR', 'SITE', 'rnFr'] });
  const c = await RawFtp.connect(port);
  await c.login();
  for (const line of ['XMKD a', 'MKD a', 'XRMD a', 'XCWD a', 'XCUP', 'CDUP', 'XPWD', 'APPE a', 'STOU', 'SITE CHMOD 777 a', 'RNFR a', 'RNTO b']) {
    assert.is((await c.cmd(line)).code, 550, line);
  }
  assert.is((await c.cmd('NOOP')).code, 200);
  c.close();
  await server.close();
  const open = await startProtocolServer();
  const d = await RawFtp.connect(open.port);
  await d.login();
  assert.is((await d.cmd('SITE CHMOD 777 a')).code, 502, 'no SITE command runs at all');
  d.close();
  await open.server.close();
});

test('IPv6: EPSV and EPRT over ::1', async () => {
  const { server, port } = await startProtocolServer({ host: '::1' });
  const c = await RawFtp.connect(port, '::1');
  await c.login();
  assert.is((await c.cmd('PASV')).code, 425, 'PASV cannot carry an IPv6 address');
  const dataPort = await c.epsv();
  const data = await openData(dataPort, '::1');
  data.destroy();
  assert.is((await c.cmd('EPSV 1')).code, 522);
  const listener = createServer();
  await new Promise<void>((resolve) => listener.listen(0, '::1', resolve));
  const lp = (listener.address() as { port: number }).port;
  assert.is((await c.cmd(`EPRT |2|::1|${lp}|`)).code, 200);
  c.close();
  listener.close();
  await server.close();
});

test.run();
