// Messages between the load generator's coordinator and its child processes (IPC), and the shape
// of a child's configuration and result. Imported by both sides. Invariant: every message carries a
// `type` tag; a side that receives an unknown tag fails loudly.

import type { TransferRecord } from './meter.ts';

export type Scenario = 'idle' | 'storm' | 'big' | 'churn';
export type OpMix = 'retr' | 'stor' | 'mix';

export type Target =
  | { kind: 'ftp'; host: string; port: number; user: string; password: string }
  | { kind: 'http'; url: string; accessToken: string };

export interface WorkerConfig {
  scenario: Scenario;
  target: Target;
  /** This child runs sessions [firstId, firstId + count). */
  firstId: number;
  count: number;
  sizeBytes: number;
  op: OpMix;
  /** The file every RETR of the storm and churn scenarios reads. */
  retrPath: string;
  /** STORs write `${storPrefix}${id}.bin`. */
  storPrefix: string;
  /** Logins in flight at once in this child. */
  loginConcurrency: number;
  /** Bucket width of per-session byte timelines; sessions with id < timelineSessions keep one. */
  bucketMs: number;
  timelineSessions: number;
  /** idle: mean time between NOOPs. */
  noopMs: number;
  /** churn: how long to keep churning. */
  durationMs: number;
  stallTimeoutMs: number;
  replyTimeoutMs: number;
  seed: number;
  /** Spread sessions over this many loopback source addresses (127.1.x.y); 1 = the default address. */
  sourceAddresses: number;
  /**
   * idle: this child's sessions logged in before the checkpoint (the first ones of its share); it
   * then reports 'checkpoint' and logs the rest in after 'continue'. 0: no checkpoint.
   */
  checkpointCount: number;
}

export interface Counters {
  loggedIn: number;
  loginFailed: number;
  active: number;
  done: number;
  failed: number;
  bytes: number;
}

export interface WorkerResult {
  logins: { ok: number; failed: number; firstStartMs: number | null; lastDoneMs: number | null; latenciesMs: number[] };
  transfers: TransferRecord[];
  idle: { noopsOk: number; noopsFailed: number; disconnected: number } | null;
  churn: { outcomes: Record<string, number>; sessions: number } | null;
  errors: Record<string, number>;
}

export type ToChild = { type: 'config'; config: WorkerConfig } | { type: 'continue' } | { type: 'go'; epochMs: number } | { type: 'stop' };

export type FromChild =
  | { type: 'progress'; counters: Counters }
  | { type: 'checkpoint'; counters: Counters }
  | { type: 'ready'; counters: Counters }
  /** cpuSeconds: the child's user and system CPU (all its threads) from 'go' to its result. */
  | { type: 'result'; counters: Counters; result: WorkerResult; cpuSeconds: number }
  | { type: 'fatal'; message: string };
