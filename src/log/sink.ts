// Where log records go: pino hands each record here as one JSON line; we redact it (redact.ts) and
// write it to the output as JSON, or as a readable line for terminals. Main thread. Invariants:
// every record passes through redact() before any byte is written (one choke point, whatever
// logged it; a JSON record in which no redaction rule could match is written unparsed); a line
// that is not JSON is written redacted as it is. Standard output gets each turn of the event
// loop's records in one synchronous write at its end; what a full pipe refuses waits, in order, in
// our own bounded backlog (never in process.stdout, whose queue process.exit() discards), and what
// is pending at exit is written then, so nothing logged before exit is lost; a reader that is gone
// (EPIPE) silences the output instead of crashing the process.

import { writeSync } from 'node:fs';
import { mayHoldSecret, redact, redactString } from './redact.ts';

export type LogFormat = 'json' | 'pretty';

export interface LogOutput {
  write(text: string): void;
}

/** A batch this large is written at once instead of at the end of the event loop's turn. */
const FLUSH_BYTES = 64 * 1024;
/** Output a full pipe refused, kept (in order) until the reader makes room; past this, records are dropped and counted. */
const BACKLOG_MAX_BYTES = 16 * 1024 * 1024;
/** How often a backlog is offered again to a pipe that refused it (its reader is slow). */
const RETRY_MS = 10;
/** At exit, how long to wait for a reader that takes nothing before the rest is given up. */
const EXIT_PATIENCE_MS = 5000;

let pending = '';
let flushScheduled = false;
/** Bytes a full pipe refused (EAGAIN), oldest first: everything later queues behind them. */
const backlog: Buffer[] = [];
let backlogBytes = 0;
let retryTimer: NodeJS.Timeout | undefined;
let droppedBytes = 0;
/** The reader is gone (EPIPE) or fd 1 fails otherwise: output is discarded, never a crash. */
let broken = false;

/** Writes from `bytes` what fd 1 takes now; returns how many. Marks the output broken on an error other than EAGAIN. */
function writeSome(bytes: Buffer): number {
  let off = 0;
  while (off < bytes.length) {
    try {
      off += writeSync(1, bytes, off);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') broken = true;
      break;
    }
  }
  return off;
}

/** Offers the backlog to fd 1; true when it is all written (or can never be). */
function drainBacklog(): boolean {
  while (backlog.length > 0 && !broken) {
    const head = backlog[0]!;
    const written = writeSome(head);
    backlogBytes -= written;
    if (written < head.length) {
      backlog[0] = head.subarray(written);
      return false;
    }
    backlog.shift();
  }
  if (broken) {
    backlog.length = 0;
    backlogBytes = 0;
    return true;
  }
  if (droppedBytes > 0) {
    const note = Buffer.from(JSON.stringify({ level: 40, time: new Date().toISOString(), msg: 'log output was slower than the records: some were dropped', droppedBytes }) + '\n');
    droppedBytes = 0;
    return writeOrKeep(note);
  }
  return true;
}

/** Writes what fd 1 takes of `bytes` and keeps the rest in the backlog; true when all was written (or can never be). */
function writeOrKeep(bytes: Buffer): boolean {
  const written = writeSome(bytes);
  if (written === bytes.length || broken) return true;
  backlog.push(bytes.subarray(written));
  backlogBytes += bytes.length - written;
  retryLater();
  return false;
}

function retryLater(): void {
  if (retryTimer) return;
  retryTimer = setTimeout(() => {
    retryTimer = undefined;
    if (!drainBacklog()) retryLater();
  }, RETRY_MS).unref();
}

/**
 * Writes `text` to fd 1, synchronously while the pipe takes the bytes. A full non-blocking pipe
 * (EAGAIN: its reader is slow) leaves the rest in our own backlog, retried by a timer and written
 * at exit: never handed to process.stdout, whose queued writes process.exit() discards (a CI run
 * lost 375 of 2,000 records that way).
 */
function writeOut(text: string): void {
  if (broken) return;
  if (backlogBytes > 0 && !drainBacklog()) {
    // Still behind: this batch waits too (after what came first), unless the backlog is full.
    const bytes = Buffer.from(text);
    if (backlogBytes + bytes.length > BACKLOG_MAX_BYTES) droppedBytes += bytes.length;
    else {
      backlog.push(bytes);
      backlogBytes += bytes.length;
    }
    retryLater();
    return;
  }
  writeOrKeep(Buffer.from(text));
}

/** Writes what is pending now. */
export function flushStdout(): void {
  flushScheduled = false;
  if (pending === '') return;
  const text = pending;
  pending = '';
  writeOut(text);
}

/**
 * At exit: the pending records and the backlog are written, waiting for a slow reader. The process
 * is ending, so this one wait on the main thread is the price of losing nothing; it gives up after
 * EXIT_PATIENCE_MS in which the reader took no byte.
 */
function flushAtExit(): void {
  flushStdout();
  const nap = new Int32Array(new SharedArrayBuffer(4));
  let lastProgress = Date.now();
  for (;;) {
    const before = backlogBytes;
    if (drainBacklog()) return;
    if (backlogBytes < before) lastProgress = Date.now();
    else if (Date.now() - lastProgress > EXIT_PATIENCE_MS) return;
    Atomics.wait(nap, 0, 0, 2);
  }
}

/**
 * Standard output. The records of one turn of the event loop go out in one write at its end (or
 * once FLUSH_BYTES are pending), synchronously (also when it is a pipe), and whatever is pending is
 * written at exit: a transfer record per small file, each written alone, woke the pipe's reader
 * every time (mirror of 1,142 files back down: ~11,000 write syscalls in the gateway, ~10,450 so).
 */
export const STDOUT: LogOutput = {
  write(text) {
    pending += text;
    if (pending.length >= FLUSH_BYTES) flushStdout();
    else if (!flushScheduled) {
      flushScheduled = true;
      setImmediate(flushStdout).unref();
    }
  },
};
process.on('exit', flushAtExit);

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO ', 40: 'WARN ', 50: 'ERROR', 60: 'FATAL' };
const COLORS: Record<number, string> = { 10: '90', 20: '36', 30: '32', 40: '33', 50: '31', 60: '35' };
const HIDDEN = new Set(['level', 'time', 'msg', 'pid', 'hostname']);

function shownValue(value: unknown): string {
  if (typeof value === 'string') return /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
  if (value && typeof value === 'object' && 'message' in value && 'stack' in value) return JSON.stringify((value as { message: unknown }).message);
  return JSON.stringify(value);
}

/** `12:00:01.234 INFO  transfer user=bob path=/a.bin bytes=42 …` (optionally coloured). */
export function prettyLine(record: Record<string, unknown>, color: boolean): string {
  const level = Number(record.level);
  const time = typeof record.time === 'string' ? record.time.slice(11, 23) : new Date(Number(record.time ?? Date.now())).toISOString().slice(11, 23);
  const name = LEVELS[level] ?? String(record.level);
  const tag = color ? `\x1b[${COLORS[level] ?? '0'}m${name}\x1b[0m` : name;
  const fields = Object.entries(record)
    .filter(([key, value]) => !HIDDEN.has(key) && value !== undefined)
    .map(([key, value]) => `${key}=${shownValue(value)}`);
  return `${time} ${tag} ${String(record.msg ?? '')}${fields.length ? ' ' + fields.join(' ') : ''}\n`;
}

export function createSink(format: LogFormat, output: LogOutput = STDOUT, color = false): { write(line: string): void } {
  return {
    write(line: string) {
      // Most records (session events, transfers) hold nothing secret-like: written as pino made them.
      if (format === 'json' && !mayHoldSecret(line)) {
        output.write(line);
        return;
      }
      let record: unknown;
      try {
        record = JSON.parse(line);
      } catch {
        output.write(redactString(line));
        return;
      }
      const clean = redact(record) as Record<string, unknown>;
      output.write(format === 'json' ? JSON.stringify(clean) + '\n' : prettyLine(clean, color));
    },
  };
}
