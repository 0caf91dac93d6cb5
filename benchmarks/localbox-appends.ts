// Local box upload-session appends (issue 15): one sequential session of BENCH_APPEND_TOTAL bytes
// (default 1 GiB) in appends of BENCH_APPEND_BYTES (default 1 MiB) over one keep-alive connection.
// Reports whether an append's time grows with its offset (mean of the last 64 vs the first 64),
// the bytes the box wrote (write(2) calls of its process) per byte uploaded, and its CPU-seconds per
// GiB; checks the committed file's content_hash. Two control sessions time a new session's first 64
// appends right before the main session's first and right after its last (the machine's load at
// either end of the run). Runs on the benchmark's main
// thread; the box in its child process. Usage: node --import tsx benchmarks/localbox-appends.ts
// Saves benchmarks/results/localbox-appends.json.

import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { ContentHasher, startLocalBox } from '../src/localbox/index.ts';
import { cpuSeconds, makeReusedBlock, MiB, saveResult, writtenBytes } from './localbox-common.ts';

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
  // Each stream has one 4 MiB buffer, stamped in place with the block it is at (appends are
  // sequential: the last one's bytes are sent by then). Until 2026-12-07 every 1 MiB append made a
  // fresh 4 MiB copy: the client allocated four times what it uploaded, and its mark-compacts (one
  // every ~10 appends, ~8 ms each with their concurrent marking on this 2-core machine) landed in
  // the appends it timed.
  const streams = new Map<string, (i: number) => Buffer>();
  const blockOf = (stream: string, i: number): Buffer => {
    let block = streams.get(stream);
    if (!block) streams.set(stream, (block = makeReusedBlock()));
    return block(i);
  };
  const source = (stream: string, offset: number, n: number): Buffer => {
    // bytes [offset, offset + n) of a stream of distinct 4 MiB blocks: a view of the block's buffer,
    // or, across a block boundary (an append size that does not divide 4 MiB), a copy made part by
    // part, as each block overwrites the buffer
    const first = Math.floor(offset / (4 * MiB));
    if (Math.floor((offset + n - 1) / (4 * MiB)) === first) return blockOf(stream, first).subarray(offset - first * 4 * MiB, offset - first * 4 * MiB + n);
    const out = Buffer.allocUnsafe(n);
    for (let at = offset; at < offset + n; ) {
      const i = Math.floor(at / (4 * MiB));
      const from = at - i * 4 * MiB;
      const take = Math.min(4 * MiB - from, offset + n - at);
      blockOf(stream, i).copy(out, at - offset, from, from + take);
      at += take;
    }
    return out;
  };
  const start = async (): Promise<string> => (JSON.parse(await call('files/upload_session/start', {}, '')) as { session_id: string }).session_id;
  const sessionId = await start();
  // Two control sessions, each timed over its first WINDOW appends: one right before the main
  // session's first append, one right after its last. A new session's first appends are so measured
  // at either end of the run (a shared machine's load drifts over a long run), and no neighbour
  // shares the box with the main session's timed appends (until 2026-12-07 the control was
  // interleaved with the last WINDOW only, which then paid for its work and the first did not).
  const earlyControlId = await start();
  const controlId = await start();
  const timeControl = async (id: string): Promise<number[]> => {
    const ms: number[] = [];
    for (let k = 0; k < WINDOW; k++) {
      const data = source(id, k * appendBytes, appendBytes);
      const c0 = performance.now();
      await call('files/upload_session/append_v2', { cursor: { session_id: id, offset: k * appendBytes } }, data);
      ms.push(performance.now() - c0);
    }
    return ms;
  };
  const hasher = new ContentHasher();
  const times: number[] = [];
  const cpuOf: number[] = []; // the box's CPU-seconds per main append (CPU does not count waiting on a busy machine)
  const cpu0 = cpuSeconds(box.pid);
  const written0 = writtenBytes(box.pid);
  const earlyControl = await timeControl(earlyControlId);
  const started = performance.now();
  for (let offset = 0; offset < totalBytes; offset += appendBytes) {
    const n = Math.min(appendBytes, totalBytes - offset);
    const data = source(sessionId, offset, n);
    hasher.update(data);
    const cpuBefore = cpuSeconds(box.pid);
    const t0 = performance.now();
    await call('files/upload_session/append_v2', { cursor: { session_id: sessionId, offset } }, data);
    times.push(performance.now() - t0);
    cpuOf.push(cpuSeconds(box.pid) - cpuBefore);
    if (times.length % 128 === 0) process.stdout.write(`\r${((offset + n) / MiB).toFixed(0)} MiB`);
  }
  const seconds = (performance.now() - started) / 1000; // the main session's appends alone
  const writtenBeforeControl = { written: writtenBytes(box.pid) - written0, uploaded: totalBytes + WINDOW * appendBytes };
  const control = await timeControl(controlId);
  const meta = JSON.parse(await call('files/upload_session/finish', { cursor: { session_id: sessionId, offset: totalBytes }, commit: { path: '/appends.bin', mode: 'overwrite' } }, '')) as { size: number; content_hash: string };
  const cpu = cpuSeconds(box.pid) - cpu0;
  const written = writtenBytes(box.pid) - written0;
  const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const first = mean(times.slice(0, WINDOW));
  const last = mean(times.slice(-WINDOW));
  const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);
  const cpuFirst = sum(cpuOf.slice(0, WINDOW));
  const cpuLast = sum(cpuOf.slice(-WINDOW));
  const controlMean = mean(control);
  const earlyControlMean = mean(earlyControl);
  const uploaded = totalBytes + (earlyControl.length + control.length) * appendBytes;
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
    earlyControlFirstAppendsMeanMs: earlyControlMean,
    controlFirstAppendsMeanMs: controlMean,
    controlLateOverEarly: controlMean / earlyControlMean,
    lastOverLateControl: last / controlMean,
    writtenOverUploaded: written / uploaded,
    writtenOverUploadedBeforeControl: writtenBeforeControl.written / writtenBeforeControl.uploaded,
    boxCpuSecondsPerGiB: cpu / (uploaded / (1024 * MiB)),
    contentHashOk: meta.content_hash === expected && meta.size === totalBytes,
    note: 'one sequential session over one keep-alive connection (plus two control sessions of 64 appends, one right before it, one right after its last append); MB/s over the main session\'s appends alone; written = wchar of the box process (files, sockets, SQLite) over all three sessions',
  };
  console.log(
    `\r${(totalBytes / MiB).toFixed(0)} MiB in ${times.length} appends of ${(appendBytes / MiB).toFixed(2)} MiB: ${(totalBytes / seconds / 1e6).toFixed(1)} MB/s; ` +
      `first ${WINDOW} ${first.toFixed(2)} ms, last ${WINDOW} ${last.toFixed(2)} ms (${(last / first).toFixed(2)}x; medians ${result.firstAppendsMedianMs.toFixed(2)} / ${result.lastAppendsMedianMs.toFixed(2)} ms; ` +
      `box CPU ${cpuFirst.toFixed(2)} / ${cpuLast.toFixed(2)} s); a new session's first ${WINDOW} before the first: ${earlyControlMean.toFixed(2)} ms, after the last: ${controlMean.toFixed(2)} ms (${(controlMean / earlyControlMean).toFixed(2)}x; last/that ${(last / controlMean).toFixed(2)}x); ` +
      `written ${(written / uploaded).toFixed(3)}x the upload (${result.writtenOverUploadedBeforeControl.toFixed(3)}x before the control session); box ${result.boxCpuSecondsPerGiB.toFixed(2)} CPU-s/GiB; content_hash ${result.contentHashOk ? 'ok' : 'WRONG'}`,
  );
  console.log(`saved ${saveResult('localbox-appends', result)}`);
  if (!result.contentHashOk) process.exitCode = 1;
} finally {
  await agent.close();
  await box.close();
  rmSync(dataDir, { recursive: true, force: true });
}
