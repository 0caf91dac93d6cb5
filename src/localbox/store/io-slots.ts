// Admission of the box's file reads and writes into libuv's thread pool: at most IO_IN_POOL_MAX at
// once, the rest wait here in arrival order. Runs in the local box child's main thread.
// Invariants: every admitted operation leaves exactly once; waiters are admitted first come, first
// served. Why: libuv's pool is one FIFO shared by downloads and uploads, and each transfer has at
// most one operation waiting, so one FIFO here for reads and writes alike is a round robin over the
// transfers (a chunk each per turn) while the pool's own queue stays short. Reads that went straight
// to the pool (one per download, a thousand deep) left the writes, admitted a few at a time, behind
// all of them: 2,000 x 16 MiB storm, uploads stalled 26 s while downloads ran (issue 15).

const IO_IN_POOL_MAX = 8;
let inPool = 0;
const waiting: (() => void)[] = [];

function admit(): Promise<void> | undefined {
  if (inPool < IO_IN_POOL_MAX) {
    inPool++;
    return undefined;
  }
  return new Promise((resolve) => waiting.push(resolve));
}

function leave(): void {
  const next = waiting.shift();
  if (next) next(); // the slot passes on
  else inPool--;
}

/** Runs `op` (file I/O on libuv's pool) once a slot is free; the slot is held until it settles. */
export async function withIoSlot<T>(op: () => Promise<T>): Promise<T> {
  const wait = admit();
  if (wait) await wait;
  try {
    return await op();
  } finally {
    leave();
  }
}

/** Operations admitted now and waiting (tests). */
export function ioSlotState(): { inPool: number; waiting: number } {
  return { inPool, waiting: waiting.length };
}
