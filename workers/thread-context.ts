// What one thread needs to run transfers: its slot in the control block, its view of the accounts'
// call-rate pacers and its keep-alive HTTP agent. Runs on a piscina worker (or the main thread in
// onlyMainThread mode). Invariants: one context per thread, created once; upload retention buffers go
// through takeChunk / giveChunk (charged while taken, so a dead thread's share can be reclaimed from
// its slot; a few idle ones are kept for reuse instead of being left to the GC).

import { isMainThread, threadId } from 'node:worker_threads';
import type { Agent } from 'undici';
import { SharedPacer } from '../src/dropbox/pacer.ts';
import { createAgent } from '../src/transfer/dropbox-http.ts';
import { startPublishingThreadMemory } from './thread-memory.ts';
import { G, WK, claimWorkerSlot, workerWord } from '../src/transfer/shared-layout.ts';
import type { ControlHandle } from '../src/transfer/shared-layout.ts';

export interface ThreadContext {
  readonly control: ControlHandle;
  readonly words: Int32Array;
  readonly pacer: SharedPacer;
  readonly agent: Agent;
  readonly workerSlot: number;
  /** The key in this thread's slot (spool files carry it, so main can remove a dead thread's). */
  readonly threadKey: number;
  readonly inWorker: boolean;
  /** Idle retention buffers by size, for reuse. */
  readonly spareChunks: Map<number, Buffer[]>;
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
    workerSlot,
    threadKey: key,
    inWorker: !isMainThread,
    spareChunks: new Map(),
  };
}

/** Test hook: a worker (never the main thread) exits abruptly. */
export function crashForTest(ctx: ThreadContext): void {
  if (ctx.inWorker) process.exit(70);
}

/** Idle buffers kept per size and thread (a reused buffer costs no allocation and no GC work). */
const SPARE_CHUNKS_PER_SIZE = 4;

/** A retention buffer of exactly `bytes`, charged to the memory budget until giveChunk(). */
export function takeChunk(ctx: ThreadContext, bytes: number): Buffer {
  const kib = Math.ceil(bytes / 1024);
  Atomics.add(ctx.words, G.CHUNK_KIB_IN_USE, kib);
  Atomics.add(ctx.words, workerWord(ctx.workerSlot, WK.CHUNK_KIB), kib);
  return ctx.spareChunks.get(bytes)?.pop() ?? Buffer.allocUnsafeSlow(bytes);
}

export function giveChunk(ctx: ThreadContext, buf: Buffer): void {
  const kib = Math.ceil(buf.length / 1024);
  Atomics.sub(ctx.words, G.CHUNK_KIB_IN_USE, kib);
  Atomics.sub(ctx.words, workerWord(ctx.workerSlot, WK.CHUNK_KIB), kib);
  let list = ctx.spareChunks.get(buf.length);
  if (!list) ctx.spareChunks.set(buf.length, (list = []));
  if (list.length < SPARE_CHUNKS_PER_SIZE) list.push(buf);
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
