// Fault matrix through FTP: STOR and RETR of 0 B .. >4 MiB through the real server on the real local
// box under each injected fault kind alone and all combined. Every transfer must either end 226 with
// byte-exact content (checked straight on the local box over HTTP) or get a 4xx/5xx reply, after
// which the store still holds the old version (or, after a 451 integrity failure of a commit, no
// file: that revision was deleted); the engine's workers never crash.
// RELIABILITY_LONG=1: more sizes, more rounds per scenario; RELIABILITY_SEED replays a run.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { FaultRule, FaultSpec } from '../../src/localbox/index.ts';
import { RawFtp, download, upload } from '../ftp/helpers/raw-client.ts';
import { startStack, type Stack } from '../ftp/helpers/stack.ts';
import { BoxView, KiB, LONG, MiB, SEED, boxUpload, pattern, sha256, until } from './helpers.ts';

const SIZES = LONG ? [0, 1, 64 * KiB - 1, 300 * KiB, 4 * MiB, 5 * MiB + 17, 9 * MiB + 3] : [0, 300 * KiB, 5 * MiB + 17];
const ROUNDS = LONG ? 4 : 1;
const TRANSFER_TIMEOUT_MS = 90_000;

/** Every download held open 300 ms while it holds its concurrency slot, so that other calls overlap it. */
const HOLD_DOWNLOADS: FaultRule = { kind: 'latency', probability: 1, latencyMs: 300, routes: ['files/download'] };

const SCENARIOS: { name: string; spec: FaultSpec; fires: string[] }[] = [
  { name: '429 too_many_requests (retry_after 1)', spec: { rules: [{ kind: 'too_many_requests', probability: 0.25, retryAfterSec: 1, count: 6 }] }, fires: ['too_many_requests'] },
  {
    name: '429 too_many_write_operations on commits',
    spec: { rules: [{ kind: 'too_many_write_operations', probability: 0.6, retryAfterSec: 1, count: 6, routes: ['files/upload_session/finish_batch_v2', 'files/upload_session/finish', 'files/upload', 'files/upload_session/start'] }] },
    fires: ['too_many_write_operations'],
  },
  { name: '5xx', spec: { rules: [{ kind: 'server_error', probability: 0.25, status: 500 }, { kind: 'server_error', probability: 0.15, status: 503 }] }, fires: ['server_error'] },
  { name: 'latency', spec: { rules: [{ kind: 'latency', probability: 0.5, latencyMs: 150 }] }, fires: ['latency'] },
  {
    name: 'resets mid-body',
    spec: { rules: [{ kind: 'reset', probability: 0.35, afterBytes: 100 * KiB, routes: ['files/download', 'files/upload_session/append_v2', 'files/upload_session/start', 'files/upload'] }] },
    fires: ['reset'],
  },
  { name: 'corrupted bytes', spec: { rules: [{ kind: 'corrupt', probability: 0.5 }] }, fires: ['corrupt'] },
  {
    // A call with its content_hash is refused and sent again; one streamed without (none at these
    // sizes unless the client runs ahead) would commit other bytes, which are then deleted (451).
    name: 'corrupted upload bodies',
    spec: { rules: [{ kind: 'corrupt_upload', probability: 1, count: 3 }] },
    fires: ['corrupt_upload'],
  },
  {
    name: 'concurrency cap 1',
    // Each RETR is one call and a small STOR one start call: at localhost speed they seldom overlapped
    // (the cap fired in 2 runs of 3). Downloads held open 300 ms (HOLD_DOWNLOADS) make the others
    // meet it.
    spec: { rules: [HOLD_DOWNLOADS], concurrencyPerAccount: 1 },
    fires: ['concurrency_limit'],
  },
  {
    name: 'all combined',
    spec: {
      // Short form: 1 — it runs only two non-empty transfers each way, each RETR is one call and
      // each small STOR one start call, so under a cap of 2 the requests rarely overlapped enough
      // for the cap to fire. Long form: 3 — its 14 transfers per round overlap anyway, and under a
      // cap of 2 plus every other fault a control reply (STOR's get_metadata waiting out 429s) once
      // took longer than the client's 5 s. Whether the cap fires here is left to chance: after the
      // previous scenario's 429s the account's pacer spaces calls out, so they seldom overlap (the
      // cap's own scenario above makes sure it fires); latency always does.
      concurrencyPerAccount: LONG ? 3 : 1,
      rules: [
        { kind: 'too_many_requests', probability: 0.1, retryAfterSec: 1, count: 4 },
        { kind: 'too_many_write_operations', probability: 0.3, retryAfterSec: 1, count: 4, routes: ['files/upload_session/finish_batch_v2', 'files/upload'] },
        { kind: 'server_error', probability: 0.1 },
        { kind: 'latency', probability: 0.3, latencyMs: 80 },
        { kind: 'reset', probability: 0.15, afterBytes: 200 * KiB },
        { kind: 'corrupt', probability: 0.4 },
      ] satisfies FaultRule[],
    },
    fires: ['latency'],
  },
];

let stack: Stack;
let view: BoxView;
const totals = { attempted: 0, completed: 0, failedCleanly: 0, faults: {} as Record<string, number> };

test.before(async () => {
  stack = await startStack({ engineWorkers: 2, limits: { dataConnectTimeoutMs: 30_000, stallTimeoutMs: 60_000 } });
  view = await BoxView.open(stack.box.url, stack.dataDir);
  for (const size of SIZES) await boxUpload(view, `/src/${size}.bin`, pattern(size, size + 1));
});

test.after(async () => {
  if (process.env.RELIABILITY_REPORT) console.log(`RELIABILITY_REPORT fault-matrix ${JSON.stringify(totals)}`);
  await stack.stop();
});

type Outcome = { ok: true } | { ok: false; reply: string };

async function stor(path: string, bytes: Buffer): Promise<Outcome> {
  const c = await RawFtp.connect(stack.port);
  try {
    await c.login(stack.user, stack.password);
    const { first, final } = await upload(c, `STOR ${path}`, bytes);
    if (final.code === 226) return { ok: true };
    // Only a real FTP error may end a failed transfer (never silence, never a 2xx but 226).
    assert.ok(final.code >= 400 && final.code < 600, `STOR ${path}: ${first.text} / ${final.text}`);
    return { ok: false, reply: final.text };
  } finally {
    c.close();
  }
}

async function retr(path: string): Promise<{ outcome: Outcome; data: Buffer }> {
  const c = await RawFtp.connect(stack.port);
  try {
    await c.login(stack.user, stack.password);
    const { final, data } = await download(c, `RETR ${path}`);
    if (final.code === 226) return { outcome: { ok: true }, data };
    assert.ok(final.code >= 400 && final.code < 600, `RETR ${path}: ${final.text}`);
    return { outcome: { ok: false, reply: final.text }, data };
  } finally {
    c.close();
  }
}

function withTimeout<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([p, new Promise<T>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: no final reply in ${TRANSFER_TIMEOUT_MS} ms`)), TRANSFER_TIMEOUT_MS)))]).finally(() =>
    clearTimeout(timer),
  );
}

SCENARIOS.forEach((scenario, index) => {
  test(`fault matrix: ${scenario.name}`, async () => {
    const before = await stack.box.faultCounts();
    for (let round = 0; round < ROUNDS; round++) {
      const tag = `s${index}r${round}`;
      // Every STOR overwrites a file whose old version is known, so "old or new, whole" is checkable.
      const olds = new Map<number, Buffer>();
      for (const size of SIZES) {
        const old = pattern((size % 777) + 5, size + 99);
        await boxUpload(view, `/fm/${tag}/${size}.bin`, old);
        olds.set(size, old);
      }
      await stack.box.setFaults({ ...scenario.spec, seed: SEED + index * 100 + round });
      const jobs = SIZES.flatMap((size) => {
        const fresh = pattern(size, SEED + size + round);
        const put = withTimeout(stor(`/fm/${tag}/${size}.bin`, fresh), `STOR ${size}`).then((outcome) => ({ kind: 'STOR' as const, size, outcome, fresh, data: null as Buffer | null }));
        const get = withTimeout(retr(`/src/${size}.bin`), `RETR ${size}`).then((r) => ({ kind: 'RETR' as const, size, outcome: r.outcome, fresh: null as Buffer | null, data: r.data }));
        return [put, get];
      });
      // Faults off even when a job fails, so that the tests after this one run clean.
      const results = await Promise.all(jobs).finally(() => stack.box.setFaults({ rules: [] }));
      for (const r of results) {
        totals.attempted++;
        if (r.outcome.ok) totals.completed++;
        else totals.failedCleanly++;
        if (r.kind === 'RETR') {
          if (r.outcome.ok) assert.is(sha256(r.data!), sha256(pattern(r.size, r.size + 1)), `RETR ${r.size} 226 with wrong bytes`);
          continue;
        }
        const stored = await view.download(`/fm/${tag}/${r.size}.bin`);
        // A commit whose bytes failed the check is deleted again, so the path may be empty then only.
        if (!stored && !r.outcome.ok && /integrity/.test(r.outcome.reply)) continue;
        assert.ok(stored, `STOR ${r.size}: file vanished`);
        if (r.outcome.ok) assert.is(sha256(stored!), sha256(r.fresh!), `STOR ${r.size}: 226 but the store holds other bytes`);
        else assert.ok(stored!.equals(olds.get(r.size)!), `STOR ${r.size} failed (${r.outcome.reply}) yet the old version was replaced`);
      }
    }
    const after = await stack.box.faultCounts();
    for (const kind of scenario.fires) assert.ok((after[kind] ?? 0) > (before[kind] ?? 0), `fault ${kind} never fired: the scenario tested nothing`);
    for (const [kind, n] of Object.entries(after)) totals.faults[kind] = n;
    assert.is(stack.engine.stats().workerCrashes, 0, 'a transfer worker crashed');
    await until(() => stack.engine.stats().activeDownloads + stack.engine.stats().activeUploads === 0, 20_000, () => `engine idle: ${JSON.stringify(stack.engine.stats())}`);
  });
});

test('after the matrix: a clean round trip still works (the server is alive and unwedged)', async () => {
  const bytes = pattern(1 * MiB + 5, 7);
  assert.ok((await stor('/fm/final.bin', bytes)).ok);
  const back = await retr('/fm/final.bin');
  assert.ok(back.outcome.ok);
  assert.ok(back.data.equals(bytes));
  assert.ok((await view.download('/fm/final.bin'))!.equals(bytes));
});

test.run();
