// The storm benchmark's verdicts (benchmarks/loadgen/report.ts judgeTargets) on runs it saved: the
// issue's aims, judged from the result files the README's rows cite, must come out as the README
// reports them; and the CPU figures of a path (benchmarks/loadgen/cost.ts cpuFigures).

import { readFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cpuFigures } from '../../benchmarks/loadgen/cost.ts';
import { judgeTargets, type TargetVerdict } from '../../benchmarks/loadgen/report.ts';
import type { PeerRunResult } from '../../benchmarks/loadgen/run-peer.ts';

interface SavedRun {
  params: { gatewayFlags: string[] };
  runs: PeerRunResult[];
}

function saved(name: string): SavedRun {
  return JSON.parse(readFileSync(new URL(`../../benchmarks/results/${name}`, import.meta.url), 'utf8')) as SavedRun;
}

/** target → met, for the targets whose text contains `part` (exactly one each). */
function verdict(all: TargetVerdict[], part: string): TargetVerdict {
  const hits = all.filter((v) => v.target.includes(part));
  assert.is(hits.length, 1, `one target matching "${part}": ${hits.map((h) => h.target).join(' | ')}`);
  return hits[0]!;
}

test('the cold storm of 200 at 24c9597: the verdicts of the README row', () => {
  const doc = saved('scale-storm-s31d-c200a.json');
  const v = judgeTargets('storm', doc.runs, { gatewayFlags: doc.params.gatewayFlags });
  const met = (part: string): boolean | null => verdict(v, part).met;
  assert.is(met('dropftp n=200: all complete'), true);
  assert.is(met('dropftp n=200: ≤ 3 calls per STOR'), true);
  assert.is(met('dropftp n=200: one files/download per RETR'), true);
  assert.is(met('dropftp n=200: no spool file left'), true);
  assert.is(met('dropftp n=200: Jain within RETR'), false); // 0.9356
  assert.is(met('dropftp n=200: Jain within STOR'), true);
  assert.is(met('dropftp n=200: longest stall'), true); // 1.55 s
  assert.is(met('dropftp n=200: TTFB p99'), true);
  assert.is(met('dropftp n=200: ≥ 0.6 × the local box over HTTP'), false); // 0.41×
  assert.match(verdict(v, 'dropftp n=200: ≥ 0.6 × the local box over HTTP').measured, /\(0\.41×\)/);
  assert.is(met("dropftp n=200: RETR ≥ 0.6 × the local box's"), true); // 0.64×
  assert.is(met("dropftp n=200: STOR ≥ 0.6 × the local box's"), false);
  assert.is(met('dropftp n=200: ≥ 0.95 × --no-workers'), true); // 1.11×
  assert.is(met("dropftp n=200: main thread ≤ 0.3 × --no-workers' CPU-s/GiB"), false); // 0.39×
  assert.is(met('dropftp n=200: gateway ≤ 2.0 CPU-s/GiB'), false); // 2.57
  assert.is(met('localbox-http n=200: ≥ 0.5 × pyftpdlib'), true); // 0.64×, box 1.32
  assert.is(met('localbox-http n=200: Jain within RETR'), true);
  // The baseline is not judged against the aims.
  assert.not.ok(v.some((x) => x.target.startsWith('dropftp-noworkers')));
});

test('the storm of 2,000: memory instead of the ratios; with 64 MiB of budget only what holds under any option', () => {
  const big = saved('scale-storm-s31-2000.json');
  const v = judgeTargets('storm', big.runs, { gatewayFlags: big.params.gatewayFlags });
  assert.is(verdict(v, 'dropftp n=2000: peak RSS ≤ 1 GiB').met, true); // 929 MiB
  assert.is(verdict(v, 'dropftp n=2000: longest stall').met, false); // 115.8 s
  assert.is(verdict(v, 'dropftp n=2000: Jain within STOR').met, true);
  assert.is(verdict(v, 'dropftp n=2000: ≤ 3 calls per STOR').met, true); // 2.29
  assert.not.ok(v.some((x) => x.target.includes('× the local box') || x.target.includes('TTFB')));
  const small = saved('scale-storm-s31-2000-64mib.json');
  assert.equal(small.params.gatewayFlags, ['--engine-memory-budget-bytes', '64MiB']);
  const w = judgeTargets('storm', small.runs, { gatewayFlags: small.params.gatewayFlags });
  assert.equal(
    w.map((x) => [x.target.replace('dropftp n=2000: ', ''), x.met]),
    [
      ['all complete', true],
      ['≤ 3 calls per STOR', true],
      ['no spool file left', true],
      ['one files/download per RETR, bytes served ≤ 1.01 × delivered', true],
    ],
  );
});

test('at the box rate limit: refusals and the Retry-After windows, nothing about speed', () => {
  const doc = saved('scale-storm-s31-rate1.json');
  const v = judgeTargets('storm', doc.runs, { gatewayFlags: doc.params.gatewayFlags });
  assert.is(verdict(v, '≤ 10 % of calls answered 429').met, true); // 7.2 %
  assert.match(verdict(v, '≤ 10 % of calls answered 429').measured, /^7\.2 %$/);
  assert.is(verdict(v, 'no call started inside a Retry-After window').met, true);
  // Refused downloads are retried: more calls than RETRs is no defect there.
  assert.not.ok(v.some((x) => /Jain|stall|TTFB|CPU-s|files\/download/.test(x.target)));
});

test("a path's CPU: each process once, unknown where the load generator's is", () => {
  assert.equal(cpuFigures(2.57, 0.67, 1.36, 0.36), { gateway: 2.57, mainThread: 0.67, backend: 1.36, loadGenerator: 0.36, path: 4.29 });
  assert.equal(cpuFigures(null, null, 1.32, 0.36).path, 1.68); // the box straight over HTTP
  assert.equal(cpuFigures(0.61, null, null, 0.35).path, 0.96); // pyftpdlib
  assert.is(cpuFigures(2.57, 0.67, 1.36, null).path, null);
  assert.is(cpuFigures(null, null, null, 0.36).path, null);
});

test.run();
