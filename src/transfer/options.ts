// TransferEngine options: all optional, one defaults object, one resolved and frozen type.
// Main thread, once at start. Invariant: a bad value throws DROPFTP_ERR_CONFIG naming the option;
// options that were removed throw naming what replaced them.

import { availableParallelism } from 'node:os';
import { DropftpError } from '../errors.ts';

/** Most worker threads accepted: covers 256-core hosts (the control block has a slot for each, see shared-layout.ts). */
export const MAX_ENGINE_WORKERS = 256;

/** What the engine logs (a pino logger fits): capped Retry-Afters, spool sweeps. */
export interface EngineLog {
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
}

export interface EngineOptions {
  /** Most worker threads; the pool starts with one and grows with load (default: the CPU count, at most MAX_ENGINE_WORKERS). */
  workers?: number;
  /** Bytes for rings and upload retention in memory, all transfers together (default 512 MiB). */
  memoryBudgetBytes?: number;
  /** Baseline: the same code with no workers, every byte on the main thread. */
  onlyMainThread?: boolean;
  /** Ceiling of each account's call rate, calls/s (default null: none, the pacer finds the limit). */
  maxCallsPerSecond?: number | null;
  /** A Retry-After above this (or negative, or not a number) is capped and logged (default 300 s). */
  maxRetryAfterSec?: number;
  /**
   * Bytes of an upload's unacknowledged append kept in memory, at most (default 64 MiB, less when the
   * budget is shared); the rest spools. Why 64: memory a call's body has sent is written to the spool
   * when the share is full, and that page-cache write cost the gateway ~0.6 CPU-s per GiB spilled
   * (libuv's pool threads: copy_folio_from_iter, ext4 delayed allocation, truncation at unlink). With
   * 8 MiB, one 64 MiB upload alone spilled 77 % of its bytes and moved at 0.71-0.77x of a direct
   * files/upload with its hash; with 32 MiB it spilled 50 % at 0.78-0.81x; with 64 MiB nothing, at
   * 0.84-0.92x (bench:engine --ns 1, three alternating rounds). Many uploads at once get less than
   * this from the budget anyway (512 MiB among 200 uploads: 2 MiB each).
   */
  appendMemoryBytes?: number;
  /**
   * Spool files of all uploads together, at most (0: no spool, memory only; null, the default: a
   * quarter of the space free on the spool folder's filesystem at start, at most AUTO_SPOOL_MAX_BYTES).
   */
  spoolBytes?: number | null;
  /** Where upload spool files live (default: a private folder under the OS temp dir). Swept at start. */
  spoolDir?: string | null;
  /**
   * How far an upload's client may run ahead of Dropbox, in seconds of its share of the thread's
   * upload bandwidth (default 20; workers/upload-lead.ts).
   */
  uploadLeadSec?: number;
  /** How long the commit batcher waits for more uploads while a batch is in flight (default 0: the batch that gathered during a flight goes when it returns). */
  commitLingerMs?: number;
  /** Entries per finish_batch_v2 call (default and maximum 1000). */
  maxBatchEntries?: number;
  /** Where the engine's few notices go (default: nowhere). */
  log?: EngineLog | null;
}

export interface ResolvedEngineOptions {
  readonly workers: number;
  readonly memoryBudgetBytes: number;
  readonly onlyMainThread: boolean;
  readonly maxCallsPerSecond: number | null;
  readonly maxRetryAfterSec: number;
  readonly appendMemoryBytes: number;
  readonly spoolBytes: number | null;
  /** null: the engine made a private folder (removed at close). */
  readonly spoolDir: string | null;
  readonly uploadLeadSec: number;
  readonly commitLingerMs: number;
  readonly maxBatchEntries: number;
  readonly log: EngineLog | null;
}

/** The most an automatic spool limit grows to, whatever the free space. */
export const AUTO_SPOOL_MAX_BYTES = 64 * 1024 ** 3;

/**
 * The spool limit when none is set: a quarter of `freeBytes` (what the spool folder's filesystem has
 * free at start), whole MiB, at most AUTO_SPOOL_MAX_BYTES. Why so much: an upload's unacknowledged
 * bytes stay retained until Dropbox acknowledges them (an invisible retry needs them), so the spool
 * bounds how many bytes one call may carry when many uploads run at once, and Dropbox counts calls.
 * 1,000 uploads of 16 MiB at once took 8.5 calls each with 4 GiB of spool and 2.4 with 16 GiB.
 */
export function autoSpoolBytes(freeBytes: number): number {
  const quarter = Math.floor(Math.max(0, freeBytes) / 4 / 1024 ** 2) * 1024 ** 2;
  return Math.min(AUTO_SPOOL_MAX_BYTES, quarter);
}

export const ENGINE_DEFAULTS: ResolvedEngineOptions = Object.freeze({
  workers: Math.min(MAX_ENGINE_WORKERS, Math.max(1, availableParallelism())),
  memoryBudgetBytes: 512 * 1024 * 1024,
  onlyMainThread: false,
  maxCallsPerSecond: null,
  maxRetryAfterSec: 300,
  appendMemoryBytes: 64 * 1024 * 1024,
  spoolBytes: null,
  uploadLeadSec: 20,
  spoolDir: null,
  commitLingerMs: 0,
  maxBatchEntries: 1000,
  log: null,
});

/** Options that no longer exist, and what replaced them (engine options and config keys alike). */
export const REMOVED_ENGINE_OPTIONS: Readonly<Record<string, string>> = Object.freeze({
  maxRequestsPerAccount: 'calls are paced per account, see engine.maxCallsPerSecond',
  fairRoundMs: 'a download is one streamed call and bandwidth is shared by the rings, see engine.maxCallsPerSecond',
  fairRoundBytes: 'transfers are no longer sliced: a download is one call, appends are as large as engine.appendMemoryBytes and engine.spoolBytes allow',
  minSliceBytes: 'transfers are no longer sliced: a download is one call, appends are as large as engine.appendMemoryBytes and engine.spoolBytes allow',
});

function int(name: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new DropftpError('DROPFTP_ERR_CONFIG', `engine option ${name} must be an integer in [${min}, ${max}], got ${value}`);
  }
  return value;
}

export function resolveEngineOptions(options: EngineOptions = {}): ResolvedEngineOptions {
  for (const [key, replacement] of Object.entries(REMOVED_ENGINE_OPTIONS)) {
    if (Object.hasOwn(options, key)) throw new DropftpError('DROPFTP_ERR_CONFIG', `engine.${key} was removed: ${replacement}`);
  }
  const o = { ...ENGINE_DEFAULTS, ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) } as ResolvedEngineOptions;
  const rate = o.maxCallsPerSecond;
  if (rate !== null && !(typeof rate === 'number' && Number.isFinite(rate) && rate >= 0.1 && rate <= 100_000)) {
    throw new DropftpError('DROPFTP_ERR_CONFIG', `engine option maxCallsPerSecond must be a number in [0.1, 100000] or null, got ${rate}`);
  }
  if (o.spoolDir !== null && (typeof o.spoolDir !== 'string' || o.spoolDir === '')) {
    throw new DropftpError('DROPFTP_ERR_CONFIG', 'engine option spoolDir must be a non-empty path or null');
  }
  return Object.freeze({
    workers: int('workers', o.workers, 1, MAX_ENGINE_WORKERS),
    memoryBudgetBytes: int('memoryBudgetBytes', o.memoryBudgetBytes, 1 << 20, 2 ** 40),
    onlyMainThread: Boolean(o.onlyMainThread),
    maxCallsPerSecond: rate,
    maxRetryAfterSec: int('maxRetryAfterSec', o.maxRetryAfterSec, 1, 86_400),
    appendMemoryBytes: int('appendMemoryBytes', o.appendMemoryBytes, 64 * 1024, 150 * 1024 * 1024),
    spoolBytes: o.spoolBytes === null ? null : int('spoolBytes', o.spoolBytes, 0, 2 ** 41),
    spoolDir: o.spoolDir,
    uploadLeadSec: int('uploadLeadSec', o.uploadLeadSec, 1, 3600),
    commitLingerMs: int('commitLingerMs', o.commitLingerMs, 0, 10_000),
    maxBatchEntries: int('maxBatchEntries', o.maxBatchEntries, 1, 1000),
    log: o.log ?? null,
  });
}
