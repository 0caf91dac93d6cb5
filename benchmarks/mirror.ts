// Many small files, as FTP clients at scale send them: `lftp mirror -R --parallel=8` of a tree of
// about 1,000 files (a copy of nine packages from node_modules) up to each server, then `mirror`
// back down, byte-compared with the original; dropftp (its storage a local box this benchmark
// starts, calls counted there) against pyftpdlib on local disk, rounds interleaved so both see the
// same machine. Main thread. Invariant: a round whose download differs from the tree fails the run.
// Before the timed rounds, --warmup rounds (default 1) run the same way for every server, untimed
// for the medians but saved: a server that runs for days is warm, and the first mirror after a
// start pays for V8 compiling the gateway's code: in the six results saved before this option,
// dropftp's first round took 5.1-8.1 s up where its third took 2.8-4.3 s, while pyftpdlib's first
// was no slower than its others. As bench:engine's untimed first run of each case.
// Usage: node --conditions=source --import tsx benchmarks/mirror.ts [--rounds 3] [--warmup 1] [--servers dropftp,pyftpdlib]
// Saves benchmarks/results/mirror.json.

import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { saveResult } from './localbox-common.ts';
import { median } from './loadgen/metrics.ts';
import { sampleResources } from './loadgen/proc-stats.ts';
import { peerByName } from './peers/index.ts';
import { ensureDebPackages, run } from './peers/process-util.ts';
import type { BackendCalls, PeerInstance } from './peers/types.ts';

/** Nine packages the project itself installs (so every clone has them): ~1,100 files, ~17 MB. */
const PACKAGES = ['dropbox', 'moment', 'undici', 'bintrees', 'yargs', 'semver', 'uvu', 'diff', 'piscina'];
const NODE_MODULES = fileURLToPath(new URL('../node_modules/', import.meta.url));

interface Tree {
  files: number;
  bytes: number;
  folders: number;
}

function walk(dir: string, onFile: (path: string, size: number) => void, onDir: (path: string) => void): void {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      onDir(path);
      walk(path, onFile, onDir);
    } else if (entry.isFile()) onFile(path, statSync(path).size);
  }
}

function buildTree(root: string): Tree {
  const tree: Tree = { files: 0, bytes: 0, folders: 0 };
  for (const name of PACKAGES) {
    const from = join(NODE_MODULES, name);
    if (!existsSync(from)) throw new Error(`node_modules/${name} is missing: run npm ci first`);
    cpSync(from, join(root, name), { recursive: true, dereference: true, filter: (src) => !statSync(src).isSymbolicLink() });
  }
  walk(root, (_p, size) => ((tree.files += 1), (tree.bytes += size)), () => (tree.folders += 1));
  return tree;
}

/** The paths of `a` and `b` whose bytes differ or that only one of them has. */
function differences(a: string, b: string): string[] {
  const seen = new Map<string, Buffer>();
  walk(a, (p) => seen.set(relative(a, p), readFileSync(p)), () => {});
  const out: string[] = [];
  walk(
    b,
    (p) => {
      const rel = relative(b, p);
      const mine = seen.get(rel);
      if (!mine || !mine.equals(readFileSync(p))) out.push(rel);
      seen.delete(rel);
    },
    () => {},
  );
  out.push(...seen.keys());
  return out;
}

/** CPU of the server's process tree, as the scale benchmark counts it. */
const treeCpuSeconds = (pid: number): number => sampleResources(pid).treeCpuSeconds;

async function lftp(peer: PeerInstance, script: string): Promise<number> {
  const t = peer.target;
  if (t.kind !== 'ftp') throw new Error(`${peer.name} is not an FTP server`);
  const started = performance.now();
  // cmd:fail-exit: a failed mirror ends lftp with a non-zero status; net:max-retries bounds retries
  // so that a server that keeps failing shows as a failure, not as a slow run.
  await run('lftp', ['-u', `${t.user},${t.password}`, '-e', `set cmd:fail-exit yes; set net:max-retries 2; set net:timeout 60; ${script}; quit`, `${t.host}:${t.port}`], {
    timeout: 900_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  return (performance.now() - started) / 1000;
}

function callsPerFile(before: BackendCalls, after: BackendCalls, files: number): Record<string, number> {
  const out: Record<string, number> = {};
  let total = 0;
  for (const [route, { calls }] of Object.entries(after.routes)) {
    const n = calls - (before.routes[route]?.calls ?? 0);
    if (n > 0) {
      out[route] = Number((n / files).toFixed(3));
      total += n;
    }
  }
  out.total = Number((total / files).toFixed(3));
  return out;
}

interface RoundResult {
  upSec: number;
  downSec: number;
  identical: boolean;
  differing: string[];
  cpuSecUp?: number;
  cpuSecDown?: number;
  backendCallsPerFileUp?: Record<string, number>;
  backendCallsPerFileDown?: Record<string, number>;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { rounds: { type: 'string', default: '3' }, warmup: { type: 'string', default: '1' }, servers: { type: 'string', default: 'dropftp,pyftpdlib' } } });
  const rounds = Number(values.rounds);
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error('--rounds takes a whole number >= 1');
  const warmupRounds = Number(values.warmup);
  if (!Number.isInteger(warmupRounds) || warmupRounds < 0) throw new Error('--warmup takes a whole number >= 0');
  const missing = await ensureDebPackages(['lftp']);
  if (missing) throw new Error(missing);
  const work = mkdtempSync(join(tmpdir(), 'dropftp-mirror-'));
  try {
    const source = join(work, 'tree');
    mkdirSync(source);
    const tree = buildTree(source);
    process.stderr.write(`tree: ${tree.files} files, ${(tree.bytes / 1e6).toFixed(1)} MB, ${tree.folders} folders\n`);
    const peers: PeerInstance[] = [];
    const results: Record<string, RoundResult[]> = {};
    const warmup: Record<string, RoundResult[]> = {};
    try {
      let port = 61_000; // passive ranges outside the kernel's ephemeral ports, as the scale benchmark
      for (const name of values.servers.split(',')) {
        const def = peerByName(name.trim());
        const why = await def.prepare();
        if (why) throw new Error(`${def.name}: ${why}`);
        const dir = join(work, def.name);
        mkdirSync(dir);
        peers.push(await def.start({ workDir: dir, pasvPorts: [port, port + 1999], sessions: 16 }));
        results[def.name] = [];
        warmup[def.name] = [];
        port += 2000;
      }
      for (let round = 0; round < warmupRounds + rounds; round += 1) {
        const warm = round < warmupRounds;
        for (const peer of peers) {
          const remote = `/t${round}`;
          const down = join(work, `${peer.name}-down-${round}`);
          const calls0 = await peer.backend?.calls();
          const cpu0 = treeCpuSeconds(peer.pid);
          const upSec = await lftp(peer, `mirror -R --parallel=8 ${source} ${remote}`);
          const calls1 = await peer.backend?.calls();
          const cpu1 = treeCpuSeconds(peer.pid);
          const downSec = await lftp(peer, `mirror --parallel=8 ${remote} ${down}`);
          const calls2 = await peer.backend?.calls();
          const cpu2 = treeCpuSeconds(peer.pid);
          const differing = differences(source, down);
          rmSync(down, { recursive: true, force: true });
          const r: RoundResult = { upSec, downSec, identical: differing.length === 0, differing: differing.slice(0, 20), cpuSecUp: cpu1 - cpu0, cpuSecDown: cpu2 - cpu1 };
          if (calls0 && calls1 && calls2) {
            r.backendCallsPerFileUp = callsPerFile(calls0, calls1, tree.files);
            r.backendCallsPerFileDown = callsPerFile(calls1, calls2, tree.files);
          }
          (warm ? warmup : results)[peer.name]!.push(r);
          process.stderr.write(`${warm ? `warm-up ${round + 1}` : `round ${round - warmupRounds + 1}`} ${peer.name}: up ${upSec.toFixed(2)} s, down ${downSec.toFixed(2)} s, ${r.identical ? 'byte-identical' : `${differing.length} files differ`}\n`);
        }
      }
    } finally {
      for (const peer of peers) await peer.close().catch(() => {});
    }
    const summary: Record<string, { upSecMedian: number; downSecMedian: number; allIdentical: boolean }> = {};
    for (const [name, rs] of Object.entries(results)) {
      summary[name] = { upSecMedian: median(rs.map((r) => r.upSec))!, downSecMedian: median(rs.map((r) => r.downSec))!, allIdentical: rs.every((r) => r.identical) };
    }
    const ratios =
      summary.dropftp && summary.pyftpdlib
        ? { upVsPyftpdlib: summary.dropftp.upSecMedian / summary.pyftpdlib.upSecMedian, downVsPyftpdlib: summary.dropftp.downSecMedian / summary.pyftpdlib.downSecMedian }
        : null;
    const file = saveResult('mirror', {
      benchmark: 'lftp mirror -R --parallel=8 of a package tree, then mirror back down',
      command: `npm run bench:mirror -- --rounds ${rounds} --warmup ${warmupRounds} --servers ${values.servers}`,
      date: new Date().toISOString(),
      machine: { cpus: availableParallelism(), loadavg1mAtEnd: loadavg()[0] },
      tree: { packages: PACKAGES, ...tree },
      rounds,
      warmupRounds,
      summary,
      ratios,
      targets: ratios ? { up: '<= 3.0x pyftpdlib', down: '<= 2.0x pyftpdlib', upMet: ratios.upVsPyftpdlib <= 3, downMet: ratios.downVsPyftpdlib <= 2 } : null,
      results,
      warmup,
    });
    process.stdout.write(`${JSON.stringify({ summary, ratios }, null, 2)}\nsaved ${file}\n`);
    if (Object.values(summary).some((s) => !s.allIdentical) || Object.values(warmup).some((rs) => rs.some((r) => !r.identical))) process.exitCode = 1;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
