// What one refresh of the status page costs the gateway's main thread with 1,000 sessions and 200
// transfers in flight (issue 17: <= 2 ms), for 0, 50 and all sessions changed between refreshes.
// In-process: the real AdminServer + status routes (Host check, token check, snapshot, JSON, HTTP)
// on 127.0.0.1, the snapshot cache off so every request builds a fresh one; the client is one curl
// process (keep-alive, sequential requests). Per refresh: CPU time from one request's arrival to the
// next's (answering it, writing it, parsing the next), less the simulated FTP activity, which runs at
// each arrival and is timed apart. Two clocks: the main thread's own (Linux /proc/thread-self/schedstat,
// run time in ns, brought up to date whenever the thread sleeps between requests) and the whole
// process's (process.cpuUsage: also V8's GC helper threads, so an upper bound).
// Usage: node --conditions=source --import tsx benchmarks/status-page.ts [--sessions 1000]
//   [--transfers 200] [--requests 400] [--changed 0,50,1000] [--note TEXT]
// Saves benchmarks/results/status-page.json.

import { execFile } from 'node:child_process';
import { mkdirSync, openSync, readSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { AdminAccess } from '../src/admin/access.ts';
import { RecentActivity } from '../src/admin/recent.ts';
import { SessionWatch, type SessionLike } from '../src/admin/session-watch.ts';
import { StatusModel } from '../src/admin/status-model.ts';
import { StatusRoutes } from '../src/admin/status-routes.ts';
import { silentLog } from '../src/log/logger.ts';
import { AdminServer } from '../src/metrics/admin-server.ts';

const { values } = parseArgs({
  options: {
    sessions: { type: 'string', default: '1000' },
    transfers: { type: 'string', default: '200' },
    requests: { type: 'string', default: '400' },
    changed: { type: 'string', default: '0,50,1000' },
    note: { type: 'string', default: '' },
  },
});
const SESSIONS = Number(values.sessions);
const TRANSFERS = Number(values.transfers);
const REQUESTS = Number(values.requests);
const CHANGED_LIST = values.changed.split(',').map(Number);
const TOKEN = 'benchmark-token-0123456789';
const LIMIT_MS = 2;
const WARMUP_REQUESTS = 50;
const MODEL_LOOPS = 200;

/** Sessions as the FTP layer holds them; the transfers' byte counts move between refreshes. */
function population(watch: SessionWatch): SessionLike[] {
  const sessions: SessionLike[] = [];
  for (let i = 0; i < SESSIONS; i++) {
    const id = `${(0x10000000 + i).toString(16)}-7041-42dd-aac9-${(0x100000000000 + i).toString(16)}`;
    const moving = i < TRANSFERS;
    const transfer = moving ? { directive: i % 2 ? 'RETR' : 'STOR', bytes: i * 12_345 } : null;
    sessions.push({ id, username: `user${i % 300}`, authenticated: i % 10 !== 9, controlPeerAddress: `198.51.100.${i % 250}`, secure: i % 3 === 0, dataProtection: i % 3 === 0 ? 'P' : 'C', transfer });
    watch.connected(id, sessions[i]!);
    watch.commandStarted(id, 'USER', `user${i % 300}`);
    if (moving) {
      watch.commandStarted(id, i % 2 ? 'RETR' : 'STOR', `incoming/2026-12-03/camera-${i}/IMG_${100000 + i}.jpg`);
      watch.fileOpened(id, `/incoming/2026-12-03/camera-${i}/IMG_${100000 + i}.jpg`, i % 2 ? 'download' : 'upload', i % 2 ? 50_000_000 : null);
    }
  }
  return sessions;
}

function engineStats(tick: number): unknown {
  const accounts: Record<string, unknown> = {};
  for (let a = 0; a < 20; a++) accounts[`team-${a}`] = { limit: 16, ceiling: 16, maxLimit: 16, inFlight: a % 5, waiting: a % 3, throttles: a, retries: 2 * a, pausedForMs: a === 3 ? 1200 : 0, callsStarted: 1000 * a + tick };
  return {
    threads: 8,
    onlyMainThread: false,
    activeDownloads: TRANSFERS / 2,
    activeUploads: TRANSFERS / 2,
    memory: { budgetBytes: 512 << 20, ringBytesInUse: 200 << 18, chunkBytesInUse: 100 << 20, uploadChunkBytes: 1 << 20, newestRingBytes: 1 << 18 },
    accounts,
    retries: 40,
    throttles: 20,
    workerCrashes: 0,
    workerUtilization: 0.4,
    commits: { calls: 500, committed: 4000, backlog: 12 },
    requests: { download: { '200': 1000 + tick, '206': 40 }, upload_start: { '200': 900 }, upload_append: { '200': 3000, '429': 20 }, finish_batch: { '200': 500 } },
    workerHeaps: Array.from({ length: 8 }, (_, t) => ({ threadKey: t, heapUsedBytes: 10 << 20, heapTotalBytes: 16 << 20, externalBytes: 1 << 20 })),
  };
}

function curl(url: string, count: number): Promise<void> {
  const urls = Array.from({ length: count }, () => ['-o', '/dev/null', url]).flat();
  return new Promise((resolve, reject) => {
    execFile('curl', ['-sS', '--fail', '-H', `Authorization: Bearer ${TOKEN}`, ...urls], { maxBuffer: 1 << 20 }, (err) => (err ? reject(err) : resolve()));
  });
}

const cpuMs = (): number => {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
};

/** The main thread's run time in ms (null where /proc/thread-self/schedstat is missing). */
const threadCpuMs = ((): (() => number | null) => {
  let fd: number;
  try {
    fd = openSync('/proc/thread-self/schedstat', 'r'); // opened on the main thread: names it for good
  } catch {
    return () => null;
  }
  const buf = Buffer.alloc(128);
  return () => {
    const n = readSync(fd, buf, 0, buf.length, 0);
    return Number(buf.toString('latin1', 0, n).split(' ')[0]) / 1e6;
  };
})();

function stats(samples: number[]): { median: number; p95: number; mean: number; max: number; count: number } {
  const sorted = samples.slice().sort((a, b) => a - b);
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
  return { median: round(at(0.5)), p95: round(at(0.95)), mean: round(sorted.reduce((n, x) => n + x, 0) / sorted.length), max: round(sorted[sorted.length - 1]!), count: sorted.length };
}

async function main(): Promise<void> {
  const watch = new SessionWatch();
  const sessions = population(watch);
  const recent = new RecentActivity();
  for (let i = 0; i < 20; i++) {
    recent.errors.push({ atMs: Date.now(), kind: 'STOR failed', user: `user${i}`, client: '198.51.100.1', path: `/incoming/f${i}.jpg`, code: 'DROPFTP_ERR_CLIENT_GONE', message: '426 Data connection closed; transfer aborted' });
    recent.transfers.push({ atMs: Date.now(), user: `user${i}`, path: `/incoming/f${i}.jpg`, direction: 'upload', bytes: 123_456, durationMs: 800, result: 'ok' });
    recent.commitBatches.push(i + 1);
  }
  // Between two refreshes every transfer moves and `changed` sessions run a command (their rows go
  // stale). This is the FTP layer's work, not the page's: it is kept out of the figures.
  let tick = 0;
  let changed = 0;
  const activity = (): void => {
    tick++;
    for (const s of sessions) if (s.transfer) (s.transfer as { bytes: number }).bytes += 4096;
    for (let k = 0; k < changed; k++) {
      const id = sessions[(tick * changed + k) % SESSIONS]!.id;
      watch.commandEnded(id, watch.commandStarted(id, 'NOOP', ''));
    }
  };
  const model = new StatusModel({ sessions: () => sessions, watch, recent, engine: () => engineStats(tick), startedAtMs: Date.now() });
  const access = new AdminAccess('127.0.0.1', { token: TOKEN, requireToken: true });
  const routes = new StatusRoutes({ access, model, log: silentLog(), disconnect: () => null, cacheMs: 0 });

  // Each /status.json arrival closes the previous refresh's sample, then runs the activity.
  let samples: number[] = [];
  let threadSamples: number[] = [];
  let activityMs = 0;
  let markMs: number | null = null;
  let threadMarkMs: number | null = null;
  const onArrival = (): void => {
    const threadMs = threadCpuMs();
    const nowMs = cpuMs();
    if (markMs !== null) samples.push(nowMs - markMs);
    if (threadMs !== null && threadMarkMs !== null) threadSamples.push(threadMs - threadMarkMs);
    const a0 = cpuMs();
    activity();
    const a1 = cpuMs();
    activityMs += a1 - a0;
    markMs = a1;
    threadMarkMs = threadCpuMs();
  };
  const admin = new AdminServer({
    host: '127.0.0.1',
    port: 0,
    metrics: () => '',
    health: async () => ({ ok: true, checks: {} }),
    routes: (req, res, path) => {
      if (path === '/status.json') onArrival();
      return routes.handle(req, res, path);
    },
  });
  const { port } = await admin.listen();
  const url = `http://127.0.0.1:${port}/status.json`;
  const load0 = loadavg()[0]!;

  const scenarios = [];
  for (const c of CHANGED_LIST) {
    changed = c;
    // The bare model (snapshot + JSON, no HTTP), one body() at a time.
    const modelSamples: number[] = [];
    let bytes = 0;
    for (let i = 0; i < MODEL_LOOPS + 20; i++) {
      activity();
      const t0 = cpuMs();
      const body = model.body();
      const t1 = cpuMs();
      if (i >= 20) modelSamples.push(t1 - t0);
      bytes = body.reduce((n, piece) => n + Buffer.byteLength(piece), 0);
    }
    // The whole request path.
    await curl(url, WARMUP_REQUESTS);
    samples = [];
    threadSamples = [];
    markMs = null;
    threadMarkMs = null;
    activityMs = 0;
    const c0 = cpuMs();
    const t0 = threadCpuMs();
    await curl(url, REQUESTS);
    const t1 = threadCpuMs();
    const totalMs = cpuMs() - c0 - activityMs;
    const process_ = stats(samples);
    const thread = threadSamples.length > 0 ? stats(threadSamples) : null;
    const scenario = {
      sessionsChangedPerRefresh: c,
      requests: REQUESTS,
      statusJsonBytes: bytes,
      mainThreadCpuMsPerRefresh: thread,
      processCpuMsPerRefresh: process_,
      processCpuMsPerRefreshFromTotal: round(totalMs / REQUESTS),
      mainThreadCpuMsPerRefreshFromTotal: t0 === null || t1 === null ? null : round((t1 - t0 - activityMs) / REQUESTS),
      modelCpuMs: stats(modelSamples),
      withinLimit: (thread ?? process_).p95 <= LIMIT_MS,
    };
    scenarios.push(scenario);
    const main = thread ? `main thread median ${thread.median} ms, p95 ${thread.p95} ms; ` : '';
    process.stdout.write(
      `${SESSIONS} sessions, ${TRANSFERS} transfers, ${String(c).padStart(4)} changed: CPU per refresh: ${main}whole process median ${process_.median} ms, p95 ${process_.p95} ms (model alone median ${scenario.modelCpuMs.median} ms; ${bytes} bytes; limit ${LIMIT_MS} ms)\n`,
    );
  }
  await admin.close();

  const result = {
    benchmark: 'status-page',
    date: new Date().toISOString(),
    node: process.version,
    cpus: cpus().length,
    loadAverage1m: { start: load0, end: loadavg()[0] },
    note: values.note || undefined,
    command: `node --conditions=source --import tsx benchmarks/status-page.ts ${process.argv.slice(2).join(' ')}`.trim(),
    sessions: SESSIONS,
    transfers: TRANSFERS,
    limitMs: LIMIT_MS,
    method: 'CPU from one /status.json arrival to the next, less the simulated FTP activity: main thread from /proc/thread-self/schedstat, whole process from process.cpuUsage; curl client in its own process, keep-alive, sequential; snapshot cache off',
    scenarios,
  };
  const dir = fileURLToPath(new URL('./results/', import.meta.url));
  mkdirSync(dir, { recursive: true });
  writeFileSync(`${dir}status-page.json`, `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write('-> benchmarks/results/status-page.json\n');
}

const round = (n: number): number => Math.round(n * 1000) / 1000;

await main();
