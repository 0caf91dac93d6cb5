// Async waiting on one Int32 word of shared memory, for threads that own sockets.
// Runs on any thread. Never calls Atomics.wait (it would freeze the event loop); uses
// Atomics.waitAsync with a bounded timeout, and holds a ref'd timer while anything waits,
// because a pending waitAsync keeps neither a worker nor the process alive (nodejs/node#44729).

/** Longest single waitAsync; after it the caller re-checks, so a lost notify costs at most this. */
export const DEFAULT_FALLBACK_MS = 1000;

let waiters = 0;
let keepAlive: ReturnType<typeof setInterval> | null = null;

function hold(): void {
  if (waiters++ === 0) keepAlive = setInterval(noop, 1 << 30);
}

function release(): void {
  if (--waiters === 0 && keepAlive !== null) {
    clearInterval(keepAlive);
    keepAlive = null;
  }
}

function noop(): void {}

/** Number of waits in flight on this thread (for tests and metrics). */
export function pendingWaits(): number {
  return waiters;
}

/**
 * Resolves when word `index` of `words` may no longer hold `expected` (a notify arrived, the value
 * differs already, or `timeoutMs` passed). Callers must re-read their condition afterwards.
 */
export async function waitWord(words: Int32Array, index: number, expected: number, timeoutMs: number): Promise<void> {
  const result = Atomics.waitAsync(words, index, expected, timeoutMs);
  if (!result.async) return;
  hold();
  try {
    await result.value;
  } finally {
    release();
  }
}
