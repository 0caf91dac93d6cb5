// FTPS regressions through real sockets against the whole service: a client that sends AUTH TLS
// and never completes its handshake is cut after tlsHandshakeTimeoutMs (its slot freed), and with
// tls.requireSessionReuse a PROT P data connection that does not resume the control connection's
// TLS session is refused (425) while curl, which resumes, works.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RawFtp, download, listenData, openData, openSecureData, readUntilClose, sleep, until, upload, type Reply } from './helpers/raw-client.ts';
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

test('defect: lines sent in the clear behind AUTH TLS ran over TLS (login injection): discarded', async () => {
  const c = await RawFtp.connect(stack.port);
  // A man in the middle appends his own login to the client's AUTH TLS, in the same packet.
  await c.authTls(`USER ${stack.user}\r\nPASS ${stack.password}\r\nSYST\r\n`);
  const late = await c.read(800).then(
    (r) => `${r.code} ${r.text}`,
    () => null,
  );
  assert.is(late, null, 'no reply to a line sent in the clear');
  const stat = await c.cmd('STAT');
  assert.match(stat.text, /Logged in as \(nobody\)/);
  assert.is((await c.cmd('PWD')).code, 530, 'not logged in');
  await c.login(stack.user, stack.password);
  assert.is((await c.cmd('PWD')).code, 257, 'a login over TLS works');
  c.close();
});

/** Logged in over AUTH TLS with PBSZ 0 + PROT P; `session` is the control connection's TLS session. */
async function tlsControl(): Promise<{ ftp: RawFtp; session: Buffer }> {
  const ftp = await RawFtp.connect(stack.port); // rejects unless the greeting is 220
  await ftp.authTls(); // rejects unless 234 and a completed handshake
  await ftp.login(stack.user, stack.password); // rejects unless 331 then 230
  assert.is((await ftp.cmd('PBSZ 0')).code, 200);
  assert.is((await ftp.cmd('PROT P')).code, 200);
  return { ftp, session: await ftp.waitForSession() };
}

/** LIST /, then its final reply when the first was a 150. */
async function list(ftp: RawFtp): Promise<{ first: Reply; final: Reply }> {
  const first = await ftp.cmd('LIST /');
  const final = first.code === 150 ? await ftp.read(30_000) : first;
  return { first, final };
}

/** PASV + LIST over a TLS data connection opened with (or without) the control session. */
async function listOverTls(ftp: RawFtp, session: Buffer | null): Promise<{ first: Reply; final: Reply; data: string }> {
  const { port } = await ftp.pasv();
  const data = await openSecureData(port, { session });
  const received = readUntilClose(data);
  const { first, final } = await list(ftp);
  return { first, final, data: (await received).toString() };
}

test('PROT P: a data connection closed before its TLS handshake commits nothing (it replaced the file with 0 bytes) and ends a download at once', async () => {
  // Without tls.requireSessionReuse, whose wait for the session covers this: a stack of its own.
  const plain = await startStack({ tls: { certFile: join(dir, 'cert.pem'), keyFile: join(dir, 'key.pem') } });
  try {
    const ftp = await RawFtp.connect(plain.port);
    await ftp.authTls();
    await ftp.login(plain.user, plain.password);
    // RFC 4217 9: PBSZ (a number) before PROT.
    assert.is((await ftp.cmd('PROT P')).code, 503, 'PROT before PBSZ');
    assert.is((await ftp.cmd('PBSZ abc')).code, 501);
    assert.is((await ftp.cmd('PBSZ 0')).code, 200);
    assert.is((await ftp.cmd('PROT C')).code, 200);
    const old = Buffer.from('the previous version');
    assert.is((await upload(ftp, 'STOR /victim.bin', old)).final.code, 226);
    assert.is((await ftp.cmd('PROT P')).code, 200);
    const { port } = await ftp.pasv();
    const data = await openData(port); // plain TCP: no handshake ever
    ftp.send('STOR /victim.bin');
    assert.is((await ftp.read()).code, 150);
    data.end();
    const final = await ftp.read(10_000);
    assert.is(final.code, 426, final.text);
    assert.is((await ftp.cmd('PROT C')).code, 200);
    assert.equal((await download(ftp, 'RETR /victim.bin')).data, old, 'the file is untouched');
    // The same for a download: it waited for a drain until twice the stall timeout.
    assert.is((await ftp.cmd('PROT P')).code, 200);
    const down = await openData((await ftp.pasv()).port);
    ftp.send('RETR /victim.bin');
    assert.is((await ftp.read()).code, 150);
    const started = Date.now();
    down.end();
    const gone = await ftp.read(10_000);
    assert.is(gone.code, 426, gone.text);
    assert.ok(Date.now() - started < 5000, `answered in ${Date.now() - started} ms`);
    ftp.close();
  } finally {
    await plain.stop();
  }
});

test('a client-started TLS renegotiation is refused (each one was a private-key operation on the main thread)', async () => {
  const raw = connect(stack.port, '127.0.0.1');
  const lines = (): Promise<string> => new Promise((resolve) => raw.once('data', (d: Buffer) => resolve(d.toString())));
  assert.match(await lines(), /^220/);
  raw.write('AUTH TLS\r\n');
  assert.match(await lines(), /^234/);
  const secure = tlsConnect({ socket: raw, rejectUnauthorized: false, maxVersion: 'TLSv1.2' });
  await new Promise<void>((resolve, reject) => secure.once('secureConnect', resolve).once('error', reject));
  const errors: string[] = [];
  secure.on('error', (err: NodeJS.ErrnoException) => errors.push(err.code ?? err.message));
  let completed = false;
  assert.ok(secure.renegotiate({ rejectUnauthorized: false }, (err) => (completed = !err)), 'renegotiation started');
  await until(() => completed || errors.length > 0, 5000);
  assert.not.ok(completed, 'the renegotiation completed');
  assert.equal(errors, ['ERR_SSL_NO_RENEGOTIATION'], 'the server refused it');
  secure.destroy();
});

test('tls.requireSessionReuse: a data connection without the control session is refused (425), one that resumes it works', async () => {
  const { ftp, session } = await tlsControl();
  const refused = await listOverTls(ftp, null);
  assert.is(refused.final.code, 425, `no resumption: ${refused.first.text} / ${refused.final.text}`);
  assert.is(refused.data, '');
  const resumed = await listOverTls(ftp, session);
  assert.is(resumed.final.code, 226, `resumed: ${resumed.first.text} / ${resumed.final.text}`);
  assert.is((await ftp.cmd('NOOP')).code, 200, 'the session goes on');
  ftp.close();
});

/** PORT + LIST: the server connects to us and is the TLS server side; we resume (or not). */
async function activeListOverTls(ftp: RawFtp, session: Buffer | null): Promise<{ final: Reply; data: string }> {
  const listener = await listenData({ secure: true, session });
  const received = listener.accepted.then((socket) => (socket ? readUntilClose(socket) : Buffer.alloc(0)));
  const { port } = listener;
  assert.is((await ftp.cmd(`PORT 127,0,0,1,${port >> 8},${port & 255}`)).code, 200);
  const { final } = await list(ftp);
  listener.close();
  return { final, data: (await received).toString() };
}

test('tls.requireSessionReuse: active mode (PORT) refuses a data connection without the session too', async () => {
  const { ftp, session } = await tlsControl();
  const refused = await activeListOverTls(ftp, null);
  assert.is(refused.final.code, 425, refused.final.text);
  assert.is(refused.data, '');
  const resumed = await activeListOverTls(ftp, session);
  assert.is(resumed.final.code, 226, resumed.final.text);
  ftp.close();
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
