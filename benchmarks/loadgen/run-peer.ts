// One measured run of one scenario against one server: fresh work directory, server start, seed
// file, resource sampling from /proc, the load run itself, summary, server stop, cleanup. Main
// thread. Invariants: the server is stopped and its directory removed whatever happens; the RSS
// baseline is taken after the seed upload and a settle pause, before any session connects.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PeerDef, PeerInstance } from '../peers/types.ts';
import { runLoad, type LoadOptions } from './coordinator.ts';
import { costLine, startCost } from './cost.ts';
import { kernelTcpLine, startKernelTcp } from './kernel-tcp.ts';
import { FtpControl } from './ftp-client.ts';
import { ftpTransfer } from './ftp-transfer.ts';
import { httpTransfer } from './http-transfer.ts';
import { TransferMeter, nowMs } from './meter.ts';
import { ResourceSampler, type ResourceSample } from './proc-stats.ts';
import { ProgressLine } from './progress.ts';
import type { OpMix, Scenario, Target } from './protocol.ts';
import { mergeErrors, summariseElu, summariseLogins, summariseResources, summariseTransfers, type OpSummary } from './summarise.ts';

export interface RunParams {
  scenario: Scenario;
  sessions: number;
  sizeBytes: number;
  op: OpMix;
  procs: number;
  holdMs: number;
  durationMs: number;
  noopMs: number;
  loginConcurrency: number;
  bucketMs: number;
  timelineSessions: number;
  stallTimeoutMs: number;
  replyTimeoutMs: number;
  pasvPorts: [number, number];
  sampleEveryMs: number;
  seed: number;
  sourceAddresses: number;
  /**
   * idle: also measure the RSS added per session between this many sessions and all of them (the
   * login phase pauses at this count; both points sampled after settleMs without traffic). 0: off.
   */
  checkpointSessions: number;
  settleMs: number;
  /** Dropbox's call-rate limit on the peer's local box ("RATE[:BURST]"), null: none. */
  boxRateLimit: string | null;
  /** Changes of that limit during the load: [seconds after the load started, "RATE[:BURST]"]. */
  boxRateSchedule: [number, string][];
  /** Extra `dropftp serve` flags (dropftp peers only), from --gateway-options. */
  gatewayFlags: string[];
  /**
   * storm: sessions of an untimed storm of the same op and size run first against the same server
   * (0: none), so that the measured one meets a warm server. Its own figures are kept (`warmup`).
   */
  warmupSessions: number;
}

// Relative paths: each server resolves them in the user's start directory (vsftpd has no jail here).
export const SEED_PATH = 'src.bin';
const SEED_SESSION_ID = 1_000_000;

/** Uploads the file that every RETR reads, through the server's own protocol. */
async function seed(target: Target, sizeBytes: number): Promise<void> {
  const plan = { op: 'STOR' as const, path: SEED_PATH, sizeBytes, sessionId: SEED_SESSION_ID, stallTimeoutMs: 120_000 };
  const meter = new TransferMeter(0, 'STOR', sizeBytes, nowMs(), 0);
  if (target.kind === 'http') return httpTransfer(target, plan, meter);
  const ctl = await FtpControl.connect(target.host, target.port);
  try {
    await ctl.login(target.user, target.password);
    await ftpTransfer(ctl, plan, meter);
  } finally {
    await ctl.quit();
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The RSS (server process) and PSS (its tree) added per session between two points of one run. */
function marginal(from: [number, ResourceSample] | null, to: [number, ResourceSample] | null) {
  if (!from || !to || to[0] <= from[0]) return null;
  const added = to[0] - from[0];
  const [a, b] = [from[1], to[1]];
  return {
    fromSessions: from[0],
    toSessions: to[0],
    fromRssBytes: a.rssBytes,
    toRssBytes: b.rssBytes,
    rssPerSessionBytes: a.rssBytes !== null && b.rssBytes !== null ? Math.round((b.rssBytes - a.rssBytes) / added) : null,
    pssPerSessionBytes: Math.round((b.treePssBytes - a.treePssBytes) / added),
  };
}

/** Spool files left once the load ended: polled up to 5 s for the last removals to land, then counted. */
async function settledSpoolFiles(count: () => number | null): Promise<number | null> {
  const deadline = nowMs() + 5000;
  let n = count();
  while (n !== null && n > 0 && nowMs() < deadline) {
    await sleep(250);
    n = count();
  }
  return n;
}

/** What runLoad needs of a run's parameters (the measured load; the warm-up overrides some). */
function loadOptions(instance: PeerInstance, p: RunParams): LoadOptions {
  return {
    scenario: p.scenario,
    target: instance.target,
    sessions: p.sessions,
    procs: p.procs,
    sizeBytes: p.sizeBytes,
    op: p.op,
    retrPath: SEED_PATH,
    storPrefix: 'up-',
    loginConcurrency: p.loginConcurrency,
    bucketMs: p.bucketMs,
    timelineSessions: p.timelineSessions,
    noopMs: p.noopMs,
    durationMs: p.durationMs,
    holdMs: p.holdMs,
    stallTimeoutMs: p.stallTimeoutMs,
    replyTimeoutMs: p.replyTimeoutMs,
    runTimeoutMs: Math.max(30 * 60_000, p.durationMs + p.holdMs + 10 * 60_000),
    seed: p.seed,
    sourceAddresses: p.sourceAddresses,
  };
}

/**
 * The untimed storm before the measured one (RunParams.warmupSessions): same op and size, its STORs
 * under other names, at most one load generator process. A server that runs for days has compiled
 * its code and holds its pools; the first storm after a start measures that start as much as the
 * transfers (dropftp, `--trace-opt`: ~350 functions optimised by TurboFan from its start to the end
 * of its first storm of 200, ~1.4 s of V8's compile threads; ~55 of them during a storm that
 * followed a warm-up of 50 sessions). What the warm-up itself cost is kept beside, counted as the
 * measured run's cost is (cost.ts; the measured run's counting starts afresh after it).
 */
async function warmUp(instance: PeerInstance, p: RunParams, line: ProgressLine) {
  const endCost = await startCost(instance);
  const raw = await runLoad({
    ...loadOptions(instance, p),
    sessions: p.warmupSessions,
    procs: 1,
    storPrefix: 'warmup-',
    timelineSessions: 0,
    holdMs: 0,
    onProgress(c, phase) {
      line.update(c, phase, 'warm-up');
    },
  });
  const transfers = raw.results.flatMap((r) => r.transfers);
  const all = summariseTransfers(transfers, raw.epochMs);
  if (all.complete < all.transfers) throw new Error(`warm-up: ${all.transfers - all.complete} of ${all.transfers} transfers failed`);
  const cost = await endCost(transfers, raw.cpuSeconds);
  return {
    sessions: p.warmupSessions,
    complete: all.complete,
    wallMs: Math.round(raw.endMs - raw.epochMs),
    aggregateMBps: all.aggregateMBps,
    cpuSecPerGiB: cost.cpuSecPerGiB,
  };
}

export async function runPeer(peer: PeerDef, p: RunParams) {
  const workDir = await mkdtemp(join(tmpdir(), `dropftp-bench-${peer.name}-`));
  let instance: PeerInstance | null = null;
  let sampler: ResourceSampler | null = null;
  let scheduled: NodeJS.Timeout[] = [];
  const progressSeries: [number, number][] = [];
  const label = `${peer.name} ${p.scenario} n=${p.sessions}`;
  const line = new ProgressLine(label);
  try {
    instance = await peer.start({ workDir, pasvPorts: p.pasvPorts, sessions: p.sessions, boxRateLimit: p.boxRateLimit, gatewayFlags: p.gatewayFlags });
    if ((p.boxRateLimit || p.boxRateSchedule.length) && !instance.backend?.setRateLimit) throw new Error(`${peer.name}: its backend has no call-rate limit to set`);
    if (p.scenario === 'storm' || p.scenario === 'churn') {
      if (p.op !== 'stor' || p.scenario === 'churn') await seed(instance.target, p.sizeBytes);
    }
    const warmup = p.scenario === 'storm' && p.warmupSessions > 0 ? await warmUp(instance, p, line) : null;
    await sleep(1000);
    const endCost = await startCost(instance);
    const kernel = startKernelTcp();
    sampler = new ResourceSampler(instance.pid, p.sampleEveryMs);
    const baseline = sampler.sample();
    // The limit changes, timed from the start of the load; each applied one is recorded.
    const backend = instance.backend;
    const rateChanges: { atS: number; spec: string; error?: string }[] = [];
    const loadStartMs = nowMs();
    scheduled = p.boxRateSchedule.map(([atS, spec]) =>
      setTimeout(() => {
        backend!.setRateLimit!(spec).then(
          () => rateChanges.push({ atS: Math.round((nowMs() - loadStartMs) / 100) / 10, spec }),
          (err: Error) => rateChanges.push({ atS: Math.round((nowMs() - loadStartMs) / 100) / 10, spec, error: err.message }),
        );
      }, atS * 1000),
    );
    let ready: ResourceSample | null = null;
    let held: ResourceSample | null = null;
    // The marginal measurement: [sessions logged in, sample] at the checkpoint and once all are in.
    let atCheckpoint: [number, ResourceSample] | null = null;
    let atAll: [number, ResourceSample] | null = null;
    const raw = await runLoad({
      ...loadOptions(instance, p),
      checkpointSessions: p.checkpointSessions,
      async onCheckpoint(c) {
        await sleep(p.settleMs);
        atCheckpoint = [c.loggedIn, sampler!.sample()];
      },
      onProgress(c, phase) {
        progressSeries.push([nowMs(), c.bytes]);
        kernel.sample();
        const rss = sampler?.last.rssBytes;
        line.update(c, phase, rss ? `server rss ${(rss / 2 ** 20).toFixed(0)} MiB` : '');
      },
      async onReady(c) {
        ready = sampler!.sample();
        if (p.checkpointSessions) {
          await sleep(p.settleMs);
          atAll = [c.loggedIn, sampler!.sample()];
        }
      },
      async onHeld() {
        held = sampler!.sample();
      },
    });
    for (const t of scheduled) clearTimeout(t);
    const samples = sampler.stop();
    sampler = null;
    const transfers = raw.results.flatMap((r) => r.transfers);
    const cost = await endCost(transfers, raw.cpuSeconds);
    const kernelTcp = kernel.end();
    const spoolFilesAfterLoad = instance.spoolFiles ? await settledSpoolFiles(instance.spoolFiles.bind(instance)) : null;
    const byOp: Record<string, OpSummary> = {};
    for (const op of ['RETR', 'STOR'] as const) {
      const records = transfers.filter((t) => t.op === op);
      if (records.length) byOp[op] = summariseTransfers(records, raw.epochMs);
    }
    const logins = summariseLogins(raw);
    const resources = summariseResources(samples, baseline, ready, raw.epochMs, raw.endMs);
    const heldRss = (held as ResourceSample | null)?.rssBytes ?? null;
    const idle =
      p.scenario === 'idle'
        ? {
            sessionsHeld: logins.ok,
            heldRssBytes: heldRss,
            rssPerSessionBytes: heldRss !== null && baseline.rssBytes !== null && logins.ok ? Math.round((heldRss - baseline.rssBytes) / logins.ok) : null,
            heldPssBytes: (held as ResourceSample | null)?.treePssBytes ?? null,
            marginal: marginal(atCheckpoint, atAll),
            pssPerSessionBytes: held && logins.ok ? Math.round(((held as ResourceSample).treePssBytes - baseline.treePssBytes) / logins.ok) : null,
            ...raw.results.reduce(
              (acc, r) => ({
                noopsOk: acc.noopsOk + (r.idle?.noopsOk ?? 0),
                noopsFailed: acc.noopsFailed + (r.idle?.noopsFailed ?? 0),
                disconnected: acc.disconnected + (r.idle?.disconnected ?? 0),
              }),
              { noopsOk: 0, noopsFailed: 0, disconnected: 0 },
            ),
          }
        : null;
    const churn =
      p.scenario === 'churn'
        ? raw.results.reduce(
            (acc, r) => {
              acc.sessions += r.churn?.sessions ?? 0;
              for (const [k, v] of Object.entries(r.churn?.outcomes ?? {})) acc.outcomes[k] = (acc.outcomes[k] ?? 0) + v;
              return acc;
            },
            { sessions: 0, outcomes: {} as Record<string, number> },
          )
        : null;
    // The first transfer of each of the first `timelineSessions` sessions (churn runs many per session).
    const seen = new Set<number>();
    const timeline = transfers
      .filter((t) => t.buckets)
      .sort((a, b) => a.id - b.id || a.startMs - b.startMs)
      .filter((t) => !seen.has(t.id) && seen.add(t.id) !== null)
      .map((t) => ({ id: t.id, op: t.op, ok: t.ok, buckets: t.buckets! }));
    const all = transfers.length ? summariseTransfers(transfers, raw.epochMs) : null;
    line.done(
      `${all ? `${all.complete}/${all.transfers} transfers, ${all.aggregateMBps} MB/s, Jain ${all.jain}, longest stall ${all.longestStallMs} ms, ` : ''}` +
        `${logins.ok} logins (${logins.perSecond}/s), peak RSS ${((resources.peakRssBytes ?? 0) / 2 ** 20).toFixed(0)} MiB` +
        `${spoolFilesAfterLoad !== null ? `, spool files left ${spoolFilesAfterLoad}` : ''}`,
    );
    if (transfers.length) process.stdout.write(`  ${costLine(peer.name, cost)}\n`);
    process.stdout.write(`  ${kernelTcpLine(peer.name, kernelTcp)}\n`);
    return {
      server: peer.name,
      description: peer.description,
      notes: instance.notes,
      sessions: p.sessions,
      wallMs: Math.round(raw.endMs - raw.epochMs),
      loginPhaseMs: Math.round(raw.readyMs - (logins.ok || logins.failed ? raw.results.reduce((m, r) => Math.min(m, r.logins.firstStartMs ?? Infinity), Infinity) : raw.readyMs)),
      logins,
      transfers: all,
      byOp,
      idle,
      churn,
      resources,
      cost,
      kernelTcp,
      spoolFilesAfterLoad,
      warmup,
      boxRateLimit: p.boxRateLimit || p.boxRateSchedule.length ? { limit: p.boxRateLimit, changes: rateChanges } : null,
      elu: summariseElu(instance.elu(), raw.epochMs, raw.endMs),
      errors: mergeErrors(raw),
      throughputSeries: progressSeries
        .filter(([t]) => t >= raw.epochMs)
        .map(([t, b], i, arr) => {
          const prev = arr[i - 1] ?? [raw.epochMs, progressSeries.filter(([pt]) => pt < raw.epochMs).at(-1)?.[1] ?? 0];
          return [Math.round((t - raw.epochMs) / 100) / 10, Math.round(((b - prev[1]) / 1e6 / Math.max(0.001, (t - prev[0]) / 1000)) * 10) / 10];
        }),
      timeline: { bucketMs: p.bucketMs, sessions: timeline },
    };
  } finally {
    for (const t of scheduled) clearTimeout(t);
    sampler?.stop();
    if (instance) await instance.close().catch(() => {});
    await rm(workDir, { recursive: true, force: true }).catch(() => {});
  }
}

export type PeerRunResult = Awaited<ReturnType<typeof runPeer>>;
