// Transfer engine throughput: N concurrent downloads and uploads (default N = 1, 64, 500) through the
// engine with its worker pool, through the same engine code on the main thread only
// (onlyMainThread), and straight to the local box over HTTP from the main thread (undici; downloads
// streamed and dropped, uploads as one files/upload each), without and with the SHA-256
// content_hash the engine must compute (direct-http-hash, the fair floor) — all in the same run, on
// the same files. Reports MB/s, Jain's index over per-transfer throughput, peak RSS of this
// process (engine + workers; the local box is a child), main-thread event-loop utilisation, the
// CPU-seconds per GiB of this process, of its main thread (/proc/self/task/<pid>/stat) and of the
// local box, the box's calls per transfer by route (counted by the box: GET /admin/calls), and the
// main thread's payload copies per byte (engine downloads are drained as a data socket is: views
// into the ring, each handed back once used).
// Usage: node --import tsx benchmarks/engine-throughput.ts [--ns 1,64,500] [--total-mib 256] [--workers N]
//   [--repeat 3]
// Each case moves at least --total-mib: n files of total/n at once (between 512 KiB and 64 MiB), in
// as many rounds as that takes (one 64 MiB file four times in a row at the default). Every mode first
// runs each case once untimed (both directions: JIT, the pool's growth and its buffers warmed alike
// for all), then --repeat times timed; a case reports its median run by MB/s (all runs' MB/s kept in
// `runs`), and `ratios` gives workers / direct-http-hash of the medians.
// Saves benchmarks/results/engine-throughput.json.

import { availableParallelism, cpus } from 'node:os';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Agent, request } from 'undici';
import { adminOf, startLocalBox } from '../src/localbox/index.ts';
import type { LocalBox, LocalBoxAccount } from '../src/localbox/index.ts';
import { ContentHasher, TransferEngine } from '../src/transfer/index.ts';
import type { DownloadStream } from '../src/transfer/index.ts';
import { readPayloadCopies } from '../src/transfer/copy-counts.ts';
import { GROW_AT_TASKS } from '../src/transfer/pool-growth.ts';
import { readOwnCpuSeconds } from './loadgen/proc-stats.ts';
import { MiB, saveResult } from './localbox-common.ts';

type Mode = 'workers' | 'main-thread' | 'direct-http' | 'direct-http-hash';
type Direction = 'download' | 'upload';

interface CaseResult {
  mode: Mode;
  direction: Direction;
  n: number;
  fileBytes: number;
  seconds: number;
  mbPerSec: number;
  jain: number;
  failed: number;
  peakRssMiB: number;
  mainElu: number;
  /** CPU-seconds per GiB moved: this process (engine + workers), its main thread, the local box. */
  cpuSecPerGiB: { process: number; mainThread: number; backend: number };
  /** Local box calls per transfer by route (counted by the box), and bytes it served/received per byte moved. */
  callsPerTransfer: Record<string, number>;
  backendBytesPerByte: { served: number; received: number };
  /** Main-thread payload bytes copied per byte moved (engine cases; null for direct HTTP). */
  mainCopiesPerByte: number | null;
  /**
   * Upload bytes through the spool per byte moved (engine cases; null for direct HTTP): written before
   * a call sent them, moved there after it did, read back into a body (engine.stats().spool).
   */
  spoolPerByte: { spooled: number; spilled: number; readBack: number } | null;
  /** Transfers per run (n at once, rounds after one another). */
  rounds: number;
  /** MB/s of every timed run; the other figures are of the median one. */
  runs: number[];
}

function flag(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : fallback;
}

const ns = flag('ns', '1,64,500').split(',').map(Number);
const totalBytes = Number(flag('total-mib', '256')) * MiB;
const workers = Number(flag('workers', String(availableParallelism())));
const repeat = Math.max(1, Number(flag('repeat', '3')));
const fileBytesFor = (n: number): number => Math.min(64 * MiB, Math.max(512 * 1024, Math.floor(totalBytes / n / 65536) * 65536));

function pattern(bytes: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(bytes);
  let x = seed | 1;
  for (let i = 0; i + 4 <= bytes; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b.writeInt32LE(x, i);
  }
  return b;
}

function jain(rates: number[]): number {
  const s = rates.reduce((a, b) => a + b, 0);
  const q = rates.reduce((a, b) => a + b * b, 0);
  return q === 0 ? 1 : (s * s) / (rates.length * q);
}

async function api(box: LocalBox, token: string, route: string, arg: unknown, body?: Buffer): Promise<string> {
  const res = await request(`${box.url}/2/${route}`, {
    method: 'POST',
    headers: body
      ? { authorization: `Bearer ${token}`, 'dropbox-api-arg': JSON.stringify(arg), 'content-type': 'application/octet-stream' }
      : { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: body ?? JSON.stringify(arg),
  });
  const text = await res.body.text();
  if (res.statusCode !== 200) throw new Error(`${route}: ${res.statusCode} ${text.slice(0, 200)}`);
  return text;
}

interface CallsSnapshot {
  routes: Record<string, { calls: number }>;
  bytes: { served: number; received: number };
}

/** Runs n transfers at once; each resolves its byte count; returns the case's numbers. */
async function measure(box: LocalBox, engine: TransferEngine | null, mode: Mode, direction: Direction, n: number, fileBytes: number, rounds: number, one: (i: number) => Promise<number>): Promise<CaseResult> {
  const spool0 = engine?.stats().spool;
  const admin = adminOf(box);
  await admin.adminCall('POST', 'calls/reset');
  const cpu0 = { process: readOwnCpuSeconds(process.pid), main: readOwnCpuSeconds(process.pid, process.pid), backend: readOwnCpuSeconds(box.pid) };
  const copies0 = readPayloadCopies();
  let peak = process.memoryUsage().rss;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 50);
  const elu0 = performance.eventLoopUtilization();
  const started = performance.now();
  let failed = 0;
  const rates: number[] = [];
  for (let round = 0; round < rounds; round++) {
    rates.push(
      ...(await Promise.all(
        Array.from({ length: n }, async (_, i) => {
          const t0 = performance.now();
          try {
            const bytes = await one(i);
            return bytes / ((performance.now() - t0) / 1000);
          } catch (err) {
            failed++;
            if (failed === 1) console.error(`  ${mode} ${direction} n=${n}: ${(err as Error).message}`);
            return 0;
          }
        }),
      )),
    );
  }
  const transfers = n * rounds;
  const seconds = (performance.now() - started) / 1000;
  clearInterval(sampler);
  const elu = performance.eventLoopUtilization(elu0);
  const cpu1 = { process: readOwnCpuSeconds(process.pid), main: readOwnCpuSeconds(process.pid, process.pid), backend: readOwnCpuSeconds(box.pid) };
  const copies1 = readPayloadCopies();
  const spool1 = engine?.stats().spool;
  const calls = await admin.adminCall<CallsSnapshot>('GET', 'calls');
  const moved = (transfers - failed) * fileBytes;
  const gib = moved / 2 ** 30;
  const per = (x: number): number => Math.round((x / gib) * 100) / 100;
  const callsPerTransfer: Record<string, number> = {};
  for (const [route, r] of Object.entries(calls.routes)) callsPerTransfer[route] = Math.round((r.calls / transfers) * 100) / 100;
  const copied = copies1.retrCopiedBytes - copies0.retrCopiedBytes + (copies1.storCopiedBytes - copies0.storCopiedBytes);
  const result: CaseResult = {
    mode,
    direction,
    n,
    fileBytes,
    seconds: Math.round(seconds * 100) / 100,
    mbPerSec: Math.round(moved / seconds / 1e5) / 10,
    jain: Math.round(jain(rates) * 1000) / 1000,
    failed,
    peakRssMiB: Math.round(peak / MiB),
    mainElu: Math.round(elu.utilization * 100) / 100,
    cpuSecPerGiB: { process: per(cpu1.process - cpu0.process), mainThread: per(cpu1.main - cpu0.main), backend: per(cpu1.backend - cpu0.backend) },
    callsPerTransfer,
    backendBytesPerByte: { served: Math.round((calls.bytes.served / moved) * 1000) / 1000, received: Math.round((calls.bytes.received / moved) * 1000) / 1000 },
    mainCopiesPerByte: mode.startsWith('direct') ? null : Math.round((copied / moved) * 1000) / 1000,
    spoolPerByte:
      spool0 && spool1
        ? {
            spooled: Math.round(((spool1.spooledBytes - spool0.spooledBytes) / moved) * 1000) / 1000,
            spilled: Math.round(((spool1.spilledBytes - spool0.spilledBytes) / moved) * 1000) / 1000,
            readBack: Math.round(((spool1.readBackBytes - spool0.readBackBytes) / moved) * 1000) / 1000,
          }
        : null,
    rounds,
    runs: [],
  };
  return result;
}

/** Prints a case's median run. */
function report(r: CaseResult): void {
  const callText = Object.entries(r.callsPerTransfer).map(([route, c]) => `${route} ${c}`).join(', ');
  console.log(
    `${r.mode.padEnd(16)} ${r.direction.padEnd(8)} n=${String(r.n).padEnd(4)} ${r.rounds > 1 ? `x${r.rounds} ` : ''}${(r.fileBytes / MiB).toFixed(2)} MiB each: ${r.mbPerSec} MB/s (runs ${r.runs.join(', ')}), Jain ${r.jain}, ${r.failed} failed, peak RSS ${r.peakRssMiB} MiB, main ELU ${r.mainElu}\n` +
      `${''.padEnd(16)} CPU-s/GiB process ${r.cpuSecPerGiB.process} main ${r.cpuSecPerGiB.mainThread} box ${r.cpuSecPerGiB.backend}; copies/byte ${r.mainCopiesPerByte ?? '-'}${r.spoolPerByte && r.direction === 'upload' ? `; spool/byte written ${r.spoolPerByte.spooled}, spilled ${r.spoolPerByte.spilled}, read back ${r.spoolPerByte.readBack}` : ''}; calls/transfer: ${callText}`,
  );
}

function drainCount(stream: NodeJS.ReadableStream, hasher?: ContentHasher): Promise<number> {
  return new Promise((resolve, reject) => {
    let n = 0;
    stream.on('data', (c: Buffer) => {
      n += c.length;
      hasher?.update(c);
    });
    stream.once('end', () => resolve(n));
    stream.once('error', reject);
  });
}

/** Drains an engine download as the FTP data path does: views into the ring, each handed back once used. */
function drainViews(stream: DownloadStream): Promise<number> {
  stream.lendViews();
  return new Promise((resolve, reject) => {
    let n = 0;
    stream.on('data', (c: Buffer) => {
      n += c.length;
      stream.release(c.length);
    });
    stream.once('end', () => resolve(n));
    stream.once('error', reject);
  });
}

function writeAll(stream: NodeJS.WritableStream, data: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    stream.once('error', reject);
    stream.once('finish', () => resolve());
    let off = 0;
    const pump = (): void => {
      while (off < data.length) {
        const piece = data.subarray(off, off + 64 * 1024);
        off += piece.length;
        if (!stream.write(piece)) return void stream.once('drain', pump);
      }
      stream.end();
    };
    pump();
  });
}

async function main(): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'dropftp-bench-engine-'));
  const box = await startLocalBox({ dataDir });
  const results: CaseResult[] = [];
  try {
    const account: LocalBoxAccount = await box.createAccount('bench');
    const token = account.accessToken;
    const distinct = 4;
    for (const n of ns) {
      const fileBytes = fileBytesFor(n);
      const contents = Array.from({ length: distinct }, (_, d) => pattern(fileBytes, 7 + d + n));
      for (let d = 0; d < distinct; d++) await api(box, token, 'files/upload', { path: `/src/${n}-${d}.bin`, mode: 'overwrite' }, contents[d]);
      for (let i = 0; i < n; i += 50) {
        await Promise.all(
          Array.from({ length: Math.min(50, n - i) }, (_, k) =>
            api(box, token, 'files/copy_v2', { from_path: `/src/${n}-${(i + k) % distinct}.bin`, to_path: `/dl/${n}/f${i + k}.bin` }),
          ),
        );
      }
      for (const mode of ['workers', 'main-thread', 'direct-http', 'direct-http-hash'] as const) {
        const hashing = mode === 'direct-http-hash';
        const engine = mode.startsWith('direct') ? null : await TransferEngine.start(mode === 'workers' ? { workers } : { onlyMainThread: true });
        const agent = new Agent({ keepAliveTimeout: 30_000, connections: 64 });
        engine?.setAccount({ name: 'bench', apiUrl: box.url, contentUrl: box.url, accessToken: token });
        // Warm-up: every worker booted (the pool grows by one worker per GROW_AT_TASKS transfers at
        // once; a case must not time the start-up of workers), connections open.
        if (engine) {
          const warm = mode === 'workers' ? workers * GROW_AT_TASKS : 1;
          await Promise.all(Array.from({ length: warm }, () => drainCount(engine.openDownload('bench', `/src/${n}-0.bin`))));
        }
        const download = (i: number): Promise<number> => {
          if (engine) return drainViews(engine.openDownload('bench', `/dl/${n}/f${i}.bin`));
          return request(`${box.url}/2/files/download`, {
            method: 'POST',
            dispatcher: agent,
            headers: { authorization: `Bearer ${token}`, 'dropbox-api-arg': JSON.stringify({ path: `/dl/${n}/f${i}.bin` }) },
          }).then(async (res) => {
            if (!hashing) return drainCount(res.body);
            // As the engine must: the body's content_hash, checked against the file's own.
            const hasher = new ContentHasher();
            const bytes = await drainCount(res.body, hasher);
            const meta = JSON.parse(String(res.headers['dropbox-api-result'])) as { content_hash: string };
            if (hasher.digest() !== meta.content_hash) throw new Error(`content_hash mismatch on /dl/${n}/f${i}.bin`);
            return bytes;
          });
        };
        const upload = async (i: number): Promise<number> => {
          const path = `/ul/${mode}/${n}/f${i}.bin`;
          const data = contents[i % distinct]!;
          if (engine) {
            await writeAll(engine.openUpload('bench', path), data);
          } else {
            // direct-http-hash: the content_hash of the bytes sent, checked against the committed one.
            let sent: string | null = null;
            if (hashing) {
              const hasher = new ContentHasher();
              for (let off = 0; off < data.length; off += 64 * 1024) hasher.update(data.subarray(off, off + 64 * 1024));
              sent = hasher.digest();
            }
            const res = await request(`${box.url}/2/files/upload`, {
              method: 'POST',
              dispatcher: agent,
              headers: { authorization: `Bearer ${token}`, 'dropbox-api-arg': JSON.stringify({ path, mode: 'overwrite' }), 'content-type': 'application/octet-stream' },
              body: data,
            });
            const text = await res.body.text();
            if (res.statusCode !== 200) throw new Error(`files/upload ${res.statusCode} ${text.slice(0, 200)}`);
            if (sent !== null && (JSON.parse(text) as { content_hash: string }).content_hash !== sent) throw new Error(`content_hash mismatch on ${path}`);
          }
          return data.length;
        };
        // Untimed, then `repeat` timed runs of each direction, taken in turn; the median run is reported.
        const rounds = Math.max(1, Math.round(totalBytes / (n * fileBytes)));
        await measure(box, engine, mode, 'download', n, fileBytes, rounds, download);
        await measure(box, engine, mode, 'upload', n, fileBytes, rounds, upload);
        const runs: Record<Direction, CaseResult[]> = { download: [], upload: [] };
        for (let r = 0; r < repeat; r++) {
          runs.download.push(await measure(box, engine, mode, 'download', n, fileBytes, rounds, download));
          runs.upload.push(await measure(box, engine, mode, 'upload', n, fileBytes, rounds, upload));
        }
        for (const direction of ['download', 'upload'] as const) {
          const sorted = [...runs[direction]].sort((x, y) => x.mbPerSec - y.mbPerSec);
          const median = { ...sorted[Math.floor((sorted.length - 1) / 2)]!, runs: runs[direction].map((x) => x.mbPerSec) };
          report(median);
          results.push(median);
        }
        await engine?.close();
        await agent.close();
      }
    }
  } finally {
    await box.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
  const ratios: Record<string, number> = {};
  for (const r of results) {
    if (r.mode !== 'workers') continue;
    const floor = results.find((x) => x.mode === 'direct-http-hash' && x.direction === r.direction && x.n === r.n);
    if (floor && floor.mbPerSec > 0) ratios[`${r.direction} n=${r.n}`] = Math.round((r.mbPerSec / floor.mbPerSec) * 100) / 100;
  }
  console.log(`workers / direct-http-hash: ${Object.entries(ratios).map(([k, v]) => `${k} ${v}x`).join(', ')}`);
  const file = saveResult('engine-throughput', {
    benchmark: 'engine-throughput',
    startedAt: new Date().toISOString(),
    machine: { cpus: cpus().length, model: cpus()[0]?.model ?? '', node: process.version },
    params: { ns, totalBytes, workers, repeat },
    notes: [
      'direct-http: main thread straight to the local box (downloads streamed and dropped, no hashing; uploads one files/upload each)',
      'direct-http-hash: the same with the SHA-256 content_hash computed on the main thread and checked (downloads against the file, uploads against the commit): the floor the engine is judged against',
      'engine downloads are drained as the FTP data path drains them: views into the ring (lendViews), each released once counted',
      'engine cases are warmed up with workers x GROW_AT_TASKS concurrent downloads (one for the main-thread engine), so every worker has booted before the clock and the CPU counters start',
      'callsPerTransfer: counted by the local box (GET /admin/calls, reset before each case), warm-up excluded; cpuSecPerGiB: /proc utime+stime of this process, its main thread and the box child',
      'workers / main-thread: the engine (content_hash verified on every download, upload sessions + batched commits)',
      'peakRssMiB: this process (engine, workers, test data); the local box is a child process',
      `each case: n transfers at once, in rounds until about --total-mib moved; run once untimed, then ${repeat} timed runs (directions in turn); the median run by MB/s is reported, runs lists every timed run`,
      'ratios: MB/s of the workers engine over direct-http-hash, medians of the same run',
    ],
    ratios,
    results,
  });
  console.log(`saved ${file}`);
}

await main();
