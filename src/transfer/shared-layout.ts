// Every offset of the engine's shared control block (one SharedArrayBuffer, Int32 words) lives here.
// Read and written by the main thread and every worker. Invariant: each word has the writer(s)
// named below; counters are free-running Int32 (compare with `(a - b) | 0`), never reset while in use.
//
//  word                      writer        meaning
//  ------------------------- ------------- -----------------------------------------------------------
//  GLOBAL (words 0..15)
//   0 MAGIC                  main (once)   0x44465450 "DFTP"
//   1 UPLOAD_CHUNK_BYTES     main          size of the next append chunk (from the memory budget)
//   2 RING_BYTES             main          ring size handed to the newest transfer (stats)
//   3 CHUNK_KIB_IN_USE       workers       retry/append buffers allocated now, KiB (sum of slots)
//   4 RETRIES                workers       requests retried (429, 5xx, reset, incorrect_offset)
//   5 THROTTLES              workers       429 responses seen
//   6 FAIR_ROUND_KIB         main (once)   bytes of a fair round before the account's rate is known, KiB
//   7 MIN_SLICE_BYTES        main (once)   smallest chunk a contended transfer asks for
//   8 FAIR_ROUND_MS          main (once)   target time for every contender of an account to get one turn
//   9 REFRESH_BELL           any (add)     bumped by a thread that needs a fresh access token (main waits on it)
//  ACCOUNTS (ACCOUNT_BASE + slot * ACCOUNT_WORDS), one slot per account, assigned by main
//   +0 LIMIT                 any (CAS)     current concurrent-request budget (AIMD)
//   +1 MAX_LIMIT             main          ceiling for additive increase
//   +2 NEXT_TICKET           any (add)     tickets ever taken; a request needs one
//   +3 RELEASED              any (add)     tickets ever given back; ticket t may run while t - RELEASED < LIMIT
//   +4 BELL                  any (add)     bumped on every release / limit change; gate loops wait on it
//   +5 PAUSED_UNTIL_MS       any (CAS max) no new grants before this time (ms since epochMs): retry_after
//   +6 LAST_DECREASE_TICKET  any (CAS)     a 429 on a ticket older than this does not halve LIMIT again
//   +7 SUCCESSES             any (add)     successes since the last increase (additive increase per window)
//   +8 THROTTLES             any (add)     429s for this account
//   +9 RETRIES               any (add)     retries for this account
//  +10 CEILING               any (CAS)     additive increase stops here until PROBE_MS after a 429
//  +11 LAST_THROTTLE_MS      any (store)   time of the last 429 (ms since epochMs)
//  +12 MOVED_KIB             any (add)     KiB moved by finished requests (each thread derives the rate)
//  +13 KNOWN_GOOD            any (CAS max) highest LIMIT that ran a whole contended window without a 429
//                                          (0 = unknown); a failed probe above it falls back to it
//  +14 LAST_DECREASE_MS      any (store)   time of the last multiplicative decrease (ms since epochMs)
//  +15 SATURATED_OK          any (add)     successes while the account had ≥ LIMIT requests outstanding
//  +16 RUNNING               any (CAS/sub) permits granted and not yet given back (ticketed and priority)
//  +17 PRIORITY_WAITING      any (add/sub) priority requests (commits) waiting: ticketed grants hold back
//  +18 NOISE                 any (add)     429s at a limit ≤ KNOWN_GOOD since its last clean window
//  WORKERS (WORKER_BASE + slot * WORKER_WORDS), one slot per live thread that runs tasks
//   +0 THREAD_ID             the thread    threadId + 1 while alive (0 = free); main frees after a crash
//   +1 CHUNK_KIB             the thread    this thread's share of CHUNK_KIB_IN_USE
//   +2 HEAP_USED_KIB         the thread    its V8 heap in use, published every few seconds (store)
//   +3 HEAP_TOTAL_KIB        the thread    its V8 heap committed (store)
//   +4 EXTERNAL_KIB          the thread    memory its isolate reports as external (store)
//   +5.. HELD[account]       the thread    per account slot: tickets taken and not yet released (low 16
//                                          bits) + RUNNING_UNIT × permits granted and not given back
//
//  REQUESTS (REQUEST_BASE + route * REQUEST_STATUSES.length + status), request-counts.ts
//   +n COUNT                 any (add)     Dropbox HTTP answers by engine route and status class
//
// A thread that dies leaves HELD and CHUNK_KIB behind; main adds HELD to RELEASED (so the queue moves
// past the dead tickets) and subtracts CHUNK_KIB, then frees the slot (reclaimWorkerSlot).

export const CONTROL_MAGIC = 0x44465450;

export const G = {
  MAGIC: 0,
  UPLOAD_CHUNK_BYTES: 1,
  RING_BYTES: 2,
  CHUNK_KIB_IN_USE: 3,
  RETRIES: 4,
  THROTTLES: 5,
  FAIR_ROUND_KIB: 6,
  MIN_SLICE_BYTES: 7,
  FAIR_ROUND_MS: 8,
  REFRESH_BELL: 9,
} as const;

export const A = {
  LIMIT: 0,
  MAX_LIMIT: 1,
  NEXT_TICKET: 2,
  RELEASED: 3,
  BELL: 4,
  PAUSED_UNTIL_MS: 5,
  LAST_DECREASE_TICKET: 6,
  SUCCESSES: 7,
  THROTTLES: 8,
  RETRIES: 9,
  CEILING: 10,
  LAST_THROTTLE_MS: 11,
  MOVED_KIB: 12,
  KNOWN_GOOD: 13,
  LAST_DECREASE_MS: 14,
  SATURATED_OK: 15,
  RUNNING: 16,
  PRIORITY_WAITING: 17,
  NOISE: 18,
} as const;

export const MAX_ACCOUNTS = 256;
/** MAX_ENGINE_WORKERS (256) + the main thread + replacements of crashed workers not yet reclaimed. */
export const MAX_WORKER_SLOTS = 320;
export const GLOBAL_WORDS = 16;
export const ACCOUNT_WORDS = 32;
export const ACCOUNT_BASE = GLOBAL_WORDS;
export const WORKER_BASE = ACCOUNT_BASE + MAX_ACCOUNTS * ACCOUNT_WORDS;
/**
 * A worker slot: THREAD_ID, CHUNK_KIB (append buffers taken), the thread's V8 heap as it last
 * published it (HEAP_USED_KIB, HEAP_TOTAL_KIB: committed, EXTERNAL_KIB; see thread-memory.ts), then
 * HELD, one word per account.
 */
export const WK = { THREAD_ID: 0, CHUNK_KIB: 1, HEAP_USED_KIB: 2, HEAP_TOTAL_KIB: 3, EXTERNAL_KIB: 4, HELD: 5 } as const;
export const WORKER_WORDS = WK.HELD + MAX_ACCOUNTS;
/** HELD's unit for a granted permit (tickets waiting or running count 1 each in the low 16 bits). */
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
export const CONTROL_WORDS = REQUEST_BASE + REQUEST_ROUTES.length * REQUEST_STATUSES.length;

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

export function createControl(init: { uploadChunkBytes: number; fairRoundBytes: number; minSliceBytes: number; fairRoundMs?: number }): ControlHandle {
  const sab = new SharedArrayBuffer(CONTROL_WORDS * 4);
  const w = new Int32Array(sab);
  Atomics.store(w, G.UPLOAD_CHUNK_BYTES, init.uploadChunkBytes);
  Atomics.store(w, G.FAIR_ROUND_KIB, Math.max(1, Math.floor(init.fairRoundBytes / 1024)));
  Atomics.store(w, G.MIN_SLICE_BYTES, init.minSliceBytes);
  Atomics.store(w, G.FAIR_ROUND_MS, init.fairRoundMs ?? 1000);
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
 * Main thread, after a thread died: gives back its tickets and buffer accounting, frees its slot.
 * Returns the number of tickets released.
 */
export function reclaimWorkerSlot(words: Int32Array, threadKey: number): number {
  let released = 0;
  for (let slot = 0; slot < MAX_WORKER_SLOTS; slot++) {
    if (Atomics.load(words, workerWord(slot, WK.THREAD_ID)) !== threadKey) continue;
    for (let acc = 0; acc < MAX_ACCOUNTS; acc++) {
      const held = Atomics.exchange(words, workerWord(slot, WK.HELD + acc), 0);
      if (held > 0) {
        const tickets = held % RUNNING_UNIT;
        Atomics.add(words, accountWord(acc, A.RELEASED), tickets);
        Atomics.sub(words, accountWord(acc, A.RUNNING), Math.floor(held / RUNNING_UNIT));
        Atomics.add(words, accountWord(acc, A.BELL), 1);
        Atomics.notify(words, accountWord(acc, A.BELL));
        released += tickets;
      }
    }
    const kib = Atomics.exchange(words, workerWord(slot, WK.CHUNK_KIB), 0);
    Atomics.sub(words, G.CHUNK_KIB_IN_USE, kib);
    for (const field of [WK.HEAP_USED_KIB, WK.HEAP_TOTAL_KIB, WK.EXTERNAL_KIB]) Atomics.store(words, workerWord(slot, field), 0);
    Atomics.store(words, workerWord(slot, WK.THREAD_ID), 0);
  }
  return released;
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
