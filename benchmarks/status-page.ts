// What one refresh of the status page costs the gateway's main thread with 1,000 sessions and 200
// transfers in flight (issue 17: <= 2 ms). In-process: the real AdminServer + status routes (token
// check, Host check, snapshot, JSON, HTTP) on 127.0.0.1, the snapshot cache off so every request
// builds a fresh one; the client is a separate curl process (keep-alive, sequential requests), so
// this process's CPU time (process.cpuUsage: no worker thread runs here) divided by the requests is
// the cost per refresh. Also the bare snapshot as JSON text, its CPU time in a loop.
// Usage: node --import tsx benchmarks/status-page.ts [--sessions 1000] [--transfers 200] [--requests 400]
//   [--changed 50]  (sessions that run a command between two refreshes)
// Saves benchmarks/results/status-page.json.

import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { AdminAccess } from '../src/admin/access.ts';
import { RecentActivity } from '../src/admin/recent.ts';
import { SessionWatch, type SessionLike } from '../src/admin/session-watch.ts';
import { StatusModel } from '../src/admin/status-model.ts';
import { StatusRoutes } from '../src/admin/status-routes.ts';
import { silentLog } from '../src/log/logger.ts';
import { AdminServer } from '../src/metrics/admin-server.ts';

const { values } = parseArgs({ options: { sessions: { type: 'string', default: '1000' }, transfers: { type: 'string', default: '200' }, requests: { type: 'string', default: '400' }, changed: { type: 'string', default: '50' } } });
const SESSIONS = Number(values.sessions);
const TRANSFERS = Number(values.transfers);
const REQUESTS = Number(values.requests);
const CHANGED = Number(values.changed);
const TOKEN = 'benchmark-token-0123456789';
const LIMIT_MS = 2;

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

async function main(): Promise<void> {
  const watch = new SessionWatch();
  const sessions = population(watch);
  const recent = new RecentActivity();
  for (let i = 0; i < 20; i++) {
    recent.errors.push({ atMs: Date.now(), kind: 'STOR failed', user: `user${i}`, client: '198.51.100.1', path: `/incoming/f${i}.jpg`, code: 'DROPFTP_ERR_CLIENT_GONE', message: '426 Data connection closed; transfer aborted' });
    recent.transfers.push({ atMs: Date.now(), user: `user${i}`, path: `/incoming/f${i}.jpg`, direction: 'upload', bytes: 123_456, durationMs: 800, result: 'ok' });
    recent.commitBatches.push(i + 1);
  }
  // Between two refreshes every transfer moves and CHANGED sessions run a command (so the sessions
  // list is rebuilt every time, from the rows that did not change plus the ones that did).
  let tick = 0;
  const activity = (): void => {
    tick++;
    for (const s of sessions) if (s.transfer) (s.transfer as { bytes: number }).bytes += 4096;
    for (let k = 0; k < CHANGED; k++) {
      const id = sessions[(tick * CHANGED + k) % SESSIONS]!.id;
      watch.commandEnded(id, watch.commandStarted(id, 'NOOP', ''));
    }
  };
  const model = new StatusModel({
    sessions: () => sessions,
    watch,
    recent,
    engine: () => {
      activity();
      return engineStats(tick);
    },
    startedAtMs: Date.now(),
  });

  // The bare model: snapshot + JSON.
  let bytes = 0;
  for (let i = 0; i < 50; i++) bytes = model.body().reduce((n, piece) => n + Buffer.byteLength(piece), 0);
  const loops = 300;
  const c0 = process.cpuUsage();
  for (let i = 0; i < loops; i++) bytes = model.body().reduce((n, piece) => n + Buffer.byteLength(piece), 0);
  const c1 = process.cpuUsage(c0);
  const snapshotMs = (c1.user + c1.system) / 1000 / loops;

  // The whole request path, measured as this process's CPU time per request.
  const access = new AdminAccess('127.0.0.1', { token: TOKEN, requireToken: true });
  const routes = new StatusRoutes({ access, model, log: silentLog(), disconnect: () => null, cacheMs: 0 });
  const admin = new AdminServer({ host: '127.0.0.1', port: 0, metrics: () => '', health: async () => ({ ok: true, checks: {} }), routes: (req, res, path) => routes.handle(req, res, path) });
  const { port } = await admin.listen();
  const url = `http://127.0.0.1:${port}/status.json`;
  await curl(url, 50); // warm-up
  const cpu0 = process.cpuUsage();
  const w0 = performance.now();
  await curl(url, REQUESTS);
  const wallMs = performance.now() - w0;
  const cpu = process.cpuUsage(cpu0);
  await admin.close();
  const perRefreshMs = (cpu.user + cpu.system) / 1000 / REQUESTS;

  const result = {
    benchmark: 'status-page',
    date: new Date().toISOString(),
    node: process.version,
    cpus: cpus().length,
    loadAverage1m: loadavg()[0],
    sessions: SESSIONS,
    transfers: TRANSFERS,
    sessionsChangedPerRefresh: CHANGED,
    requests: REQUESTS,
    statusJsonBytes: bytes,
    modelCpuMs: round(snapshotMs),
    perRefreshCpuMs: round(perRefreshMs),
    perRefreshCpuUserMs: round(cpu.user / 1000 / REQUESTS),
    perRefreshCpuSystemMs: round(cpu.system / 1000 / REQUESTS),
    requestsPerSecondSequential: Math.round((REQUESTS * 1000) / wallMs),
    limitMs: LIMIT_MS,
    withinLimit: perRefreshMs <= LIMIT_MS,
  };
  const dir = fileURLToPath(new URL('./results/', import.meta.url));
  mkdirSync(dir, { recursive: true });
  writeFileSync(`${dir}status-page.json`, `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(`status page, ${SESSIONS} sessions, ${TRANSFERS} transfers: ${result.perRefreshCpuMs} ms main-thread CPU per refresh (limit ${LIMIT_MS} ms; model alone ${result.modelCpuMs} ms; ${bytes} bytes of JSON) -> benchmarks/results/status-page.json\n`);
}

const round = (n: number): number => Math.round(n * 1000) / 1000;

await main();
