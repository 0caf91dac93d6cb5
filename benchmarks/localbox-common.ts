// Shared pieces of the local box benchmarks: RSS sampling of the server child, deterministic block
// data, result saving. Runs on the benchmark's main thread.

import { readFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const MiB = 1024 * 1024;

/** Samples the RSS of `pid` every `everyMs`; stop() returns { maxBytes, samples }. */
export function sampleRss(pid: number, everyMs = 100): { stop(): { maxBytes: number; samples: number } } {
  let maxBytes = 0;
  let samples = 0;
  const read = (): void => {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (m) {
        maxBytes = Math.max(maxBytes, Number(m[1]) * 1024);
        samples++;
      }
    } catch {
      // process gone
    }
  };
  read();
  const timer = setInterval(read, everyMs);
  return {
    stop: () => {
      clearInterval(timer);
      read();
      return { maxBytes, samples };
    },
  };
}

/** 4 MiB block number `i` of a deterministic stream: a fixed random pattern stamped with i (so blocks differ). */
export function makeBlockSource(): (i: number, len: number) => Buffer {
  const pattern = Buffer.alloc(4 * MiB);
  let x = 0x9e3779b9;
  for (let o = 0; o < pattern.length; o += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    pattern.writeUInt32LE(x >>> 0, o);
  }
  return (i, len) => stampBlock(Buffer.from(pattern.subarray(0, len)), i);
}

/** Writes block i's two words (its first, and the one 8 bytes before its end) into `b`. */
function stampBlock(b: Buffer, i: number): Buffer {
  b.writeUInt32LE(i, 0);
  b.writeUInt32LE((i ^ 0xa5a5a5a5) >>> 0, b.length - 8 >= 4 ? b.length - 8 : 0);
  return b;
}

/**
 * makeBlockSource's 4 MiB blocks, each written into one buffer that the next call overwrites (only
 * the two words that differ from block to block): a client that uploads block after block without
 * allocating, so that its own garbage collection does not land in what it times.
 */
export function makeReusedBlock(): (i: number) => Buffer {
  const buf = makeBlockSource()(0, 4 * MiB);
  return (i) => stampBlock(buf, i);
}

/** CPU-seconds (user + system) the process `pid` has used so far (Linux /proc). */
export function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ');
  // after "pid (comm) ": state is field 3, utime 14, stime 15 (man 5 proc)
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Bytes the process `pid` has passed to write(2) and friends so far (files, sockets, database). */
export function writtenBytes(pid: number): number {
  return Number(/^wchar: (\d+)$/m.exec(readFileSync(`/proc/${pid}/io`, 'utf8'))![1]);
}

export function saveResult(name: string, result: unknown): string {
  const dir = fileURLToPath(new URL('./results/', import.meta.url));
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${name}.json`);
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  return file;
}

export function fmtRate(bytesPerSec: number): string {
  return `${(bytesPerSec / 1e6).toFixed(1)} MB/s`;
}
