// Async waiting on one Int32 word of shared memory, for threads that own sockets.
// Runs on any thread. Never calls Atomics.wait (it would freeze the event loop); every wait is
// bounded and holds a ref'd timer while it is pending, because a pending waitAsync keeps neither a
// worker nor the process alive (nodejs/node#44729).

/** Longest single waitAsync; after it the caller re-checks, so a lost notify costs at most this. */
export const DEFAULT_FALLBACK_MS = 1000;

/** setTimeout's own bound: a longer delay (or a non-number) would fire after 1 ms. */
const MAX_TIMER_MS = 2 ** 31 - 1;

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
 * differs already, or `timeoutMs` passed). Callers must re-read their condition afterwards. Any
 * number of threads may wait on the word; for a word that only this thread waits on (a ring's bell),
 * waitBell costs less per wait.
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

function wake(words: Int32Array, index: number): void {
  Atomics.notify(words, index);
}

/**
 * waitWord for a word that no other waiter shares (each bell of a ring has one waiting side), for
 * waits on a hot path. The timeout is a plain timer that notifies the word, not waitAsync's own:
 * V8 turns each waitAsync timeout into a delayed platform task that Node keeps in a vector and finds
 * by linear search when it fires — after the full timeout, even when the wait ended at once — so
 * thousands of waits per second cost time quadratic in their rate (a quarter of a busy main thread).
 * The thread is kept alive as by waitWord (one shared keep-alive while anything waits); the timer
 * itself is unref'd. Its notify also wakes any other waiter of the word (a spurious wake, re-checked
 * like any other), hence one waiter only.
 */
export function waitBell(words: Int32Array, index: number, expected: number, timeoutMs: number): Promise<void> {
  const result = Atomics.waitAsync(words, index, expected);
  if (!result.async) return Promise.resolve();
  hold();
  const delayMs = timeoutMs >= 1 && timeoutMs <= MAX_TIMER_MS ? timeoutMs : timeoutMs < 1 ? 1 : MAX_TIMER_MS;
  const timer = setTimeout(wake, delayMs, words, index);
  timer.unref();
  return result.value.then(() => {
    clearTimeout(timer);
    release();
  });
}
