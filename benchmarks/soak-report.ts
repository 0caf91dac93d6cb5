// RSS drift and handle-count summary of a soak run's samples. Runs on the soak driver's (or the
// reliability report's) main thread. Invariant: warm-up is the first 20% of the run; drift compares
// the last quarter's mean RSS with the mean of the window right after warm-up (20%–40%).

import os from 'node:os';

export interface Sample {
  tS: number;
  phase: string;
  gatewayRssBytes: number;
  gatewayFds: number;
  boxRssBytes: number;
  boxFds: number;
  sessions: number;
  passiveListeners: number;
  activeDownloads: number;
  activeUploads: number;
  completed: number;
  [counter: string]: number | string;
}

export const RSS_DRIFT_LIMIT_PCT = 5;

/** The machine a run saw: its CPUs and the 1-minute load average (other work running beside the run shows there). */
export function machineSnapshot(): { cpus: number; model: string; node: string; loadAverage1m: number } {
  const cpus = os.cpus();
  return { cpus: cpus.length, model: cpus[0]?.model ?? 'unknown', node: process.version, loadAverage1m: Math.round(os.loadavg()[0]! * 100) / 100 };
}

/** Sample fields (bytes) that split the gateway's RSS: anonymous vs file-backed, main and worker V8 heaps. */
const BREAKDOWN = ['gatewayAnonBytes', 'gatewayFileBytes', 'heapTotalBytes', 'arrayBuffersBytes', 'workerHeapTotalBytes', 'workerHeapUsedBytes', 'workerExternalBytes'] as const;

const mean = (xs: number[]): number => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);

/** Least-squares slope of y over t, per hour. */
function slopePerHour(points: Array<[number, number]>): number {
  const mt = mean(points.map((p) => p[0]));
  const my = mean(points.map((p) => p[1]));
  let num = 0;
  let den = 0;
  for (const [t, y] of points) {
    num += (t - mt) * (y - my);
    den += (t - mt) ** 2;
  }
  return den ? (num / den) * 3600 : 0;
}

export function driftReport(all: readonly Sample[]) {
  const loaded = all.filter((s) => s.phase !== 'drain');
  const endS = loaded.length ? loaded[loaded.length - 1]!.tS : 0;
  const window = (from: number, to: number): Sample[] => loaded.filter((s) => s.tS >= from * endS && s.tS <= to * endS);
  const afterWarmUp = window(0.2, 0.4);
  const lastQuarter = window(0.75, 1);
  const rss = (xs: Sample[]): number => mean(xs.map((s) => s.gatewayRssBytes));
  const fds = (xs: Sample[]): number => mean(xs.map((s) => s.gatewayFds));
  const afterWarmUpRss = rss(afterWarmUp);
  const lastQuarterRss = rss(lastQuarter);
  const driftPct = ((lastQuarterRss - afterWarmUpRss) / afterWarmUpRss) * 100;
  const steady = window(0.2, 1);
  const deciles = Array.from({ length: 10 }, (_, i) => window(i / 10, (i + 1) / 10));
  const third = rss(window(0.5, 0.75));
  const secondHalfDriftPct = ((lastQuarterRss - third) / third) * 100;
  return {
    samples: all.length,
    afterWarmUpMeanRssMiB: afterWarmUpRss / 2 ** 20,
    lastQuarterMeanRssMiB: lastQuarterRss / 2 ** 20,
    rssDriftPct: Number.isFinite(driftPct) ? Math.round(driftPct * 100) / 100 : null,
    rssDriftLimitPct: RSS_DRIFT_LIMIT_PCT,
    withinLimit: Number.isFinite(driftPct) && driftPct <= RSS_DRIFT_LIMIT_PCT,
    rssSlopeMiBPerHour: Math.round((slopePerHour(steady.map((s) => [s.tS, s.gatewayRssBytes / 2 ** 20])) * 100)) / 100,
    // The shape: bounded caches (the ring pool keeps up to 64 MiB of idle rings, worker heaps) fill
    // over the first minutes; a leak keeps climbing through the second half.
    rssMiBByDecile: deciles.map((d) => Math.round(rss(d) / 2 ** 20)),
    mainHeapMiBByDecile: deciles.map((d) => Math.round(mean(d.map((s) => Number(s.heapUsedBytes ?? 0))) / 2 ** 20)),
    // Where the RSS is, by decile (MiB; absent in runs recorded before these counters existed).
    breakdownMiBByDecile: Object.fromEntries(
      BREAKDOWN.filter((key) => all.some((s) => typeof s[key] === 'number')).map((key) => [key, deciles.map((d) => Math.round(mean(d.map((s) => Number(s[key] ?? 0))) / 2 ** 20))]),
    ),
    secondHalfRssDriftPct: Math.round(secondHalfDriftPct * 100) / 100,
    peakRssMiB: Math.max(...all.map((s) => s.gatewayRssBytes)) / 2 ** 20,
    afterWarmUpMeanFds: fds(afterWarmUp),
    lastQuarterMeanFds: fds(lastQuarter),
    boxAfterWarmUpMeanRssMiB: mean(afterWarmUp.map((s) => s.boxRssBytes)) / 2 ** 20,
    boxLastQuarterMeanRssMiB: mean(lastQuarter.map((s) => s.boxRssBytes)) / 2 ** 20,
  };
}

// `node --import tsx benchmarks/soak-report.ts FILE`: recomputes a saved soak result's memory summary.
if (process.argv[1]?.endsWith('soak-report.ts') && process.argv[2]) {
  const { readFileSync, writeFileSync } = await import('node:fs');
  const file = process.argv[2];
  const result = JSON.parse(readFileSync(file, 'utf8')) as { samples: Sample[]; memory: unknown };
  result.memory = driftReport(result.samples);
  writeFileSync(file, JSON.stringify(result, null, 1) + '\n');
  console.log(JSON.stringify(result.memory, null, 1));
}
