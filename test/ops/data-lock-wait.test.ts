// The data-directory lock's waiting rules (src/localbox/data-lock.ts), against holders in real
// processes: a holder whose gateway is gone (an orphan on its way out) is waited for, a bounded
// time, then named in a clear error; any other holder is refused after a short wait; a second
// acquire in the same process is refused too; release lets the next one in at once.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DataLock } from '../../src/localbox/data-lock.ts';
import { DropftpError } from '../../src/errors.ts';

const HOLDER = fileURLToPath(new URL('./fixtures/lock-holder.ts', import.meta.url));
let root: string;
const children = new Set<ChildProcess>();

test.before(async () => {
  root = await mkdtemp(join(tmpdir(), 'dropftp-lockwait-'));
});
test.after(async () => {
  for (const child of children) child.kill('SIGKILL');
  await rm(root, { recursive: true, force: true });
});

/** A dead pid: a process we started and reaped. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '0']);
  await new Promise((resolve) => child.once('exit', resolve));
  return child.pid!;
}

async function hold(dir: string, gateway: number | null, holdMs: number): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', HOLDER, dir, String(gateway), String(holdMs)], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.add(child);
  child.once('exit', () => children.delete(child));
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => d.toString().includes('held') && resolve());
    child.once('exit', (code) => reject(new Error(`holder exited ${code}`)));
  });
  return child;
}

async function refusal(promise: Promise<unknown>): Promise<DropftpError> {
  try {
    await promise;
  } catch (err) {
    assert.instance(err, DropftpError);
    return err as DropftpError;
  }
  throw new Error('the lock was granted');
}

test('an orphaned holder (its gateway gone) is waited for until it exits', async () => {
  const dir = join(root, 'orphan');
  const holder = await hold(dir, await deadPid(), 1500);
  const startMs = Date.now();
  const lock = await DataLock.acquire(dir, { gatewayPid: process.pid, finishingWaitMs: 8000, busyWaitMs: 100 });
  const waitedMs = Date.now() - startMs;
  assert.ok(waitedMs >= 800, `granted after ${waitedMs} ms while pid ${holder.pid} still held it`);
  assert.is(lock.holder.pid, process.pid);
  lock.release();
});

test('an orphaned holder that does not exit in time is named in the error', async () => {
  const dir = join(root, 'stuck');
  const gateway = await deadPid();
  const holder = await hold(dir, gateway, 60_000);
  const startMs = Date.now();
  const err = await refusal(DataLock.acquire(dir, { gatewayPid: process.pid, finishingWaitMs: 700, busyWaitMs: 100 }));
  assert.ok(Date.now() - startMs >= 700);
  assert.is(err.code, 'DROPFTP_ERR_DATA_DIR_LOCKED');
  assert.match(err.message, `local box pid ${holder.pid}`);
  assert.match(err.message, `orphan of dropftp serve pid ${gateway}`);
  holder.kill('SIGKILL');
  await new Promise((resolve) => holder.once('exit', resolve));
  // The kernel dropped the lock with the process: granted at once.
  (await DataLock.acquire(dir, { busyWaitMs: 0 })).release();
});

test('a live holder is refused after the short wait; the same process cannot take it twice', async () => {
  const dir = join(root, 'live');
  const holder = await hold(dir, null, 60_000);
  const startMs = Date.now();
  const err = await refusal(DataLock.acquire(dir, { busyWaitMs: 300, finishingWaitMs: 5000 }));
  const tookMs = Date.now() - startMs;
  assert.ok(tookMs < 3000, `refused after ${tookMs} ms`);
  assert.match(err.message, `local box pid ${holder.pid} (run by \`dropftp localbox\``);
  holder.kill('SIGKILL');
  await new Promise((resolve) => holder.once('exit', resolve));
  const mine = await DataLock.acquire(dir, { busyWaitMs: 0 });
  const again = await refusal(DataLock.acquire(dir, { busyWaitMs: 0, finishingWaitMs: 0 }));
  assert.match(again.message, `local box pid ${process.pid}`);
  mine.release();
  (await DataLock.acquire(dir, { busyWaitMs: 0 })).release();
});

test.run();
