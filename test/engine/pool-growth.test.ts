// The transfer worker pool on many-core hosts: the accepted maximum covers 256 cores and never
// rejects the default; the pool starts with one worker and grows with load up to its maximum; the
// warm-up that starts a worker ahead of a burst holds no transfer back.
// Main thread + the engine's workers + the local box child.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { OPTIONS } from '../../src/config/schema.ts';
import { DropftpError } from '../../src/errors.ts';
import type { Executor } from '../../src/transfer/executor.ts';
import { TransferEngine } from '../../src/transfer/index.ts';
import { ENGINE_DEFAULTS, MAX_ENGINE_WORKERS, resolveEngineOptions } from '../../src/transfer/options.ts';
import { GROW_AT_TASKS, PREWARM_WORKERS, WARM_UP, growingBalancer, type PoolBalancer } from '../../src/transfer/pool-growth.ts';
import { MAX_WORKER_SLOTS } from '../../src/transfer/shared-layout.ts';
import { MiB, contentOf, drain, makePool, seed, sha256, sleep, startFixture } from './helpers.ts';

/** Worker threads alive in an engine (its executor is private; the thread count is what these tests are about). */
const live = (engine: TransferEngine): number => (engine as unknown as { executor: Executor }).executor.liveThreads();
/** Worker threads that finished starting. */
const ready = (engine: TransferEngine): number => (engine as unknown as { executor: Executor }).executor.readyThreads();

test('workers: 96 and 256 are accepted, 257 is refused naming the option, the default never exceeds the maximum', () => {
  assert.is(resolveEngineOptions({ workers: 96 }).workers, 96);
  assert.is(resolveEngineOptions({ workers: 256 }).workers, 256);
  assert.is(MAX_ENGINE_WORKERS, 256);
  try {
    resolveEngineOptions({ workers: MAX_ENGINE_WORKERS + 1 });
    assert.unreachable('257 workers accepted');
  } catch (err) {
    assert.instance(err, DropftpError);
    assert.match((err as Error).message, /workers/);
  }
  assert.ok(ENGINE_DEFAULTS.workers >= 1 && ENGINE_DEFAULTS.workers <= MAX_ENGINE_WORKERS);
  assert.is(resolveEngineOptions().workers, ENGINE_DEFAULTS.workers);
  // The config schema accepts the same range, and the control block has a slot for every thread.
  const spec = OPTIONS.find((o) => o.key === 'engine.workers')!;
  assert.is((spec as { max?: number }).max, MAX_ENGINE_WORKERS);
  assert.ok(MAX_WORKER_SLOTS >= MAX_ENGINE_WORKERS + 1, 'a worker slot per thread plus the main thread');
});

type Worker = Parameters<PoolBalancer>[1][number];
const worker = (currentUsage: number): Worker => ({ currentUsage, isRunningAbortableTask: false }) as unknown as Worker;
const task = {} as Parameters<PoolBalancer>[0];

test('the balancer: an idle worker first, a new worker once every worker carries GROW_AT_TASKS, never beyond the maximum', () => {
  let size = 2;
  const pick = growingBalancer(3, () => size);
  const busy = worker(GROW_AT_TASKS);
  const light = worker(1);
  const idle = worker(0);
  assert.is(pick(task, [busy, idle]), idle);
  assert.is(pick(task, [busy, light]), light, 'the least busy below the threshold');
  assert.is(pick(task, [busy, worker(GROW_AT_TASKS + 1)]), null, 'all at the threshold, room left: start a worker');
  size = 3;
  assert.is(pick(task, [busy, worker(GROW_AT_TASKS + 1)]), null, 'a third worker is still starting: wait for it');
  assert.is(pick(task, [busy, worker(GROW_AT_TASKS + 1), worker(GROW_AT_TASKS + 2)]), busy, 'at the maximum, all ready: the least busy');
  assert.is(pick(task, []), null, 'no ready worker: wait for one');
});

test('the balancer spreads each kind over the workers: a download goes where fewer downloads run, the least busy among equals', () => {
  const a = { currentUsage: 2, isRunningAbortableTask: false, id: 1 } as unknown as Worker;
  const b = { currentUsage: 3, isRunningAbortableTask: false, id: 2 } as unknown as Worker;
  // a runs two downloads; b runs one download and two uploads.
  const running: Record<number, { download: number; upload: number }> = { 1: { download: 2, upload: 0 }, 2: { download: 1, upload: 2 } };
  const kindOf = (t: Parameters<PoolBalancer>[0]): 'download' | 'upload' => (t as unknown as { [WARM_UP]: { kind: 'download' | 'upload' } })[WARM_UP].kind;
  const pick = growingBalancer(2, () => 2, () => true, (id, t) => running[id]![kindOf(t)]);
  const download = { [WARM_UP]: { kind: 'download', workerId: null } } as unknown as Parameters<PoolBalancer>[0];
  const upload = { [WARM_UP]: { kind: 'upload', workerId: null } } as unknown as Parameters<PoolBalancer>[0];
  assert.is(pick(download, [a, b]), b, 'fewer downloads, though busier');
  assert.is(pick(upload, [a, b]), a, 'fewer uploads');
  running[2] = { download: 2, upload: 1 };
  assert.is(pick(download, [a, b]), a, 'as many downloads: the least busy');
  const growing = growingBalancer(3, () => 2, () => true, (id, t) => running[id]![kindOf(t)]);
  const fullA = { currentUsage: GROW_AT_TASKS, isRunningAbortableTask: false, id: 1 } as unknown as Worker;
  const fullB = { currentUsage: GROW_AT_TASKS + 1, isRunningAbortableTask: false, id: 2 } as unknown as Worker;
  assert.is(growing(download, [fullA, fullB]), null, 'growth still follows the least busy worker: all full, room left, start one');
});

test('defect: a worker still starting got transfers (piscina hands the balancer pending workers when a task ends)', () => {
  const starting = { currentUsage: 0, isRunningAbortableTask: false, id: 7 } as unknown as Worker;
  const running = { currentUsage: GROW_AT_TASKS - 1, isRunningAbortableTask: false, id: 3 } as unknown as Worker;
  const full = { currentUsage: GROW_AT_TASKS, isRunningAbortableTask: false, id: 3 } as unknown as Worker;
  const pick = growingBalancer(2, () => 2, (id) => id !== 7);
  assert.is(pick(task, [starting, running]), running, 'the ready one while it has room, never the starting one');
  assert.is(pick(task, [starting, full]), null, 'the ready one is full: wait for the starting one');
  assert.is(growingBalancer(2, () => 2, () => true)(task, [starting, full]), starting, 'once ready, it is the idle one');
});

test('an engine of 3 workers starts one worker thread, stays there while lightly used and grows to 3 under 12 held downloads', async () => {
  const fx = await startFixture({ workers: 3 });
  try {
    await sleep(300);
    assert.is(live(fx.engine), 1, 'one worker thread at start');
    const pool = makePool(8 * MiB, 3);
    const size = 4 * MiB;
    await Promise.all(Array.from({ length: 12 }, (_, i) => seed(fx.box, fx.account.accessToken, `/grow/f${i}.bin`, contentOf(pool, i, size))));
    const workersUsed = (): number => fx.engine.stats().workerHeaps.filter((h) => h.threadKey >= 2).length;
    // Light use, one transfer at a time: one worker.
    for (let i = 0; i < 3; i++) {
      const got = await drain(fx.engine.openDownload('alice', `/grow/f${i}.bin`));
      assert.is(got.sha, sha256(contentOf(pool, i, size)));
    }
    assert.is(workersUsed(), 1, 'sequential transfers stay on the first worker');
    assert.is(live(fx.engine), 1, 'still one worker thread');
    // 12 downloads held open (nobody reads: their rings fill and they stay running).
    const downs = Array.from({ length: 12 }, (_, i) => fx.engine.openDownload('alice', `/grow/f${i}.bin`));
    for (const d of downs) d.on('error', () => {}); // a failed assertion destroys them (drain reports errors)
    const deadline = Date.now() + 60_000;
    while (workersUsed() < 3 && Date.now() < deadline) await sleep(50);
    assert.is(workersUsed(), 3, 'grew to the maximum');
    assert.is(live(fx.engine), 3, 'three worker threads');
    const results = await Promise.all(downs.map((d) => drain(d)));
    results.forEach((got, i) => assert.is(got.sha, sha256(contentOf(pool, i, size)), `download ${i}`));
    assert.is(workersUsed(), 3, 'never beyond the maximum');
    assert.is(live(fx.engine), 3);
  } finally {
    await fx.stop();
  }
});

test('the balancer: a warm-up task is refused until the pool reached its target, then any ready worker runs it', () => {
  let size = 1;
  const pick = growingBalancer(4, () => size);
  const warmUp = { [WARM_UP]: { warmTo: 2 } } as unknown as Parameters<PoolBalancer>[0];
  const idle = worker(0);
  assert.is(pick(warmUp, [idle]), null, 'one worker, target two: refused, so piscina starts one');
  size = 2;
  assert.is(pick(warmUp, [idle]), idle, 'the second is starting: the ready one runs the no-op, nothing queues behind it');
  const busy = worker(GROW_AT_TASKS + 3);
  assert.is(pick(warmUp, [busy]), busy, 'even a busy one (it is a no-op)');
  assert.is(pick(task, [busy]), null, 'a transfer still waits for the starting worker');
});

test('defect: the warm-up that starts a worker made every transfer queue behind it until that worker had booted, the ready one idle meanwhile', async () => {
  const fx = await startFixture({ workers: 2 });
  const engines: TransferEngine[] = [];
  try {
    const pool = makePool(2 * MiB, 9);
    const data = contentOf(pool, 2, 3000);
    await seed(fx.box, fx.account.accessToken, '/hol/a.bin', data);
    const engine = await TransferEngine.start({ workers: 2 }, { deferWorkers: true });
    engines.push(engine);
    engine.setAccount({ name: 'alice', apiUrl: fx.box.url, contentUrl: fx.box.url, accessToken: fx.account.accessToken });
    engine.warm();
    const deadline = Date.now() + 30_000;
    while (ready(engine) < 1 && Date.now() < deadline) await sleep(10);
    assert.is(ready(engine), 1, 'the first worker is ready');
    // A burst of sessions: the second worker starts booting (a warm-up task is posted for it).
    engine.expectSessions(GROW_AT_TASKS + 1);
    assert.is(live(engine), 2, 'the second worker is starting');
    // Fewer downloads than GROW_AT_TASKS, posted in the same turn (the second worker cannot be ready
    // yet): the ready worker takes them at once. Before, they queued behind the warm-up until the
    // second worker had booted.
    const downs = Array.from({ length: 3 }, () => engine.openDownload('alice', '/hol/a.bin'));
    for (const d of downs) d.on('error', () => {}); // a failed assertion destroys them (drain reports errors)
    assert.is(ready(engine), 1, 'the second worker is still booting');
    assert.is(engine.stats().queuedTransfers, 0, 'no transfer waits for a worker');
    for (const got of await Promise.all(downs.map((d) => drain(d)))) assert.is(got.sha, sha256(data));
    while (ready(engine) < 2 && Date.now() < deadline) await sleep(10);
    assert.is(ready(engine), 2, 'and it did boot');
    assert.is(engine.stats().queuedTransfers, 0);
  } finally {
    await Promise.all(engines.map((e) => e.destroy().catch(() => {})));
    await fx.stop();
  }
});

test('defect: a burst after many logins waited for the second worker to boot — expectSessions() boots it before any transfer', async () => {
  const fx = await startFixture({ workers: 3 });
  const engines: TransferEngine[] = [];
  try {
    const pool = makePool(2 * MiB, 5);
    await seed(fx.box, fx.account.accessToken, '/warm/a.bin', contentOf(pool, 1, MiB));
    const engine = await TransferEngine.start({ workers: 3 }, { deferWorkers: true });
    engines.push(engine);
    engine.setAccount({ name: 'alice', apiUrl: fx.box.url, contentUrl: fx.box.url, accessToken: fx.account.accessToken });
    engine.warm();
    engine.expectSessions(GROW_AT_TASKS);
    await sleep(300);
    assert.is(live(engine), 1, `${GROW_AT_TASKS} sessions: one worker is enough`);
    engine.expectSessions(GROW_AT_TASKS + 1);
    const deadline = Date.now() + 30_000;
    while (live(engine) < PREWARM_WORKERS && Date.now() < deadline) await sleep(20);
    assert.is(live(engine), PREWARM_WORKERS, 'more sessions: the second worker starts with no transfer');
    engine.expectSessions(500);
    await sleep(300);
    assert.is(live(engine), PREWARM_WORKERS, 'never more ahead of demand, however many sessions');
    const got = await drain(engine.openDownload('alice', '/warm/a.bin'));
    assert.is(got.sha, sha256(contentOf(pool, 1, MiB)), 'transfers run byte-exact after the warm-up');
    assert.is(engine.stats().workerCrashes, 0);
  } finally {
    await Promise.all(engines.map((e) => e.destroy().catch(() => {})));
    await fx.stop();
  }
});

test('deferWorkers (dropftp serve until it listens): no worker thread until warm() or the first transfer, which then runs byte-exact', async () => {
  const fx = await startFixture({ workers: 2 });
  const engines: TransferEngine[] = [];
  try {
    const pool = makePool(2 * MiB, 5);
    await seed(fx.box, fx.account.accessToken, '/defer/a.bin', contentOf(pool, 0, MiB));
    for (const warmFirst of [false, true]) {
      const engine = await TransferEngine.start({ workers: 2 }, { deferWorkers: true });
      engines.push(engine);
      engine.setAccount({ name: 'alice', apiUrl: fx.box.url, contentUrl: fx.box.url, accessToken: fx.account.accessToken });
      await sleep(200);
      assert.is(live(engine), 0, 'no worker before warm() or a transfer');
      if (warmFirst) {
        engine.warm();
        assert.is(live(engine), 1, 'warm() starts the first worker');
        engine.warm();
        assert.is(live(engine), 1, 'and only once');
      }
      const got = await drain(engine.openDownload('alice', '/defer/a.bin'));
      assert.is(got.sha, sha256(contentOf(pool, 0, MiB)), `download (warm first: ${warmFirst})`);
      // A transfer that finds no worker ready yet may start a second (the balancer never waits on one
      // that is booting), never more.
      assert.ok(live(engine) >= 1 && live(engine) <= 2, `workers after the first transfer: ${live(engine)}`);
    }
  } finally {
    await Promise.all(engines.map((e) => e.destroy().catch(() => {})));
    await fx.stop();
  }
});

test.run();
