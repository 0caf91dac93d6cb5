// Where log records go: pino hands each record here as one JSON line; we redact it (redact.ts) and
// write it to the output as JSON, or as a readable line for terminals. Main thread. Invariants:
// every record passes through redact() before any byte is written (one choke point, whatever
// logged it; a JSON record in which no redaction rule could match is written unparsed); standard output gets each turn of the event loop's records in one synchronous write at its end, and what is pending at exit is written then, so nothing logged before exit is lost; a line that is not
// JSON is written redacted as it is.

import { writeSync } from 'node:fs';
import { mayHoldSecret, redact, redactString } from './redact.ts';

export type LogFormat = 'json' | 'pretty';

export interface LogOutput {
  write(text: string): void;
}

/** A batch this large is written at once instead of at the end of the event loop's turn. */
const FLUSH_BYTES = 64 * 1024;
let pending = '';
let flushScheduled = false;
/** Set while process.stdout holds bytes a write refused with EAGAIN: later lines queue behind them. */
let queued = false;

/** Writes `text` to fd 1, synchronously while it takes the bytes, else through process.stdout (in order). */
function writeOut(text: string): void {
  if (queued) {
    if (process.stdout.writableLength > 0) {
      process.stdout.write(text);
      return;
    }
    queued = false;
  }
  const bytes = Buffer.from(text);
  let off = 0;
  while (off < bytes.length) {
    try {
      off += writeSync(1, bytes, off);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
      // A non-blocking pipe that is full: the rest goes through Node's own queue.
      queued = true;
      process.stdout.write(bytes.subarray(off));
      return;
    }
  }
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
process.on('exit', flushStdout);

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
