// The /status.json model on its own, with a hand-driven clock: engine stats of today's shape, of
// the paced engine's shape (call counters, Retry-After deadline, spool), broken or missing ones
// (never a throw); a transfer's rate, percent and time without progress; PASS masked.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { RecentActivity } from '../../src/admin/recent.ts';
import { SessionWatch, shownCommand, type SessionLike } from '../../src/admin/session-watch.ts';
import { StatusModel } from '../../src/admin/status-model.ts';

function setup(engine: () => unknown) {
  let nowMs = 1_700_000_000_000;
  const clock = { now: () => nowMs, advance: (ms: number) => void (nowMs += ms) };
  const watch = new SessionWatch(clock.now);
  const sessions: SessionLike[] = [];
  const model = new StatusModel({ sessions: () => sessions, watch, recent: new RecentActivity(), engine, startedAtMs: nowMs, now: clock.now });
  return { clock, watch, sessions, model };
}

test('PASS and ACCT are masked; long arguments cut', () => {
  assert.is(shownCommand('PASS', 'hunter2'), 'PASS ****');
  assert.is(shownCommand('ACCT', 'secret'), 'ACCT ****');
  assert.is(shownCommand('STOR', 'a.bin'), 'STOR a.bin');
  assert.is(shownCommand('RETR', 'x'.repeat(500)).length, 201);
});

test('a download: path, percent, rate from samples a second apart, time without progress', () => {
  const { clock, watch, sessions, model } = setup(() => null);
  const transfer = { directive: 'RETR', bytes: 0 };
  sessions.push({ id: 's1', username: 'alice', authenticated: true, controlPeerAddress: '192.0.2.7', secure: true, dataProtection: 'P', transfer });
  watch.connected('s1', sessions[0]!);
  const seen = watch.commandStarted('s1', 'RETR', 'big.bin');
  watch.fileOpened('s1', '/dir/big.bin', 'download', 1000);
  clock.advance(500);
  transfer.bytes = 100;
  let out = model.snapshot() as any;
  assert.is(out.sessions[0].command, 'RETR big.bin');
  assert.is(out.sessions[0].user, 'alice');
  assert.is(out.sessions[0].tls, true);
  assert.is(out.transfers[0].path, '/dir/big.bin');
  assert.is(out.transfers[0].percent, 10);
  assert.is(out.transfers[0].rateBytesPerSec, 200, 'first half second: the average');
  clock.advance(1000);
  transfer.bytes = 400;
  out = model.snapshot() as any;
  assert.is(out.transfers[0].rateBytesPerSec, 267, '400 bytes in the 1.5 s since the transfer opened');
  assert.is(out.transfers[0].secondsWithoutProgress, 0);
  clock.advance(3000); // no byte moves
  out = model.snapshot() as any;
  assert.is(out.transfers[0].secondsWithoutProgress, 3);
  assert.is(out.transfers[0].rateBytesPerSec, 0);
  watch.commandEnded('s1', seen);
  out = model.snapshot() as any;
  assert.is(out.transfers.length, 0);
  assert.is(out.sessions[0].command, null);
  assert.is(out.sessions[0].lastCommand, 'RETR big.bin');
  assert.is(out.engine.available, false);
});

test('engine stats of today: accounts and memory mapped; missing fields are null', () => {
  const { model } = setup(() => ({
    threads: 4,
    workerUtilization: 0.25,
    activeDownloads: 1,
    activeUploads: 2,
    memory: { budgetBytes: 1000, ringBytesInUse: 100, chunkBytesInUse: 50 },
    accounts: { local: { limit: 16, inFlight: 3, waiting: 0, throttles: 2, retries: 5, pausedForMs: 1500 } },
    retries: 5,
    throttles: 2,
    workerCrashes: 0,
    commits: { calls: 4, committed: 10, backlog: 1 },
    requests: { download: { '200': 7 }, upload_start: { '200': 3, '429': 2 } },
    workerHeaps: [{ threadKey: 0, heapUsedBytes: 123 }],
  }));
  const out = model.snapshot() as any;
  assert.equal(out.accounts[0], { name: 'local', callsStarted: null, callsPerSec: null, pacedCallsPerSec: null, startWaitMs: null, inFlight: 3, waiting: 0, limit: 16, rateLimited: 2, retries: 5, writeLockRetries: null, retryAfterSeconds: 1.5 });
  assert.equal(out.engine.memory, { budgetBytes: 1000, inUseBytes: 150, ringBytes: 100, chunkBytes: 50, spoolBytes: null });
  assert.is(out.engine.commits.meanBatchSize, 2.5);
  assert.is(out.engine.workerUtilization, 0.25);
});

test("the paced engine's fields (h-engine's PacerStats): observed call rate, pace, mean start wait, Retry-After deadline, spool", () => {
  let calls = 100;
  let waited = 30_000;
  let until: number | null = null;
  const { clock, model } = setup(() => ({
    memory: { budgetBytes: 1000, ringBytesInUse: 400, chunkBytesInUse: 200 },
    spool: { bytesInUse: 4096, limitBytes: 1 << 30, dir: '/var/tmp/x' },
    accounts: { team: { limit: 12.5, callsStarted: calls, waitedMs: waited, callsPerSecond: 12.5, inFlight: 2, waiting: 1, throttles: 9, writeLockRetries: 3, retries: 4, retryAfterUntilMs: until, retryAfterCapped: 0 } },
  }));
  let out = model.snapshot() as any;
  assert.is(out.accounts[0].callsPerSec, null, 'one sample: no rate yet');
  assert.is(out.accounts[0].startWaitMs, null, 'one sample: no mean wait yet');
  assert.is(out.accounts[0].retryAfterSeconds, 0, 'null deadline: none in force');
  clock.advance(2000);
  calls = 150;
  waited = 30_000 + 50 * 240; // the 50 calls started meanwhile waited 240 ms each
  until = clock.now() + 2000;
  out = model.snapshot() as any;
  assert.equal(out.accounts[0], { name: 'team', callsStarted: 150, callsPerSec: 25, pacedCallsPerSec: 12.5, startWaitMs: 240, inFlight: 2, waiting: 1, limit: null, rateLimited: 9, retries: 4, writeLockRetries: 3, retryAfterSeconds: 2 });
  assert.equal(out.engine.memory, { budgetBytes: 1000, inUseBytes: 600, ringBytes: 400, chunkBytes: 200, spoolBytes: 4096 });
});

test('broken or missing engine stats never throw', () => {
  for (const stats of [undefined, null, 42, 'x', [], { accounts: 'nope', memory: [], commits: null, workerHeaps: 'x' }, { accounts: { a: null } }]) {
    const { model } = setup(() => stats);
    const out = model.snapshot() as any;
    assert.ok(Array.isArray(out.accounts));
  }
  const { model } = setup(() => {
    throw new Error('engine closed');
  });
  assert.is((model.snapshot() as any).engine.available, false);
});

test.run();
