// Resumable uploads (an interrupted STOR commits nothing; SIZE then tells where its kept session
// stops, and REST n + STOR continues it) and explicit FTPS with one shared TLS context (ftp-srv
// built a SecureContext per AUTH TLS, PASV and PORT). Real sockets, engine and local box.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { Client } from 'basic-ftp';
import { FtpServer } from '../../src/ftp/server.ts';
import { RawFtp, download, resetStor, sleep, upload } from './helpers/raw-client.ts';
import { startStack, type Stack } from './helpers/stack.ts';

let stack: Stack;

test.before(async () => {
  stack = await startStack();
});

test.after(async () => {
  await stack.stop();
});

test('an interrupted STOR commits nothing; SIZE + REST n + STOR continue its kept session', async () => {
  const c = await RawFtp.connect(stack.port);
  await c.login(stack.user, stack.password);
  const whole = randomBytes(12 * 1024 * 1024 + 17);
  await resetStor(c, '/resume/file.bin', whole, 9 * 1024 * 1024);
  assert.is((await c.cmd('MLST /resume/file.bin')).code, 550, 'nothing committed');
  let size = await c.cmd('SIZE /resume/file.bin');
  for (let i = 0; i < 20 && size.code !== 213; i++) {
    await sleep(100);
    size = await c.cmd('SIZE /resume/file.bin');
  }
  assert.is(size.code, 213, 'the kept session is reported');
  const kept = Number(size.text.slice(4));
  assert.ok(kept > 0 && kept <= 9 * 1024 * 1024, `kept ${kept}`);
  assert.is((await c.cmd(`REST ${kept}`)).code, 350);
  const rest = await upload(c, 'STOR /resume/file.bin', whole.subarray(kept));
  assert.is(rest.final.code, 226, rest.final.text);
  const back = await download(c, 'RETR /resume/file.bin');
  assert.ok(back.data.equals(whole), 'resumed file is byte-exact');
  assert.is((await c.cmd('SIZE /resume/file.bin')).text, `213 ${whole.length}`);
  c.close();
});

/** A STOR of `bytes` over a file of `committed` bytes, reset after `sent`; resolves with the kept session's offset (SIZE). */
async function interruptedStor(c: RawFtp, path: string, bytes: Buffer, sent: number, committed: number): Promise<number> {
  await resetStor(c, path, bytes, sent);
  for (let i = 0; i < 30; i++) {
    const size = await c.cmd(`SIZE ${path}`);
    // The kept session shows once the worker has given its token back (the committed size until then).
    if (size.code === 213 && Number(size.text.slice(4)) !== committed) return Number(size.text.slice(4));
    await sleep(100);
  }
  throw new Error('no kept session');
}

test('APPE continues a kept session only right after a SIZE that offered it; otherwise it appends to the file', async () => {
  const c = await RawFtp.connect(stack.port);
  await c.login(stack.user, stack.password);
  assert.is((await upload(c, 'STOR /resume/log.txt', Buffer.from('line1\n'))).final.code, 226);
  const next = randomBytes(10 * 1024 * 1024);
  await interruptedStor(c, '/resume/log.txt', next, 9 * 1024 * 1024, 6);
  // A plain append (a session that asked no SIZE): to the committed file, whatever upload of it
  // was interrupted (it continued the kept session: the file became the other upload's 8 MiB + line2).
  const logger = await RawFtp.connect(stack.port);
  await logger.login(stack.user, stack.password);
  const appended = await upload(logger, 'APPE /resume/log.txt', Buffer.from('line2\n'));
  assert.is(appended.final.code, 226, appended.final.text);
  assert.is((await download(logger, 'RETR /resume/log.txt')).data.toString(), 'line1\nline2\n', 'appended to the committed file');
  logger.close();
  // curl -C -: SIZE tells the kept offset, APPE sends the rest.
  const kept = await interruptedStor(c, '/resume/log.txt', next, 9 * 1024 * 1024, 12);
  const resumed = await upload(c, 'APPE /resume/log.txt', next.subarray(kept));
  assert.is(resumed.final.code, 226, resumed.final.text);
  assert.ok((await download(c, 'RETR /resume/log.txt')).data.equals(next), 'the kept session continued');
  c.close();
});

test('defect: TLS context rebuilt per AUTH TLS / PASV / PORT (one shared context)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dropftp-tls-'));
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', '/CN=localhost', '-days', '1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
    const server = new FtpServer({
      host: '127.0.0.1',
      port: 0,
      authenticate: stack.authenticate,
      tls: { key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) },
    });
    const { port } = await server.listen();
    const tls = createRequire(import.meta.url)('node:tls') as typeof import('node:tls');
    const original = tls.createSecureContext;
    let built = 0;
    tls.createSecureContext = ((...args: Parameters<typeof original>) => {
      if (args[0]?.key) built++; // the server's options carry its key; the client's do not
      return original(...args);
    }) as typeof original;
    try {
      const bytes = randomBytes(300_000);
      for (let i = 0; i < 2; i++) {
        const client = new Client(20_000);
        await client.access({ host: '127.0.0.1', port, user: stack.user, password: stack.password, secure: true, secureOptions: { rejectUnauthorized: false } });
        await client.uploadFrom(Readable.from([bytes]), `/tls-${i}.bin`);
        const chunks: Buffer[] = [];
        await client.downloadTo(new Writable({ write: (chunk, _e, cb) => (chunks.push(chunk), cb()) }), `/tls-${i}.bin`);
        assert.ok(Buffer.concat(chunks).equals(bytes), 'TLS round trip');
        client.close();
      }
    } finally {
      tls.createSecureContext = original;
    }
    assert.is(built, 0, 'no SecureContext built after start-up (2 sessions × AUTH TLS + PASV + data)');
    await server.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
