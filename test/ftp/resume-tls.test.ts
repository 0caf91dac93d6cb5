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
import { RawFtp, download, openData, sleep, upload } from './helpers/raw-client.ts';
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
  const { port } = await c.pasv();
  const data = await openData(port);
  c.send('STOR /resume/file.bin');
  assert.is((await c.read()).code, 150);
  // Let the bytes leave the client and the server take them in before the reset: when a reset
  // arrives while data still waits in the server's receive queue, libuv can report a clean EOF
  // instead of ECONNRESET (its POLLHUP short-cut after a partial read). That case is a known open
  // defect of its own (see the issues), not what this test is about.
  await new Promise<void>((resolve, reject) => data.write(whole.subarray(0, 9 * 1024 * 1024), (err) => (err ? reject(err) : resolve())));
  await sleep(1500);
  data.resetAndDestroy();
  assert.is((await c.read(10_000)).code, 426);
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
