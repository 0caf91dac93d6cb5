// Local box throughput: download and upload bytes/s at 1, 64 and 1,000 concurrent clients (each
// client one keep-alive connection, requests back to back for a fixed time), beside a baseline — a
// bare Node HTTP server streaming from memory (localbox-baseline-server.ts) — measured in the same
// run, with the box's CPU-seconds per GiB; then the rate of small calls (get_metadata,
// list_folder/continue) the box sustains without Dropbox's call-rate limit, with a limit too high to
// refuse (its cost), and at 12:12 (admitted and refused calls per second).
// Usage: node --import tsx benchmarks/localbox-throughput.ts
// Env: BENCH_SECONDS (per case, default 5), BENCH_CLIENTS (default "1,64,1000"),
// BENCH_SMALL_CLIENTS (default 16). Saves benchmarks/results/localbox-throughput.json.

import { spawn } from 'node:child_process';
import { setMaxListeners } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { startLocalBox } from '../src/localbox/index.ts';
import { BLOCK_BYTES } from '../src/localbox/types.ts';
import { cpuSeconds, fmtRate, MiB, sampleRss, saveResult } from './localbox-common.ts';

const seconds = Number(process.env.BENCH_SECONDS ?? 5);
const clientCounts = (process.env.BENCH_CLIENTS ?? '1,64,1000').split(',').map(Number);
const downloadBytesFor = (n: number): number => (n === 1 ? 128 * MiB : n <= 64 ? 16 * MiB : 1 * MiB);
const uploadBytesFor = (n: number): number => (n === 1 ? 64 * MiB : n <= 64 ? 4 * MiB : 256 * 1024);

interface CaseResult {
  clients: number;
  bytesPerRequest: number;
  requests: number;
  errors: number;
  bytes: number;
  seconds: number;
  bytesPerSec: number;
  latencyMs: { p50: number; p99: number; max: number };
  serverRssMaxMiB?: number;
  boxCpuSecondsPerGiB?: number;
}

function pct(sorted: number[], p: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]! : 0;
}

/**
 * Runs `clients` loops of `once()` for `seconds`. `once` reports bytes as they move through
 * `count` (so long requests count while in flight); at the deadline the rate is taken and requests
 * still in flight are aborted through `signal`.
 */
async function runCase(
  clients: number,
  bytesPerRequest: number,
  once: (client: number, count: (n: number) => void, signal: AbortSignal) => Promise<void>,
  pid?: number,
): Promise<CaseResult> {
  const rss = pid ? sampleRss(pid, 100) : null;
  const cpu0 = pid ? cpuSeconds(pid) : 0;
  const moved0 = pid ? await boxBytesMoved() : 0;
  const abort = new AbortController();
  setMaxListeners(0, abort.signal);
  let bytes = 0;
  let requests = 0;
  let errors = 0;
  let stopped = false;
  const lat: number[] = [];
  const count = (n: number): void => {
    if (!stopped) bytes += n;
  };
  const started = process.hrtime.bigint();
  let secs = 0;
  let atDeadline = 0;
  const loops = Promise.all(
    Array.from({ length: clients }, async (_, c) => {
      while (!stopped) {
        const t0 = performance.now();
        try {
          await once(c, count, abort.signal);
          if (!stopped) {
            requests++;
            lat.push(performance.now() - t0);
          }
        } catch {
          if (!stopped) errors++;
        }
      }
    }),
  );
  await new Promise((r) => setTimeout(r, seconds * 1000));
  stopped = true;
  secs = Number(process.hrtime.bigint() - started) / 1e9;
  atDeadline = bytes;
  const cpu = pid ? cpuSeconds(pid) - cpu0 : 0;
  // the box's own count of body bytes it served and received (requests cut at the deadline included,
  // as their CPU is), the denominator of its CPU per GiB
  const moved = pid ? (await boxBytesMoved()) - moved0 : 0;
  abort.abort();
  await loops;
  lat.sort((a, b) => a - b);
  const r: CaseResult = {
    clients,
    bytesPerRequest,
    requests,
    errors,
    bytes: atDeadline,
    seconds: secs,
    bytesPerSec: atDeadline / secs,
    latencyMs: { p50: pct(lat, 50), p99: pct(lat, 99), max: lat[lat.length - 1] ?? 0 },
  };
  if (rss) r.serverRssMaxMiB = rss.stop().maxBytes / MiB;
  if (pid && moved > 0) r.boxCpuSecondsPerGiB = cpu / (moved / (1024 * MiB));
  return r;
}

interface CallsResult {
  route: string;
  limit: string;
  clients: number;
  callsPerSec: number;
  admittedPerSec: number;
  refusedPerSec: number;
  errors: number;
  boxCpuMsPerCall: number;
  latencyMs: { p50: number; p99: number };
}

/** `clients` loops of one small call each for `seconds`; a 429 counts as refused (not retried). */
async function runCalls(route: string, limit: string, clients: number, pid: number, once: (signal: AbortSignal) => Promise<number>): Promise<CallsResult> {
  const abort = new AbortController();
  setMaxListeners(0, abort.signal);
  let admitted = 0;
  let refused = 0;
  let errors = 0;
  let stopped = false;
  const lat: number[] = [];
  const cpu0 = cpuSeconds(pid);
  const t0 = performance.now();
  const loops = Promise.all(
    Array.from({ length: clients }, async () => {
      while (!stopped) {
        const started = performance.now();
        try {
          const status = await once(abort.signal);
          if (stopped) break;
          if (status === 429) refused++;
          else if (status === 200) admitted++;
          else errors++;
          lat.push(performance.now() - started);
        } catch {
          if (!stopped) errors++;
        }
      }
    }),
  );
  await new Promise((r) => setTimeout(r, seconds * 1000));
  stopped = true;
  const secs = (performance.now() - t0) / 1000;
  const cpu = cpuSeconds(pid) - cpu0;
  abort.abort();
  await loops;
  lat.sort((a, b) => a - b);
  const calls = admitted + refused;
  return {
    route,
    limit,
    clients,
    callsPerSec: calls / secs,
    admittedPerSec: admitted / secs,
    refusedPerSec: refused / secs,
    errors,
    boxCpuMsPerCall: calls ? (cpu * 1000) / calls : 0,
    latencyMs: { p50: pct(lat, 50), p99: pct(lat, 99) },
  };
}

async function drain(body: AsyncIterable<Buffer>, count: (n: number) => void): Promise<void> {
  for await (const c of body) count(c.length);
}

const dataDir = mkdtempSync(join(tmpdir(), 'localbox-bench-'));
const box = await startLocalBox({ dataDir });

/** Body bytes the box served plus received so far (GET /admin/calls). */
async function boxBytesMoved(): Promise<number> {
  const r = await fetch(`${box.url}/admin/calls`, { headers: { Authorization: `Bearer ${box.adminToken}` } });
  const { bytes } = (await r.json()) as { bytes: { served: number; received: number } };
  return bytes.served + bytes.received;
}
const baseline = spawn(process.execPath, ['--import', 'tsx', new URL('./localbox-baseline-server.ts', import.meta.url).pathname], { stdio: ['ignore', 'pipe', 'inherit'] });
const baselinePort = await new Promise<number>((resolve) => baseline.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))));
const baseUrl = `http://127.0.0.1:${baselinePort}`;
const results: Record<string, unknown>[] = [];
try {
  const acc = await box.createAccount('bench');
  const auth = `Bearer ${acc.accessToken}`;
  for (const n of clientCounts) {
    const agent = new Agent({ connections: n, pipelining: 1, keepAliveTimeout: 60_000 });
    // a file to download, uploaded once
    const dlBytes = downloadBytesFor(n);
    const src = Buffer.alloc(dlBytes);
    for (let i = 0; i < dlBytes; i += 4096) src.writeUInt32LE((i * 2654435761) >>> 0, i);
    const path = `/bench/dl-${n}.bin`;
    const up0 = await request(`${box.url}/2/files/upload`, {
      method: 'POST',
      dispatcher: agent,
      headers: { Authorization: auth, 'Content-Type': 'application/octet-stream', 'Dropbox-API-Arg': JSON.stringify({ path, mode: 'overwrite' }) },
      body: src,
    });
    const up0Text = await up0.body.text();
    if (up0.statusCode !== 200) throw new Error(`seed upload: ${up0.statusCode} ${up0Text}`);

    const localboxDownload = await runCase(n, dlBytes, async (_c, count, signal) => {
      const r = await request(`${box.url}/2/files/download`, { method: 'POST', dispatcher: agent, signal, headers: { Authorization: auth, 'Dropbox-API-Arg': JSON.stringify({ path }) } });
      if (r.statusCode !== 200) throw new Error(`${r.statusCode} ${await r.body.text()}`);
      await drain(r.body, count);
    }, box.pid);
    const baselineDownload = await runCase(n, dlBytes, async (_c, count, signal) => {
      const r = await request(`${baseUrl}/download?bytes=${dlBytes}`, { method: 'GET', dispatcher: agent, signal });
      await drain(r.body, count);
    });

    const ulBytes = uploadBytesFor(n);
    const body = Buffer.alloc(ulBytes, 0x33);
    let stamp = 0;
    const localboxUpload = await runCase(n, ulBytes, async (c, count, signal) => {
      // every 4 MiB block of every request distinct: a block the box already holds is dropped after
      // its temp write instead of kept, a cheaper path than a real upload's (only block 0 was stamped)
      const s = stamp++ >>> 0;
      for (let at = 0; at < body.length; at += BLOCK_BYTES) body.writeUInt32LE(s, at);
      const r = await request(`${box.url}/2/files/upload`, {
        method: 'POST',
        dispatcher: agent,
        headers: { Authorization: auth, 'Content-Type': 'application/octet-stream', 'Dropbox-API-Arg': JSON.stringify({ path: `/bench/up/${n}-${c}.bin`, mode: 'overwrite' }) },
        body,
        signal,
      });
      await r.body.text();
      if (r.statusCode !== 200) throw new Error(String(r.statusCode));
      count(ulBytes); // counted when committed
    }, box.pid);
    const baselineUpload = await runCase(n, ulBytes, async (_c, count, signal) => {
      const r = await request(`${baseUrl}/upload`, { method: 'POST', dispatcher: agent, body, signal });
      await r.body.text();
      count(ulBytes);
    });
    await agent.close();
    const row = { clients: n, localboxDownload, baselineDownload, localboxUpload, baselineUpload };
    results.push(row);
    console.log(
      `${String(n).padStart(5)} clients  download ${fmtRate(localboxDownload.bytesPerSec)} (baseline ${fmtRate(baselineDownload.bytesPerSec)})  ` +
        `upload ${fmtRate(localboxUpload.bytesPerSec)} (baseline ${fmtRate(baselineUpload.bytesPerSec)})  ` +
        `box CPU ${(localboxDownload.boxCpuSecondsPerGiB ?? 0).toFixed(2)} / ${(localboxUpload.boxCpuSecondsPerGiB ?? 0).toFixed(2)} s/GiB (down/up)  ` +
        `errors ${localboxDownload.errors + localboxUpload.errors}  server RSS max ${Math.max(localboxDownload.serverRssMaxMiB ?? 0, localboxUpload.serverRssMaxMiB ?? 0).toFixed(0)} MiB`,
    );
    await fetch(`${box.url}/admin/gc`, { method: 'POST', headers: { Authorization: `Bearer ${box.adminToken}` } });
  }
  // small calls: what the box sustains, and what Dropbox's call-rate limit costs and lets through
  const smallClients = Number(process.env.BENCH_SMALL_CLIENTS ?? 16);
  const admin = (path: string, body: unknown): Promise<Response> =>
    fetch(`${box.url}/admin/${path}`, { method: 'POST', headers: { Authorization: `Bearer ${box.adminToken}` }, body: JSON.stringify(body) });
  const agent = new Agent({ connections: smallClients, pipelining: 1, keepAliveTimeout: 60_000 });
  const rpc = async (route: string, arg: unknown, signal: AbortSignal): Promise<{ status: number; text: string }> => {
    const r = await request(`${box.url}/2/${route}`, { method: 'POST', dispatcher: agent, signal, headers: { Authorization: auth, 'Content-Type': 'application/json' }, body: JSON.stringify(arg) });
    return { status: r.statusCode, text: await r.body.text() };
  };
  const listed = await rpc('files/list_folder', { path: '/bench' }, new AbortController().signal);
  const cursor = (JSON.parse(listed.text) as { cursor: string }).cursor;
  const small: CallsResult[] = [];
  for (const [limit, spec] of [['off', { rateLimit: null }], ['1000000:1000000 (never refuses: its cost)', { rateLimit: '1000000:1000000' }], ['12:12', { rateLimit: '12:12' }]] as const) {
    await (await admin('limits', spec)).text();
    for (const [route, arg] of [['files/get_metadata', { path: '/bench/dl-1.bin' }], ['files/list_folder/continue', { cursor }]] as const) {
      if (limit === '12:12') await new Promise((r) => setTimeout(r, 1200)); // a full bucket for each case
      const res = await runCalls(route, limit, smallClients, box.pid, async (signal) => (await rpc(route, arg, signal)).status);
      small.push(res);
      console.log(
        `${route.padEnd(27)} limit ${limit.padEnd(42)} ${res.callsPerSec.toFixed(0).padStart(6)} calls/s (admitted ${res.admittedPerSec.toFixed(1)}/s, refused ${res.refusedPerSec.toFixed(0)}/s)  ` +
          `box ${res.boxCpuMsPerCall.toFixed(3)} CPU-ms/call  p50 ${res.latencyMs.p50.toFixed(2)} ms  p99 ${res.latencyMs.p99.toFixed(2)} ms  errors ${res.errors}`,
      );
    }
  }
  await (await admin('limits', { rateLimit: null, writeLock: null })).text();
  await agent.close();
  const file = saveResult('localbox-throughput', {
    date: new Date().toISOString(),
    node: process.version,
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model,
    secondsPerCase: seconds,
    note: 'bytes/s through loopback; baseline = bare node:http server streaming from memory, same run, same clients; CPU = the box process (user + system)',
    results,
    smallCalls: { clients: smallClients, results: small },
  });
  console.log(`saved ${file}`);
} finally {
  baseline.kill('SIGTERM');
  await box.close();
  rmSync(dataDir, { recursive: true, force: true });
}
