// The human side of a scale run: a markdown table per scenario and the issue's targets judged
// against baselines measured in the same run (pyftpdlib, direct HTTP, workers off). Pure; main
// thread. Invariant: a target whose baseline is missing is reported as unknown (met: null), not met.

import type { PeerRunResult } from './run-peer.ts';

const MiB = 2 ** 20;
const f = (v: number | null | undefined, digits = 1): string => (v === null || v === undefined ? '–' : v.toFixed(digits));
const mib = (v: number | null | undefined): string => (v === null || v === undefined ? '–' : (v / MiB).toFixed(0));

function sizeText(bytes: number): string {
  if (bytes >= 2 ** 30 && bytes % 2 ** 30 === 0) return `${bytes / 2 ** 30} GiB`;
  if (bytes >= MiB && bytes % MiB === 0) return `${bytes / MiB} MiB`;
  return `${bytes} B`;
}

export function markdownTable(scenario: string, runs: PeerRunResult[], sizeBytes: number): string {
  const rows: string[] = [];
  const elu = (r: PeerRunResult): string => (r.elu?.mean == null ? 'n/a' : `${f(r.elu.mean, 2)} / ${f(r.elu.max, 2)}`);
  if (scenario === 'idle') {
    rows.push('| server | sessions held | login failures | logins/s | RSS idle → held (MiB) | RSS per session | PSS per session (tree) | NOOP failures | dropped by server |');
    rows.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const r of runs) {
      const i = r.idle!;
      rows.push(
        `| ${r.server} | ${i.sessionsHeld}/${r.sessions} | ${r.logins.failed} | ${f(r.logins.perSecond, 0)} | ${mib(r.resources.baselineRssBytes)} → ${mib(i.heldRssBytes)} | ${f(i.rssPerSessionBytes === null ? null : i.rssPerSessionBytes / 1024)} KiB | ${f(i.pssPerSessionBytes === null ? null : i.pssPerSessionBytes / 1024)} KiB | ${i.noopsFailed} | ${i.disconnected} |`,
      );
    }
    const marginal = runs.filter((r) => r.idle?.marginal);
    if (marginal.length) {
      rows.push('', '| server | sessions | RSS (MiB) | RSS added per session | PSS added per session (tree) |', '|---|---:|---:|---:|---:|');
      for (const r of marginal) {
        const m = r.idle!.marginal!;
        rows.push(`| ${r.server} | ${m.fromSessions} → ${m.toSessions} | ${mib(m.fromRssBytes)} → ${mib(m.toRssBytes)} | ${f(m.rssPerSessionBytes === null ? null : m.rssPerSessionBytes / 1024)} KiB | ${f(m.pssPerSessionBytes / 1024)} KiB |`);
      }
    }
  } else if (scenario === 'big') {
    rows.push(`| server | size | STOR MB/s | RETR MB/s | longest stall (s) | RSS idle → peak (MiB) | peak PSS tree (MiB) | CPU s | main ELU mean/max |`);
    rows.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const r of runs) {
      const s = r.byOp.STOR;
      const g = r.byOp.RETR;
      rows.push(
        `| ${r.server} | ${sizeText(sizeBytes)} | ${s?.complete ? f(s.aggregateMBps) : 'failed'} | ${g?.complete ? f(g.aggregateMBps) : 'failed'} | ${f((r.transfers?.longestMidStallMs ?? 0) / 1000, 2)} | ${mib(r.resources.baselineRssBytes)} → ${mib(r.resources.peakRssBytes)} | ${mib(r.resources.peakPssBytes)} | ${f(r.resources.cpuSecondsDuringRun)} | ${elu(r)} |`,
      );
    }
  } else {
    const head = scenario === 'churn' ? '| server | slots | sessions | complete / aborted / dropped / failed |' : '| server | N | complete |';
    rows.push(`${head} MB/s all (RETR / STOR) | Jain | min/median | longest stall (s) | TTFB p50/p99 (ms) | done p50/p99 (s) | logins/s | peak RSS (MiB) | CPU s | main ELU mean/max |`);
    rows.push(`|---|---:|${scenario === 'churn' ? '---:|---|' : '---:|'}---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|`);
    for (const r of runs) {
      const t = r.transfers;
      const sec = (ms: number | null | undefined): string => f(ms == null ? null : ms / 1000, 1);
      let lead: string;
      // TTFB and completion are measured from 'go': meaningless where sessions start at random times.
      const churn = scenario === 'churn';
      if (churn) {
        const o = r.churn?.outcomes ?? {};
        const count = (suffix: string): number => Object.entries(o).filter(([k]) => k.endsWith(suffix)).reduce((s, [, v]) => s + v, 0);
        lead = `| ${r.server} | ${r.sessions} | ${r.churn?.sessions ?? 0} | ${count('complete')} / ${count('aborted')} / ${count('dropped')} / ${count('failed')} |`;
      } else lead = `| ${r.server} | ${r.sessions} | ${t ? `${t.complete}/${t.transfers}` : '–'} |`;
      rows.push(
        `${lead} ${f(t?.aggregateMBps)} (${f(r.byOp.RETR?.aggregateMBps)} / ${f(r.byOp.STOR?.aggregateMBps)}) | ${f(t?.jain, 3)} | ${f(t?.minMedianRatio, 2)} | ${sec(t?.longestStallMs)} | ${churn ? 'n/a' : `${f(t?.ttfbMs.p50, 0)} / ${f(t?.ttfbMs.p99, 0)}`} | ${churn ? 'n/a' : `${sec(t?.completionMs.p50)} / ${sec(t?.completionMs.p99)}`} | ${f(r.logins.perSecond, 0)} | ${mib(r.resources.peakRssBytes)} | ${f(r.resources.cpuSecondsDuringRun)} | ${elu(r)} |`,
      );
    }
  }
  return rows.join('\n');
}

export interface TargetVerdict {
  target: string;
  measured: string;
  met: boolean | null;
}

export function judgeTargets(scenario: string, runs: PeerRunResult[]): TargetVerdict[] {
  const out: TargetVerdict[] = [];
  const find = (server: string, n: number): PeerRunResult | undefined => runs.find((r) => r.server === server && r.sessions === n);
  const dropftps = runs.filter((r) => r.server === 'dropftp' || r.server === 'dropftp-noworkers');
  for (const r of dropftps) {
    const who = `${r.server} n=${r.sessions}`;
    if (scenario === 'idle' && r.idle) {
      const per = r.idle.rssPerSessionBytes;
      out.push({ target: `${who}: all sessions held`, measured: `${r.idle.sessionsHeld}/${r.sessions}`, met: r.idle.sessionsHeld === r.sessions && r.idle.disconnected === 0 });
      out.push({ target: `${who}: RSS ≤ 16 KiB per session above idle`, measured: per === null ? 'unknown' : `${(per / 1024).toFixed(1)} KiB`, met: per === null ? null : per <= 16 * 1024 });
      const m = r.idle.marginal;
      if (m) {
        const added = m.rssPerSessionBytes;
        out.push({ target: `${who}: RSS added between ${m.fromSessions} and ${m.toSessions} sessions ≤ 4 KiB per session`, measured: added === null ? 'unknown' : `${(added / 1024).toFixed(2)} KiB`, met: added === null ? null : added <= 4 * 1024 });
      }
    }
    if (scenario === 'big') {
      const peak = r.resources.peakRssBytes;
      out.push({ target: `${who}: peak RSS ≤ 192 MiB (issue 16)`, measured: `${mib(peak)} MiB`, met: peak === null ? null : peak <= 192 * MiB });
      out.push({ target: `${who}: STOR and RETR complete`, measured: `${r.transfers?.complete ?? 0}/2`, met: r.transfers?.complete === 2 });
    }
    if (scenario === 'storm' && r.transfers) {
      const t = r.transfers;
      out.push({ target: `${who}: all complete`, measured: `${t.complete}/${t.transfers}`, met: t.complete === t.transfers && t.transfers === r.sessions });
      out.push({ target: `${who}: Jain ≥ 0.95`, measured: String(t.jain), met: t.jain === null ? null : t.jain >= 0.95 });
      out.push({ target: `${who}: longest stall ≤ 2 s`, measured: `${((t.longestStallMs ?? 0) / 1000).toFixed(2)} s (after first byte: ${((t.longestMidStallMs ?? 0) / 1000).toFixed(2)} s)`, met: t.longestStallMs === null ? null : t.longestStallMs <= 2000 });
      const py = find('pyftpdlib', r.sessions)?.transfers?.aggregateMBps;
      out.push({
        target: `${who}: aggregate ≥ 0.5 × pyftpdlib`,
        measured: py ? `${t.aggregateMBps} vs ${py} MB/s (${((t.aggregateMBps ?? 0) / py).toFixed(2)}×)` : 'no pyftpdlib run',
        met: py ? (t.aggregateMBps ?? 0) >= 0.5 * py : null,
      });
      const http = find('localbox-http', r.sessions)?.byOp.RETR?.aggregateMBps;
      const retr = r.byOp.RETR?.aggregateMBps;
      out.push({
        target: `${who}: RETR ≥ 0.8 × direct HTTP`,
        measured: http && retr ? `${retr} vs ${http} MB/s (${(retr / http).toFixed(2)}×)` : 'no RETR or no localbox-http run',
        met: http && retr ? retr >= 0.8 * http : null,
      });
    }
  }
  if (scenario === 'storm' || scenario === 'churn') {
    for (const on of runs.filter((r) => r.server === 'dropftp')) {
      const off = find('dropftp-noworkers', on.sessions);
      const a = on.transfers?.aggregateMBps;
      const b = off?.transfers?.aggregateMBps;
      out.push({
        target: `dropftp n=${on.sessions}: workers on beat workers off`,
        measured: a && b ? `${a} vs ${b} MB/s; main ELU ${on.elu?.mean ?? 'n/a'} vs ${off?.elu?.mean ?? 'n/a'}` : 'no --no-workers run',
        met: a && b ? a > b : null,
      });
    }
  }
  return out;
}
