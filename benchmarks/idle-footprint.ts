// Idle footprint of `dropftp serve` as installed (bin/dropftp, 2 workers, the embedded local box,
// no client): time from spawn to the "listening" line and the gateway's CPU time by then, then,
// after a settle period, the RSS of the gateway process and of its local box child, read from /proc.
// Runs in this process (Linux only).
// Invariant: every measured run starts a fresh server on port 0 over one data dir initialised by a
// warm-up run (so the first-run user creation is not timed); every process is stopped at the end.
// Usage: node --import tsx benchmarks/idle-footprint.ts [--runs 5] [--settle-ms 3000] [--label L]
//        [--bin PATH] [--save]   (--save appends the run to benchmarks/results/idle-footprint.json)

import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const RESULTS = join(ROOT, 'benchmarks', 'results', 'idle-footprint.json');
const MiB = 1024 * 1024;

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

function intArg(name: string, fallback: number): number {
  const raw = arg(name);
  const value = raw === undefined ? fallback : Number(raw);
  if (!Number.isInteger(value) || value < 1) throw new Error(`--${name}: expected a positive integer, got ${raw}`);
  return value;
}

const RUNS = intArg('runs', 5);
const SETTLE_MS = intArg('settle-ms', 3000);
const BIN = arg('bin') ?? join(ROOT, 'bin', 'dropftp');
const LABEL = arg('label') ?? 'current';

/** One process's memory, from /proc/PID/status (kB → bytes). */
function memoryOf(pid: number): { rssBytes: number; anonBytes: number; fileBytes: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
  return { rssBytes: kb('VmRSS'), anonBytes: kb('RssAnon'), fileBytes: kb('RssFile') };
}

/** CPU time (user + system) a process has used so far, ms, from /proc/PID/stat (clock ticks of 10 ms). */
function cpuMsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    const text = readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim();
    if (text) out.push(...text.split(/\s+/).map(Number));
  }
  return out;
}

function threadsOf(pid: number): number {
  return readdirSync(`/proc/${pid}/task`).length;
}

interface Run {
  listeningMs: number;
  /** CPU time the gateway process (all its threads) used from spawn to the "listening" line: robust to a busy machine. */
  gatewayCpuMsAtListening: number;
  gateway: ReturnType<typeof memoryOf> & { threads: number };
  child: ReturnType<typeof memoryOf>;
  /** Any other child process of the gateway (e.g. an esbuild service started by tsx). */
  others: (ReturnType<typeof memoryOf> & { cmd: string })[];
}

/** Starts the server, measures, stops it (SIGTERM, then SIGKILL after 10 s). */
async function once(dataDir: string, measure: boolean): Promise<Run | null> {
  const started = process.hrtime.bigint();
  const proc = spawn(BIN, ['serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir, '--engine-workers', '2', '--log-level', 'warn'], {
    cwd: ROOT,
    env: { ...process.env, NODE_OPTIONS: '' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  try {
    let gatewayCpuMsAtListening = NaN;
    const listeningMs = await new Promise<number>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`no "listening" line within 30 s; output: ${out}`)), 30_000);
      proc.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (/listening on ftp:\/\//.test(out)) {
          clearTimeout(timer);
          const ms = Number(process.hrtime.bigint() - started) / 1e6;
          gatewayCpuMsAtListening = cpuMsOf(proc.pid!);
          resolve(ms);
        }
      });
      proc.once('exit', (code) => reject(new Error(`dropftp exited (${code}) before listening; output: ${out}`)));
    });
    proc.stdout.resume();
    if (!measure) return null;
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    const pid = proc.pid!;
    const kids = childrenOf(pid).map((kid) => ({ pid: kid, cmd: readFileSync(`/proc/${kid}/cmdline`, 'utf8').split('\0').join(' ').trim() }));
    const box = kids.filter((k) => /localbox[/\\]child\.[jt]s/.test(k.cmd));
    if (box.length !== 1) throw new Error(`expected one local box child of ${pid}, found: ${kids.map((k) => k.cmd).join(' | ') || 'none'}`);
    const others = kids.filter((k) => k !== box[0]).map((k) => ({ cmd: k.cmd.slice(0, 200), ...memoryOf(k.pid) }));
    return { listeningMs, gatewayCpuMsAtListening, gateway: { ...memoryOf(pid), threads: threadsOf(pid) }, child: memoryOf(box[0]!.pid), others };
  } finally {
    proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

function commit(): string {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}

const dataDir = mkdtempSync(join(tmpdir(), 'dropftp-idle-'));
try {
  await once(dataDir, false); // warm-up: creates the user, the local box database, the account
  const runs: Run[] = [];
  for (let i = 0; i < RUNS; i++) {
    const r = (await once(dataDir, true))!;
    runs.push(r);
    console.log(
      `run ${i + 1}/${RUNS}: listening ${r.listeningMs.toFixed(0)} ms (gateway CPU ${r.gatewayCpuMsAtListening} ms), gateway RSS ${(r.gateway.rssBytes / MiB).toFixed(1)} MiB ` +
        `(${r.gateway.threads} threads), local box child RSS ${(r.child.rssBytes / MiB).toFixed(1)} MiB` +
        (r.others.length ? `, other children: ${r.others.map((o) => `${o.cmd.split(' ')[0]} ${(o.rssBytes / MiB).toFixed(1)} MiB`).join(', ')}` : ''),
    );
  }
  const summary = {
    label: LABEL,
    commit: commit(),
    date: new Date().toISOString(),
    bin: BIN.replace(ROOT, ''),
    host: { cpus: availableParallelism(), loadavg1: Number(loadavg()[0]!.toFixed(2)), node: process.version },
    settleMs: SETTLE_MS,
    median: {
      listeningMs: Math.round(median(runs.map((r) => r.listeningMs))),
      gatewayCpuMsAtListening: median(runs.map((r) => r.gatewayCpuMsAtListening)),
      gatewayRssMiB: Number((median(runs.map((r) => r.gateway.rssBytes)) / MiB).toFixed(1)),
      childRssMiB: Number((median(runs.map((r) => r.child.rssBytes)) / MiB).toFixed(1)),
    },
    targets: { listeningMs: 800, gatewayRssMiB: 100, childRssMiB: 60 },
    runs,
  };
  console.log(
    `median of ${RUNS}: listening ${summary.median.listeningMs} ms (target ≤ 800; gateway CPU ${summary.median.gatewayCpuMsAtListening} ms), gateway ${summary.median.gatewayRssMiB} MiB (≤ 100), ` +
      `local box child ${summary.median.childRssMiB} MiB (≤ 60)`,
  );
  if (process.argv.includes('--save')) {
    const previous = existsSync(RESULTS) ? (JSON.parse(readFileSync(RESULTS, 'utf8')) as { results: unknown[] }).results : [];
    writeFileSync(RESULTS, JSON.stringify({ benchmark: 'idle-footprint', results: [...previous, summary] }, null, 2) + '\n');
    console.log(`saved to ${RESULTS.replace(ROOT, '')}`);
  }
} finally {
  rmSync(dataDir, { recursive: true, force: true });
}
