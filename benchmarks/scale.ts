// `npm run bench -- <idle|storm|big|churn> [options]`: runs one scenario against several servers in
// one run (same machine, same files, same load generator), saves benchmarks/results/scale-<scenario>
// .json, draws SVG charts and prints a markdown summary. Main thread of the benchmark process.
// Invariants: servers run one after another, each fresh; a server that cannot run here is recorded
// as skipped with the reason; targets are judged only against baselines measured in this run.

import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeScaleCharts } from './charts/scale-charts.ts';
import { runPeer, type PeerRunResult, type RunParams } from './loadgen/run-peer.ts';
import type { OpMix, Scenario } from './loadgen/protocol.ts';
import { markdownTable, judgeTargets } from './loadgen/report.ts';
import { costLine } from './loadgen/cost.ts';
import { kernelTcpLine } from './loadgen/kernel-tcp.ts';
import { PEERS, peerByName } from './peers/index.ts';
import { OPTIONS, flagName } from '../src/config/schema.ts';

const USAGE = `usage: npm run bench -- <idle|storm|big|churn> [options]
  --n N[,N...]            sessions (a list sweeps N; default idle 1000, storm 200, big 1, churn 50)
  --size BYTES            file size, e.g. 1MiB, 16MiB, 10GiB (default storm/churn 1MiB, big 10GiB)
  --op retr|stor|mix      storm: what each session does (default mix: half RETR, half STOR)
  --servers a,b,...       default: every server that takes part in the scenario:
                          ${PEERS.map((p) => p.name).join(', ')}
  --procs P               load generator processes (default: 1 per 5000 sessions, at least 2 above 1000)
  --hold 20s              idle: how long sessions stay once all are logged in
  --noop 10s              idle: mean time between NOOPs per session
  --checkpoint K          idle: also measure the RSS added per session from K sessions to N (the
                          login phase pauses at K; both points sampled after --settle without traffic)
  --settle 5s             idle with --checkpoint: quiet time before each of the two samples
  --duration 30s          churn: how long to churn
  --login-concurrency C   logins in flight per load generator process (default 64)
  --timeline K            keep a byte timeline for the first K sessions (default 40)
  --bucket 250ms          timeline bucket width
  --stall-timeout 120s    a data connection idle this long fails its transfer
  --reply-timeout T       a control reply awaited this long fails (default 60s; churn 20s)
  --pasv-ports A-B        passive ports for every server (default 61000-65000)
  --tag NAME              save as scale-<scenario>-<NAME>.json (default: scale-<scenario>.json)
  --seed S                PRNG seed for churn (default 1)
  --sources K             spread FTP sessions over K loopback source addresses 127.1.x.y
                          (default 1; servers that cap connections per address need more)
  --box-rate-limit R[:B]  Dropbox's call-rate limit on the local box of the dropftp peers
                          (calls/s per account, burst), e.g. 12:12; default none
  --box-rate-schedule S   change that limit during the load: "RATE[:BURST]@SECONDS,...", e.g.
                          '4@20,12@40' (seconds after the load started)
  --warmup K              storm: an untimed storm of K sessions (same op and size) first, against
                          the same server, so that the measured one meets it warm (default 0)
  --gateway-options K=V,...  dropftp serve options by config key, passed as its flags, e.g.
                          engine.memoryBudgetBytes=64MiB (dropftp peers only; default none)`;

const UNITS: Record<string, number> = { '': 1, b: 1, k: 1e3, kb: 1e3, kib: 2 ** 10, m: 1e6, mb: 1e6, mib: 2 ** 20, g: 1e9, gb: 1e9, gib: 2 ** 30 };

export function parseBytes(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(text.trim());
  const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new Error(`--size: cannot read "${text}" (e.g. 1MiB, 16MiB, 10GiB)`);
  return Math.round(Number(m[1]) * unit);
}

export function parseMs(text: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|min)?$/.exec(text.trim());
  if (!m) throw new Error(`${flag}: cannot read "${text}" (e.g. 500ms, 20s, 2m)`);
  const f = m[2] === 'ms' ? 1 : m[2] === 'm' || m[2] === 'min' ? 60_000 : 1000;
  return Math.round(Number(m[1]) * f);
}

/** "4@20,12:12@40" → [[20, "4"], [40, "12:12"]] (the box validates each limit when it is set). */
export function parseSchedule(text: string): [number, string][] {
  if (text.trim() === '') return [];
  return text.split(',').map((part) => {
    const m = /^\s*(\d+(?:\.\d+)?(?::\d+)?)\s*@\s*(\d+(?:\.\d+)?)\s*$/.exec(part);
    if (!m) throw new Error(`--box-rate-schedule: cannot read "${part}" (RATE[:BURST]@SECONDS, e.g. 4@20)`);
    return [Number(m[2]), m[1]!] as [number, string];
  });
}

/** "engine.memoryBudgetBytes=64MiB,..." → ['--engine-memory-budget-bytes', '64MiB', ...] (serve validates each value). */
export function parseGatewayOptions(text: string): string[] {
  if (text.trim() === '') return [];
  return text.split(',').flatMap((part) => {
    const eq = part.indexOf('=');
    const key = part.slice(0, eq).trim();
    const option = OPTIONS.find((o) => o.key === key && o.kind !== 'map');
    if (eq < 1 || !option) throw new Error(`--gateway-options: "${part}" is not KEY=VALUE with a dropftp config key (e.g. engine.memoryBudgetBytes=64MiB)`);
    return [flagName(key), part.slice(eq + 1).trim()];
  });
}

function parseWarmup(text: string, scenario: Scenario): number {
  const k = Number(text);
  if (!Number.isInteger(k) || k < 0) throw new Error(`--warmup: "${text}" is not a session count`);
  if (k > 0 && scenario !== 'storm') throw new Error('--warmup applies to the storm scenario only');
  return k;
}

function parseArgs(argv: string[]) {
  const scenario = argv[0] as Scenario;
  if (!['idle', 'storm', 'big', 'churn'].includes(scenario)) throw new Error(USAGE);
  const flags = new Map<string, string>();
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) throw new Error(`unexpected argument "${a}"\n${USAGE}`);
    const eq = a.indexOf('=');
    if (eq > 0) flags.set(a.slice(2, eq), a.slice(eq + 1));
    else flags.set(a.slice(2), argv[++i] ?? '');
  }
  const known = ['n', 'size', 'op', 'servers', 'procs', 'hold', 'noop', 'duration', 'login-concurrency', 'timeline', 'bucket', 'stall-timeout', 'pasv-ports', 'tag', 'seed', 'sources', 'reply-timeout', 'checkpoint', 'settle', 'box-rate-limit', 'box-rate-schedule', 'gateway-options', 'warmup'];
  for (const k of flags.keys()) if (!known.includes(k)) throw new Error(`unknown option --${k}\n${USAGE}`);
  const get = (k: string, d: string): string => flags.get(k) ?? d;
  const defaultN = { idle: '1000', storm: '200', big: '1', churn: '50' }[scenario];
  const ns = get('n', defaultN).split(',').map((x) => {
    const n = Number(x);
    if (!Number.isInteger(n) || n < 1) throw new Error(`--n: "${x}" is not a positive integer`);
    return n;
  });
  const checkpoint = Number(get('checkpoint', '0'));
  if (!Number.isInteger(checkpoint) || checkpoint < 0) throw new Error(`--checkpoint: "${get('checkpoint', '')}" is not a session count`);
  if (checkpoint && (scenario !== 'idle' || ns.some((n) => n <= checkpoint))) throw new Error('--checkpoint needs the idle scenario and every --n above it');
  const op = get('op', 'mix') as OpMix;
  if (!['retr', 'stor', 'mix'].includes(op)) throw new Error('--op must be retr, stor or mix');
  const pasv = /^(\d+)-(\d+)$/.exec(get('pasv-ports', '61000-65000'));
  if (!pasv) throw new Error('--pasv-ports must be A-B');
  const servers = flags.has('servers') ? get('servers', '').split(',').map((s) => peerByName(s.trim())) : PEERS.filter((p) => p.scenarios.includes(scenario));
  return {
    scenario,
    ns,
    servers,
    tag: flags.get('tag'),
    procs: flags.has('procs') ? Number(get('procs', '1')) : null,
    base: {
      scenario,
      sizeBytes: parseBytes(get('size', scenario === 'big' ? '10GiB' : '1MiB')),
      op,
      holdMs: parseMs(get('hold', '20s'), '--hold'),
      noopMs: parseMs(get('noop', '10s'), '--noop'),
      durationMs: parseMs(get('duration', '30s'), '--duration'),
      loginConcurrency: Number(get('login-concurrency', '64')),
      timelineSessions: Number(get('timeline', '40')),
      bucketMs: parseMs(get('bucket', '250ms'), '--bucket'),
      stallTimeoutMs: parseMs(get('stall-timeout', '120s'), '--stall-timeout'),
      replyTimeoutMs: parseMs(get('reply-timeout', scenario === 'churn' ? '20s' : '60s'), '--reply-timeout'),
      pasvPorts: [Number(pasv[1]), Number(pasv[2])] as [number, number],
      sampleEveryMs: 500,
      seed: Number(get('seed', '1')),
      sourceAddresses: Number(get('sources', '1')),
      checkpointSessions: checkpoint,
      settleMs: parseMs(get('settle', '5s'), '--settle'),
      boxRateLimit: flags.get('box-rate-limit') || null,
      boxRateSchedule: parseSchedule(get('box-rate-schedule', '')),
      gatewayFlags: parseGatewayOptions(get('gateway-options', '')),
      warmupSessions: parseWarmup(get('warmup', '0'), scenario),
    },
  };
}

/** The untimed warm-up storm a run started with (--warmup), for the summary. */
function warmupLine(r: PeerRunResult): string {
  const w = r.warmup!;
  const cpu = w.cpuSecPerGiB;
  return `${r.server} n=${r.sessions} warmed up first by ${w.sessions} sessions (untimed): ${w.aggregateMBps} MB/s, CPU-s/GiB gateway ${cpu.gateway ?? '-'}, main thread ${cpu.mainThread ?? '-'}, backend ${cpu.backend ?? '-'}; ${w.wallMs} ms`;
}

/** Raises this process's open-file limit (children inherit it); returns the limit in force. */
function raiseFileLimit(want: number): number {
  try {
    execFileSync('prlimit', ['--pid', String(process.pid), `--nofile=${want}:${want}`], { stdio: 'ignore' });
  } catch {
    // not root or no prlimit: keep what we have
  }
  try {
    return Number(execFileSync('sh', ['-c', 'ulimit -n']).toString().trim());
  } catch {
    return -1;
  }
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const maxN = Math.max(...args.ns);
  const fileLimit = raiseFileLimit(262_144);
  // Each server holds ~1 fd per idle session and ~3 per transferring one (control, data, file); the
  // load generator's children each hold their share. A container may forbid raising the hard limit.
  const fdPerSession = args.scenario === 'idle' ? 1 : 3;
  if (fileLimit > 0 && fileLimit < maxN * fdPerSession + 1024) process.stderr.write(`warning: open-file limit ${fileLimit} (could not raise it) may be too low for ${maxN} sessions\n`);
  const runs: PeerRunResult[] = [];
  const skipped: Record<string, string> = {};
  const failures: Record<string, string> = {};
  const startedAt = new Date().toISOString();
  for (const peer of args.servers) {
    if (!peer.scenarios.includes(args.scenario)) {
      skipped[peer.name] = `does not take part in ${args.scenario}`;
      continue;
    }
    const why = await peer.prepare();
    if (why) {
      skipped[peer.name] = why;
      process.stderr.write(`skipping ${peer.name}: ${why}\n`);
      continue;
    }
    for (const n of args.ns) {
      const params: RunParams = { ...args.base, sessions: n, procs: args.procs ?? Math.max(n > 1000 ? 2 : 1, Math.ceil(n / 5000)) };
      try {
        runs.push(await runPeer(peer, params));
      } catch (err) {
        failures[`${peer.name} n=${n}`] = (err as Error).message;
        process.stderr.write(`${peer.name} n=${n} failed: ${(err as Error).message}\n`);
      }
    }
  }
  const { base } = args;
  const doc = {
    scenario: args.scenario,
    startedAt,
    machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? null, memoryBytes: totalmem(), node: process.version, fileLimit },
    params: { ...base, ns: args.ns, procs: args.procs ?? 'auto' },
    skipped,
    failures,
    targets: judgeTargets(args.scenario, runs, { gatewayFlags: args.base.gatewayFlags }),
    markdown: `${markdownTable(args.scenario, runs, base.sizeBytes)}${runs.some((r) => r.cost.transfers > 0) ? `\n\n${runs.filter((r) => r.cost.transfers > 0).map((r) => `- ${costLine(`${r.server} n=${r.sessions}`, r.cost)}\n- ${kernelTcpLine(`${r.server} n=${r.sessions}`, r.kernelTcp)}${r.warmup ? `\n- ${warmupLine(r)}` : ''}`).join('\n')}` : ''}`,
    runs,
  };
  const dir = fileURLToPath(new URL('./results/', import.meta.url));
  mkdirSync(dir, { recursive: true });
  const stem = `scale-${args.scenario}${args.tag ? `-${args.tag}` : ''}`;
  writeFileSync(join(dir, `${stem}.json`), `${JSON.stringify(doc, null, 1)}\n`);
  const charts = writeScaleCharts(doc, dir, stem);
  process.stdout.write(`\n${doc.markdown}\n`);
  for (const t of doc.targets) process.stdout.write(`${t.met === null ? '?' : t.met ? 'MET ' : 'MISS'}  ${t.target}: ${t.measured}\n`);
  for (const [k, v] of Object.entries(skipped)) process.stdout.write(`skipped ${k}: ${v}\n`);
  for (const [k, v] of Object.entries(failures)) process.stdout.write(`failed ${k}: ${v.split('\n')[0]}\n`);
  process.stdout.write(`\nsaved benchmarks/results/${stem}.json and ${charts.length} charts (${charts.join(', ')})\n`);
}

main().catch((err: Error) => {
  process.stderr.write(`${err.message}\n`);
  process.exitCode = 1;
});
