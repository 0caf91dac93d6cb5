// Summary statistics of a load generator run: Jain's fairness index, percentiles, min/median ratio,
// aggregate rates. Pure functions, any thread. Invariant: empty inputs give null, never NaN.

/** Jain's fairness index (Σx)² / (n·Σx²): 1 when all equal, 1/n when one takes everything. */
export function jainIndex(values: readonly number[]): number | null {
  if (values.length === 0) return null;
  let sum = 0;
  let squares = 0;
  for (const v of values) {
    sum += v;
    squares += v * v;
  }
  if (squares === 0) return null;
  return (sum * sum) / (values.length * squares);
}

/** Nearest-rank percentile (p in 0..100) of unsorted values. */
export function percentile(values: readonly number[], p: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

export function median(values: readonly number[]): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Slowest session's throughput over the median session's: 1 means nobody lags. */
export function minMedianRatio(values: readonly number[]): number | null {
  const m = median(values);
  if (m === null || m === 0) return null;
  return Math.min(...values) / m;
}

export function round(value: number | null, digits = 3): number | null {
  if (value === null || !Number.isFinite(value)) return null;
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}
