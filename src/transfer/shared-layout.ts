// Every offset of the engine's shared control block (one SharedArrayBuffer: Int32 words, then a few
// 64-bit words) lives here. Read and written by the main thread and every worker. Invariant: each word
// has the writer(s) named below; counters are free-running Int32 (compare with `(a - b) | 0`), never
// reset while in use.
//
//  word                      writer        meaning
//  ------------------------- ------------- -----------------------------------------------------------
//  GLOBAL (words 0..19)
//   0 MAGIC                  main (once)   0x44465450 "DFTP"
//   1 UPLOAD_MEMORY_BYTES    main          bytes an upload may retain in memory (from the memory budget)
//   2 RING_BYTES             main          ring size handed to the newest transfer (stats)
//   3 CHUNK_KIB_IN_USE       workers       upload retention buffers allocated now, KiB (sum of slots)
//   4 RETRIES                workers       calls retried (429, 5xx, reset, incorrect_offset)
//   5 THROTTLES              any           too_many_requests answers seen (all accounts)
//   6 SPOOL_KIB_IN_USE       workers (CAS) spool file bytes reserved now, KiB (sum of slots)
//   7 SPOOL_LIMIT_KIB        main (once)   engine.spoolBytes, KiB
//   8 MAX_RETRY_AFTER_MS     main (once)   engine.maxRetryAfterSec × 1000: longer Retry-Afters are capped
//   9 REFRESH_BELL           any (add)     bumped by a thread that needs a fresh access token, capped a
//                                          Retry-After or had a spill refused (main waits on it, and logs)
//  10 MAX_RATE_MILLI         main (once)   engine.maxCallsPerSecond × 1000 (0: no fixed ceiling)
//  11 UPLOADS_ALIVE          main          uploads admitted and not yet released (the spool's fair share)
//  12 BUDGET_KIB             main (once)   engine.memoryBudgetBytes, KiB
//  13 RING_KIB_IN_USE        main          ring bytes held (live transfers' and idle pooled rings), KiB
//  14 SPARE_KIB              workers       idle retention buffers kept for reuse, KiB
//  15 LEAD_MS                main (once)   engine.uploadLeadSec × 1000
//  16 SPOOLED_KIB            workers (add) upload bytes written to the spool before a call sent them, KiB
//  17 SPILLED_KIB            workers (add) upload bytes moved to the spool after a call sent them, KiB
//  18 READ_BACK_KIB          workers (add) spool bytes read back into a call's body, KiB
//                                          (16-18: free-running, in whole KiB as each thread sums them)
//  19 SPILL_FAILURES         workers (add) spills the spool's disk refused (each upload went on in memory)
//  ACCOUNTS (ACCOUNT_BASE + slot * ACCOUNT_WORDS), one slot per account, assigned by main; the call-rate
//  pacer (src/dropbox/pacer.ts) — a FIFO of tickets granted by a token bucket (GCRA on TAT_US below)
//   +0 NEXT_TICKET           any (add)     tickets ever taken; a call start needs one
//   +1 GRANTED               any (add)     tickets ever granted; ticket t may start once (GRANTED - t) > 0
//   +2 BELL                  any (add)     bumped on every grant, report and window change; waiters wait on it
//   +3 RATE_MILLI            any (CAS)     current call rate, calls/s × 1000 (AIMD)
//   +4 SSTHRESH_MILLI        any (store)   slow start ends here (0: no 429 seen yet: slow start)
//   +5 PAUSED_UNTIL_MS       any (CAS max) no call starts before this time (ms since epochMs): Retry-After
//   +6 LAST_DECREASE_MS      any (CAS)     time of the last multiplicative decrease (ms since epochMs)
//   +7 LAST_LIMITED_MS       any (store)   last time a waiter had to wait for a token (the rate was the limit)
//   +8 CALLS                 any (add)     calls started
//   +9 THROTTLES             any (add)     too_many_requests answers
//  +10 LOCK_RETRIES          any (add)     too_many_write_operations answers (the call retried)
//  +11 RETRIES               any (add)     calls retried for any reason
//  +12 IN_FLIGHT             any (add/sub) calls started and not yet reported
//  +13 SKIP                  main (add)    tickets of dead threads: granted without a token (any: sub)
//  +14 RA_CAPPED             any (add)     Retry-After values out of [0, MAX_RETRY_AFTER_MS] (capped)
//  +15 RA_LAST_RAW_MS        any (store)   the last such value as received, ms (-1: not a number)
//  +16 CREDIT_MILLI          any (add)     additive-increase credit gathered from successes
//  +17 WAITED_MS             any (add)     ms the started calls waited in the queue, summed (wraps at 2^32: read >>> 0)
//  WORKERS (WORKER_BASE + slot * WORKER_WORDS), one slot per live thread that runs tasks
//   +0 THREAD_ID             the thread    threadId + 1 while alive (0 = free); main frees after a crash
//   +1 CHUNK_KIB             the thread    this thread's share of CHUNK_KIB_IN_USE
//   +2 HEAP_USED_KIB         the thread    its V8 heap in use, published every few seconds (store)
//   +3 HEAP_TOTAL_KIB        the thread    its V8 heap committed (store)
//   +4 EXTERNAL_KIB          the thread    memory its isolate reports as external (store)
//   +5 SPOOL_KIB             the thread    this thread's share of SPOOL_KIB_IN_USE
//   +6.. HELD[account]       the thread    per account slot: tickets taken and not yet granted (low 16
//                                          bits) + RUNNING_UNIT × calls started and not yet reported
//
//  REQUESTS (REQUEST_BASE + route * REQUEST_STATUSES.length + status), request-counts.ts
//   +n COUNT                 any (add)     Dropbox HTTP answers by engine route and status class
//  TAT (64-bit words at TAT_BASE64 of a BigInt64Array over the same buffer), one per account
//   +slot TAT_US             any (CAS)     the bucket's theoretical arrival time, µs since epochMs (GCRA)
//
// A thread that dies leaves HELD, CHUNK_KIB and SPOOL_KIB behind; main adds its waiting tickets to
// SKIP (so the queue moves past them), subtracts its calls from IN_FLIGHT and its buffers from the
// totals, then frees the slot (reclaimWorkerSlot); its spool files are removed by name (spool.ts).

export const CONTROL_MAGIC = 0x44465450;

export const G = {
  MAGIC: 0,
  UPLOAD_MEMORY_BYTES: 1,
  RING_BYTES: 2,
  CHUNK_KIB_IN_USE: 3,
  RETRIES: 4,
  THROTTLES: 5,
  SPOOL_KIB_IN_USE: 6,
  SPOOL_LIMIT_KIB: 7,
  MAX_RETRY_AFTER_MS: 8,
  REFRESH_BELL: 9,
  MAX_RATE_MILLI: 10,
  UPLOADS_ALIVE: 11,
  /** The memory budget (engine.memoryBudgetBytes), KiB; set by the main thread's MemoryBudget. */
  BUDGET_KIB: 12,
  /** Ring bytes of live transfers, KiB (main thread, at each admit and release). */
  RING_KIB_IN_USE: 13,
  /** Idle retention buffers kept for reuse by all threads, KiB (thread-context.ts). */
  SPARE_KIB: 14,
  /** engine.uploadLeadSec in ms (workers/upload-lead.ts). */
  LEAD_MS: 15,
  /** Spool traffic of uploads (workers/retention.ts), KiB, free-running: written before sending, */
  SPOOLED_KIB: 16,
  /** moved to the spool after a call sent it (memory made room for bytes not yet sent), */
  SPILLED_KIB: 17,
  /** read back into a call's body. */
  READ_BACK_KIB: 18,
  /** Spills that could not be written (the upload went on in memory only, retention.ts). */
  SPILL_FAILURES: 19,
} as const;

export const A = {
  NEXT_TICKET: 0,
  GRANTED: 1,
  BELL: 2,
  RATE_MILLI: 3,
  SSTHRESH_MILLI: 4,
  PAUSED_UNTIL_MS: 5,
  LAST_DECREASE_MS: 6,
  LAST_LIMITED_MS: 7,
  CALLS: 8,
  THROTTLES: 9,
  LOCK_RETRIES: 10,
  RETRIES: 11,
  IN_FLIGHT: 12,
  SKIP: 13,
  RA_CAPPED: 14,
  RA_LAST_RAW_MS: 15,
  CREDIT_MILLI: 16,
  WAITED_MS: 17,
} as const;

export const MAX_ACCOUNTS = 256;
/** MAX_ENGINE_WORKERS (256) + the main thread + replacements of crashed workers not yet reclaimed. */
export const MAX_WORKER_SLOTS = 320;
export const GLOBAL_WORDS = 20;
export const ACCOUNT_WORDS = 32;
export const ACCOUNT_BASE = GLOBAL_WORDS;
export const WORKER_BASE = ACCOUNT_BASE + MAX_ACCOUNTS * ACCOUNT_WORDS;
/**
 * A worker slot: THREAD_ID, CHUNK_KIB (retention buffers taken), the thread's V8 heap as it last
 * published it (HEAP_USED_KIB, HEAP_TOTAL_KIB: committed, EXTERNAL_KIB; see thread-memory.ts),
 * SPOOL_KIB, SPARE_KIB (idle retention buffers it keeps), then HELD, one word per account.
 */
export const WK = { THREAD_ID: 0, CHUNK_KIB: 1, HEAP_USED_KIB: 2, HEAP_TOTAL_KIB: 3, EXTERNAL_KIB: 4, SPOOL_KIB: 5, SPARE_KIB: 6, HELD: 7 } as const;
export const WORKER_WORDS = WK.HELD + MAX_ACCOUNTS;
/** HELD's unit for a started call (tickets waiting count 1 each in the low 16 bits). */
export const RUNNING_UNIT = 0x10000;
/** The engine's Dropbox routes, counted by request-counts.ts ('other': any route not listed). */
export const REQUEST_ROUTES = [
  'files/download',
  'files/get_metadata',
  'files/upload_session/start',
  'files/upload_session/append_v2',
  'files/upload_session/finish_batch_v2',
  'files/upload_session/finish_batch/check',
  'other',
] as const;
/** HTTP status classes of the request counters; '0': no answer (network error, timeout). */
export const REQUEST_STATUSES = ['200', '206', '400', '401', '409', '416', '429', '5xx', 'other', '0'] as const;
export const REQUEST_BASE = WORKER_BASE + MAX_WORKER_SLOTS * WORKER_WORDS;
const INT32_WORDS = REQUEST_BASE + REQUEST_ROUTES.length * REQUEST_STATUSES.length;
/** First 64-bit word (index into a BigInt64Array over the block) of the per-account TAT_US words. */
export const TAT_BASE64 = Math.ceil(INT32_WORDS / 2);
export const CONTROL_BYTES = (TAT_BASE64 + MAX_ACCOUNTS) * 8;

/** What every thread receives: the block itself and the shared clock origin. */
export interface ControlHandle {
  readonly sab: SharedArrayBuffer;
  /** Date.now() at engine start; PAUSED_UNTIL_MS counts from it (fits an Int32 for 24 days). */
  readonly epochMs: number;
}

export function accountWord(slot: number, field: number): number {
  return ACCOUNT_BASE + slot * ACCOUNT_WORDS + field;
}

export function workerWord(slot: number, field: number): number {
  return WORKER_BASE + slot * WORKER_WORDS + field;
}

export interface ControlInit {
  /** Bytes an upload may retain in memory until the budget says otherwise. */
  uploadMemoryBytes: number;
  spoolBytes?: number;
  maxRetryAfterMs?: number;
  /** Calls per second ceiling of every account (0 or absent: none). */
  maxCallsPerSecond?: number;
  /** engine.uploadLeadSec (absent: upload-lead.ts's LEAD_SECONDS). */
  uploadLeadSec?: number;
}

export function createControl(init: ControlInit): ControlHandle {
  const sab = new SharedArrayBuffer(CONTROL_BYTES);
  const w = new Int32Array(sab);
  Atomics.store(w, G.UPLOAD_MEMORY_BYTES, init.uploadMemoryBytes);
  Atomics.store(w, G.SPOOL_LIMIT_KIB, Math.min(0x7fffffff, Math.floor((init.spoolBytes ?? 0) / 1024)));
  Atomics.store(w, G.MAX_RETRY_AFTER_MS, Math.min(0x7fffffff, init.maxRetryAfterMs ?? 300_000));
  Atomics.store(w, G.MAX_RATE_MILLI, Math.min(0x7fffffff, Math.round((init.maxCallsPerSecond ?? 0) * 1000)));
  if (init.uploadLeadSec !== undefined) Atomics.store(w, G.LEAD_MS, Math.min(0x7fffffff, Math.round(init.uploadLeadSec * 1000)));
  Atomics.store(w, G.MAGIC, CONTROL_MAGIC);
  return { sab, epochMs: Date.now() };
}

/** Claims a free worker slot for the calling thread (CAS on THREAD_ID); returns the slot. */
export function claimWorkerSlot(words: Int32Array, threadKey: number): number {
  for (let slot = 0; slot < MAX_WORKER_SLOTS; slot++) {
    if (Atomics.compareExchange(words, workerWord(slot, WK.THREAD_ID), 0, threadKey) === 0) return slot;
  }
  throw new Error(`no free worker slot in the control block (max ${MAX_WORKER_SLOTS} threads)`);
}

/**
 * Main thread, after a thread died: its waiting tickets are granted without a token (SKIP), its
 * calls in flight and its buffer and spool accounting are given back, its slot freed. Returns the
 * number of tickets skipped.
 */
export function reclaimWorkerSlot(words: Int32Array, threadKey: number): number {
  let skipped = 0;
  for (let slot = 0; slot < MAX_WORKER_SLOTS; slot++) {
    if (Atomics.load(words, workerWord(slot, WK.THREAD_ID)) !== threadKey) continue;
    for (let acc = 0; acc < MAX_ACCOUNTS; acc++) {
      const held = Atomics.exchange(words, workerWord(slot, WK.HELD + acc), 0);
      if (held > 0) {
        const tickets = held % RUNNING_UNIT;
        Atomics.add(words, accountWord(acc, A.SKIP), tickets);
        Atomics.sub(words, accountWord(acc, A.IN_FLIGHT), Math.floor(held / RUNNING_UNIT));
        Atomics.add(words, accountWord(acc, A.BELL), 1);
        Atomics.notify(words, accountWord(acc, A.BELL));
        skipped += tickets;
      }
    }
    const kib = Atomics.exchange(words, workerWord(slot, WK.CHUNK_KIB), 0);
    Atomics.sub(words, G.CHUNK_KIB_IN_USE, kib);
    const spoolKib = Atomics.exchange(words, workerWord(slot, WK.SPOOL_KIB), 0);
    Atomics.sub(words, G.SPOOL_KIB_IN_USE, spoolKib);
    const spareKib = Atomics.exchange(words, workerWord(slot, WK.SPARE_KIB), 0);
    Atomics.sub(words, G.SPARE_KIB, spareKib);
    for (const field of [WK.HEAP_USED_KIB, WK.HEAP_TOTAL_KIB, WK.EXTERNAL_KIB]) Atomics.store(words, workerWord(slot, field), 0);
    Atomics.store(words, workerWord(slot, WK.THREAD_ID), 0);
  }
  return skipped;
}

/** The thread keys of every claimed worker slot. */
export function workerSlotKeys(words: Int32Array): number[] {
  const keys: number[] = [];
  for (let slot = 0; slot < MAX_WORKER_SLOTS; slot++) {
    const key = Atomics.load(words, workerWord(slot, WK.THREAD_ID));
    if (key !== 0) keys.push(key);
  }
  return keys;
}

/** Every claimed slot's published V8 heap (slots that have not published yet are left out). */
export function readWorkerHeaps(words: Int32Array): Array<{ threadKey: number; heapUsedBytes: number; heapTotalBytes: number; externalBytes: number }> {
  const heaps = [];
  for (let slot = 0; slot < MAX_WORKER_SLOTS; slot++) {
    const threadKey = Atomics.load(words, workerWord(slot, WK.THREAD_ID));
    const totalKib = Atomics.load(words, workerWord(slot, WK.HEAP_TOTAL_KIB));
    if (threadKey === 0 || totalKib === 0) continue;
    heaps.push({
      threadKey,
      heapUsedBytes: Atomics.load(words, workerWord(slot, WK.HEAP_USED_KIB)) * 1024,
      heapTotalBytes: totalKib * 1024,
      externalBytes: Atomics.load(words, workerWord(slot, WK.EXTERNAL_KIB)) * 1024,
    });
  }
  return heaps;
}
