// Per-route, per-status counts of the engine's Dropbox HTTP answers, kept in the REQUESTS words of
// the shared control block (shared-layout.ts). Any thread increments (Atomics.add, once per answer);
// the main thread reads them for stats(). Invariant: counters only grow; route and status labels
// come from the fixed lists REQUEST_ROUTES / REQUEST_STATUSES, so the series count stays bounded.

import { REQUEST_BASE, REQUEST_ROUTES, REQUEST_STATUSES } from './shared-layout.ts';

export type RequestCounts = Record<string, Record<string, number>>;

const ROUTE_INDEX: ReadonlyMap<string, number> = new Map(REQUEST_ROUTES.map((route, i) => [route, i]));
const OTHER_ROUTE = REQUEST_ROUTES.indexOf('other');
const STATUS_COUNT = REQUEST_STATUSES.length;
const EXACT: ReadonlyMap<number, number> = new Map(
  REQUEST_STATUSES.flatMap((s, i) => (/^\d+$/.test(s) && s !== '0' ? [[Number(s), i] as [number, number]] : [])),
);
const S5XX = REQUEST_STATUSES.indexOf('5xx');
const SOTHER = REQUEST_STATUSES.indexOf('other');
const SNONE = REQUEST_STATUSES.indexOf('0');

/** The index of `status` in REQUEST_STATUSES (0 or less: no answer). */
export function statusIndex(status: number): number {
  if (!(status > 0)) return SNONE;
  const exact = EXACT.get(status);
  if (exact !== undefined) return exact;
  return status >= 500 && status <= 599 ? S5XX : SOTHER;
}

/** Counts one answer (`status` 0: none) of `route`. */
export function countRequest(words: Int32Array, route: string, status: number): void {
  const r = ROUTE_INDEX.get(route) ?? OTHER_ROUTE;
  Atomics.add(words, REQUEST_BASE + r * STATUS_COUNT + statusIndex(status), 1);
}

/** Every non-zero count, by route then status label. */
export function readRequestCounts(words: Int32Array): RequestCounts {
  const out: RequestCounts = {};
  for (let r = 0; r < REQUEST_ROUTES.length; r++) {
    for (let s = 0; s < STATUS_COUNT; s++) {
      const n = Atomics.load(words, REQUEST_BASE + r * STATUS_COUNT + s) >>> 0;
      if (n > 0) (out[REQUEST_ROUTES[r]!] ??= {})[REQUEST_STATUSES[s]!] = n;
    }
  }
  return out;
}
