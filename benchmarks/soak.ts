// Soak run (`npm run soak`, 30 minutes by default; --minutes N, --sessions N, --seed N, --out FILE):
// mixed FTP load (STOR, RETR, LIST, ABOR and dropped connections) against the gateway process
// (soak-gateway.ts: `dropftp serve` with an IPC side door, started under bin/with-tuned-malloc as
// bin/dropftp starts serve) while its local box injects faults in rotating phases; samples the
// gateway's and the box's RSS and open fds every few seconds. Runs on the driver's main thread.
// Invariants: every store check reads the local box over HTTP, never through dropftp; each worker
// owns its files, so the expected version of each file is exact.

import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { contentHash } from '../src/localbox/content-hash.ts';
import type { FaultSpec } from '../src/localbox/types.ts';
import { RawFtp } from '../test/ftp/helpers/raw-client.ts';
import { KiB, MiB, pattern, pick, prng, sha256, sleep } from '../test/reliability/helpers.ts';
import { StoreCheck, list, retr, stor, type Mode, type Outcome } from './soak-ops.ts';
import { driftReport, machineSnapshot, type Sample } from './soak-report.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const flag = (name: string, fallback: number): number => {
  const i = args.indexOf(`--${name}`);
  const env = process.env[`SOAK_${name.toUpperCase().replace(/-/g, '_')}`];
  return Number(i >= 0 ? args[i + 1] : (env ?? fallback));
};
const MINUTES = flag('minutes', 30);
const SESSIONS = flag('sessions', 10);
const SEED = flag('seed', 20240917);
const PHASE_S = flag('phase-seconds', 90);
const SAMPLE_MS = flag('sample-ms', 5000);
const outIndex = args.indexOf('--out');
const OUT = outIndex >= 0 ? args[outIndex + 1]! : join(HERE, 'results', 'soak.json');
const FILES_PER_WORKER = 4;
const SIZES = [0, 1 * KiB, 64 * KiB, 300 * KiB, 1 * MiB, 1 * MiB, 3 * MiB, 6 * MiB];

/** Fault phases, in rotation; every fault is one dropftp must survive (retry, or an error reply). */
const PHASES: Array<{ name: string; spec: FaultSpec }> = [
  { name: 'none', spec: { rules: [] } },
  { name: '429 too_many_requests', spec: { rules: [{ kind: 'too_many_requests', probability: 0.05, retryAfterSec: 1 }] } },
  { name: '429 too_many_write_operations', spec: { rules: [{ kind: 'too_many_write_operations', probability: 0.08, retryAfterSec: 1, routes: ['files/upload_session/finish_batch_v2', 'files/upload_session/finish', 'files/upload', 'files/delete_v2', 'files/move_v2'] }] } },
  { name: '5xx', spec: { rules: [{ kind: 'server_error', probability: 0.05, status: 503 }, { kind: 'server_error', probability: 0.02, status: 500 }] } },
  { name: 'latency', spec: { rules: [{ kind: 'latency', probability: 0.3, latencyMs: 150 }] } },
  { name: 'resets mid-body', spec: { rules: [{ kind: 'reset', probability: 0.04, afterBytes: 100 * KiB }] } },
  { name: 'corrupt downloads', spec: { rules: [{ kind: 'corrupt', probability: 0.05 }] } },
  { name: 'concurrency cap 4', spec: { rules: [], concurrencyPerAccount: 4 } },
  { name: 'mixed', spec: { rules: [{ kind: 'too_many_requests', probability: 0.02 }, { kind: 'server_error', probability: 0.02 }, { kind: 'latency', probability: 0.1, latencyMs: 100 }, { kind: 'reset', probability: 0.02, afterBytes: 50 * KiB }, { kind: 'corrupt', probability: 0.02 }], concurrencyPerAccount: 8 } },
];

interface Version { size: number; seed: number; sha: string; ch: string }
const counts = { attempted: 0, completed: 0, failedCleanly: 0, stoppedAsIntended: 0, failedUnclean: 0, corrupted: 0, lost: 0, lists: 0, listsFailedCleanly: 0, listMismatches: 0, reconnects: 0, crashes: 0, storeUnreachable: 0 };
const byOp: Record<string, Record<string, number>> = {};
const problems: string[] = [];
const note = (what: string): void => {
  if (problems.length < 200) problems.push(`${new Date().toISOString()} ${what}`);
  console.log(`! ${what}`);
};

// ---- gateway process -------------------------------------------------------------------------
let gateway: { child: ChildProcess; port: number; boxUrl: string; output: string[]; stopping: boolean };
let user = '';
let password = '';
let nextId = 1;
const pending = new Map<number, (m: { ok: boolean; value?: unknown; message?: string }) => void>();

async function startGateway(dataDir: string): Promise<void> {
  // Through bin/with-tuned-malloc, as bin/dropftp runs `serve` (it execs: the pid sampled is node's).
  const child = spawn(join(HERE, '..', 'bin', 'with-tuned-malloc'), [process.execPath, '--import', 'tsx', join(HERE, 'soak-gateway.ts'), dataDir], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
  const output: string[] = [];
  const keep = (d: Buffer): void => void (output.push(d.toString()), output.length > 200 && output.shift());
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const ready = await new Promise<{ port: number; boxUrl: string; user?: string; password?: string }>((resolve, reject) => {
    child.once('exit', (code, signal) => reject(new Error(`gateway exited ${code ?? signal}: ${output.join('')}`)));
    child.on('message', (m: { type?: string; id?: number; port: number; boxUrl: string; ok: boolean }) => {
      if (m.type === 'ready') resolve(m);
      else if (m.id !== undefined) pending.get(m.id)?.(m), pending.delete(m.id);
    });
  });
  if (ready.user && ready.password) [user, password] = [ready.user, ready.password];
  child.removeAllListeners('exit');
  gateway = { child, port: ready.port, boxUrl: ready.boxUrl, output, stopping: false };
  child.once('exit', (code, signal) => {
    if (gateway.child !== child || gateway.stopping) return;
    counts.crashes++;
    note(`gateway crashed (${code ?? signal}): ${output.join('').slice(-2000)}`);
    void startGateway(dataDir).then(() => setFaults(currentPhase.spec), (err: Error) => note(`restart failed: ${err.message}`));
  });
}

function call<T>(type: string, extra: Record<string, unknown> = {}, timeoutMs = 10_000): Promise<T> {
  const id = nextId++;
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => (pending.delete(id), reject(new Error(`gateway IPC ${type}: no answer`))), timeoutMs);
    pending.set(id, (m) => {
      clearTimeout(timer);
      if (m.ok) resolve(m.value as T);
      else reject(new Error(m.message));
    });
    gateway.child.send({ id, type, ...extra });
  });
}
const setFaults = (spec: FaultSpec): Promise<void> => call('faults', { spec });

// ---- /proc sampling --------------------------------------------------------------------------
function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}
/** Resident anonymous and file-backed bytes (smaps_rollup): heaps and buffers vs. mapped code. */
function rssSplit(pid: number): { gatewayAnonBytes: number; gatewayFileBytes: number } {
  const text = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const kb = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? 0) * 1024;
  return { gatewayAnonBytes: kb('Anonymous'), gatewayFileBytes: kb('Rss') - kb('Anonymous') };
}
function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}
/** What the process's fds are, by kind (socket, pipe, anon_inode:[eventfd], file …): for leak reports. */
function fdKinds(pid: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    let target = 'gone';
    try {
      target = readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      /* closed meanwhile */
    }
    const kind = target.replace(/\[\d+\]$/, '').replace(/^\/.*/, 'file');
    out[kind] = (out[kind] ?? 0) + 1;
  }
  return out;
}
const samples: Sample[] = [];
let machineAtStart = machineSnapshot();
let loadSum = 0;
let loadSamples = 0;
let currentPhase = PHASES[0]!;
async function sample(startMs: number): Promise<Sample | null> {
  try {
    const pid = gateway.child.pid!;
    const c = await call<Record<string, number> & Pick<Sample, 'sessions' | 'passiveListeners' | 'activeDownloads' | 'activeUploads'>>('counters', {}, 5000);
    const s: Sample = { tS: (Date.now() - startMs) / 1000, phase: currentPhase.name, gatewayRssBytes: rssBytes(pid), ...rssSplit(pid), gatewayFds: fdCount(pid), boxRssBytes: rssBytes(c.boxPid!), boxFds: fdCount(c.boxPid!), ...c, completed: counts.completed };
    samples.push(s);
    loadSum += machineSnapshot().loadAverage1m;
    loadSamples++;
    return s;
  } catch (err) {
    note(`sample failed: ${(err as Error).message}`);
    return null;
  }
}

// ---- load ------------------------------------------------------------------------------------
const expected = new Map<string, Set<string>>(); // path → content hashes the store may hold ('absent')
const versions = new Map<string, Version>(); // path → the last version acknowledged by a 226
let store: StoreCheck;

async function checkStore(path: string, context: string): Promise<void> {
  const got = await store.contentHash(path);
  if (got === null) return void (counts.storeUnreachable++, note(`${path}: store unreachable (${context})`));
  const allowed = expected.get(path)!;
  if (allowed.has(got)) return;
  const older = got !== 'absent';
  counts[older ? 'corrupted' : 'lost']++;
  note(`${path} after ${context}: store holds ${got}, expected one of ${[...allowed].join(', ')}`);
  expected.set(path, new Set([got])); // report each divergence once
}

function record(op: string, outcome: Outcome): void {
  const row = (byOp[op] ??= {});
  row[outcome.kind] = (row[outcome.kind] ?? 0) + 1;
  if (outcome.kind === 'error') counts.failedCleanly++;
  else if (outcome.kind === 'stopped') counts.stoppedAsIntended++;
  else if (outcome.kind === 'stuck' || outcome.kind === 'closed') (counts.failedUnclean++, note(`${op}: ${outcome.kind} ${outcome.what}`));
}

async function worker(w: number, deadlineMs: number): Promise<void> {
  const rnd = prng(SEED * 31 + w);
  const paths = Array.from({ length: FILES_PER_WORKER }, (_, i) => `/soak/w${w}/f${i}.bin`);
  for (const p of paths) expected.set(p, new Set(['absent']));
  let c: RawFtp | null = null;
  let serial = 0;
  while (Date.now() < deadlineMs) {
    try {
      if (!c || c.closed) {
        c?.close();
        c = await RawFtp.connect(gateway.port);
        await c.login(user, password);
        counts.reconnects++;
      }
      const path = pick(rnd, paths);
      const r = rnd();
      const mode: Mode = rnd() < 0.8 ? 'whole' : rnd() < 0.55 ? 'abort' : 'drop';
      if (r < 0.45) {
        const size = mode === 'whole' ? pick(rnd, SIZES) : pick(rnd, SIZES.slice(3));
        const seed = SEED + w * 1_000_000 + serial++;
        const bytes = pattern(size, seed);
        const v: Version = { size, seed, sha: sha256(bytes), ch: contentHash(bytes) };
        counts.attempted++;
        const out = await stor(c, path, bytes, mode);
        record(`STOR ${mode}`, out);
        if (out.kind === 'ok') {
          counts.completed++;
          expected.set(path, new Set([v.ch]));
          versions.set(path, v);
          await checkStore(path, 'a 226 STOR');
        } else if (out.kind === 'stuck' || out.kind === 'closed') {
          expected.get(path)!.add(v.ch); // unknown: all bytes may have gone in before the hang
        } else if (out.kind === 'error') await checkStore(path, `a failed STOR (${out.code})`);
      } else if (r < 0.85) {
        const v = versions.get(path);
        if (!v || expected.get(path)!.size !== 1) continue;
        counts.attempted++;
        const out = await retr(c, path, mode);
        record(`RETR ${mode}`, out);
        if (out.kind === 'ok') {
          const got = sha256(out.bytes!);
          if (got === v.sha) counts.completed++;
          else (counts.corrupted++, note(`RETR ${path}: 226 with ${out.bytes!.length} bytes, sha ${got}, expected ${v.size} bytes ${v.sha}`));
        }
        if (mode !== 'whole') await checkStore(path, `RETR ${mode}`);
      } else {
        counts.lists++;
        const out = await list(c, `/soak/w${w}`);
        record('LIST', out);
        if (out.kind === 'ok') {
          for (const p of paths) {
            const name = p.slice(p.lastIndexOf('/') + 1);
            if (versions.has(p) && !out.text!.includes(name)) (counts.listMismatches++, note(`LIST /soak/w${w} lacks ${name}`));
          }
        } else if (out.kind === 'error') counts.listsFailedCleanly++;
      }
      if (mode !== 'whole' || rnd() < 0.05) (c.close(), (c = null)); // a fresh session after an ABOR or a drop
    } catch (err) {
      note(`worker ${w}: ${(err as Error).message}`);
      c?.close();
      c = null;
      await sleep(500);
    }
  }
  c?.close();
}

// ---- run -------------------------------------------------------------------------------------
async function main(): Promise<void> {
  const dataDir = await mkdtemp(join(tmpdir(), 'dropftp-soak-'));
  console.log(`soak: ${MINUTES} min, ${SESSIONS} sessions, fault phases of ${PHASE_S} s, seed ${SEED}, data in ${dataDir}`);
  await startGateway(dataDir);
  const account = (parse(await readFile(join(dataDir, 'accounts.yaml'), 'utf8')) as Record<string, { refreshToken: string; appKey: string; appSecret: string }>).local!;
  const token = await fetch(`${gateway.boxUrl}/oauth2/token`, { method: 'POST', body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: account.refreshToken, client_id: account.appKey, client_secret: account.appSecret }) });
  store = new StoreCheck(gateway.boxUrl, ((await token.json()) as { access_token: string }).access_token);
  const startMs = Date.now();
  machineAtStart = machineSnapshot();
  const idleBefore = await sample(startMs);
  const fdKindsBefore = fdKinds(gateway.child.pid!);
  const deadlineMs = startMs + MINUTES * 60_000;
  let phaseIndex = 0;
  const phaseTimer = setInterval(() => {
    currentPhase = PHASES[++phaseIndex % PHASES.length]!;
    setFaults(currentPhase.spec).catch((err: Error) => note(`faults: ${err.message}`));
  }, PHASE_S * 1000);
  const sampler = setInterval(() => {
    void sample(startMs).then((s) => {
      if (s && samples.length % 6 === 0) console.log(`${(s.tS / 60).toFixed(1)} min [${s.phase}] rss ${(s.gatewayRssBytes / MiB).toFixed(0)} MiB (heaps: main ${(Number(s.heapTotalBytes) / MiB).toFixed(0)}, workers ${(Number(s.workerHeapTotalBytes) / MiB).toFixed(0)}) fds ${s.gatewayFds} sessions ${s.sessions} | attempted ${counts.attempted} completed ${counts.completed} clean-fail ${counts.failedCleanly} stopped ${counts.stoppedAsIntended} unclean ${counts.failedUnclean} corrupt ${counts.corrupted} lost ${counts.lost}`);
    });
  }, SAMPLE_MS);
  await Promise.all(Array.from({ length: SESSIONS }, (_, w) => worker(w, deadlineMs)));
  clearInterval(phaseTimer);
  clearInterval(sampler);
  currentPhase = { name: 'drain', spec: { rules: [] } };
  await setFaults(currentPhase.spec);
  // Drained: sessions, listeners and transfers back to zero, fds back to the idle count.
  let idleAfter: Sample | null = null;
  // (Keep-alive HTTP connections to the box may stay open a while: allow a few more fds, then report.)
  for (let i = 0; i < 30; i++) {
    idleAfter = await sample(startMs);
    if (idleAfter && idleAfter.sessions === 0 && idleAfter.passiveListeners === 0 && idleAfter.activeUploads === 0 && idleAfter.activeDownloads === 0 && idleAfter.gatewayFds <= (idleBefore?.gatewayFds ?? 0) + 4) break;
    await sleep(1000);
  }
  const fdKindsAfter = fdKinds(gateway.child.pid!);
  // Every file, whole, faults off: byte-exact against what the store may hold.
  let verifiedFiles = 0;
  for (const [path, allowed] of expected) {
    const got = await store.downloadedHash(path);
    verifiedFiles++;
    if (!allowed.has(got)) (counts[got === 'absent' ? 'lost' : 'corrupted']++, note(`final check ${path}: holds ${got}, expected one of ${[...allowed].join(', ')}`));
  }
  const faults = await call<Record<string, number>>('faultCounts');
  gateway.stopping = true;
  await call('stop', {}, 60_000).catch((err: Error) => note(`stop: ${err.message}`));
  const result = {
    when: new Date().toISOString(),
    command: `node --import tsx benchmarks/soak.ts ${args.join(' ')}`.trim(),
    settings: { minutes: MINUTES, sessions: SESSIONS, seed: SEED, phaseSeconds: PHASE_S, sampleMs: SAMPLE_MS, filesPerWorker: FILES_PER_WORKER, sizes: SIZES, phases: PHASES },
    machine: { ...machineSnapshot(), loadAverage1mAtStart: machineAtStart.loadAverage1m, meanLoadAverage1m: Math.round((loadSum / Math.max(1, loadSamples)) * 100) / 100 },
    transfers: counts,
    byOperation: byOp,
    faultsInjected: faults,
    faultsInjectedTotal: Object.entries(faults).filter(([k]) => k !== 'concurrency_limit').reduce((a, [, n]) => a + n, 0),
    verifiedFiles,
    idle: { before: idleBefore, after: idleAfter, fdKindsBefore, fdKindsAfter },
    memory: driftReport(samples),
    problems,
    samples,
  };
  await mkdir(dirname(OUT), { recursive: true });
  await writeFile(OUT, JSON.stringify(result, null, 1) + '\n');
  await rm(dataDir, { recursive: true, force: true });
  console.log(`soak: ${JSON.stringify({ ...counts, rssDrift: result.memory.rssDriftPct, faults: result.faultsInjectedTotal })}\nwrote ${OUT}`);
  process.exitCode = counts.crashes + counts.corrupted + counts.lost + counts.failedUnclean > 0 || !result.memory.withinLimit ? 1 : 0;
}

await main();
