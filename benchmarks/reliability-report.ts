// Reliability report (`npm run reliability:report`): runs the reliability suites in their long forms
// (RELIABILITY_LONG=1; --short for the CI forms) with RELIABILITY_REPORT=1, collects the counts they
// print (`RELIABILITY_REPORT <suite> {json}`), adds the soak result (benchmarks/results/soak.json;
// --soak-minutes N runs a fresh soak first; --reuse-suites keeps the suites of the last report) and
// the npm audit, and writes benchmarks/results/reliability.json. Runs on its own main thread; each
// suite is a child process.
// Invariant: a suite that fails, or prints no counts, is reported as such, never as zero problems.

import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { machineSnapshot } from './soak-report.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const SHORT = args.includes('--short');
const soakIndex = args.indexOf('--soak-minutes');
const SOAK_MINUTES = soakIndex >= 0 ? Number(args[soakIndex + 1]) : 0;
const onlyIndex = args.indexOf('--only');
const ONLY = onlyIndex >= 0 ? new Set(args[onlyIndex + 1]!.split(',')) : null;
const OUT = join(ROOT, 'benchmarks', 'results', 'reliability.json');
/** --reuse-suites: take the suites' results from the last reliability.json (only the soak and audit are new). */
const REUSE = args.includes('--reuse-suites');

/** Suites with their long-form knobs; `known` are pinned defects, run to record whether they still fail. */
const SUITES: Array<{ name: string; file: string; env?: Record<string, string>; known?: boolean }> = [
  { name: 'fault-matrix', file: 'test/reliability/fault-matrix.test.ts' },
  { name: 'churn', file: 'test/reliability/churn.test.ts' },
  { name: 'crash', file: 'test/reliability/crash.test.ts' },
  { name: 'fuzz', file: 'test/reliability/fuzz.test.ts' },
  { name: 'security', file: 'test/reliability/security.test.ts' },
  { name: 'stale-upload-writer', file: 'test/reliability/stale-upload-writer.test.ts', env: { STALE_WRITER_SECONDS: '60' } },
];

interface SuiteResult {
  name: string;
  file: string;
  form: 'long' | 'short';
  /** When the suite started (absent in reports written before this field existed). */
  startedAt?: string;
  passed: boolean;
  exitCode: number | null;
  seconds: number;
  counts: Record<string, unknown> | null;
  failures: string[];
}

function runSuite(suite: (typeof SUITES)[number]): Promise<SuiteResult> {
  const started = Date.now();
  const env = { ...process.env, RELIABILITY_REPORT: '1', ...(SHORT || suite.known ? {} : { RELIABILITY_LONG: '1' }), ...suite.env };
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', suite.file], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    child.stdout.on('data', (d: Buffer) => (text += d.toString()));
    child.stderr.on('data', (d: Buffer) => (text += d.toString()));
    child.on('exit', (code) => {
      const line = /RELIABILITY_REPORT \S+ (\{.*\})\s*$/m.exec(text); // uvu may print progress dots before it
      // uvu prints "FAIL  <name>" then the message on the next line.
      const failures = [...text.matchAll(/FAIL\s+(.+)\n\s+(.+)/g)].map((m) => `${m[1]!.trim()}: ${m[2]!.trim()}`);
      resolve({
        name: suite.name,
        file: suite.file,
        form: SHORT || suite.known ? 'short' : 'long',
        startedAt: new Date(started).toISOString(),
        passed: code === 0,
        exitCode: code,
        seconds: Math.round((Date.now() - started) / 100) / 10,
        counts: line ? (JSON.parse(line[1]!) as Record<string, unknown>) : null,
        failures,
      });
    });
  });
}

function audit(): { status: 'clean' | 'advisories' | 'unavailable'; summary: string } {
  const r = spawnSync('sh', [join(ROOT, 'benchmarks', 'audit.sh')], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
  const summary = (r.stdout || r.stderr || '').trim();
  return { status: r.status === 0 ? 'clean' : r.status === 1 ? 'advisories' : 'unavailable', summary };
}

const sum = (xs: Array<number | undefined>): number => xs.reduce<number>((a, b) => a + (b ?? 0), 0);

async function main(): Promise<void> {
  if (SOAK_MINUTES > 0) {
    console.log(`reliability report: soak for ${SOAK_MINUTES} min first`);
    spawnSync(process.execPath, ['--import', 'tsx', 'benchmarks/soak.ts', '--minutes', String(SOAK_MINUTES)], { cwd: ROOT, stdio: 'inherit' });
  }
  const previous = REUSE ? (JSON.parse(await readFile(OUT, 'utf8')) as { suites: SuiteResult[] }).suites : [];
  const results: SuiteResult[] = previous.filter((r) => SUITES.some((s) => s.name === r.name));
  for (const suite of SUITES) {
    if (ONLY ? !ONLY.has(suite.name) : REUSE) continue; // --reuse-suites --only X: rerun X, keep the rest
    console.log(`reliability report: ${suite.name} (${SHORT || suite.known ? 'short' : 'long'} form) …`);
    const r = await runSuite(suite);
    console.log(`  ${r.passed ? 'pass' : 'FAIL'} in ${r.seconds} s ${r.counts ? JSON.stringify(r.counts) : ''}${r.failures.length ? `\n  ${r.failures.join('\n  ')}` : ''}`);
    const at = results.findIndex((x) => x.name === r.name);
    if (at >= 0) results[at] = r;
    else results.push(r);
  }
  const soakPath = join(ROOT, 'benchmarks', 'results', 'soak.json');
  const soak = existsSync(soakPath) ? (JSON.parse(await readFile(soakPath, 'utf8')) as { when: string; settings: { minutes: number }; transfers: Record<string, number>; faultsInjected: Record<string, number>; faultsInjectedTotal: number; memory: Record<string, unknown>; problems: string[]; machine?: unknown }) : null;
  const npmAudit = audit();
  console.log(`  ${npmAudit.summary}`);

  const c = (name: string): Record<string, any> => (results.find((r) => r.name === name)?.counts ?? {}) as Record<string, any>;
  const fm = c('fault-matrix');
  const fuzz = c('fuzz');
  const churn = c('churn');
  const crash = c('crash');
  const gated = results.filter((r) => !r.name.startsWith('known'));
  const faultKinds = (counts: Record<string, number> | undefined): number => sum(Object.entries(counts ?? {}).filter(([k]) => k !== 'concurrency_limit').map(([, n]) => n));
  const summary = {
    suitesPassed: `${gated.filter((r) => r.passed).length}/${gated.length}`,
    knownDefectsStillFailing: results.filter((r) => r.name.startsWith('known') && !r.passed).map((r) => r.name),
    faultsInjected: { faultMatrix: faultKinds(fm.faults), soak: soak?.faultsInjectedTotal ?? null, total: faultKinds(fm.faults) + (soak?.faultsInjectedTotal ?? 0) },
    transfers: {
      attempted: sum([fm.attempted, soak?.transfers.attempted]),
      completed: sum([fm.completed, soak?.transfers.completed]),
      failedCleanly: sum([fm.failedCleanly, soak?.transfers.failedCleanly]),
      stoppedByClientAsIntended: soak?.transfers.stoppedAsIntended ?? null,
      failedUnclean: soak?.transfers.failedUnclean ?? null,
      churnSessions: churn.sessions ?? null,
      crashRounds: crash.rounds ?? null,
    },
    badInputsTried: { ftp: fuzz.ftp ?? null, http: fuzz.http ?? null, total: sum([fuzz.ftp, fuzz.http]) },
    crashes: { gatewayProcess: soak?.transfers.crashes ?? null, suitesFailed: gated.filter((r) => !r.passed).map((r) => r.name) },
    dataLostOrCorrupted: { soakCorrupted: soak?.transfers.corrupted ?? null, soakLost: soak?.transfers.lost ?? null, suitesCheckingDataPassed: gated.filter((r) => ['fault-matrix', 'churn', 'crash'].includes(r.name)).every((r) => r.passed) },
    soakRssDriftPct: soak?.memory.rssDriftPct ?? null,
    soakRssDriftWithinLimit: soak?.memory.withinLimit ?? null,
    npmAudit,
  };
  const report = { when: new Date().toISOString(), command: `node --import tsx benchmarks/reliability-report.ts ${args.join(' ')}`.trim(), form: SHORT ? 'short' : 'long', machine: { ...machineSnapshot(), soak: soak?.machine ?? null }, summary, suites: results, soak: soak ? { when: soak.when, minutes: soak.settings.minutes, transfers: soak.transfers, faultsInjected: soak.faultsInjected, memory: soak.memory, problems: soak.problems.slice(0, 20) } : null };
  await writeFile(OUT, JSON.stringify(report, null, 1) + '\n');
  console.log(JSON.stringify(summary, null, 1));
  console.log(`wrote ${OUT}`);
}

await main();
