// Public types of the local box: options, accounts, fault rules. Shared by the parent-side embedding
// API (index.ts) and the server child (server.ts). Any thread. Invariant: these shapes are a contract
// other components code against (issue 3); extend only with optional fields.

import type { LimitsSpec, RateLimit, WriteLock } from './limits.ts';

export type { LimitsSpec, RateLimit, WriteLock } from './limits.ts';

export interface FaultRule {
  kind: 'too_many_requests' | 'too_many_write_operations' | 'server_error' | 'latency' | 'reset' | 'corrupt' | 'corrupt_upload' | BadAnswerKind;
  probability?: number; // 0..1, default 1
  routes?: string[]; // e.g. ['files/download', 'files/upload_session/append_v2']; default: every route
  accounts?: string[]; // account names; default: every account
  retryAfterSec?: number; // 429 kinds: JSON error.retry_after and Retry-After header (default 1)
  status?: number; // server_error: 500..599 (default 503)
  latencyMs?: number; // latency: delay before answering
  // reset: destroy the socket after this many body bytes; corrupt (download body), corrupt_upload
  // (upload body, before the box hashes or stores it): flip the byte at this offset (default: random)
  afterBytes?: number;
  count?: number; // stop after firing this many times
  skip?: number; // let this many matching requests pass first (hold the second move_v2 of an operation: skip 1)
  bytes?: number; // range_shift: how far the answer's range starts from the one asked; short_body, long_body: bytes missing or added (default 1)
}

/**
 * Answers Dropbox should never give, for the gateway's defences: `malformed` a 200 whose body (and
 * Dropbox-API-Result header) is not the route's JSON; on files/download, `range_shift` a 206 whose
 * range starts `bytes` after the one asked (ranged requests only), `short_body` / `long_body` a body
 * `bytes` shorter / longer than the size its Dropbox-API-Result promises (Content-Length matches the body).
 */
export type BadAnswerKind = 'malformed' | 'range_shift' | 'short_body' | 'long_body';

export interface FaultSpec {
  rules: FaultRule[];
  concurrencyPerAccount?: number; // beyond it: 429 too_many_requests, as Dropbox does
  seed?: number;
}

export interface LocalBoxOptions {
  dataDir: string;
  host?: string; // default 127.0.0.1
  port?: number; // default 0 (any free port)
  tls?: { cert: string; key: string }; // PEM file paths
  faults?: FaultSpec;
  adminToken?: string;
  /**
   * Dropbox's limits (off when absent): `rateLimit` { rate, burst? } or "RATE[:BURST]" calls/s per
   * account; `writeLock` { holdMs? }, true or a hold in ms. Changeable later through /admin/limits.
   */
  limits?: { rateLimit?: RateLimit | string | null; writeLock?: WriteLock | number | boolean | null };
}

export interface LocalBoxAccount {
  name: string;
  accountId: string;
  accessToken: string;
  refreshToken: string;
  appKey: string;
  appSecret: string;
}

export interface LocalBox {
  readonly url: string;
  readonly adminToken: string;
  readonly pid: number;
  createAccount(name: string): Promise<LocalBoxAccount>;
  setFaults(spec: FaultSpec): Promise<void>;
  faultCounts(): Promise<Record<string, number>>;
  close(): Promise<void>;
  kill(): void;
}

/** The fully resolved server configuration (what the child process runs with). */
export interface ServerConfig {
  dataDir: string;
  host: string;
  port: number;
  tls: { cert: string; key: string } | null;
  faults: FaultSpec;
  adminToken: string;
  gcIntervalMs: number;
  /** A request body from which nothing arrives this long ends its connection (server.ts). */
  bodyIdleTimeoutMs: number;
  limits: LimitsSpec;
}

export const BLOCK_BYTES = 4 * 1024 * 1024; // Dropbox's content_hash block size (reference §4)
