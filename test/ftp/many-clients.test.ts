// Acceptance: 2,000 clients connect, log in, list and download a 1 MiB file at once (clients in a
// separate process); all succeed byte-exact, and the server's passive listeners, sessions and open
// sockets return to their baseline afterwards. Env MANY_CLIENTS overrides the count.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { RawFtp, sleep, tcpHandles, until, upload } from './helpers/raw-client.ts';
import { startStack, type Stack } from './helpers/stack.ts';

const run = promisify(execFile);
const CLIENTS = Number(process.env.MANY_CLIENTS ?? 2000);
const FIXTURE = fileURLToPath(new URL('./fixtures/load-clients.ts', import.meta.url));

let stack: Stack;

test.before(async () => {
  stack = await startStack({ engineWorkers: 2, limits: { dataConnectTimeoutMs: 60_000, stallTimeoutMs: 60_000 } });
});

test.after(async () => {
  await stack.stop();
});

test(`${CLIENTS} clients log in, list and download 1 MiB at once; resources return to baseline`, async () => {
  const file = randomBytes(1 << 20);
  const c = await RawFtp.connect(stack.port);
  await c.login(stack.user, stack.password);
  assert.is((await upload(c, 'STOR /shared/one-mib.bin', file)).final.code, 226);
  await c.cmd('QUIT');
  c.close();
  await until(() => stack.ftp.connectionCount === 0, 5000, 'setup client gone');
  await sleep(200);
  const baselineHandles = tcpHandles();

  const { stdout } = await run(process.execPath, ['--import', 'tsx', FIXTURE, String(stack.port), stack.user, stack.password, String(CLIENTS), '/shared', 'one-mib.bin'], {
    timeout: 240_000,
    maxBuffer: 1 << 20,
  });
  const result = JSON.parse(stdout) as { ok: number; failed: number; failures: string[]; digests: string[]; elapsedMs: number };
  console.log(`  ${CLIENTS} clients: ${result.ok} ok, ${result.failed} failed in ${result.elapsedMs} ms`);
  assert.equal(result.failures, []);
  assert.is(result.ok, CLIENTS);
  assert.equal(result.digests, [createHash('sha256').update(file).digest('hex')]);

  await until(() => stack.ftp.connectionCount === 0, 10_000, 'sessions closed');
  await until(() => stack.ftp.passivePorts.open === 0, 10_000, 'passive listeners closed');
  await until(() => tcpHandles() <= baselineHandles, 15_000, `sockets back to baseline ${baselineHandles} (now ${tcpHandles()})`);
});

test.run();
