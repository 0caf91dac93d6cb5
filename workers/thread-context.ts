// What one thread needs to run transfers: its slot in the control block, its request gates and its
// keep-alive HTTP agent. Runs on a piscina worker (or the main thread in onlyMainThread mode).
// Invariants: one context per thread, created once; append buffers go through takeChunk / giveChunk
// (charged while taken, so a dead thread's share can be reclaimed from its slot; a few idle ones are
// kept for reuse instead of being left to the GC).

import { isMainThread, threadId } from 'node:worker_threads';
import type { Agent } from 'undici';
import { createAgent } from '../src/transfer/dropbox-http.ts';
import { RequestGates } from '../src/transfer/request-gate.ts';
import { BLOCK_BYTES } from '../src/transfer/content-hash.ts';
import { floorPow2 } from '../src/transfer/memory-budget.ts';
import { startPublishingThreadMemory } from './thread-memory.ts';
import { A, G, WK, accountWord, claimWorkerSlot, workerWord } from '../src/transfer/shared-layout.ts';
import type { ControlHandle } from '../src/transfer/shared-layout.ts';

export interface ThreadContext {
  readonly control: ControlHandle;
  readonly words: Int32Array;
  readonly gates: RequestGates;
  readonly agent: Agent;
  readonly workerSlot: number;
  readonly inWorker: boolean;
  /** Idle append buffers by size, for reuse. */
  readonly spareChunks: Map<number, Buffer[]>;
}

/** The key a thread writes in its slot; main reclaims a dead worker by it. */
export function threadKey(id: number = threadId): number {
  return id + 1;
}

export function createThreadContext(control: ControlHandle): ThreadContext {
  const words = new Int32Array(control.sab);
  const workerSlot = claimWorkerSlot(words, threadKey());
  if (!isMainThread) startPublishingThreadMemory(words, workerSlot);
  return { control, words, gates: new RequestGates(control, workerSlot), agent: createAgent(words), workerSlot, inWorker: !isMainThread, spareChunks: new Map() };
}

/** Counts a buffer of `bytes` against the global budget (KiB, rounded up). */
function chargeChunk(ctx: ThreadContext, bytes: number): number {
  const kib = Math.ceil(bytes / 1024);
  Atomics.add(ctx.words, G.CHUNK_KIB_IN_USE, kib);
  Atomics.add(ctx.words, workerWord(ctx.workerSlot, WK.CHUNK_KIB), kib);
  return kib;
}

function refundChunk(ctx: ThreadContext, kib: number): void {
  Atomics.sub(ctx.words, G.CHUNK_KIB_IN_USE, kib);
  Atomics.sub(ctx.words, workerWord(ctx.workerSlot, WK.CHUNK_KIB), kib);
}

export function countRetry(ctx: ThreadContext, accountSlot: number): void {
  Atomics.add(ctx.words, G.RETRIES, 1);
  Atomics.add(ctx.words, accountWord(accountSlot, A.RETRIES), 1);
}

/** Test hook: a worker (never the main thread) exits abruptly. */
export function crashForTest(ctx: ThreadContext): void {
  if (ctx.inWorker) process.exit(70);
}

export const MAX_SLICE_BYTES = 8 * 1024 * 1024;

/**
 * Bytes one turn may move for an account when transfers outnumber its request budget: what the
 * account moves in FAIR_ROUND_MS (its measured rate; FAIR_ROUND_KIB until known) divided among the
 * tickets outstanding, within [MIN_SLICE_BYTES, 8 MiB] — so every contender gets a turn about once
 * per round, and turns are as large as that allows (per-request overhead is what caps throughput).
 * Infinity when the account is not contended.
 */
export function fairSliceBytes(ctx: ThreadContext, accountSlot: number): number {
  const rate = ctx.gates.rateBytesPerSec(accountSlot);
  if (ctx.gates.contention(accountSlot) <= 0) return Infinity;
  const roundMs = Atomics.load(ctx.words, G.FAIR_ROUND_MS);
  // ×1.5: when per-request overhead caps the account's requests/s, the round time no longer depends on
  // the slice size, so slices must grow to find the bandwidth; they settle near 1.5 × FAIR_ROUND_MS.
  const round = rate > 0 ? (1.5 * rate * roundMs) / 1000 : Atomics.load(ctx.words, G.FAIR_ROUND_KIB) * 1024;
  const min = Atomics.load(ctx.words, G.MIN_SLICE_BYTES);
  const share = Math.floor(round / Math.max(1, ctx.gates.outstanding(accountSlot)));
  return Math.min(MAX_SLICE_BYTES, Math.max(min, share));
}

/** Idle buffers kept per size and thread (a reused buffer costs no allocation and no GC work). */
const SPARE_CHUNKS_PER_SIZE = 2;

/** An append buffer of exactly `bytes`, charged to the budget until giveChunk(). */
export function takeChunk(ctx: ThreadContext, bytes: number): Buffer {
  chargeChunk(ctx, bytes);
  return ctx.spareChunks.get(bytes)?.pop() ?? Buffer.allocUnsafeSlow(bytes);
}

export function giveChunk(ctx: ThreadContext, buf: Buffer): void {
  refundChunk(ctx, Math.ceil(buf.length / 1024));
  let list = ctx.spareChunks.get(buf.length);
  if (!list) ctx.spareChunks.set(buf.length, (list = []));
  if (list.length < SPARE_CHUNKS_PER_SIZE) list.push(buf);
}

/** Appends smaller than this cost the local box (and Dropbox) a copy of the partial 4 MiB block each. */
export const MIN_APPEND_BYTES = 1024 * 1024;

/**
 * Size of the next append of an upload whose session holds `offset` bytes: the fair slice, but
 * never under MIN_APPEND_BYTES (small appends collapse the backend's throughput: each rewrites the
 * partial block it continues — 64 KiB appends ran at 10 MB/s on the local box, 1 MiB at 210 MB/s)
 * nor over the memory budget's chunk size; a power of two that never crosses a 4 MiB block boundary,
 * so appends fill blocks exactly.
 */
export function appendBytes(ctx: ThreadContext, accountSlot: number, offset: number): number {
  const chunk = Atomics.load(ctx.words, G.UPLOAD_CHUNK_BYTES);
  const slice = fairSliceBytes(ctx, accountSlot);
  const want = floorPow2(Math.min(chunk, Math.max(MIN_APPEND_BYTES, slice)));
  const toBoundary = BLOCK_BYTES - (offset % BLOCK_BYTES);
  return Math.max(1, want <= BLOCK_BYTES ? Math.min(want, toBoundary) : want - (offset % BLOCK_BYTES));
}
