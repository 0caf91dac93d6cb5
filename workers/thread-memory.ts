// A transfer thread's V8 heap, published in its worker slot of the control block so that the main
// thread can report every isolate's memory (engine stats, /metrics, the soak report). Runs on each
// thread that runs tasks. Invariants: one unref'd timer per thread (never keeps a thread alive); the
// values are KiB snapshots, stored, not accumulated; a slot's words are cleared when it is reclaimed.

import { getHeapStatistics } from 'node:v8';
import { WK, workerWord } from '../src/transfer/shared-layout.ts';

export const HEAP_PUBLISH_MS = 2000;

const kib = (bytes: number): number => Math.min(0x7fffffff, Math.round(bytes / 1024));

/** Writes this thread's heap figures into its slot now. */
export function publishThreadMemory(words: Int32Array, workerSlot: number): void {
  const heap = getHeapStatistics();
  Atomics.store(words, workerWord(workerSlot, WK.HEAP_USED_KIB), kib(heap.used_heap_size));
  Atomics.store(words, workerWord(workerSlot, WK.HEAP_TOTAL_KIB), kib(heap.total_heap_size));
  Atomics.store(words, workerWord(workerSlot, WK.EXTERNAL_KIB), kib(heap.external_memory));
}

/** Publishes now and every HEAP_PUBLISH_MS until the thread ends. */
export function startPublishingThreadMemory(words: Int32Array, workerSlot: number): void {
  publishThreadMemory(words, workerSlot);
  setInterval(() => publishThreadMemory(words, workerSlot), HEAP_PUBLISH_MS).unref();
}
