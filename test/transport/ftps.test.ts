// FTPS against the real FTP server and local box: curl and lftp upload + download byte-exact over
// explicit (AUTH TLS, PROT P) and implicit FTPS (TLS from the first byte), with a self-signed
// certificate made by the openssl CLI; plain USER/PASS refused (530) when TLS is required; data
// connections resume the control connection's TLS session when the client offers it.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startStack, type Stack } from '../ftp/helpers/stack.ts';
import { RawFtp, openData, openSecureData, readAll } from '../ftp/helpers/raw-client.ts';

const run = promisify(execFile);
let stack: Stack;
let dir: string;
let port: number;
let implicitPort: number;
let payload: string;

test.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'dropftp-ftps-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', '/CN=localhost', '-days', '1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
  payload = join(dir, 'payload.bin');
  writeFileSync(payload, randomBytes(3 * 1024 * 1024 + 7));
  // Through startDropftp's own options (what `dropftp serve` maps its tls.* keys to).
  stack = await startStack({ tls: { certFile: join(dir, 'cert.pem'), keyFile: join(dir, 'key.pem'), required: true, implicitPort: 0 } });
  port = stack.port;
  implicitPort = stack.implicitTlsPort!;
});

test.after(async () => {
  await stack.stop();
  rmSync(dir, { recursive: true, force: true });
});

function same(file: string): void {
  assert.ok(readFileSync(file).equals(readFileSync(payload)), `${file} is byte-exact`);
}

async function curl(...args: string[]): Promise<void> {
  await run('curl', ['-sS', '--fail', '--max-time', '60', '-k', '--user', `${stack.user}:${stack.password}`, ...args]);
}

test('curl: explicit FTPS (AUTH TLS, PROT P) and implicit FTPS (ftps://), upload + download byte-exact', async () => {
  await curl('--ssl-reqd', '--ftp-create-dirs', '-T', payload, `ftp://127.0.0.1:${port}/curl/explicit.bin`);
  await curl('--ssl-reqd', '-o', join(dir, 'curl-explicit.bin'), `ftp://127.0.0.1:${port}/curl/explicit.bin`);
  same(join(dir, 'curl-explicit.bin'));
  await curl('--ftp-create-dirs', '-T', payload, `ftps://127.0.0.1:${implicitPort}/curl/implicit.bin`);
  await curl('-o', join(dir, 'curl-implicit.bin'), `ftps://127.0.0.1:${implicitPort}/curl/implicit.bin`);
  same(join(dir, 'curl-implicit.bin'));
});

test('lftp: explicit and implicit FTPS, upload + download byte-exact', async () => {
  const settings = 'set cmd:fail-exit yes; set ssl:verify-certificate no; set ftp:ssl-force yes; set ftp:ssl-protect-data yes; set net:max-retries 1; set net:timeout 20;';
  await run('lftp', ['-c', `${settings} open -u ${stack.user},${stack.password} -p ${port} ftp://127.0.0.1; mkdir -p /lftp; put "${payload}" -o /lftp/explicit.bin; get /lftp/explicit.bin -o "${join(dir, 'lftp-explicit.bin')}"`], { timeout: 60_000 });
  same(join(dir, 'lftp-explicit.bin'));
  await run('lftp', ['-c', `${settings} open -u ${stack.user},${stack.password} -p ${implicitPort} ftps://127.0.0.1; put "${payload}" -o /lftp/implicit.bin; get /lftp/implicit.bin -o "${join(dir, 'lftp-implicit.bin')}"`], { timeout: 60_000 });
  same(join(dir, 'lftp-implicit.bin'));
});

test('requireTls: plain USER and PASS get 530 (curl without TLS fails too); after AUTH TLS the same login succeeds', async () => {
  const plain = await RawFtp.connect({ port });
  const user = await plain.cmd(`USER ${stack.user}`);
  assert.is(user.code, 530, user.text);
  assert.match(user.text, /TLS required/);
  assert.is((await plain.cmd(`PASS ${stack.password}`)).code, 530);
  await plain.authTls();
  assert.is((await plain.tryLogin(stack.user, stack.password)).code, 230);
  plain.close();
  let failed = false;
  await curl('-o', join(dir, 'never.bin'), `ftp://127.0.0.1:${port}/curl/explicit.bin`).catch(() => (failed = true));
  assert.ok(failed, 'curl without --ssl-reqd cannot log in');
});

test('TLS session reuse: a data connection offering the control session resumes it; PROT C data is plain', async () => {
  const ftp = await RawFtp.connect({ port: implicitPort, implicitTls: true });
  assert.is((await ftp.tryLogin(stack.user, stack.password)).code, 230);
  assert.ok(ftp.session, 'the server issued a session ticket on the control connection');
  const data = await openSecureData(await ftp.epsv(), { session: ftp.session });
  assert.ok(data.isSessionReused(), 'the data connection resumed the control TLS session');
  const listing = readAll(data);
  ftp.send('NLST /curl');
  assert.is((await ftp.read()).code, 150);
  assert.match((await listing).toString(), /implicit\.bin/);
  assert.is((await ftp.read()).code, 226);
  assert.is((await ftp.cmd('PBSZ 0')).code, 200);
  assert.is((await ftp.cmd('PROT C')).code, 200);
  const clear = await openData(await ftp.epsv());
  const clearListing = readAll(clear);
  ftp.send('NLST /curl');
  assert.is((await ftp.read()).code, 150);
  assert.match((await clearListing).toString(), /explicit\.bin/);
  assert.is((await ftp.read()).code, 226);
  ftp.close();
});

test.run();
