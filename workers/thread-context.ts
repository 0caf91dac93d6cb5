// What one thread needs to run transfers: its slot in the control block, its view of the accounts'
// call-rate pacers and its keep-alive HTTP agent. Runs on a piscina worker (or the main thread in
// onlyMainThread mode). Invariants: one context per thread, created once; upload retention buffers
// and a paused download's rest of a piece go through takeChunk / giveChunk: slots of the thread's
// slabs (chunk-slabs.ts), charged while taken, so a dead thread's share can be reclaimed from its
// slot; idle ones, up to 16 MiB per thread and beyond that while the memory budget has room, are
// reused until the thread stops returning them.

import { isMainThread, threadId } from 'node:worker_threads';
import type { Agent } from 'undici';
import { SharedPacer } from '../src/dropbox/pacer.ts';
import { createAgent } from '../src/transfer/dropbox-http.ts';
import { DirectPool } from '../src/transfer/direct-call.ts';
import { ChunkSlabs } from './chunk-slabs.ts';
import { startPublishingThreadMemory } from './thread-memory.ts';
import { UploadFlow } from './upload-lead.ts';
import { G, WK, claimWorkerSlot, workerWord } from '../src/transfer/shared-layout.ts';
import type { ControlHandle } from '../src/transfer/shared-layout.ts';

export interface ThreadContext {
  readonly control: ControlHandle;
  readonly words: Int32Array;
  readonly pacer: SharedPacer;
  readonly agent: Agent;
  /** Connections of the download calls (direct-call.ts: bodies read straight into ring memory). */
  readonly direct: DirectPool;
  readonly workerSlot: number;
  /** The key in this thread's slot (spool files carry it, so main can remove a dead thread's). */
  readonly threadKey: number;
  readonly inWorker: boolean;
  /** Memory of the retention and scratch buffers (takeChunk / giveChunk). */
  readonly slabs: ChunkSlabs;
  /** The timer that lets wholly idle slabs go once the thread stops reusing them. */
  spareTrim: ReturnType<typeof setTimeout> | null;
  /** This thread's upload send rate and how far ahead of it an upload's client may be (upload-lead.ts). */
  readonly uploadFlow: UploadFlow;
  /** Bytes of spool traffic not yet added to the control block's KiB counters (countSpoolIo). */
  readonly spoolIoRest: Map<number, number>;
}

/** The key a thread writes in its slot; main reclaims a dead worker by it. */
export function threadKey(id: number = threadId): number {
  return id + 1;
}

export function createThreadContext(control: ControlHandle): ThreadContext {
  const words = new Int32Array(control.sab);
  const key = threadKey();
  const workerSlot = claimWorkerSlot(words, key);
  if (!isMainThread) startPublishingThreadMemory(words, workerSlot);
  return {
    control,
    words,
    pacer: new SharedPacer(control, workerSlot),
    agent: createAgent(words),
    direct: new DirectPool(words),
    workerSlot,
    threadKey: key,
    inWorker: !isMainThread,
    slabs: new ChunkSlabs(),
    spareTrim: null,
    uploadFlow: new UploadFlow(undefined, () => Atomics.load(words, G.LEAD_MS) / 1000),
    spoolIoRest: new Map(),
  };
}

/** Adds `bytes` of spool traffic to a KiB counter of the control block (G.SPOOLED_KIB, SPILLED_KIB, READ_BACK_KIB). */
export function countSpoolIo(ctx: ThreadContext, word: number, bytes: number): void {
  const total = (ctx.spoolIoRest.get(word) ?? 0) + bytes;
  const kib = Math.floor(total / 1024);
  ctx.spoolIoRest.set(word, total - kib * 1024);
  if (kib > 0) Atomics.add(ctx.words, word, kib);
}

/** Test hook: a worker (never the main thread) exits abruptly. */
export function crashForTest(ctx: ThreadContext): void {
  if (ctx.inWorker) process.exit(70);
}

/**
 * Idle buffer memory one thread keeps for reuse whatever the budget says, bytes. One upload's
 * retention of 8 MiB cycles through slots twice this size (engine.appendMemoryBytes, 64 MiB by
 * default, is the most one upload may hold: more than this is kept only while the budget has room).
 */
const SPARE_CHUNK_BYTES = 16 * 1024 * 1024;
/** Wholly idle slabs unused this long are let go, so an idle gateway gives their memory back. */
const SPARE_IDLE_MS = 2000;

const kibOf = (bytes: number): number => Math.ceil(bytes / 1024);

/**
 * Whether a slab that no buffer uses any more may stay, with the idle memory of this thread as it is
 * now: within the thread's own SPARE_CHUNK_BYTES, or while the memory budget has room for the rings,
 * the buffers in use and every thread's idle memory. Many uploads at once retain more than the
 * 16 MiB a thread recycles: 64 engine uploads of 4 MiB on two workers, warm, took 3.0-3.1 CPU-s/GiB
 * with the 16 MiB cap and 2.0-2.4 with spares kept while the budget has room (a script timing rounds
 * of them, single runs on the 2-core machine).
 */
function mayKeepIdle(ctx: ThreadContext): boolean {
  if (ctx.slabs.idleBytes <= SPARE_CHUNK_BYTES) return true;
  const w = ctx.words;
  const held = Atomics.load(w, G.RING_KIB_IN_USE) + Atomics.load(w, G.CHUNK_KIB_IN_USE) + Atomics.load(w, G.SPARE_KIB);
  return held <= Atomics.load(w, G.BUDGET_KIB);
}

/** Adds `bytes` (negative: removes) to the idle memory this thread reports. */
function countSpare(ctx: ThreadContext, bytes: number): void {
  const kib = (bytes < 0 ? -1 : 1) * kibOf(Math.abs(bytes));
  Atomics.add(ctx.words, G.SPARE_KIB, kib);
  Atomics.add(ctx.words, workerWord(ctx.workerSlot, WK.SPARE_KIB), kib);
}

function trimSpares(ctx: ThreadContext): void {
  ctx.spareTrim = null;
  ctx.slabs.trimEmpty(() => false, (idle) => countSpare(ctx, -idle));
}

function charge(ctx: ThreadContext, bytes: number): void {
  const kib = kibOf(bytes);
  Atomics.add(ctx.words, G.CHUNK_KIB_IN_USE, kib);
  Atomics.add(ctx.words, workerWord(ctx.workerSlot, WK.CHUNK_KIB), kib);
}

function uncharge(ctx: ThreadContext, bytes: number): void {
  const kib = kibOf(bytes);
  Atomics.sub(ctx.words, G.CHUNK_KIB_IN_USE, kib);
  Atomics.sub(ctx.words, workerWord(ctx.workerSlot, WK.CHUNK_KIB), kib);
}

/**
 * A buffer of exactly `bytes` (a slot of the thread's slabs, chunk-slabs.ts), charged to the memory
 * budget at its slot's size until giveChunk() or dropChunk().
 */
export function takeChunk(ctx: ThreadContext, bytes: number): Buffer {
  const taken = ctx.slabs.take(bytes);
  charge(ctx, taken.slotBytes);
  if (!taken.fresh) countSpare(ctx, -taken.slotBytes);
  return taken.buf;
}

/** Whether takeChunk(ctx, bytes) would hand out memory touched before rather than new memory. */
export function hasSpareChunk(ctx: ThreadContext, bytes: number): boolean {
  return ctx.slabs.hasIdle(bytes);
}

/**
 * Ends a buffer's charge and returns its slot to the slabs (idle memory when `reuse`, lost when not);
 * a slab this leaves unused stays only while mayKeepIdle says so. False for a buffer not from them.
 */
function returnChunk(ctx: ThreadContext, buf: Buffer, reuse: boolean): boolean {
  const { slotBytes, emptied } = ctx.slabs.give(buf, reuse);
  if (slotBytes === 0) return false;
  uncharge(ctx, slotBytes);
  if (reuse) countSpare(ctx, slotBytes);
  if (emptied) ctx.slabs.trimEmpty(() => mayKeepIdle(ctx), (idle) => countSpare(ctx, -idle));
  return true;
}

/** Stops charging a buffer from takeChunk() without reusing it: something else may still read it. */
export function dropChunk(ctx: ThreadContext, buf: Buffer): void {
  returnChunk(ctx, buf, false);
}

/** Gives a buffer from takeChunk() back for reuse (no one reads it any more). */
export function giveChunk(ctx: ThreadContext, buf: Buffer): void {
  if (!returnChunk(ctx, buf, true)) return;
  // One timer per thread, pushed back by each return: idle slabs go once returns stop.
  if (ctx.spareTrim) ctx.spareTrim.refresh();
  else (ctx.spareTrim = setTimeout(trimSpares, SPARE_IDLE_MS, ctx)).unref();
}

/** Reserves `kib` of the shared spool allowance (CAS against SPOOL_LIMIT_KIB); false when full. */
export function reserveSpool(ctx: ThreadContext, kib: number): boolean {
  const w = ctx.words;
  const limit = Atomics.load(w, G.SPOOL_LIMIT_KIB);
  for (;;) {
    const used = Atomics.load(w, G.SPOOL_KIB_IN_USE);
    if (used + kib > limit) return false;
    if (Atomics.compareExchange(w, G.SPOOL_KIB_IN_USE, used, used + kib) === used) {
      Atomics.add(w, workerWord(ctx.workerSlot, WK.SPOOL_KIB), kib);
      return true;
    }
  }
}

export function releaseSpool(ctx: ThreadContext, kib: number): void {
  Atomics.sub(ctx.words, G.SPOOL_KIB_IN_USE, kib);
  Atomics.sub(ctx.words, workerWord(ctx.workerSlot, WK.SPOOL_KIB), kib);
}
