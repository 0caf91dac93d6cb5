// Local box upload-session appends (issue 15): one sequential session of BENCH_APPEND_TOTAL bytes
// (default 1 GiB) in appends of BENCH_APPEND_BYTES (default 1 MiB) over one keep-alive connection.
// Reports whether an append's time grows with its offset (mean of the last 64 vs the first 64),
// the bytes the box wrote (write(2) calls of its process) per byte uploaded, and its CPU-seconds per
// GiB; checks the committed file's content_hash. Runs on the benchmark's main thread; the box in
// its child process. Usage: node --import tsx benchmarks/localbox-appends.ts
// Saves benchmarks/results/localbox-appends.json.

import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { ContentHasher, startLocalBox } from '../src/localbox/index.ts';
import { cpuSeconds, makeBlockSource, MiB, saveResult, writtenBytes } from './localbox-common.ts';

const totalBytes = Number(process.env.BENCH_APPEND_TOTAL ?? 1024 * MiB);
const appendBytes = Number(process.env.BENCH_APPEND_BYTES ?? MiB);
const WINDOW = 64;

const dataDir = mkdtempSync(join(tmpdir(), 'localbox-appends-'));
const box = await startLocalBox({ dataDir }, { gcIntervalMs: 0 });
const agent = new Agent({ connections: 1, keepAliveTimeout: 60_000 });
try {
  const acc = await box.createAccount('bench');
  const auth = `Bearer ${acc.accessToken}`;
  const call = async (route: string, arg: unknown, body: Buffer | string): Promise<string> => {
    const r = await request(`${box.url}/2/${route}`, {
      method: 'POST',
      dispatcher: agent,
      headers: { Authorization: auth, 'Content-Type': 'application/octet-stream', 'Dropbox-API-Arg': JSON.stringify(arg) },
      body,
    });
    const text = await r.body.text();
    if (r.statusCode !== 200) throw new Error(`${route}: ${r.statusCode} ${text}`);
    return text;
  };
  const block = makeBlockSource();
  const source = (offset: number, n: number): Buffer => {
    // bytes [offset, offset + n) of a stream of distinct 4 MiB blocks
    const parts: Buffer[] = [];
    for (let at = offset; at < offset + n; ) {
      const i = Math.floor(at / (4 * MiB));
      const from = at - i * 4 * MiB;
      const take = Math.min(4 * MiB - from, offset + n - at);
      parts.push(block(i, 4 * MiB).subarray(from, from + take));
      at += take;
    }
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  };
  const sessionId = (JSON.parse(await call('files/upload_session/start', {}, '')) as { session_id: string }).session_id;
  const hasher = new ContentHasher();
  const times: number[] = [];
  const cpuAt: number[] = []; // the box's CPU-seconds before each append (CPU does not count waiting on a busy machine)
  const cpu0 = cpuSeconds(box.pid);
  const written0 = writtenBytes(box.pid);
  const started = performance.now();
  for (let offset = 0; offset < totalBytes; offset += appendBytes) {
    const n = Math.min(appendBytes, totalBytes - offset);
    const data = source(offset, n);
    hasher.update(data);
    cpuAt.push(cpuSeconds(box.pid));
    const t0 = performance.now();
    await call('files/upload_session/append_v2', { cursor: { session_id: sessionId, offset } }, data);
    times.push(performance.now() - t0);
    if (times.length % 128 === 0) process.stdout.write(`\r${((offset + n) / MiB).toFixed(0)} MiB`);
  }
  cpuAt.push(cpuSeconds(box.pid));
  const meta = JSON.parse(await call('files/upload_session/finish', { cursor: { session_id: sessionId, offset: totalBytes }, commit: { path: '/appends.bin', mode: 'overwrite' } }, '')) as { size: number; content_hash: string };
  const seconds = (performance.now() - started) / 1000;
  const cpu = cpuSeconds(box.pid) - cpu0;
  const written = writtenBytes(box.pid) - written0;
  const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const first = mean(times.slice(0, WINDOW));
  const last = mean(times.slice(-WINDOW));
  const n = times.length;
  const cpuFirst = cpuAt[Math.min(WINDOW, n)]! - cpuAt[0]!;
  const cpuLast = cpuAt[n]! - cpuAt[Math.max(0, n - WINDOW)]!;
  const expected = hasher.digest();
  const result = {
    date: new Date().toISOString(),
    node: process.version,
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model,
    totalBytes,
    appendBytes,
    appends: times.length,
    seconds,
    bytesPerSec: totalBytes / seconds,
    firstAppendsMeanMs: first,
    lastAppendsMeanMs: last,
    lastOverFirst: last / first,
    firstAppendsMedianMs: median(times.slice(0, WINDOW)),
    lastAppendsMedianMs: median(times.slice(-WINDOW)),
    boxCpuSecondsFirstAppends: cpuFirst,
    boxCpuSecondsLastAppends: cpuLast,
    writtenOverUploaded: written / totalBytes,
    boxCpuSecondsPerGiB: cpu / (totalBytes / (1024 * MiB)),
    contentHashOk: meta.content_hash === expected && meta.size === totalBytes,
    note: 'one sequential session over one keep-alive connection; written = wchar of the box process (files, sockets, SQLite)',
  };
  console.log(
    `\r${(totalBytes / MiB).toFixed(0)} MiB in ${times.length} appends of ${(appendBytes / MiB).toFixed(2)} MiB: ${(totalBytes / seconds / 1e6).toFixed(1)} MB/s; ` +
      `first ${WINDOW} ${first.toFixed(2)} ms, last ${WINDOW} ${last.toFixed(2)} ms (${(last / first).toFixed(2)}x; medians ${result.firstAppendsMedianMs.toFixed(2)} / ${result.lastAppendsMedianMs.toFixed(2)} ms; ` +
      `box CPU ${cpuFirst.toFixed(2)} / ${cpuLast.toFixed(2)} s); ` +
      `written ${(written / totalBytes).toFixed(3)}x the upload; box ${result.boxCpuSecondsPerGiB.toFixed(2)} CPU-s/GiB; content_hash ${result.contentHashOk ? 'ok' : 'WRONG'}`,
  );
  console.log(`saved ${saveResult('localbox-appends', result)}`);
  if (!result.contentHashOk) process.exitCode = 1;
} finally {
  await agent.close();
  await box.close();
  rmSync(dataDir, { recursive: true, force: true });
}
