// The call-rate pacer (src/dropbox/pacer.ts) over a real shared control block: call starts served
// first come first served across two real threads, spaced by the token bucket; AIMD (slow start,
// halving on too_many_requests once per overload — again when a call started after the window is
// refused —, additive growth); no start inside a Retry-After
// window, on any thread; write-lock answers retried after retry_after without a rate cut; a
// Retry-After beyond engine.maxRetryAfterSec (or negative, or not a number) capped and logged;
// cancelled waiters and dead threads never block the queue. Main thread + one worker thread.

import { Worker } from 'node:worker_threads';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SharedPacer, initPacerSlot, readPacerStats } from '../../src/dropbox/pacer.ts';
import { A, accountWord, claimWorkerSlot, createControl, reclaimWorkerSlot } from '../../src/transfer/shared-layout.ts';
import type { ControlHandle } from '../../src/transfer/shared-layout.ts';
import { TransferEngine } from '../../src/transfer/index.ts';
import { sleep } from './helpers.ts';

function setup(ratePerSec: number, maxRetryAfterMs = 300_000): { control: ControlHandle; words: Int32Array; pacer: SharedPacer } {
  const control = createControl({ uploadMemoryBytes: 1 << 20, maxRetryAfterMs });
  const words = new Int32Array(control.sab);
  initPacerSlot(control, 0);
  Atomics.store(words, accountWord(0, A.RATE_MILLI), ratePerSec * 1000);
  return { control, words, pacer: new SharedPacer(control, claimWorkerSlot(words, 101)) };
}

const nowMs = (): number => performance.timeOrigin + performance.now();

test('FIFO across two threads: tickets are admitted in the order taken, spaced by the bucket', async () => {
  const { control, pacer } = setup(40); // burst 16 (MAX_BURST), then one start every 25 ms (growing in slow start)
  const worker = new Worker(new URL('./helpers/pacer-thread.mjs', import.meta.url), { workerData: { control, threadKey: 555 } });
  try {
    const grants: { id: number; atMs: number }[] = [];
    const mine = (ids: number[]) =>
      ids.map((id) =>
        pacer.admit(0).then(() => {
          grants.push({ id, atMs: nowMs() });
          pacer.report(0, { kind: 'ok' });
        }),
      );
    const remote = (ids: number[]) =>
      new Promise<Promise<void>>((queued) => {
        const done = new Promise<void>((resolve) => {
          const onMessage = (m: { op: string; grants?: { id: number; atMs: number }[] }) => {
            if (m.op === 'queued') queued(done);
            if (m.op === 'done') {
              grants.push(...m.grants!);
              worker.off('message', onMessage);
              resolve();
            }
          };
          worker.on('message', onMessage);
        });
        worker.postMessage({ op: 'admit', ids });
      });
    // Interleaved: 12 from the worker, 12 from main, 12 from the worker, 12 from main.
    const range = (a: number) => Array.from({ length: 12 }, (_, i) => a + i);
    const w1 = await remote(range(0));
    const m1 = mine(range(12));
    const w2 = await remote(range(24));
    const m2 = mine(range(36));
    await Promise.all([w1, ...m1, w2, ...m2]);
    grants.sort((a, b) => a.atMs - b.atMs);
    const elapsed = grants.at(-1)!.atMs - grants[0]!.atMs;
    // In admission order the ids rise (a few ms of cross-thread clock jitter allowed).
    for (const g of grants) {
      for (const h of grants) if (g.id < h.id) assert.ok(g.atMs <= h.atMs + 5, `ticket ${g.id} admitted ${(g.atMs - h.atMs).toFixed(1)} ms after ticket ${h.id}`);
    }
    // 32 starts after the burst, at 40/s growing in slow start (+SLOW_START_GAIN calls/s per success): ~430 ms.
    assert.ok(elapsed >= 300, `48 starts at 40/s after a burst of 16 took ${elapsed.toFixed(0)} ms (the bucket must space them)`);
    assert.is(readPacerStats(control, 0).callsStarted, 48);
    assert.is(readPacerStats(control, 0).inFlight, 0);
  } finally {
    await worker.terminate();
  }
});

test('AIMD: slow start while the rate limits, halving once per window on too_many_requests, then additive growth', async () => {
  const { control, words, pacer } = setup(20);
  const rate = () => Atomics.load(words, accountWord(0, A.RATE_MILLI)) / 1000;
  // Slow start: a backlog (the rate limits it) and every call ok → +1 call/s per success.
  await Promise.all(Array.from({ length: 30 }, () => pacer.admit(0).then(() => pacer.report(0, { kind: 'ok' }))));
  const grown = rate();
  assert.ok(grown >= 30, `slow start grew the rate 20 → ${grown}`);
  // A window of 429s (five calls on their way at once): one halving, the window opens.
  const started = await Promise.all(Array.from({ length: 5 }, () => pacer.admit(0)));
  assert.ok(started.every(Boolean));
  for (let i = 0; i < 5; i++) pacer.report(0, { kind: 'throttled', retryAfterMs: 200 });
  assert.is(rate(), Math.floor(grown * 1000 / 2) / 1000, 'halved once for the whole window');
  assert.is(readPacerStats(control, 0).throttles, 5);
  const halved = rate();
  // Congestion avoidance after the window: +1 call/s per rate-many successes.
  const before = nowMs();
  await Promise.all(Array.from({ length: 3 * Math.ceil(halved) }, () => pacer.admit(0).then(() => pacer.report(0, { kind: 'ok' }))));
  assert.ok(nowMs() - before >= 190, 'nothing started inside the Retry-After window');
  assert.ok(rate() > halved && rate() <= halved + 4, `additive increase ${halved} → ${rate()}`);
});

test('defect: slow start too slow for a burst — 200 calls of a fresh account, each answered at once, all start within 1.5 s', async () => {
  // A 200-session storm's first calls (one download or start each): at +1 call/s per success the
  // last of them started ~2.6 s after the first (TTFB p99 2.9 s); slow start must find a high limit fast.
  const control = createControl({ uploadMemoryBytes: 1 << 20, maxRetryAfterMs: 300_000 });
  initPacerSlot(control, 0);
  const pacer = new SharedPacer(control, claimWorkerSlot(new Int32Array(control.sab), 102));
  const started = nowMs();
  let last = 0;
  await Promise.all(
    Array.from({ length: 200 }, () =>
      pacer.admit(0).then(() => {
        last = nowMs();
        setImmediate(() => pacer.report(0, { kind: 'ok' })); // the status line comes back a moment later
      }),
    ),
  );
  assert.ok(last - started <= 1500, `the 200th call started ${(last - started).toFixed(0)} ms after the first`);
  assert.ok(last - started >= 300, `the bucket still spaced the starts (${(last - started).toFixed(0)} ms)`);
});

test('defect: a thread whose event loop was busy wakes to a bucket of up to 16 calls, not 8', async () => {
  // A worker moving bytes for a storm wakes its waiting calls 100–350 ms late; with a bucket of 8 it
  // then started 8 and waited again, so its calls started at about half the account's rate.
  const { control, pacer } = setup(40); // a bucket of 16 at this rate
  const at: number[] = [];
  const first = await Promise.all(Array.from({ length: 16 }, () => pacer.admit(0)));
  assert.ok(first.every(Boolean));
  for (let i = 0; i < 16; i++) pacer.report(0, { kind: 'failed' }); // no growth: 40/s throughout
  const waiting = Array.from({ length: 24 }, () =>
    pacer.admit(0).then(() => {
      at.push(nowMs());
      pacer.report(0, { kind: 'failed' });
    }),
  );
  const busyUntil = nowMs() + 800; // the bucket refills (16 tokens take 400 ms) while the loop is blocked
  while (nowMs() < busyUntil) {
    // a thread busy hashing and copying: no timer, no promise runs
  }
  await Promise.all(waiting);
  const woke = at[0]!;
  const together = at.filter((t) => t - woke < 20).length;
  assert.ok(together >= 14, `${together} calls started on the first wake-up after the busy loop`);
  assert.ok(together <= 16, `${together} calls started at once: more than the bucket holds`);
  assert.is(readPacerStats(control, 0).callsStarted, 40);
});

test('serveDue: a call whose token came due while the thread was busy starts from its byte loop, before any timer runs', async () => {
  // The download worker calls serveDue() from each socket read; without it a call granted while the
  // thread moved bytes waited for the thread's wake-up (an Atomics wait's timeout, a timer).
  const { control, pacer } = setup(10); // a bucket of 5 at this rate, then one start every 100 ms
  const burst = await Promise.all(Array.from({ length: 5 }, () => pacer.admit(0)));
  assert.ok(burst.every(Boolean));
  for (let i = 0; i < 5; i++) pacer.report(0, { kind: 'failed' }); // no growth
  let startedAt = 0;
  const sixth = pacer.admit(0).then((ok) => {
    startedAt = nowMs();
    return ok;
  });
  let timerRan = false;
  setTimeout(() => (timerRan = true), 0);
  const busyUntil = nowMs() + 300; // its token comes due ~100 ms in
  while (nowMs() < busyUntil) {
    // a thread busy hashing and copying: no timer, no promise runs
  }
  assert.is(startedAt, 0);
  pacer.serveDue();
  await Promise.resolve();
  await Promise.resolve();
  assert.ok(startedAt > 0, 'started in the microtasks after serveDue()');
  assert.not.ok(timerRan, 'before the thread ran its timers');
  assert.is(await sixth, true);
  pacer.report(0, { kind: 'failed' });
  pacer.serveDue(); // nothing waits: nothing happens
  assert.is(readPacerStats(control, 0).callsStarted, 6);
});

test('the time started calls waited is summed per account (WAITED_MS): what a first byte owes the pacer', async () => {
  const { control, pacer } = setup(10); // a burst of 5, then one start every 100 ms
  assert.is(readPacerStats(control, 0).waitedMs, 0);
  const t0 = nowMs();
  const waits: number[] = [];
  await Promise.all(
    Array.from({ length: 10 }, () =>
      pacer.admit(0).then(() => {
        waits.push(nowMs() - t0);
        pacer.report(0, { kind: 'failed' }); // no growth: the spacing stays 100 ms
      }),
    ),
  );
  const measured = waits.reduce((a, b) => a + b, 0);
  const counted = readPacerStats(control, 0).waitedMs;
  assert.ok(measured >= 1400, `the bucket made the later calls wait (${measured.toFixed(0)} ms in all)`);
  assert.ok(Math.abs(counted - measured) <= 10 * 15, `counted ${counted} ms, measured ${measured.toFixed(0)} ms`);
  assert.is(readPacerStats(control, 0).callsStarted, 10);
});

test('defect: chained Retry-After windows — a 429 to a call started after the window cuts the rate again', async () => {
  const { words, pacer } = setup(16);
  const rate = () => Atomics.load(words, accountWord(0, A.RATE_MILLI)) / 1000;
  assert.ok(await pacer.admit(0));
  pacer.report(0, { kind: 'throttled', retryAfterMs: 200 });
  assert.is(rate(), 8, 'first overload: halved');
  // This call starts after the window (the pacer holds it until then): its 429 says 8/s is still too much.
  assert.ok(await pacer.admit(0));
  await sleep(60); // its answer comes back after the event-loop slack
  pacer.report(0, { kind: 'throttled', retryAfterMs: 200 });
  assert.is(rate(), 4, 'a new overload: halved again');
});

test('defect: slow-start overshoot — a 429 halves the rate its call started at, not the rate grown while it was on its way', async () => {
  const { words, pacer } = setup(200);
  const rate = () => Atomics.load(words, accountWord(0, A.RATE_MILLI)) / 1000;
  // 30 calls start (the bucket limits them), then one more at 200/s; the 30 answer ok first (slow
  // start grows the rate by 90/s), then the last one's 429 comes back.
  const earlier = await Promise.all(Array.from({ length: 30 }, () => pacer.admit(0)));
  assert.ok(earlier.every(Boolean));
  assert.ok(await pacer.admit(0));
  const startedAt = rate();
  for (let i = 0; i < 30; i++) pacer.report(0, { kind: 'ok' });
  assert.ok(rate() >= startedAt + 60, `slow start grew the rate ${startedAt} → ${rate()}`);
  pacer.report(0, { kind: 'throttled', retryAfterMs: 200 });
  assert.is(rate(), startedAt / 2, 'half the rate the refused call started at');
});

test('a Retry-After window reported on one thread holds every thread; the queue resumes after it', async () => {
  const { control, pacer } = setup(1000);
  const worker = new Worker(new URL('./helpers/pacer-thread.mjs', import.meta.url), { workerData: { control, threadKey: 556 } });
  try {
    assert.ok(await pacer.admit(0));
    const reportedAt = nowMs();
    pacer.report(0, { kind: 'throttled', retryAfterMs: 400 });
    const done = new Promise<{ atMs: number }[]>((resolve) => worker.on('message', (m) => m.op === 'done' && resolve(m.grants)));
    worker.postMessage({ op: 'admit', ids: [1, 2, 3] });
    const local = await pacer.admit(0).then(() => nowMs());
    pacer.report(0, { kind: 'ok' });
    const remote = await done;
    for (const at of [local, ...remote.map((g) => g.atMs)]) assert.ok(at - reportedAt >= 395, `a call started ${(at - reportedAt).toFixed(0)} ms into a 400 ms window`);
    const s = readPacerStats(control, 0);
    assert.is(s.retryAfterUntilMs, null, 'the window is over');
  } finally {
    await worker.terminate();
  }
});

test('too_many_write_operations: the call waits its retry_after, the rate is not cut', async () => {
  const { control, words, pacer } = setup(50);
  assert.ok(await pacer.admit(0));
  const started = nowMs();
  await pacer.settle(0, { kind: 'write-lock', retryAfterMs: 300 });
  assert.ok(nowMs() - started >= 295, 'waited retry_after before the retry');
  assert.is(Atomics.load(words, accountWord(0, A.RATE_MILLI)), 50_000, 'rate unchanged');
  assert.is(Atomics.load(words, accountWord(0, A.PAUSED_UNTIL_MS)), 0, 'no window for the account');
  const again = nowMs();
  assert.ok(await pacer.admit(0));
  assert.ok(nowMs() - again < 100, 'the retry starts at once');
  pacer.report(0, { kind: 'ok' });
  assert.is(readPacerStats(control, 0).writeLockRetries, 1);
});

test('cancelled waiters give their turn back; a dead thread\'s tickets are skipped', async () => {
  const { words, pacer } = setup(5); // burst 2, then 200 ms apart
  for (let i = 0; i < 2; i++) assert.ok(await pacer.admit(0));
  let cancel = false;
  const cancelled = pacer.admit(0, () => cancel);
  const next = pacer.admit(0);
  cancel = true;
  assert.is(await cancelled, false);
  const started = nowMs();
  assert.ok(await next);
  assert.ok(nowMs() - started < 350, 'the cancelled ticket did not cost a whole interval more');
  // A "thread" takes tickets and dies: main reclaims its slot, the queue moves on.
  const dead = new SharedPacer({ sab: words.buffer as SharedArrayBuffer, epochMs: Date.now() }, claimWorkerSlot(words, 777));
  for (let i = 0; i < 5; i++) void dead.admit(0, () => false);
  assert.is(reclaimWorkerSlot(words, 777), 5);
  const afterDead = nowMs();
  assert.ok(await pacer.admit(0));
  assert.ok(nowMs() - afterDead < 500, 'the dead thread\'s five tickets did not hold the queue');
});

test('a Retry-After beyond engine.maxRetryAfterSec, negative or not a number is capped and logged', async () => {
  const warnings: { obj: Record<string, unknown>; msg: string }[] = [];
  const log = { warn: (obj: object, msg: string) => warnings.push({ obj: obj as Record<string, unknown>, msg }), info: () => {} };
  const engine = await TransferEngine.start({ onlyMainThread: true, maxRetryAfterSec: 1, log });
  try {
    engine.setAccount({ name: 'alice', apiUrl: 'http://127.0.0.1:9', contentUrl: 'http://127.0.0.1:9', accessToken: 't' });
    const pacer = engine.pacerFor('alice');
    assert.ok(await pacer.admit());
    const reported = nowMs();
    pacer.report({ kind: 'throttled', retryAfterMs: 3_600_000 });
    const until = engine.stats().accounts.alice!.retryAfterUntilMs!;
    assert.ok(until !== null && until - Date.now() <= 1000, 'the window is capped at 1 s');
    assert.ok(await pacer.admit());
    const waited = nowMs() - reported;
    assert.ok(waited >= 950 && waited < 2500, `waited ${waited.toFixed(0)} ms for a capped window`);
    pacer.report({ kind: 'throttled', retryAfterMs: -5000 });
    assert.ok(await pacer.admit());
    pacer.report({ kind: 'throttled', retryAfterMs: Number.NaN });
    await sleep(50);
    assert.is(engine.stats().accounts.alice!.retryAfterCapped, 3);
    assert.ok(warnings.length >= 1 && warnings.some((w) => w.obj.event === 'retry-after-capped' && w.obj.account === 'alice'), JSON.stringify(warnings));
    assert.throws(() => engine.pacerFor('mallory'), /unknown engine account/);
  } finally {
    await engine.destroy();
  }
});

test.run();
