// Unit tests of the engine's pure parts: content_hash on a stream, ring error codes, the memory
// budget's sizing and admission, and the shared request gate (FIFO turns, AIMD, crash reclaim).
// Runs on the main thread only; no network (the engine's transfers are tested through the local box).

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ERRORS } from '../../src/errors.ts';
import type { ErrorCode } from '../../src/errors.ts';
import { BLOCK_BYTES, ContentHasher, contentHash } from '../../src/transfer/content-hash.ts';
import { MemoryBudget, MIN_CHUNK_BYTES, MIN_RING_BYTES } from '../../src/transfer/memory-budget.ts';
import { RequestGates, initAccountSlot } from '../../src/transfer/request-gate.ts';
import { codeForRing, ringCodeFor, RING_CODE_COUNT } from '../../src/transfer/ring-codes.ts';
import { A, G, accountWord, claimWorkerSlot, createControl, reclaimWorkerSlot } from '../../src/transfer/shared-layout.ts';

const A_VECTORS: [number, string][] = [
  [0, 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'],
  [1, '1cd6ef71e6e0ff46ad2609d403dc3fee244417089aa4461245a4e4fe23a55e42'],
  [4096, '8620913d33852befe09f16fff8fd75f77a83160d29f76f07e0276e9690903035'],
  [4194303, '647c8627d70f7a7d13ce96b1e7710a771a55d41a62c3da490d92e56044d311fa'],
  [4194304, 'd4d63bac5b866c71620185392a8a6218ac1092454a2d16f820363b69852befa3'],
  [4194305, '8f553da8d00d0bf509d8470e242888be33019c20c0544811f5b2b89e98360b92'],
  [8388608, 'e08b3ba1f538804075c5f939accdeaa9efc7b5c01865c94a41e78ca6550a88e7'],
];

test('content_hash matches the reference vectors, whole and fed in odd pieces', () => {
  for (const [n, want] of A_VECTORS) {
    const data = Buffer.alloc(n, 'A');
    assert.is(contentHash(data), want, `whole ${n}`);
    const h = new ContentHasher();
    for (let off = 0; off < n; ) {
      const step = Math.min(n - off, 1 + ((off * 7919) % 1_000_003));
      h.update(data.subarray(off, off + step));
      off += step;
    }
    assert.is(h.digest(), want, `pieces ${n}`);
  }
});

test('a hasher resumed from block digests equals one that saw every byte', () => {
  const data = Buffer.alloc(BLOCK_BYTES * 2 + 12345, 'A');
  const first = new ContentHasher();
  first.update(data.subarray(0, BLOCK_BYTES * 2 + 100));
  const resumed = ContentHasher.resume(first.blockDigests());
  assert.is(resumed.byteLength, BLOCK_BYTES * 2);
  resumed.update(data.subarray(BLOCK_BYTES * 2));
  assert.is(resumed.digest(), contentHash(data));
});

/**
 * Registry codes that never cross a ring (session, login, command and configuration errors): each
 * travels as INTERNAL if it ever did. Every other code must have its own ring number, or a worker's
 * failure of that kind would reach the client as 451 "Local error". A new registry code goes in
 * the ring table (src/transfer/ring-codes.ts) or here.
 */
const NEVER_ON_A_RING: readonly ErrorCode[] = [
  'DROPFTP_ERR_FOLDER_NOT_EMPTY',
  'DROPFTP_ERR_ASCII_RESUME',
  'DROPFTP_ERR_LOGIN_FAILED',
  'DROPFTP_ERR_NOT_LOGGED_IN',
  'DROPFTP_ERR_TOO_MANY_CONNECTIONS',
  'DROPFTP_ERR_BANNED',
  'DROPFTP_ERR_TLS_REQUIRED',
  'DROPFTP_ERR_BAD_COMMAND',
  'DROPFTP_ERR_NO_DATA_CONNECTION',
  'DROPFTP_ERR_IDLE_TIMEOUT',
  'DROPFTP_ERR_TOO_MANY_LOGIN_FAILURES',
  'DROPFTP_ERR_LINE_TOO_LONG',
  'DROPFTP_ERR_UNKNOWN_COMMAND',
  'DROPFTP_ERR_BAD_SEQUENCE',
  'DROPFTP_ERR_PARAMETER_NOT_SUPPORTED',
  'DROPFTP_ERR_NETWORK_PROTOCOL',
  'DROPFTP_ERR_PROTECTION_LEVEL',
  'DROPFTP_ERR_CONFIG',
];

test('every ring code maps back to its error code; 0 and unknown numbers are INTERNAL', () => {
  const internal = ringCodeFor('DROPFTP_ERR_INTERNAL');
  const seen = new Map<number, ErrorCode>();
  for (const code of Object.keys(ERRORS) as ErrorCode[]) {
    const n = ringCodeFor(code);
    if (NEVER_ON_A_RING.includes(code)) {
      assert.is(n, internal, `${code} is listed as never crossing a ring but has its own number ${n}`);
      continue;
    }
    // The ring header word holds it; the number is the code's own and comes back as the code.
    assert.ok(Number.isInteger(n) && n >= 1 && n <= RING_CODE_COUNT, `${code} → ${n}`);
    assert.is(codeForRing(n), code, `${code} → ${n} → ${codeForRing(n)}: missing from the ring table`);
    assert.not.ok(seen.has(n), `number ${n} used by ${seen.get(n)} and ${code}`);
    seen.set(n, code);
  }
  assert.is(seen.size, RING_CODE_COUNT, 'every ring number belongs to one registry code');
  assert.is(ringCodeFor('DROPFTP_ERR_ABORTED'), 1, 'CODE_DESTROYED of the ring reads as ABORTED');
  assert.is(codeForRing(0), 'DROPFTP_ERR_INTERNAL');
  assert.is(codeForRing(RING_CODE_COUNT + 1), 'DROPFTP_ERR_INTERNAL');
  assert.is(codeForRing(9999), 'DROPFTP_ERR_INTERNAL');
});

test('memory budget: rings shrink as transfers come, keep a floor, and refuse beyond it', () => {
  const control = createControl({ uploadChunkBytes: 1 << 20, fairRoundBytes: 1 << 25, minSliceBytes: 65536 });
  const words = new Int32Array(control.sab);
  const budget = new MemoryBudget(16 << 20, words);
  const first = budget.admit('download')!;
  const rings = [first];
  for (let i = 0; i < 20; i++) rings.push(budget.admit('upload')!);
  assert.ok(rings.at(-1)! < first, 'later rings are smaller');
  assert.ok(rings.every((r) => r >= MIN_RING_BYTES));
  assert.ok(Atomics.load(words, G.UPLOAD_CHUNK_BYTES) >= MIN_CHUNK_BYTES);
  let admitted = 21;
  while (budget.admit('upload') !== null) admitted++;
  assert.ok(budget.ringBytesInUse + budget.uploads * MIN_CHUNK_BYTES <= 16 << 20, 'floors fit the budget');
  assert.ok(admitted < 16 * 8, `refuses once floors are spent (admitted ${admitted})`);
  budget.release('upload', rings[1]!);
  assert.ok(budget.admit('download') !== null, 'a release makes room again');
});

function gateSetup(limit: number) {
  const control = createControl({ uploadChunkBytes: 1 << 20, fairRoundBytes: 1 << 25, minSliceBytes: 65536 });
  const words = new Int32Array(control.sab);
  initAccountSlot(control, 0, limit);
  // Two "threads": two gate sets with their own worker slots, as two workers would have.
  const t1 = new RequestGates(control, claimWorkerSlot(words, 101));
  const t2 = new RequestGates(control, claimWorkerSlot(words, 102));
  return { control, words, t1, t2 };
}

test('request gate: at most LIMIT permits, granted in ticket order across threads', async () => {
  const { t1, t2 } = gateSetup(2);
  const order: number[] = [];
  let running = 0;
  let maxRunning = 0;
  const job = async (gates: RequestGates, id: number, rounds: number) => {
    for (let r = 0; r < rounds; r++) {
      const p = (await gates.acquire(0))!;
      running++;
      maxRunning = Math.max(maxRunning, running);
      order.push(id);
      await new Promise((res) => setTimeout(res, 2));
      running--;
      gates.release(p, { kind: 'failed' });
    }
  };
  await Promise.all([job(t1, 1, 5), job(t2, 2, 5), job(t1, 3, 5), job(t2, 4, 5)]);
  assert.is(maxRunning, 2);
  // Round robin: within any window of 4 grants after the first, no job appears twice in a row run of 3.
  for (let i = 0; i + 4 <= order.length; i += 4) {
    assert.is(new Set(order.slice(i, i + 4)).size, 4, `round ${i / 4}: ${order.slice(i, i + 4)}`);
  }
});

test('request gate: a 429 halves the limit once per window; a repeated decrease pauses grants for retry_after', async () => {
  const { words, t1 } = gateSetup(8);
  const permits = await Promise.all(Array.from({ length: 8 }, () => t1.acquire(0)));
  for (const p of permits) t1.release(p!, { kind: 'throttled', retryAfterMs: 300, lock: false });
  assert.is(Atomics.load(words, accountWord(0, A.LIMIT)), 4, 'one halving for one window of 429s');
  // The first decrease does not pause the account: the lower limit is the answer.
  let started = Date.now();
  const first = (await t1.acquire(0))!;
  assert.ok(Date.now() - started < 200, 'granted at once after the first decrease');
  // 429s on requests granted after that decrease, after its echo window but soon: halve again and pause.
  const second = (await t1.acquire(0))!;
  await new Promise((res) => setTimeout(res, 1100));
  t1.release(first, { kind: 'throttled', retryAfterMs: 300, lock: false });
  t1.release(second, { kind: 'throttled', retryAfterMs: 300, lock: false });
  assert.is(Atomics.load(words, accountWord(0, A.LIMIT)), 2);
  started = Date.now();
  const p = (await t1.acquire(0))!;
  assert.ok(Date.now() - started >= 250, 'no grant before retry_after');
  t1.release(p, { kind: 'ok' });
  // Successes do not raise the limit above the ceiling set by the 429 (until the probe period).
  for (let i = 0; i < 40; i++) t1.release((await t1.acquire(0))!, { kind: 'ok' });
  assert.is(Atomics.load(words, accountWord(0, A.LIMIT)), 2);
});

test('request gate: a failed probe above the known-good limit falls back to it without pausing; a throttled permit is kept', async () => {
  const { words, t1 } = gateSetup(6);
  // Six requests at once, with more waiting, succeed: 6 is known good.
  const first = await Promise.all(Array.from({ length: 6 }, () => t1.acquire(0)));
  const waiting = Array.from({ length: 12 }, () => t1.acquire(0));
  for (const p of first) t1.release(p!, { kind: 'ok' });
  await Promise.all(waiting.map((w) => w.then((p) => t1.release(p!, { kind: 'ok' }))));
  assert.is(Atomics.load(words, accountWord(0, A.KNOWN_GOOD)), 6);
  // A probe: the limit went to 7 (as additive increase would after PROBE_MS) and a request gets a 429.
  Atomics.store(words, accountWord(0, A.LIMIT), 7);
  Atomics.store(words, accountWord(0, A.CEILING), 7);
  const held = (await t1.acquire(0))!;
  const started = Date.now();
  await t1.retryAfterThrottle(held, 1000, false, 1);
  assert.ok(Date.now() - started < 500, 'the throttled request retries after a short backoff, not retry_after');
  assert.is(Atomics.load(words, accountWord(0, A.LIMIT)), 6, 'back to the known-good limit');
  assert.is(Atomics.load(words, accountWord(0, A.PAUSED_UNTIL_MS)), 0, 'nobody paused');
  // The permit is still held: it is released exactly once.
  assert.is(t1.outstanding(0), 1);
  t1.release(held, { kind: 'ok' });
  assert.is(t1.outstanding(0), 0);
});

test('request gate: a cancelled waiter gives its ticket back; a dead thread is reclaimed', async () => {
  const { words, t1, t2 } = gateSetup(1);
  const held = (await t1.acquire(0))!;
  let cancel = false;
  const waiting = t2.acquire(0, () => cancel);
  cancel = true;
  t1.release(held, { kind: 'ok' });
  assert.is(await waiting, null);
  // Thread 101 takes the only permit and "dies"; main reclaims its slot and the queue moves on.
  const lost = await t1.acquire(0);
  assert.ok(lost);
  const next = t2.acquire(0);
  assert.is(reclaimWorkerSlot(words, 101), 1);
  const p = await next;
  assert.ok(p, 'granted after the reclaim');
  t2.release(p!, { kind: 'ok' });
});

test.run();
