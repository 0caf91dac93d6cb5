// Draws a scale run's results as SVG files next to its JSON: throughput and fairness against N
// (one line per server), per-session bytes over time, server RSS over time, aggregate throughput
// over time. Main thread. Invariant: writes only benchmarks/results/scale-<scenario>*.svg.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PeerRunResult } from '../loadgen/run-peer.ts';
import { lineChart, type Series } from './svg.ts';

export interface ScaleDoc {
  scenario: string;
  runs: PeerRunResult[];
}

function byServer(runs: PeerRunResult[]): Map<string, PeerRunResult[]> {
  const out = new Map<string, PeerRunResult[]>();
  for (const r of runs) {
    const list = out.get(r.server) ?? [];
    list.push(r);
    out.set(r.server, list);
  }
  for (const list of out.values()) list.sort((a, b) => a.sessions - b.sessions);
  return out;
}

function againstN(doc: ScaleDoc, pick: (r: PeerRunResult) => number | null): Series[] {
  return [...byServer(doc.runs)].map(([name, list]) => ({ name, points: list.map((r) => [r.sessions, pick(r)] as [number, number | null]) }));
}

/** Writes the charts; returns the file names written. */
export function writeScaleCharts(doc: ScaleDoc, dir: string, stem: string): string[] {
  const written: string[] = [];
  const save = (suffix: string, svg: string): void => {
    const name = `${stem}-${suffix}.svg`;
    writeFileSync(join(dir, name), svg);
    written.push(name);
  };
  const logX = new Set(doc.runs.map((r) => r.sessions)).size > 2;
  if (doc.scenario === 'storm' || doc.scenario === 'churn') {
    save(
      'throughput',
      lineChart({ title: `${doc.scenario}: aggregate throughput against sessions`, xLabel: 'sessions (N)', yLabel: 'MB/s', logX, series: againstN(doc, (r) => r.transfers?.aggregateMBps ?? null) }),
    );
    save(
      'fairness',
      lineChart({
        title: `${doc.scenario}: Jain's fairness index over per-session throughput`,
        xLabel: 'sessions (N)',
        yLabel: "Jain's index",
        yMin: 0,
        yMax: 1,
        logX,
        hLines: [{ y: 0.95, label: 'target 0.95' }],
        series: againstN(doc, (r) => r.transfers?.jain ?? null),
      }),
    );
  }
  if (doc.scenario === 'idle') {
    save(
      'rss-per-session',
      lineChart({
        title: 'idle: server RSS per session above its idle baseline',
        xLabel: 'sessions (N)',
        yLabel: 'KiB per session',
        logX,
        hLines: [{ y: 16, label: 'target 16 KiB' }],
        series: againstN(doc, (r) => (r.idle?.rssPerSessionBytes == null ? null : r.idle.rssPerSessionBytes / 1024)),
      }),
    );
  }
  // Over time, at each server's largest N.
  const largest = [...byServer(doc.runs)].map(([, list]) => list.at(-1)!);
  save(
    'rss',
    lineChart({
      title: `${doc.scenario}: server RSS over time (largest N per server)`,
      xLabel: 'seconds since start',
      yLabel: 'RSS MiB',
      series: largest.map((r) => ({ name: `${r.server} (${r.sessions})`, points: r.resources.series.map(([t, rss]) => [t, rss] as [number, number | null]) })),
    }),
  );
  save(
    'pss',
    lineChart({
      title: `${doc.scenario}: PSS of the server's whole process tree over time`,
      xLabel: 'seconds since start',
      yLabel: 'PSS MiB (all processes)',
      series: largest.map((r) => ({ name: `${r.server} (${r.sessions})`, points: r.resources.series.map(([t, , pss]) => [t, pss] as [number, number | null]) })),
    }),
  );
  if (doc.scenario !== 'idle') {
    save(
      'throughput-time',
      lineChart({
        title: `${doc.scenario}: aggregate throughput over time (largest N per server)`,
        xLabel: 'seconds since start',
        yLabel: 'MB/s',
        series: largest.map((r) => ({ name: `${r.server} (${r.sessions})`, points: r.throughputSeries as [number, number][] })),
      }),
    );
    for (const r of largest) {
      const { bucketMs, sessions } = r.timeline;
      if (sessions.length === 0) continue;
      const series: Series[] = sessions.map((s) => {
        let cumulative = 0;
        const points: [number, number][] = [[0, 0]];
        s.buckets.forEach((b, i) => {
          cumulative += b;
          points.push([((i + 1) * bucketMs) / 1000, cumulative / 2 ** 20]);
        });
        return { name: `${s.op} #${s.id}`, points, faint: true, color: s.op === 'RETR' ? '#1f77b4' : '#d62728' };
      });
      save(
        `sessions-${r.server}`,
        lineChart({
          title: `${doc.scenario}, ${r.server}, N=${r.sessions}: bytes of ${sessions.length} sessions over time (blue RETR, red STOR)`,
          xLabel: 'seconds since start',
          yLabel: 'MiB moved',
          legend: false,
          series,
        }),
      );
    }
  }
  return written;
}
