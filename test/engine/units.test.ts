// Unit tests of the engine's pure parts: content_hash on a stream, ring error codes, the memory
// budget's sizing and admission (the call-rate pacer has its own file, pacer.test.ts).
// Runs on the main thread only; no network (the engine's transfers are tested through the local box).

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ERRORS } from '../../src/errors.ts';
import type { ErrorCode } from '../../src/errors.ts';
import { BLOCK_BYTES, ContentHasher, contentHash } from '../../src/transfer/content-hash.ts';
import { MAX_RING_BYTES, MAX_UPLOAD_RING_BYTES, MemoryBudget, MIN_CHUNK_BYTES, MIN_RING_BYTES } from '../../src/transfer/memory-budget.ts';
import { classifyRouteError, classifyStatus } from '../../src/transfer/dropbox-http.ts';
import { codeForRing, ringCodeFor, RING_CODE_COUNT } from '../../src/transfer/ring-codes.ts';
import { G, createControl } from '../../src/transfer/shared-layout.ts';

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
  'DROPFTP_ERR_LOGIN_TIMEOUT',
  'DROPFTP_ERR_TOO_MANY_LOGIN_FAILURES',
  'DROPFTP_ERR_LINE_TOO_LONG',
  'DROPFTP_ERR_NO_VERB',
  'DROPFTP_ERR_UNKNOWN_COMMAND',
  'DROPFTP_ERR_BAD_SEQUENCE',
  'DROPFTP_ERR_PARAMETER_NOT_SUPPORTED',
  'DROPFTP_ERR_NETWORK_PROTOCOL',
  'DROPFTP_ERR_PROTECTION_LEVEL',
  'DROPFTP_ERR_CONFIG',
  'DROPFTP_ERR_DATA_DIR_LOCKED',
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
  assert.is(ringCodeFor('DROPFTP_ERR_ABORTED'), 1, "the ring's default abort code reads as ABORTED");
  assert.is(codeForRing(0), 'DROPFTP_ERR_INTERNAL');
  assert.is(codeForRing(RING_CODE_COUNT + 1), 'DROPFTP_ERR_INTERNAL');
  assert.is(codeForRing(9999), 'DROPFTP_ERR_INTERNAL');
});

test("engine calls pass a 429's Retry-After on uncapped, for the pacer to cap, count and log", () => {
  const body = (tag: string, retryAfter: unknown): unknown => ({ error_summary: `${tag}/`, error: { reason: { '.tag': tag }, retry_after: retryAfter } });
  // Beyond the classifier's own default cap (300 s): had it clamped, engine.maxRetryAfterSec > 300 s
  // could not apply and the pacer would not see (count, log) the out-of-bounds value.
  const huge = classifyStatus(429, body('too_many_requests', 100_000), '', '100000');
  assert.equal([huge.kind, huge.kind === 'retry' && huge.throttle, huge.kind === 'retry' && huge.retryAfterMs], ['retry', 'requests', 100_000_000]);
  const junk = classifyStatus(429, body('too_many_requests', 'soon'), '', 'soon');
  // Unusable: the classifier's "wait the cap" with no cap of its own, so beyond engine.maxRetryAfterSec's
  // largest value (86,400 s) and counted by the pacer.
  assert.ok(junk.kind === 'retry' && junk.throttle === 'requests' && junk.retryAfterMs > 86_400_000, JSON.stringify(junk));
  const lock = classifyRouteError({ '.tag': 'too_many_write_operations', retry_after: 1000 });
  assert.equal([lock.kind, lock.kind === 'retry' && lock.throttle, lock.kind === 'retry' && lock.retryAfterMs], ['retry', 'lock', 1_000_000]);
});

test('memory budget: rings shrink as transfers come, keep a floor, and refuse beyond it', () => {
  const control = createControl({ uploadMemoryBytes: 1 << 20 });
  const words = new Int32Array(control.sab);
  const budget = new MemoryBudget(16 << 20, words);
  const first = budget.admit('download')!;
  const rings = [first];
  for (let i = 0; i < 20; i++) rings.push(budget.admit('upload')!);
  assert.ok(rings.at(-1)! < first, 'later rings are smaller');
  assert.ok(rings.every((r) => r >= MIN_RING_BYTES));
  assert.ok(Atomics.load(words, G.UPLOAD_MEMORY_BYTES) >= MIN_CHUNK_BYTES);
  let admitted = 21;
  while (budget.admit('upload') !== null) admitted++;
  assert.ok(budget.ringBytesInUse + budget.uploads * MIN_CHUNK_BYTES <= 16 << 20, 'floors fit the budget');
  assert.ok(admitted <= (16 << 20) / (MIN_RING_BYTES + MIN_CHUNK_BYTES), `refuses once floors are spent (admitted ${admitted})`);
  budget.release('upload', rings[1]!);
  assert.ok(budget.admit('download') !== null, 'a release makes room again');
});

test('memory budget: pooled rings count as held (upload share, the workers\' ring word) until the pool lets them go', () => {
  const control = createControl({ uploadMemoryBytes: 64 << 20 });
  const words = new Int32Array(control.sab);
  const budget = new MemoryBudget(64 << 20, words, 64 << 20);
  const ring = budget.admit('upload')!;
  const share = Atomics.load(words, G.UPLOAD_MEMORY_BYTES);
  assert.is(Atomics.load(words, G.RING_KIB_IN_USE), ring / 1024);
  budget.setPooledRingBytes(40 << 20);
  assert.is(Atomics.load(words, G.RING_KIB_IN_USE), (ring + (40 << 20)) / 1024, 'the ring word weighs pooled rings too');
  assert.ok(Atomics.load(words, G.UPLOAD_MEMORY_BYTES) <= (64 << 20) - ring - (40 << 20), 'the share leaves the pooled rings out');
  assert.ok(Atomics.load(words, G.UPLOAD_MEMORY_BYTES) < share);
  // A release hands its ring to the pool: what is held does not change.
  budget.release('upload', ring, (40 << 20) + ring);
  assert.is(budget.ringBytesInUse, 0);
  assert.is(Atomics.load(words, G.RING_KIB_IN_USE), ((40 << 20) + ring) / 1024);
  // Only pooled rings in the way of a floor: refused, and admitted once the pool lets them go.
  budget.setPooledRingBytes((64 << 20) - 8 * 1024);
  assert.is(budget.admit('download'), null);
  budget.setPooledRingBytes(0);
  assert.ok(budget.admit('download') !== null);
  assert.is(Atomics.load(words, G.RING_KIB_IN_USE), budget.ringBytesInUse / 1024);
});

test('memory budget: uploads get rings up to twice a download\'s where the budget is 512 MiB, not in a small one', () => {
  const big = new MemoryBudget(512 << 20, new Int32Array(createControl({ uploadMemoryBytes: 1 << 20 }).sab));
  const sizes = { download: new Set<number>(), upload: new Set<number>() };
  for (let i = 0; i < 200; i++) {
    const kind = i % 2 ? 'upload' : 'download';
    sizes[kind].add(big.admit(kind)!);
  }
  assert.equal([...sizes.download], [MAX_RING_BYTES], 'the storm of 200: every download ring at the download maximum');
  assert.equal([...sizes.upload], [MAX_UPLOAD_RING_BYTES], 'the storm of 200: every upload ring at the upload maximum');
  assert.ok(MAX_UPLOAD_RING_BYTES > MAX_RING_BYTES);
  const small = new MemoryBudget(64 << 20, new Int32Array(createControl({ uploadMemoryBytes: 1 << 20 }).sab));
  assert.is(small.maxUploadRingBytes, MAX_RING_BYTES);
  assert.is(small.admit('upload'), MAX_RING_BYTES, 'the first upload in 64 MiB: no larger ring');
});

test('memory budget: engine.memoryBudgetBytes 64 MiB admits the storm of 1,000 RETR + 1,000 STOR at once', () => {
  const control = createControl({ uploadMemoryBytes: 1 << 20 });
  const words = new Int32Array(control.sab);
  const budget = new MemoryBudget(64 << 20, words);
  for (let i = 0; i < 2000; i++) assert.ok(budget.admit(i % 2 ? 'upload' : 'download') !== null, `transfer ${i + 1} of 2000 refused`);
  assert.ok(budget.ringBytesInUse + budget.uploads * MIN_CHUNK_BYTES <= 64 << 20, 'floors fit the budget');
  assert.ok(Atomics.load(words, G.UPLOAD_MEMORY_BYTES) >= MIN_CHUNK_BYTES);
});

test.run();
