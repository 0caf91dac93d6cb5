// Admission of the box's file reads and writes into libuv's thread pool: at most IO_IN_POOL_MAX at
// once, the rest wait here in arrival order; a read (or a block file's open or close) that would be
// admitted at once runs inline instead (readWithIoSlot, fileOpWithIoSlot). Runs in the local box
// child's main thread.
// Invariants: every admitted operation leaves exactly once; waiters are admitted first come, first
// served; an inline read never overtakes a waiting operation. Why: libuv's pool is one FIFO shared
// by downloads and uploads, and each transfer has at most one operation waiting, so one FIFO here
// for reads and writes alike is a round robin over the transfers (a chunk each per turn) while the
// pool's own queue stays short. Reads that went straight to the pool (one per download, a thousand
// deep) left the writes, admitted a few at a time, behind all of them: 2,000 x 16 MiB storm, uploads
// stalled 26 s while downloads ran (issue 15).

const IO_IN_POOL_MAX = 8;
/** An inline read this slow was served by the disk, not the page cache. */
const SLOW_INLINE_MS = 20;
/** After a slow inline read, reads go through the pool for this long. */
const POOL_AFTER_SLOW_MS = 2000;
let poolUntil = 0;
let inlineReads = 0;
let inlineFileOps = 0;
let inPool = 0;
const waiting: (() => void)[] = [];
/** A download's first open and read: served before `waiting` (see inlineOrPool's `first`). */
const waitingFirst: (() => void)[] = [];

function admit(first: boolean): Promise<void> | undefined {
  if (inPool < IO_IN_POOL_MAX) {
    inPool++;
    return undefined;
  }
  return new Promise((resolve) => (first ? waitingFirst : waiting).push(resolve));
}

function leave(): void {
  const next = waitingFirst.shift() ?? waiting.shift();
  if (next) next(); // the slot passes on
  else inPool--;
}

/**
 * Runs `op` (file I/O on libuv's pool) once a slot is free; the slot is held until it settles.
 * `first`: the first operations of a download (its first block's open and first read), which wait
 * in a queue of their own that goes before the round robin: a download's first byte then waits for
 * the slots, not for a turn behind every transfer running (storm of 200 x 10 MiB, dropftp: the box's
 * answer to a files/download took 314 ms at the median and 584 at worst, a third of the RETRs'
 * time to first byte). At most two such operations per download, so running transfers lose little.
 */
export async function withIoSlot<T>(op: () => Promise<T>, first = false): Promise<T> {
  const wait = admit(first);
  if (wait) await wait;
  try {
    return await op();
  } finally {
    leave();
  }
}

/**
 * Runs a read inline (`sync`) when it would overtake no one: nothing waits for the pool, a slot is
 * free, and no inline read was slow lately; else as withIoSlot(`op`). Inline it costs no hand-off to
 * a pool thread and no wake-up of the event loop: one download, 0.55 -> 0.41 box CPU-s/GiB (3
 * alternating pairs, bench:localbox). Only when uncontended, because the pool's FIFO is what keeps
 * transfers fair once the box is saturated: with every read inline, storm 200 x 10 MiB over HTTP
 * took 14 % less box CPU, but downloads took the lion's share (RETR 648 MB/s, STOR 204) and the
 * storm of 2,000 fell from Jain 0.98 to 0.74-0.88 with stalls of 29-45 s (every write inline as
 * well: likewise). A read slower than SLOW_INLINE_MS (a cold disk) sends reads to the pool for
 * POOL_AFTER_SLOW_MS. Writes always go to the pool: a lone upload's page-cache copies there run
 * beside the main thread's hashing (inline, it lost ~20 % of its throughput).
 */
export async function readWithIoSlot<T>(sync: () => T, op: () => Promise<T>, first = false): Promise<T> {
  return inlineOrPool(sync, op, true, first);
}

/**
 * Opening and closing a block file, as readWithIoSlot: inline when that overtakes no one (a small
 * download is one open, one read and one close: two hand-offs to the pool and back were ~0.1 ms of
 * its latency each), else through the slots.
 */
export async function fileOpWithIoSlot<T>(sync: () => T, op: () => Promise<T>, first = false): Promise<T> {
  return inlineOrPool(sync, op, false, first);
}

async function inlineOrPool<T>(sync: () => T, op: () => Promise<T>, isRead: boolean, first: boolean): Promise<T> {
  if (waiting.length === 0 && waitingFirst.length === 0 && inPool < IO_IN_POOL_MAX && inlineReadsAllowed()) {
    if (isRead) inlineReads++;
    else inlineFileOps++;
    const t0 = performance.now();
    try {
      return sync();
    } finally {
      const t1 = performance.now();
      if (t1 - t0 > SLOW_INLINE_MS) sendReadsToPool(POOL_AFTER_SLOW_MS, t1);
    }
  }
  return withIoSlot(op, first);
}

/** Whether an uncontended read may run inline now (no inline read was slow lately). */
export function inlineReadsAllowed(): boolean {
  return performance.now() >= poolUntil;
}

/** Reads go through the pool for the next `ms` (0: inline again when uncontended). */
export function sendReadsToPool(ms: number, now = performance.now()): void {
  poolUntil = now + ms;
}

/** Reads run inline so far (tests). */
export function inlineReadCount(): number {
  return inlineReads;
}

/** Opens and closes run inline so far (tests). */
export function inlineFileOpCount(): number {
  return inlineFileOps;
}

/** Operations admitted now and waiting (tests). */
export function ioSlotState(): { inPool: number; waiting: number } {
  return { inPool, waiting: waiting.length + waitingFirst.length };
}
