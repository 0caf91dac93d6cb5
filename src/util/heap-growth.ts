// How far V8 lets a heap grow past what its last full collection kept before it marks again, for the
// dropftp serve process (every thread: V8 flags are process-wide). Main thread, once, at start.
//
// Why: by default V8 picks the factor from its GC and allocation speeds, up to 4x on a machine with
// a large heap limit. A gateway busy with thousands of transfers keeps little alive but promotes a
// steady stream of short-lived objects (each pending socket write, ring wait and promise of a slow
// session outlives two scavenges), so the main heap swung between 50-80 MiB live and 200-230 MiB
// before each mark-compact, and that swing was most of what took the storm of 2,000 x 16 MiB past
// 1 GiB of RSS. At 1.5x (measured, dropftp alone on the 2-core machine, same hour): peak RSS 924
// against 1,213 MiB, gateway 6.59 against 6.62 CPU-s/GiB, main thread 1.97 against 2.09; storm of
// 200 x 10 MiB, three alternating pairs: 4.85-4.93 against 4.37-4.93 CPU-s/GiB, main thread
// 1.13-1.17 against 1.14-1.16, peak RSS 421-424 against 417-432 MiB. A mark-compact costs about its
// live bytes, which stay small here, so marking more often is nearly free.
//
// Invariant: a factor the operator gave node on its command line (--heap-growing-percent=N) wins.

import { setFlagsFromString } from 'node:v8';

/** The old generation may grow to 1.5x what the last mark-compact kept before the next one starts. */
export const HEAP_GROWING_PERCENT = 50;

/** The V8 flag to set, or null when `execArgv` (node's own options) already sets one. */
export function heapGrowthFlag(execArgv: readonly string[]): string | null {
  if (execArgv.some((a) => /^--heap[-_]growing[-_]percent(=|$)/.test(a))) return null;
  return `--heap-growing-percent=${HEAP_GROWING_PERCENT}`;
}

/** Sets the growth factor for this process unless node was started with one; says what it set. */
export function limitHeapGrowth(execArgv: readonly string[] = process.execArgv): string | null {
  const flag = heapGrowthFlag(execArgv);
  if (flag) setFlagsFromString(flag);
  return flag;
}
