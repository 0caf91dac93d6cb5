// dropftp behind HAProxy (TCP mode, send-proxy and send-proxy-v2) with the PROXY protocol on:
// per-address limits count the real client addresses (127.0.0.2/127.0.0.3 through one proxy),
// a passive data connection (direct to the gateway) is accepted from the real client and refused
// from the proxy's address, implicit FTPS works through send-proxy-v2, and connections without a
// header or from an untrusted source are closed. HAProxy is required: the test fails without it.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startStack, type Stack } from '../ftp/helpers/stack.ts';
import { RawFtp, openData, readAll, sleep } from '../ftp/helpers/raw-client.ts';
import { freePort } from '../helpers/ports.ts';

const HAPROXY = process.env.HAPROXY ?? '/usr/sbin/haproxy';
let stack: Stack;
let haproxy: ChildProcess | null = null;
let dir: string;
const fronts = { v1: 0, v2: 0, tls: 0 };
const clients: RawFtp[] = [];

async function reachable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

// uvu reports a throwing before-hook as nothing at all (0 passed, exit 0): keep the error and fail
// every test with it instead, so a missing HAProxy is a loud failure, never a silent skip.
let setupError: Error | null = null;
function ready(): void {
  if (setupError) throw setupError;
}

test.before(async () => {
  try {
    await setup();
  } catch (err) {
    setupError = err as Error;
  }
});

async function setup(): Promise<void> {
  if (!existsSync(HAPROXY)) {
    throw new Error(`HAProxy not found at ${HAPROXY}: install the Debian package "haproxy" (CI does) or set HAPROXY=/path/to/haproxy`);
  }
  dir = mkdtempSync(join(tmpdir(), 'dropftp-haproxy-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', '/CN=localhost', '-days', '1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
  // The whole service through startDropftp's own options (what `dropftp serve` maps its configuration to).
  stack = await startStack({
    tls: { certFile: join(dir, 'cert.pem'), keyFile: join(dir, 'key.pem'), implicitPort: 0 },
    proxyProtocol: { trustedProxies: ['127.0.0.1'], headerTimeoutMs: 1000 },
    access: { maxConnectionsPerAddress: 1 },
  });
  const ftpPort = stack.port;
  const tlsPort = stack.implicitTlsPort!;
  fronts.v1 = await freePort();
  fronts.v2 = await freePort();
  fronts.tls = await freePort();
  const config = `global
  maxconn 200
  stats socket ${join(dir, 'haproxy.sock')} level admin
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend ftp_v1
  bind 127.0.0.1:${fronts.v1}
  default_backend gateways_v1
backend gateways_v1
  server gw1 127.0.0.1:${ftpPort} send-proxy
frontend ftp_v2
  bind 127.0.0.1:${fronts.v2}
  default_backend gateways_v2
backend gateways_v2
  server gw1 127.0.0.1:${ftpPort} send-proxy-v2
frontend ftps_v2
  bind 127.0.0.1:${fronts.tls}
  default_backend gateways_tls
backend gateways_tls
  server gw1 127.0.0.1:${tlsPort} send-proxy-v2
backend checked
  option tcp-check
  tcp-check connect send-proxy
  tcp-check send NOOP\\r\\n
  tcp-check expect rstring ^220
  tcp-check send QUIT\\r\\n
  server gw1 127.0.0.1:${ftpPort} send-proxy-v2 check inter 200ms rise 1 fall 1
`;
  writeFileSync(join(dir, 'haproxy.cfg'), config);
  let stderr = '';
  haproxy = spawn(HAPROXY, ['-db', '-f', join(dir, 'haproxy.cfg')], { stdio: ['ignore', 'ignore', 'pipe'] });
  haproxy.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  for (let i = 0; i < 100; i++) {
    if (haproxy.exitCode !== null) break;
    if ((await reachable(fronts.v1)) && (await reachable(fronts.v2)) && (await reachable(fronts.tls))) return;
    await sleep(50);
  }
  throw new Error(`HAProxy did not start (exit ${haproxy.exitCode}): ${stderr}`);
}

test('setup: HAProxy is installed and started in front of dropftp', () => {
  ready();
});

test.after.each(async () => {
  for (const c of clients.splice(0)) c.close();
  await sleep(100); // let the server see the closes (per-address counts) before the next test
});

test.after(async () => {
  haproxy?.kill('SIGTERM');
  await stack?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function through(port: number, localAddress: string, implicitTls = false): Promise<{ ftp: RawFtp; first: string }> {
  const { ftp, first } = await RawFtp.open({ port, localAddress, implicitTls });
  clients.push(ftp);
  return { ftp, first: first?.text ?? 'closed without a reply' };
}

for (const version of ['v1', 'v2'] as const) {
  test(`send-proxy${version === 'v2' ? '-v2' : ''}: per-address limit 1 counts real clients — 127.0.0.2 and 127.0.0.3 both in, a second 127.0.0.2 refused`, async () => {
    ready();
    const a = await through(fronts[version], '127.0.0.2');
    const b = await through(fronts[version], '127.0.0.3');
    assert.match(a.first, /^220 /);
    assert.match(b.first, /^220 /, 'a second client through the same proxy address is not counted against the first');
    const again = await through(fronts[version], '127.0.0.2');
    assert.match(again.first, /^421 Too many connections/);
    assert.is((await a.ftp.tryLogin(stack.user, stack.password)).code, 230);
    const stat = await a.ftp.cmd('STAT');
    assert.match(stat.lines.at(-1)!, /^211 /); // the closing line (STAT's reply is multi-line)
  });
}

test('passive data through the proxy setup: the data connection (direct) from the real client works byte-exact; one from the proxy address is refused', async () => {
  ready();
  const { ftp } = await through(fronts.v2, '127.0.0.2');
  assert.is((await ftp.tryLogin(stack.user, stack.password)).code, 230);
  const bytes = randomBytes(512 * 1024 + 3);
  let data = await openData(await ftp.epsv(), '127.0.0.1', '127.0.0.2');
  ftp.send('STOR /via-haproxy.bin');
  assert.is((await ftp.read()).code, 150);
  data.end(bytes);
  assert.is((await ftp.read(20_000)).code, 226);
  data = await openData(await ftp.epsv(), '127.0.0.1', '127.0.0.2');
  const got = readAll(data);
  ftp.send('RETR /via-haproxy.bin');
  assert.is((await ftp.read()).code, 150);
  assert.ok((await got).equals(bytes), 'byte-exact');
  assert.is((await ftp.read(20_000)).code, 226);
  // The proxy's own address (127.0.0.1) is not the client: its data connection is dropped.
  const port = await ftp.epsv();
  const stranger = await openData(port, '127.0.0.1', '127.0.0.1');
  const strangerClosed = new Promise<void>((resolve) => stranger.once('close', () => resolve()));
  stranger.on('error', () => {});
  stranger.resume();
  await strangerClosed;
  const rightful = await openData(port, '127.0.0.1', '127.0.0.2');
  const listing = readAll(rightful);
  ftp.send('NLST /');
  assert.is((await ftp.read()).code, 150);
  assert.match((await listing).toString(), /via-haproxy\.bin/);
  assert.is((await ftp.read()).code, 226);
});

test('implicit FTPS through send-proxy-v2: TLS after the header, login, per-address count of the real client', async () => {
  ready();
  const a = await through(fronts.tls, '127.0.0.4', true);
  assert.match(a.first, /^220 /);
  assert.is((await a.ftp.tryLogin(stack.user, stack.password)).code, 230);
  const again = await through(fronts.tls, '127.0.0.4', true);
  assert.match(again.first, /^421 /);
});

async function haproxyStat(): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(join(dir, 'haproxy.sock'));
    let out = '';
    s.on('data', (chunk: Buffer) => (out += chunk.toString()));
    s.once('end', () => resolve(out));
    s.once('error', reject);
    s.end('show stat\n');
  });
}

test('the README health check (tcp-check: PROXY header with a NOOP — HAProxy sends a check\'s header only with its first bytes — then expects the 220 greeting) marks the gateway UP', async () => {
  ready();
  let line = '';
  for (let i = 0; i < 50; i++) {
    line = (await haproxyStat()).split('\n').find((l) => l.startsWith('checked,gw1,')) ?? '';
    if (line.split(',')[17] === 'UP') break;
    await sleep(100);
  }
  assert.is(line.split(',')[17], 'UP', line);
});

test('PROXY protocol on: no header → closed after the timeout without a greeting; an untrusted source with a forged header → closed', async () => {
  ready();
  const ftpPort = stack.port;
  const started = Date.now();
  const silent = await through(ftpPort, '127.0.0.1');
  assert.is(silent.first, 'closed without a reply');
  assert.ok(Date.now() - started >= 900, 'closed by the header timeout');
  const forged = await RawFtp.open({ port: ftpPort, localAddress: '127.0.0.9', preamble: 'PROXY TCP4 198.51.100.7 127.0.0.1 4000 21\r\n' });
  clients.push(forged.ftp);
  assert.is(forged.first, null, 'untrusted sources may not claim an address');
  const trusted = await RawFtp.open({ port: ftpPort, localAddress: '127.0.0.1', preamble: 'PROXY TCP4 198.51.100.7 127.0.0.1 4000 21\r\n' });
  clients.push(trusted.ftp);
  assert.match(trusted.first?.text ?? '', /^220 /, 'a trusted source with a valid header is served');
});

test.run();
