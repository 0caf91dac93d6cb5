// The tests' one set of waiting helpers: sleep, poll a condition until it holds, count the process's
// live TCP handles and timers (leak checks). Test code only; main thread; nothing here keeps the
// loop alive beyond the wait it was asked for.

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Count of live TCP handles in this process (client and server ends alike). */
export function tcpHandles(): number {
  return process.getActiveResourcesInfo().filter((name) => name === 'TCPSocketWrap' || name === 'TCPServerWrap').length;
}

export function timers(): number {
  return process.getActiveResourcesInfo().filter((name) => name === 'Timeout').length;
}

/**
 * Polls `check` (sync or async) every `intervalMs` until it returns true; resolves with the time it
 * took, in ms. Rejects after timeoutMs with `what` (a text, or a function that describes the state
 * at that moment) in the message.
 */
export async function until(
  check: () => boolean | Promise<boolean>,
  timeoutMs = 5000,
  what: string | (() => string | Promise<string>) = 'condition',
  intervalMs = 20,
): Promise<number> {
  const started = performance.now();
  while (!(await check())) {
    if (performance.now() - started > timeoutMs) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === 'string' ? what : await what()}`);
    }
    await sleep(intervalMs);
  }
  return performance.now() - started;
}
