// Turns a raw load run (per-transfer records from every child, server resource samples, ELU
// samples, progress samples) into the metrics the scale benchmark reports. Pure; main thread.
// Invariants: per-session throughput is bytes over (end − command sent), failed transfers included
// (a session that failed was treated unfairly); rates are in MB/s (10^6 bytes); times in ms.

import { jainIndex, minMedianRatio, percentile, round } from './metrics.ts';
import type { TransferRecord } from './meter.ts';
import type { RawRun } from './coordinator.ts';
import type { ResourceSample } from './proc-stats.ts';
import type { EluSample } from '../peers/types.ts';

export interface Quantiles {
  p50: number | null;
  p99: number | null;
  max: number | null;
}

function quantiles(values: number[]): Quantiles {
  return {
    p50: round(percentile(values, 50), 1),
    p99: round(percentile(values, 99), 1),
    max: round(values.length ? values.reduce((m, v) => (v > m ? v : m), -Infinity) : null, 1),
  };
}

export interface OpSummary {
  transfers: number;
  complete: number;
  failed: number;
  bytes: number;
  aggregateMBps: number | null;
  jain: number | null;
  minMedianRatio: number | null;
  longestStallMs: number | null;
  longestMidStallMs: number | null;
  ttfbMs: Quantiles;
  completionMs: Quantiles;
  sessionMBps: Quantiles;
}

export function summariseTransfers(records: TransferRecord[], epochMs: number): OpSummary {
  const ok = records.filter((r) => r.ok);
  const bytes = records.reduce((s, r) => s + r.bytes, 0);
  // A transfer counts until the server confirmed it (226: for STOR, the file is committed); the
  // clock starts at the first command (storm: at 'go'; big: the RETR starts after the STOR).
  const lastEnd = records.reduce((m, r) => Math.max(m, (r.ok ? r.endMs : r.lastByteMs) ?? epochMs), epochMs);
  const firstStart = records.reduce((m, r) => Math.min(m, r.startMs), Infinity);
  const origin = Math.max(epochMs, firstStart);
  const rates = records.map((r) => r.bytes / 1e6 / Math.max(1e-3, ((r.endMs ?? r.lastByteMs ?? r.startMs) - r.startMs) / 1000));
  return {
    transfers: records.length,
    complete: ok.length,
    failed: records.length - ok.length,
    bytes,
    aggregateMBps: round(lastEnd > origin ? bytes / 1e6 / ((lastEnd - origin) / 1000) : null, 2),
    jain: round(jainIndex(rates), 4),
    minMedianRatio: round(minMedianRatio(rates), 4),
    longestStallMs: round(records.length ? Math.max(...records.map((r) => r.longestGapMs)) : null, 1),
    longestMidStallMs: round(records.length ? Math.max(...records.map((r) => r.longestMidGapMs)) : null, 1),
    ttfbMs: quantiles(ok.filter((r) => r.firstByteMs !== null).map((r) => r.firstByteMs! - epochMs)),
    completionMs: quantiles(ok.map((r) => r.endMs! - epochMs)),
    sessionMBps: quantiles(rates),
  };
}

export interface ResourceSummary {
  baselineRssBytes: number | null;
  readyRssBytes: number | null;
  peakRssBytes: number | null;
  baselinePssBytes: number;
  peakPssBytes: number;
  peakProcesses: number;
  cpuSecondsDuringRun: number;
  /** [seconds since go, RSS MiB, tree PSS MiB] */
  series: [number, number | null, number][];
}

export function summariseResources(samples: ResourceSample[], baseline: ResourceSample, ready: ResourceSample | null, epochMs: number, endMs: number): ResourceSummary {
  const during = samples.filter((s) => s.tMs >= epochMs - 1 && s.tMs <= endMs + 1000);
  const atGo = samples.filter((s) => s.tMs <= epochMs).at(-1) ?? baseline;
  const last = during.at(-1) ?? atGo;
  const rss = samples.map((s) => s.rssBytes).filter((x): x is number => x !== null);
  return {
    baselineRssBytes: baseline.rssBytes,
    readyRssBytes: ready?.rssBytes ?? null,
    peakRssBytes: rss.length ? Math.max(...rss) : null,
    baselinePssBytes: baseline.treePssBytes,
    peakPssBytes: Math.max(...samples.map((s) => s.treePssBytes)),
    peakProcesses: Math.max(...samples.map((s) => s.treeProcesses)),
    cpuSecondsDuringRun: round(last.treeCpuSeconds - atGo.treeCpuSeconds, 2) ?? 0,
    series: samples.map((s) => [round((s.tMs - epochMs) / 1000, 2)!, s.rssBytes === null ? null : round(s.rssBytes / 2 ** 20, 1), round(s.treePssBytes / 2 ** 20, 1)!]),
  };
}

export function summariseElu(samples: EluSample[] | null, epochMs: number, endMs: number): { mean: number | null; max: number | null; series: [number, number][] } | null {
  if (samples === null) return null;
  const during = samples.filter((s) => s.tMs >= epochMs && s.tMs <= endMs + 500);
  const values = during.map((s) => s.utilization);
  return {
    mean: round(values.length ? values.reduce((a, b) => a + b, 0) / values.length : null, 3),
    max: round(values.length ? Math.max(...values) : null, 3),
    series: during.map((s) => [round((s.tMs - epochMs) / 1000, 2)!, s.utilization]),
  };
}

export function summariseLogins(raw: RawRun): { ok: number; failed: number; perSecond: number | null; latencyMs: Quantiles } {
  let ok = 0;
  let failed = 0;
  let first = Infinity;
  let last = 0;
  const latencies: number[] = [];
  for (const r of raw.results) {
    ok += r.logins.ok;
    failed += r.logins.failed;
    if (r.logins.firstStartMs !== null) first = Math.min(first, r.logins.firstStartMs);
    if (r.logins.lastDoneMs !== null) last = Math.max(last, r.logins.lastDoneMs);
    latencies.push(...r.logins.latenciesMs);
  }
  return { ok, failed, perSecond: round(ok && last > first ? ok / ((last - first) / 1000) : null, 1), latencyMs: quantiles(latencies) };
}

export function mergeErrors(raw: RawRun): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of raw.results) for (const [k, v] of Object.entries(r.errors)) out[k] = (out[k] ?? 0) + v;
  return Object.fromEntries(Object.entries(out).sort((a, b) => b[1] - a[1]).slice(0, 12));
}
