// TransferEngine options: all optional, one defaults object, one resolved and frozen type.
// Main thread, once at start. Invariant: a bad value throws DROPFTP_ERR_CONFIG naming the option.

import { availableParallelism } from 'node:os';
import { DropftpError } from '../errors.ts';

/** Most worker threads accepted: covers 256-core hosts (the control block has a slot for each, see shared-layout.ts). */
export const MAX_ENGINE_WORKERS = 256;

export interface EngineOptions {
  /** Most worker threads; the pool starts with one and grows with load (default: the CPU count, at most MAX_ENGINE_WORKERS). */
  workers?: number;
  /** Bytes for rings and append buffers together, all transfers (default 512 MiB). */
  memoryBudgetBytes?: number;
  /** Baseline: the same code with no workers, every byte on the main thread. */
  onlyMainThread?: boolean;
  /** Ceiling of each account's concurrent-request budget; AIMD moves below it (default 16). */
  maxRequestsPerAccount?: number;
  /** Target time in which every contender of a busy account gets one turn; slices = rate × round / contenders (default 600 ms). */
  fairRoundMs?: number;
  /** Bytes of a fair round before the account's rate has been measured (default 64 MiB). */
  fairRoundBytes?: number;
  /** Smallest slice (ranged read or append) a contended transfer asks for (default 64 KiB). */
  minSliceBytes?: number;
  /** How long the commit batcher waits for more uploads before it commits (default 20 ms). */
  commitLingerMs?: number;
  /** Entries per finish_batch_v2 call (default and maximum 1000). */
  maxBatchEntries?: number;
}

export type ResolvedEngineOptions = Readonly<Required<EngineOptions>>;

export const ENGINE_DEFAULTS: ResolvedEngineOptions = Object.freeze({
  workers: Math.min(MAX_ENGINE_WORKERS, Math.max(1, availableParallelism())),
  memoryBudgetBytes: 512 * 1024 * 1024,
  onlyMainThread: false,
  maxRequestsPerAccount: 16,
  fairRoundMs: 600,
  fairRoundBytes: 64 * 1024 * 1024,
  minSliceBytes: 64 * 1024,
  commitLingerMs: 20,
  maxBatchEntries: 1000,
});

function int(name: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new DropftpError('DROPFTP_ERR_CONFIG', `engine option ${name} must be an integer in [${min}, ${max}], got ${value}`);
  }
  return value;
}

export function resolveEngineOptions(options: EngineOptions = {}): ResolvedEngineOptions {
  const o = { ...ENGINE_DEFAULTS, ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) };
  return Object.freeze({
    workers: int('workers', o.workers, 1, MAX_ENGINE_WORKERS),
    memoryBudgetBytes: int('memoryBudgetBytes', o.memoryBudgetBytes, 1 << 20, 2 ** 40),
    onlyMainThread: Boolean(o.onlyMainThread),
    maxRequestsPerAccount: int('maxRequestsPerAccount', o.maxRequestsPerAccount, 1, 1024),
    fairRoundMs: int('fairRoundMs', o.fairRoundMs, 50, 60_000),
    fairRoundBytes: int('fairRoundBytes', o.fairRoundBytes, 64 * 1024, 2 ** 31 - 1),
    minSliceBytes: int('minSliceBytes', o.minSliceBytes, 4096, 64 * 1024 * 1024),
    commitLingerMs: int('commitLingerMs', o.commitLingerMs, 0, 10_000),
    maxBatchEntries: int('maxBatchEntries', o.maxBatchEntries, 1, 1000),
  });
}
