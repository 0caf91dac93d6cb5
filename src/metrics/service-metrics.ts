// Every dropftp metric, in one place: the counters other modules increment (FTP sessions, logins,
// transfers, Dropbox RPC requests, token refreshes) and the values read at scrape time (engine
// stats, ring and memory budget, piscina utilisation, worker heaps), next to prom-client's default
// process and Node.js series. Main thread. Invariants: one instance per running service; label
// values come from small fixed sets (never a user name or a path), so the series count stays bounded.

import type { RefreshEvent } from '../auth/token-manager.ts';
import type { RpcObserver } from '../dropbox/rpc.ts';
import type { ErrorCode } from '../errors.ts';
import { Registry, type Sample } from './registry.ts';

/** What the metrics read from the transfer engine at scrape time (a subset of EngineStats). */
export interface EngineStatsLike {
  threads: number;
  activeDownloads: number;
  activeUploads: number;
  memory: { budgetBytes: number; ringBytesInUse: number; pooledRingBytes?: number; chunkBytesInUse: number; spareBytes?: number };
  /** Each account's call-rate pacer (src/dropbox/pacer.ts PacerStats). */
  accounts: Record<
    string,
    {
      callsStarted: number;
      waitedMs?: number;
      callsPerSecond: number;
      inFlight: number;
      waiting: number;
      writeLockRetries: number;
      retryAfterUntilMs: number | null;
      retryAfterCapped: number;
    }
  >;
  /** The upload spool (absent from engines that predate it). */
  spool?: { bytesInUse: number; limitBytes: number; spooledBytes: number; spilledBytes: number; readBackBytes: number; spillFailures: number };
  retries: number;
  throttles: number;
  workerCrashes: number;
  /** Transfers no worker thread has taken yet (absent from engines that predate it). */
  queuedTransfers?: number;
  commits: { calls: number; committed: number; backlog: number };
  /** Commits that failed their content_hash check, by what became of the revision (absent from engines that predate it). */
  integrityFailures?: Record<string, number>;
  /** piscina's pool utilisation (0..1), when the engine exposes it. */
  workerUtilization?: number;
  /** The engine's Dropbox HTTP answers (worker threads and commits), by route then status label. */
  requests?: Record<string, Record<string, number>>;
  /** Each worker thread's V8 heap, as it last published it. */
  workerHeaps?: Array<{ threadKey: number; heapUsedBytes: number; heapTotalBytes: number; externalBytes: number }>;
}

export type Direction = 'download' | 'upload';
export type TransferResult = 'ok' | 'aborted' | 'failed';

const ABORTED: ReadonlySet<string> = new Set<ErrorCode>(['DROPFTP_ERR_ABORTED', 'DROPFTP_ERR_CLIENT_GONE', 'DROPFTP_ERR_STALLED', 'DROPFTP_ERR_SHUTTING_DOWN']);

/** ok, aborted (the client or the server stopped it) or failed (an error); `code`: a registry code. */
export function transferResult(code: string | null): TransferResult {
  if (code === null) return 'ok';
  return ABORTED.has(code) ? 'aborted' : 'failed';
}

const DURATION_BUCKETS_S = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800];

export class ServiceMetrics {
  // Lazy: prom-client loads when the admin listener is configured (expose()) or at the first scrape.
  readonly registry = new Registry({ defaultMetrics: true, lazy: true });
  #engine: (() => EngineStatsLike) | null = null;
  #stats: EngineStatsLike | null = null;
  #rpc429 = 0;
  #connections: (() => number) | null = null;

  readonly connectionsTotal = this.registry.counter('dropftp_ftp_connections_total', 'FTP control connections accepted.');
  readonly logins = this.registry.counter('dropftp_ftp_logins_total', 'FTP logins by result (ok, failed).', ['result']);
  readonly transfers = this.registry.counter('dropftp_ftp_transfers_total', 'FTP file transfers by direction (download = RETR, upload = STOR/APPE/STOU) and result (ok, aborted, failed).', ['direction', 'result']);
  readonly transferBytes = this.registry.counter('dropftp_ftp_transfer_bytes_total', 'File bytes moved over FTP data connections, by direction.', ['direction']);
  readonly transferDuration = this.registry.histogram('dropftp_ftp_transfer_duration_seconds', 'FTP file transfer durations (open to final reply), by direction.', DURATION_BUCKETS_S, ['direction']);
  readonly dropboxRequests = this.registry.counter('dropftp_dropbox_requests_total', 'Dropbox API requests (main-thread RPC and token endpoint; transfer engine downloads, upload sessions and commits), by route and HTTP status (0: no answer; the engine reports 5xx and other as classes).', ['route', 'status']);
  readonly dropboxRetries = this.registry.counter('dropftp_dropbox_rpc_retries_total', 'Dropbox RPC calls retried (429, 5xx, network, expired token), by route.', ['route']);
  readonly commitBatchSize = this.registry.histogram('dropftp_commit_batch_size', 'Uploads per upload_session/finish_batch_v2 call.', [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]);
  readonly tokenRefreshes = this.registry.counter('dropftp_token_refreshes_total', 'Access token refreshes, by account, reason (start, expiry, expired_access_token) and result.', ['account', 'reason', 'result']);

  constructor() {
    // Known series start at 0, so that rate() and absent results mean what they say.
    this.connectionsTotal.inc({}, 0);
    for (const result of ['ok', 'failed']) this.logins.inc({ result }, 0);
    for (const direction of ['download', 'upload'] as const) {
      this.transferBytes.inc({ direction }, 0);
      for (const result of ['ok', 'aborted', 'failed'] as const) this.transfers.inc({ direction, result }, 0);
    }
    this.dropboxRequests.collect(() => this.#engineRequests());
    const r = this.registry;
    r.gauge('dropftp_ftp_connections', 'FTP control connections open now.', () => this.#connections?.() ?? 0);
    r.counterFrom('dropftp_dropbox_rate_limited_total', 'HTTP 429 answers from Dropbox (rpc: main-thread calls; engine: transfer and commit requests).', () => [
      { labels: { source: 'rpc' }, value: this.#rpc429 },
      ...(this.#stats ? [{ labels: { source: 'engine' }, value: this.#stats.throttles }] : []),
    ], ['source']);
    r.counterFrom('dropftp_engine_retries_total', 'Transfer engine requests retried (429, 5xx, reset, incorrect_offset).', () => this.#fromEngine((s) => s.retries));
    r.counterFrom('dropftp_engine_worker_crashes_total', 'Transfer worker threads that died.', () => this.#fromEngine((s) => s.workerCrashes));
    r.counterFrom('dropftp_commit_batches_total', 'upload_session/finish_batch_v2 calls.', () => this.#fromEngine((s) => s.commits.calls));
    r.counterFrom('dropftp_commit_batch_entries_total', 'Uploads committed through finish_batch_v2 (divide by dropftp_commit_batches_total for the mean batch size).', () => this.#fromEngine((s) => s.commits.committed));
    r.gauge('dropftp_commit_backlog', 'Uploads waiting for their commit batch.', () => this.#fromEngine((s) => s.commits.backlog));
    r.gauge('dropftp_engine_active_transfers', 'Transfers running in the engine, by direction.', () =>
      this.#stats ? [{ labels: { direction: 'download' }, value: this.#stats.activeDownloads }, { labels: { direction: 'upload' }, value: this.#stats.activeUploads }] : [],
    ['direction']);
    r.gauge('dropftp_memory_budget_bytes', 'The engine memory budget (rings and chunks).', () => this.#fromEngine((s) => s.memory.budgetBytes));
    r.gauge('dropftp_memory_ring_bytes_in_use', 'Ring bytes held by running transfers.', () => this.#fromEngine((s) => s.memory.ringBytesInUse));
    r.gauge('dropftp_memory_ring_bytes_pooled', "Rings of finished transfers kept for reuse (counted in the budget; let go once no transfer has run for 2 s).", () => this.#fromEngine((s) => s.memory.pooledRingBytes ?? 0));
    r.gauge('dropftp_memory_chunk_bytes_in_use', 'Upload chunk bytes held by running transfers.', () => this.#fromEngine((s) => s.memory.chunkBytesInUse));
    r.gauge('dropftp_memory_spare_bytes', 'Idle buffer memory the transfer threads hold for reuse (free slots of their buffer slabs).', () => this.#fromEngine((s) => s.memory.spareBytes ?? 0));
    // The call-rate pacer of each account (Dropbox limits calls per user, not concurrent requests).
    r.gauge('dropftp_engine_call_rate', "Dropbox calls per second the account's pacer lets start now (slow start, halved on too_many_requests, then +1/s per second), by account.", () => this.#perAccount((a) => a.callsPerSecond), ['account']);
    r.counterFrom('dropftp_engine_calls_started_total', 'Dropbox calls the transfer engine started (downloads, upload sessions, commits), by account.', () => this.#perAccount((a) => a.callsStarted), ['account']);
    r.counterFrom('dropftp_engine_call_wait_seconds_total', "Seconds the started calls waited for their start in the account's pacer (queue, call rate, Retry-After windows), summed, by account: divided by dropftp_engine_calls_started_total, the mean wait (a 32-bit count of ms: it wraps, as a reset, after ~49.7 days of waiting).", () => this.#perAccount((a) => (a.waitedMs ?? 0) / 1000), ['account']);
    r.gauge('dropftp_engine_calls_in_flight', 'Engine calls started and not answered yet, by account.', () => this.#perAccount((a) => a.inFlight), ['account']);
    r.gauge('dropftp_engine_calls_waiting', "Engine calls waiting for their start (the pacer's first-come queue), by account.", () => this.#perAccount((a) => a.waiting), ['account']);
    r.gauge('dropftp_engine_retry_after_seconds', "Seconds left of the account's Retry-After window, in which no call starts (0: none in force), by account.", () =>
      this.#perAccount((a) => (a.retryAfterUntilMs === null ? 0 : Math.max(0, (a.retryAfterUntilMs - Date.now()) / 1000))),
    ['account']);
    r.counterFrom('dropftp_engine_write_lock_retries_total', 'too_many_write_operations answers (each call retried after its retry_after, the rate kept), by account.', () => this.#perAccount((a) => a.writeLockRetries), ['account']);
    r.counterFrom('dropftp_engine_retry_after_capped_total', 'Retry-After values out of [0, engine.maxRetryAfterSec] that were capped, by account.', () => this.#perAccount((a) => a.retryAfterCapped), ['account']);
    // The upload spool (<data-dir>/spool): bytes beyond an upload's memory share until Dropbox acknowledges them.
    r.gauge('dropftp_spool_bytes_in_use', 'Bytes held in upload spool files now, all uploads.', () => this.#fromSpool((s) => s.bytesInUse));
    r.gauge('dropftp_spool_limit_bytes', 'The spool limit (engine.spoolBytes as resolved at start; 0: memory only).', () => this.#fromSpool((s) => s.limitBytes));
    r.counterFrom('dropftp_spool_bytes_total', 'Upload bytes through the spool, by kind: spooled (written before a call sent them), spilled (moved there after a call sent them), read_back (read into a call body).', () =>
      this.#stats?.spool
        ? [
            { labels: { kind: 'spooled' }, value: this.#stats.spool.spooledBytes },
            { labels: { kind: 'spilled' }, value: this.#stats.spool.spilledBytes },
            { labels: { kind: 'read_back' }, value: this.#stats.spool.readBackBytes },
          ]
        : [],
    ['kind']);
    r.counterFrom('dropftp_spool_spill_failures_total', 'Spills the disk refused (full or failing): each such upload went on in memory only.', () => this.#fromSpool((s) => s.spillFailures));
    r.counterFrom('dropftp_upload_integrity_failures_total', "Commits whose content_hash was not that of the client's bytes (the STOR failed with 451), by what became of that revision: deleted, gone, changed (replaced by another write first), failed (not deleted).", () =>
      Object.entries(this.#stats?.integrityFailures ?? {}).map(([outcome, value]) => ({ labels: { outcome }, value })),
    ['outcome']);
    r.gauge('dropftp_engine_queued_transfers', 'Transfers no worker thread has taken yet (the pool is starting a worker for them).', () => this.#fromEngine((s) => s.queuedTransfers ?? 0));
    r.gauge('dropftp_worker_threads', 'Transfer worker threads (0: transfers run on the main thread).', () => this.#fromEngine((s) => s.threads));
    r.gauge('dropftp_worker_utilization_ratio', "Transfer worker pool utilisation (piscina's utilization, 0..1).", () =>
      typeof this.#stats?.workerUtilization === 'number' ? this.#stats.workerUtilization : [],
    );
    r.gauge('dropftp_worker_heap_bytes', "Each transfer worker thread's V8 heap (used, total = committed, external), published every 2 s.", () =>
      (this.#stats?.workerHeaps ?? []).flatMap((h) => [
        { labels: { thread: String(h.threadKey), kind: 'used' }, value: h.heapUsedBytes },
        { labels: { thread: String(h.threadKey), kind: 'total' }, value: h.heapTotalBytes },
        { labels: { thread: String(h.threadKey), kind: 'external' }, value: h.externalBytes },
      ]),
    ['thread', 'kind']);
  }

  /** Loads prom-client and registers every series (at start when /metrics is served; histograms count from here). */
  expose(): void {
    this.registry.expose();
  }

  /** The engine whose stats() the scrape reads. */
  attachEngine(stats: () => EngineStatsLike): void {
    this.#engine = stats;
  }

  attachConnections(count: () => number): void {
    this.#connections = count;
  }

  readonly rpcObserver: RpcObserver = {
    request: (route, status) => {
      this.dropboxRequests.inc({ route, status: String(status) });
      if (status === 429) this.#rpc429++;
    },
    retry: (route) => this.dropboxRetries.inc({ route }),
  };

  readonly onRefresh = (event: RefreshEvent): void => {
    this.tokenRefreshes.inc({ account: event.account, reason: event.reason, result: event.ok ? 'ok' : 'failed' });
  };

  login(ok: boolean): void {
    this.logins.inc({ result: ok ? 'ok' : 'failed' });
  }

  transfer(direction: Direction, result: TransferResult, bytes: number, seconds: number): void {
    this.transfers.inc({ direction, result });
    this.transferBytes.inc({ direction }, bytes);
    this.transferDuration.observe({ direction }, seconds);
  }

  /** The exposition text; engine stats are read once per scrape. */
  async render(): Promise<string> {
    let stats: EngineStatsLike | null;
    try {
      stats = this.#engine?.() ?? null;
    } catch {
      stats = null; // engine closed: its series are left out
    }
    this.#stats = stats;
    try {
      return await this.registry.metrics();
    } finally {
      if (this.#stats === stats) this.#stats = null;
    }
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  close(): void {
    this.registry.clear();
  }

  #fromEngine(read: (s: EngineStatsLike) => number): Sample[] {
    return this.#stats ? [{ value: read(this.#stats) }] : [];
  }

  #fromSpool(read: (s: NonNullable<EngineStatsLike['spool']>) => number): Sample[] {
    return this.#stats?.spool ? [{ value: read(this.#stats.spool) }] : [];
  }

  #engineRequests(): Sample[] {
    const requests = this.#stats?.requests;
    if (!requests) return [];
    return Object.entries(requests).flatMap(([route, byStatus]) =>
      Object.entries(byStatus).map(([status, value]) => ({ labels: { route, status }, value })),
    );
  }

  #perAccount(read: (a: EngineStatsLike['accounts'][string]) => number): Sample[] {
    if (!this.#stats) return [];
    return Object.entries(this.#stats.accounts).map(([account, a]) => ({ labels: { account }, value: read(a) }));
  }
}
