// FTPS regressions through real sockets against the whole service: a client that sends AUTH TLS
// and never completes its handshake is cut after tlsHandshakeTimeoutMs (its slot freed), and with
// tls.requireSessionReuse a PROT P data connection that does not resume the control connection's
// TLS session is refused (425) while curl, which resumes, works.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect as netConnect, createServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { RawFtp, sleep, until } from './helpers/raw-client.ts';
import { startStack, type Stack } from './helpers/stack.ts';

const HANDSHAKE_MS = 500;
let stack: Stack;
let dir: string;

test.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'dropftp-polish-tls-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', '/CN=localhost', '-days', '1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
  stack = await startStack({
    tls: { certFile: join(dir, 'cert.pem'), keyFile: join(dir, 'key.pem'), requireSessionReuse: true },
    limits: { tlsHandshakeTimeoutMs: HANDSHAKE_MS },
  });
});

test.after(async () => {
  await stack.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('defect: AUTH TLS without a handshake held its connection forever: cut after tlsHandshakeTimeoutMs', async () => {
  const before = stack.ftp.connectionCount;
  const c = await RawFtp.connect(stack.port);
  assert.is((await c.cmd('AUTH TLS')).code, 234);
  await until(() => stack.ftp.connectionCount === before + 1, 2000, 'session counted');
  const sentAt = Date.now();
  await until(() => c.closed, HANDSHAKE_MS + 4000, 'connection closed by the server');
  assert.ok(Date.now() - sentAt >= HANDSHAKE_MS - 50, 'not before the timeout');
  await until(() => stack.ftp.connectionCount === before, 2000, 'slot freed');
});

/** A minimal FTP control client over any socket (plain, then TLS after AUTH TLS). */
class Control {
  #buffer = '';
  #waiters: ((line: string) => void)[] = [];
  #lines: string[] = [];
  constructor(readonly socket: Socket | TLSSocket) {
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => {
      this.#buffer += text;
      for (let end = this.#buffer.indexOf('\r\n'); end !== -1; end = this.#buffer.indexOf('\r\n')) {
        const line = this.#buffer.slice(0, end);
        this.#buffer = this.#buffer.slice(end + 2);
        if (!/^\d{3} /.test(line)) continue; // only final lines of replies
        const waiter = this.#waiters.shift();
        if (waiter) waiter(line);
        else this.#lines.push(line);
      }
    });
  }
  read(): Promise<string> {
    const line = this.#lines.shift();
    if (line !== undefined) return Promise.resolve(line);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }
  cmd(line: string): Promise<string> {
    this.socket.write(line + '\r\n');
    return this.read();
  }
}

async function tlsControl(): Promise<{ control: Control; secure: TLSSocket; session: Buffer }> {
  const raw = netConnect({ port: stack.port, host: '127.0.0.1' });
  await new Promise((resolve) => raw.once('connect', resolve));
  const plain = new Control(raw);
  assert.match(await plain.read(), /^220 /);
  assert.match(await plain.cmd('AUTH TLS'), /^234 /);
  raw.removeAllListeners('data');
  const secure = tlsConnect({ socket: raw, rejectUnauthorized: false, servername: 'localhost' });
  const session = new Promise<Buffer>((resolve) => secure.once('session', resolve));
  await new Promise((resolve) => secure.once('secureConnect', resolve));
  const control = new Control(secure);
  assert.match(await control.cmd(`USER ${stack.user}`), /^331 /);
  assert.match(await control.cmd(`PASS ${stack.password}`), /^230 /);
  assert.match(await control.cmd('PBSZ 0'), /^200 /);
  assert.match(await control.cmd('PROT P'), /^200 /);
  return { control, secure, session: await session };
}

/** PASV + LIST over a TLS data connection opened with (or without) the control session. */
async function listOverTls(control: Control, session: Buffer | undefined): Promise<{ first: string; final: string; data: string }> {
  const pasv = await control.cmd('PASV');
  const m = /\((\d+),(\d+),(\d+),(\d+),(\d+),(\d+)\)/.exec(pasv)!;
  const port = Number(m[5]) * 256 + Number(m[6]);
  const data = tlsConnect({ port, host: '127.0.0.1', rejectUnauthorized: false, servername: 'localhost', ...(session ? { session } : {}) });
  data.on('error', () => {});
  const chunks: Buffer[] = [];
  data.on('data', (chunk: Buffer) => chunks.push(chunk));
  const closed = new Promise((resolve) => data.once('close', resolve));
  const first = await control.cmd('LIST /');
  const final = first.startsWith('150') ? await control.read() : first;
  await closed;
  return { first, final, data: Buffer.concat(chunks).toString() };
}

test('tls.requireSessionReuse: a data connection without the control session is refused (425), one that resumes it works', async () => {
  const { control, secure, session } = await tlsControl();
  const refused = await listOverTls(control, undefined);
  assert.match(refused.final, /^425 /, `no resumption: ${refused.first} / ${refused.final}`);
  assert.is(refused.data, '');
  const resumed = await listOverTls(control, session);
  assert.match(resumed.final, /^226 /, `resumed: ${resumed.first} / ${resumed.final}`);
  assert.match(await control.cmd('NOOP'), /^200 /, 'the session goes on');
  secure.destroy();
});

/** PORT + LIST: the server connects to us and is the TLS server side; we resume (or not). */
async function activeListOverTls(control: Control, session: Buffer | undefined): Promise<{ final: string; data: string }> {
  const chunks: Buffer[] = [];
  let closed: Promise<unknown> = Promise.resolve();
  const server = createServer((socket) => {
    server.close();
    const data = tlsConnect({ socket, rejectUnauthorized: false, servername: 'localhost', ...(session ? { session } : {}) });
    data.on('error', () => {});
    data.on('data', (chunk: Buffer) => chunks.push(chunk));
    closed = new Promise((done) => data.once('close', done));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  assert.match(await control.cmd(`PORT 127,0,0,1,${port >> 8},${port & 255}`), /^200 /);
  const first = await control.cmd('LIST /');
  const final = first.startsWith('150') ? await control.read() : first;
  server.close();
  await closed;
  return { final, data: Buffer.concat(chunks).toString() };
}

test('tls.requireSessionReuse: active mode (PORT) refuses a data connection without the session too', async () => {
  const { control, secure, session } = await tlsControl();
  const refused = await activeListOverTls(control, undefined);
  assert.match(refused.final, /^425 /, refused.final);
  assert.is(refused.data, '');
  const resumed = await activeListOverTls(control, session);
  assert.match(resumed.final, /^226 /, resumed.final);
  secure.destroy();
});

function curl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('curl', ['-sS', '--ssl-reqd', '-k', '--max-time', '20', ...args], { encoding: 'utf8' }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

test('tls.requireSessionReuse: curl (explicit FTPS, PROT P, resumes its session) uploads, lists and downloads', async () => {
  const base = `ftp://${stack.user}:${stack.password}@127.0.0.1:${stack.port}`;
  const file = join(dir, 'up.txt');
  writeFileSync(file, 'reused session bytes\n');
  const put = await curl(['-T', file, `${base}/reuse.txt`]);
  assert.is(put.code, 0, put.stderr);
  const list = await curl(['-l', `${base}/`]);
  assert.is(list.code, 0, list.stderr);
  assert.ok(list.stdout.split(/\r?\n/).includes('reuse.txt'), list.stdout);
  const get = await curl([`${base}/reuse.txt`]);
  assert.is(get.code, 0, get.stderr);
  assert.is(get.stdout, 'reused session bytes\n');
  await sleep(0);
});

test.run();
