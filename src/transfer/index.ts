// The transfer engine's main-thread API, independent of ftp-srv: openDownload → a Readable,
// openUpload → a Writable whose 'finish' means "committed and verified", pacerFor → the account's
// call-rate pacer for the main thread's own Dropbox calls. Main thread. Invariants: every transfer
// holds one ring from the pool and one admitted share of the memory budget until both its stream
// closed and its worker task settled; errors are DropftpError; close() lets transfers finish
// (graceful), destroy(err) aborts them (abortive).

import { statfs } from 'node:fs/promises';
import { RingPool, RingReader, RingWriter } from 'native-free-ringbuf';
import type { RingHandle } from 'native-free-ringbuf';
import { DropftpError } from '../errors.ts';
import { CommitBatcher } from './commit-batcher.ts';
import type { CommitMode } from './commit-batcher.ts';
import { DownloadStream } from './download-stream.ts';
import { createAgent } from './dropbox-http.ts';
import { readRequestCounts, type RequestCounts } from './request-counts.ts';
import { createMainThreadExecutor, createPoolExecutor } from './executor.ts';
import { GROW_AT_TASKS, PREWARM_WORKERS } from './pool-growth.ts';
import type { Executor } from './executor.ts';
import { MemoryBudget } from './memory-budget.ts';
import { autoSpoolBytes, resolveEngineOptions } from './options.ts';
import type { EngineOptions, ResolvedEngineOptions } from './options.ts';
import { SharedPacer, initPacerSlot, readPacerStats } from '../dropbox/pacer.ts';
import type { CallOutcome, PacerStats } from '../dropbox/pacer.ts';
import { A, G, MAX_ACCOUNTS, accountWord, claimWorkerSlot, createControl, readWorkerHeaps } from './shared-layout.ts';
import { openSpoolDir } from './spool-dir.ts';
import type { SpoolDir } from './spool-dir.ts';
import type { ControlHandle } from './shared-layout.ts';
import type { AccountWire, TaskResult, TestHooks, UploadResumeToken } from './task-wire.ts';
import { UploadStream } from './upload-stream.ts';
import { createTokenCell, failRefresh, readToken, wantedSeq, writeToken } from './token-cell.ts';

export { DownloadStream } from './download-stream.ts';
export { UploadStream } from './upload-stream.ts';
export { contentHash, ContentHasher } from './content-hash.ts';
export type { EngineLog, EngineOptions } from './options.ts';
export type { CallOutcome, CallPacer, PacerStats } from '../dropbox/pacer.ts';
export type { FileMetadata, UploadResumeToken } from './task-wire.ts';

export interface EngineAccount {
  name: string;
  /** https://api.dropboxapi.com, or the local box's URL. */
  apiUrl: string;
  /** https://content.dropboxapi.com, or the local box's URL. */
  contentUrl: string;
  accessToken: string;
}

export interface DownloadOptions {
  /** First byte to send (FTP REST). Whole-file reads (offset 0) are verified against content_hash. */
  offset?: number;
  /** Test only. */
  testHooks?: TestHooks;
}

export interface AccountHooks {
  /**
   * Called on the main thread when a request of this account got 401 (expired or revoked token), with
   * the refused token; resolves a fresh one. At most one call in flight per account (single flight):
   * every transfer that hit the 401 waits for it and goes on with the new token. Without the hook, a
   * 401 fails the transfers with DROPFTP_ERR_UPSTREAM_AUTH.
   */
  refresh?: (staleToken: string) => Promise<string>;
}

export interface UploadOptions {
  clientModified?: Date;
  /** How the commit meets a file at the path (commit-batcher.ts); default 'overwrite'. */
  mode?: CommitMode;
  /** Continue an interrupted session (from UploadStream.interrupted()); the client resends from token.offset. */
  resume?: UploadResumeToken;
  /** Test only. */
  testHooks?: TestHooks;
}

/**
 * One account's pacer as the main thread's Dropbox calls use it (engine.pacerFor): admit() before a
 * call starts, report() once its status line came back (exactly once per admit() that resolved true).
 */
export interface AccountPacer {
  /** Resolves true when a call may start now (FIFO with every thread's calls, token bucket, outside any Retry-After window); false if cancelled() turned true first. */
  admit(cancelled?: () => boolean): Promise<boolean>;
  report(outcome: CallOutcome): void;
}

/**
 * Per account: the pacer's figures (calls started, call rate now, calls in flight and waiting, 429s,
 * the Retry-After window in force, write-lock retries, capped Retry-Afters).
 */
export type AccountStats = PacerStats;

/** What became of a commit that failed its content_hash check (EngineStats.integrityFailures). */
export type IntegrityOutcome = 'deleted' | 'gone' | 'changed' | 'failed';

export interface EngineStats {
  threads: number;
  onlyMainThread: boolean;
  activeDownloads: number;
  activeUploads: number;
  memory: {
    budgetBytes: number;
    ringBytesInUse: number;
    /**
     * Rings of finished transfers kept for reuse (counted as held by the budget); let go when no
     * transfer has run for RING_POOL_IDLE_MS, or when a new transfer's floor needs their room.
     */
    pooledRingBytes: number;
    /** Upload retention held in memory now (all workers). */
    chunkBytesInUse: number;
    /** What each upload may retain in memory now (its share, at most engine.appendMemoryBytes). */
    uploadMemoryBytes: number;
    newestRingBytes: number;
    /**
     * Idle retention buffers the threads keep for reuse (all threads): up to 16 MiB each whatever the
     * budget, beyond that only while rings, buffers in use and spares fit the budget; dropped after 2 s
     * unused.
     */
    spareBytes: number;
  };
  /** Upload spool: bytes held in spool files now, and the limit (engine.spoolBytes). */
  spool: {
    bytesInUse: number;
    limitBytes: number;
    dir: string;
    /**
     * Upload bytes through the spool since start (whole KiB, free-running 31-bit KiB counters):
     * written before a call sent them, moved there after a call sent them (to make memory room for
     * bytes not yet sent), read back into a call's body.
     */
    spooledBytes: number;
    spilledBytes: number;
    readBackBytes: number;
    /** Spills the spool refused (a full or failing disk): each upload went on in memory only. */
    spillFailures: number;
  };
  accounts: Record<string, AccountStats>;
  retries: number;
  throttles: number;
  workerCrashes: number;
  /** Transfers waiting for a worker thread (every worker busy at the pool's maximum, or none started yet). */
  queuedTransfers: number;
  /** piscina's pool utilisation (0..1), absent when transfers run on the main thread. */
  workerUtilization?: number;
  commits: { calls: number; committed: number; backlog: number };
  /**
   * Commits whose content_hash was not that of the client's bytes (each failed its STOR with 451), by
   * what became of that revision: deleted, gone (already), changed (another write replaced it first),
   * failed (the delete failed).
   */
  integrityFailures: Record<IntegrityOutcome, number>;
  /** Dropbox HTTP answers to the engine's requests (all threads), by route then status ('0': none). */
  requests: RequestCounts;
  /** Each worker thread's V8 heap as it last published it (every 2 s); empty on the main thread only. */
  workerHeaps: WorkerHeap[];
}

export interface WorkerHeap {
  threadKey: number;
  heapUsedBytes: number;
  heapTotalBytes: number;
  externalBytes: number;
}

interface Active {
  stream: DownloadStream | UploadStream;
  result: Promise<TaskResult>;
}

/** Thread key of the main thread's own slot (its commit batcher's tickets). */
const MAIN_THREAD_KEY = -1;

/**
 * The pool of finished transfers' rings is emptied once no transfer has run for this long. Until
 * then it keeps them all, counted in the budget: a ring let go is freed only when every thread that
 * held it has run its GC (a worker's may not for minutes), and the old pool (64 MiB kept, the rest
 * let go, none of it counted) made room in the budget for new upload buffers while the rings' memory
 * was still mapped. Storm of 2,000 x 16 MiB, dropftp alone: peak RSS 1,032-1,043 MiB in four runs
 * before (the peak late, as the RETRs end), 940-964 in three this way (and flat to the end).
 */
export const RING_POOL_IDLE_MS = 2000;

export class TransferEngine {
  private readonly words: Int32Array;
  private readonly budget: MemoryBudget;
  private readonly rings: RingPool;
  private readonly accounts = new Map<string, AccountWire>();
  private readonly refreshers = new Map<string, (staleToken: string) => Promise<string>>();
  private readonly refreshing = new Map<string, Promise<'fresh' | 'failed'>>();
  private watching = true;
  private readonly active = new Set<Active>();
  private readonly batcher: CommitBatcher;
  private readonly agent: ReturnType<typeof createAgent>;
  /** The main thread's view of the pacers (commits, and pacerFor's callers). */
  private readonly pacer: SharedPacer;
  /** Spill failures logged so far (G.SPILL_FAILURES). */
  private spillFailuresSeen = 0;
  private readonly integrityFailures: Record<IntegrityOutcome, number> = { deleted: 0, gone: 0, changed: 0, failed: 0 };
  /** Retry-After values capped so far, per account slot (to log each new one once). */
  private readonly cappedSeen = new Map<number, number>();
  private nextId = 1;
  private closing = false;
  private idleWaiters: (() => void)[] = [];
  /** Empties the ring pool once the engine has been idle RING_POOL_IDLE_MS (unref'd). */
  private ringTrim: ReturnType<typeof setTimeout> | null = null;

  /**
   * `deferWorkers`: no worker starts until warm() or the first transfer (dropftp serve calls warm()
   * once its FTP listener is up, so the first worker's boot does not delay it).
   */
  static async start(options?: EngineOptions, { deferWorkers = false }: { deferWorkers?: boolean } = {}): Promise<TransferEngine> {
    const o = resolveEngineOptions(options);
    const { dir: spool, swept } = await openSpoolDir(o.spoolDir);
    if (swept > 0) o.log?.info({ event: 'spool-swept', dir: spool.path, files: swept }, `removed ${swept} spool files left by an earlier run`);
    let spoolBytes = o.spoolBytes;
    if (spoolBytes === null) {
      const fs = await statfs(spool.path);
      spoolBytes = autoSpoolBytes(fs.bavail * fs.bsize);
      o.log?.info({ event: 'spool-size', dir: spool.path, bytes: spoolBytes }, `upload spool: at most ${(spoolBytes / 1024 ** 3).toFixed(1)} GiB (a quarter of the free space)`);
    }
    const control = createControl({
      uploadMemoryBytes: o.appendMemoryBytes,
      spoolBytes,
      maxRetryAfterMs: o.maxRetryAfterSec * 1000,
      maxCallsPerSecond: o.maxCallsPerSecond ?? 0,
      uploadLeadSec: o.uploadLeadSec,
    });
    const reclaim = (threadKey: number): void => void spool.sweepThread(threadKey);
    const executor = o.onlyMainThread ? await createMainThreadExecutor(control) : createPoolExecutor(control, o.workers, reclaim, deferWorkers);
    return new TransferEngine(Object.freeze({ ...o, spoolBytes }), control, executor, spool);
  }

  private constructor(
    /** The options, with the spool limit the engine started with (never null here). */
    readonly options: ResolvedEngineOptions & { readonly spoolBytes: number },
    private readonly control: ControlHandle,
    private readonly executor: Executor,
    private readonly spool: SpoolDir,
  ) {
    this.words = new Int32Array(control.sab);
    this.agent = createAgent(this.words);
    this.budget = new MemoryBudget(options.memoryBudgetBytes, this.words, options.appendMemoryBytes);
    // No cap of its own: the pool's rings count in the budget, which decides (admitMemory, trimRings).
    this.rings = new RingPool({ maxIdleBytes: options.memoryBudgetBytes });
    this.pacer = new SharedPacer(control, claimWorkerSlot(this.words, MAIN_THREAD_KEY));
    this.batcher = new CommitBatcher(this.agent, this.pacer, (name) => this.accounts.get(name), {
      lingerMs: options.commitLingerMs,
      maxEntries: options.maxBatchEntries,
      refresh: (name, seq) => this.refreshToken(name, seq),
    });
    this.watchRefreshBell();
  }

  /**
   * The call-rate pacer of `account` for calls the main thread makes itself (RPC, the sync feed):
   * the same FIFO and token bucket as every transfer's calls, on every thread. Call admit() before
   * each call starts and report() exactly once when its status line came back (or it failed
   * without one: { kind: 'failed' }). Throws DROPFTP_ERR_CONFIG for an unknown account.
   */
  pacerFor(account: string): AccountPacer {
    const wire = this.accounts.get(account);
    if (!wire) throw new DropftpError('DROPFTP_ERR_CONFIG', `unknown engine account ${account}`);
    const slot = wire.slot;
    return {
      admit: (cancelled) => this.pacer.admit(slot, cancelled),
      report: (outcome) => this.pacer.report(slot, outcome),
    };
  }

  /** Logs Retry-After values the pacers capped since the last look (any thread may have met them). */
  private logCappedRetryAfters(): void {
    const log = this.options.log;
    for (const acc of this.accounts.values()) {
      const n = Atomics.load(this.words, accountWord(acc.slot, A.RA_CAPPED));
      if (n === (this.cappedSeen.get(acc.slot) ?? 0)) continue;
      this.cappedSeen.set(acc.slot, n);
      const raw = Atomics.load(this.words, accountWord(acc.slot, A.RA_LAST_RAW_MS));
      log?.warn(
        { event: 'retry-after-capped', account: acc.name, retryAfterMs: raw < 0 ? null : raw, capMs: this.options.maxRetryAfterSec * 1000, count: n },
        raw < 0 ? 'Dropbox sent a Retry-After that is not a number; waited 1 s' : `Dropbox asked to wait ${raw} ms; capped at engine.maxRetryAfterSec`,
      );
    }
  }

  /** Logs spills the spool's disk refused since the last look (retention.ts: those uploads went on in memory). */
  private logSpillFailures(): void {
    const n = Atomics.load(this.words, G.SPILL_FAILURES) >>> 0;
    if (n === this.spillFailuresSeen) return;
    const added = n - this.spillFailuresSeen;
    this.spillFailuresSeen = n;
    this.options.log?.warn(
      { event: 'spool-spill-failed', dir: this.spool.path, failures: added, total: n },
      `${added === 1 ? 'a spill' : `${added} spills`} to the upload spool failed (disk full or failing): ${added === 1 ? 'that upload goes' : 'those uploads go'} on in memory only; a STOR that needs the spool fails with 452 until there is room`,
    );
  }

  /**
   * Threads that got a 401 bump REFRESH_BELL (token-cell.ts). A bare waitAsync (no timeout) keeps
   * nothing alive, so the watcher never holds the process open; close()/destroy() end it.
   */
  private watchRefreshBell(): void {
    const loop = (): void => {
      if (!this.watching) return;
      const seen = Atomics.load(this.words, G.REFRESH_BELL);
      this.logCappedRetryAfters();
      this.logSpillFailures();
      for (const acc of this.accounts.values()) {
        const seq = wantedSeq(acc.tokenCell);
        if (seq >= 0) void this.refreshToken(acc.name, seq);
      }
      const waited = Atomics.waitAsync(this.words, G.REFRESH_BELL, seen);
      if (waited.async) void waited.value.then(loop);
      else queueMicrotask(loop);
    };
    loop();
  }

  private stopWatching(): void {
    this.watching = false;
    Atomics.add(this.words, G.REFRESH_BELL, 1);
    Atomics.notify(this.words, G.REFRESH_BELL);
  }

  /** Single flight per account: token `seq` was refused; gets and publishes a fresh one. */
  private refreshToken(name: string, seq: number): Promise<'fresh' | 'failed'> {
    const running = this.refreshing.get(name);
    if (running) return running;
    const acc = this.accounts.get(name);
    if (!acc) return Promise.resolve('failed');
    const current = readToken(acc.tokenCell);
    if (current.seq !== seq) return Promise.resolve('fresh'); // already replaced
    const hook = this.refreshers.get(name);
    if (!hook) {
      failRefresh(acc.tokenCell, seq);
      return Promise.resolve('failed');
    }
    const done = (async (): Promise<'fresh' | 'failed'> => {
      try {
        const token = await hook(current.token);
        if (typeof token !== 'string' || token === '') throw new Error('refresh hook returned no token');
        if (readToken(acc.tokenCell).seq === seq) writeToken(acc.tokenCell, token);
        return 'fresh';
      } catch {
        failRefresh(acc.tokenCell, seq);
        return 'failed';
      } finally {
        this.refreshing.delete(name);
      }
    })();
    this.refreshing.set(name, done);
    return done;
  }

  /**
   * Adds an account or updates it. A new access token reaches running transfers too (their next
   * request uses it); `hooks.refresh` is how the engine gets one after a 401 (see AccountHooks).
   */
  setAccount(account: EngineAccount, hooks: AccountHooks = {}): void {
    for (const key of ['name', 'apiUrl', 'contentUrl', 'accessToken'] as const) {
      if (typeof account[key] !== 'string' || account[key] === '') {
        throw new DropftpError('DROPFTP_ERR_CONFIG', `engine account ${key} must be a non-empty string`);
      }
    }
    const existing = this.accounts.get(account.name);
    const slot = existing?.slot ?? this.accounts.size;
    if (slot >= MAX_ACCOUNTS) throw new DropftpError('DROPFTP_ERR_CONFIG', `at most ${MAX_ACCOUNTS} engine accounts`);
    if (!existing) initPacerSlot(this.control, slot);
    const tokenCell = existing?.tokenCell ?? createTokenCell();
    if (!existing || readToken(tokenCell).token !== account.accessToken) writeToken(tokenCell, account.accessToken);
    if (hooks.refresh) this.refreshers.set(account.name, hooks.refresh);
    this.accounts.set(account.name, {
      slot,
      name: account.name,
      apiUrl: account.apiUrl.replace(/\/+$/, ''),
      contentUrl: account.contentUrl.replace(/\/+$/, ''),
      tokenCell,
    });
  }

  /**
   * Streams `path` of `account` from `offset`. Throws DropftpError at once when the transfer cannot
   * start (unknown account, bad offset, engine closing, memory budget exhausted); later failures
   * destroy the stream with a DropftpError.
   */
  openDownload(account: string, path: string, opts: DownloadOptions = {}): DownloadStream {
    const wire = this.admitAccount(account);
    const offset = opts.offset ?? 0;
    if (!Number.isSafeInteger(offset) || offset < 0) throw new DropftpError('DROPFTP_ERR_BAD_OFFSET', `bad download offset ${offset}`);
    const ringBytes = this.admitMemory('download');
    const ring = this.acquireRing(ringBytes);
    const result = this.executor.run({
      kind: 'download',
      id: this.nextId++,
      ring,
      account: wire,
      path,
      offset,
      ...(opts.testHooks ? { test: opts.testHooks } : {}),
    });
    const stream = new DownloadStream(new RingReader(ring), result, account, path, offset);
    this.track(stream, result, 'download', ring, ringBytes);
    return stream;
  }

  /**
   * A Writable for `path` of `account`: end() it when the client's data ended cleanly; 'finish' means
   * committed and verified. abort()/destroy(err) commits nothing. Throws like openDownload.
   */
  openUpload(account: string, path: string, opts: UploadOptions = {}): UploadStream {
    const wire = this.admitAccount(account);
    const resume = opts.resume;
    if (resume && (!(resume.offset <= resume.sessionOffset) || resume.offset < 0 || typeof resume.sessionId !== 'string')) {
      throw new DropftpError('DROPFTP_ERR_BAD_OFFSET', 'invalid upload resume token');
    }
    const ringBytes = this.admitMemory('upload');
    const ring = this.acquireRing(ringBytes);
    const result = this.executor.run({
      kind: 'upload',
      id: this.nextId++,
      ring,
      account: wire,
      path,
      spoolDir: this.options.spoolBytes > 0 ? this.spool.path : '',
      ...(resume ? { resume } : {}),
      ...(opts.testHooks ? { test: opts.testHooks } : {}),
    });
    const commit = (ready: { sessionId: string; byteLength: number }) =>
      this.batcher.commit(account, {
        sessionId: ready.sessionId,
        byteLength: ready.byteLength,
        path,
        ...(opts.clientModified ? { clientModified: opts.clientModified } : {}),
        ...(opts.mode ? { mode: opts.mode } : {}),
      });
    const withdraw = (rev: string | undefined) => this.withdrawDamaged(account, path, rev);
    const stream = new UploadStream(new RingWriter(ring), result, commit, account, path, resume?.offset ?? 0, withdraw);
    this.track(stream, result, 'upload', ring, ringBytes);
    return stream;
  }

  /**
   * A commit that holds other bytes than the client's (upload-stream.ts) is deleted again by its
   * rev, counted and logged; says what became of that revision, for the STOR's error.
   */
  private async withdrawDamaged(account: string, path: string, rev: string | undefined): Promise<string> {
    if (typeof rev !== 'string' || rev === '') return `revision ${rev ?? '(none)'} left in place`;
    let outcome: IntegrityOutcome;
    let what: string;
    let error: string | undefined;
    try {
      outcome = await this.batcher.withdraw(account, path, rev);
      what = outcome === 'deleted' ? 'deleted' : outcome === 'gone' ? 'is no longer there' : 'already replaced by another write, left alone';
    } catch (err) {
      outcome = 'failed';
      error = (err as Error).message;
      what = `could not be deleted: ${error}`;
    }
    this.integrityFailures[outcome]++;
    this.options.log?.warn(
      { event: 'upload-integrity-failed', account, path, rev, outcome, ...(error !== undefined ? { error } : {}) },
      `committed bytes differ from the client's: revision ${rev} ${what}`,
    );
    return `revision ${rev} ${what}`;
  }

  /** Tells `listener` the entry count of every finish_batch_v2 batch (metrics); returns the remover. */
  onCommitBatch(listener: (entries: number) => void): () => void {
    this.batcher.onBatch = listener;
    return () => {
      if (this.batcher.onBatch === listener) this.batcher.onBatch = null;
    };
  }

  /** Starts the first transfer worker now, if it has not started (see start's deferWorkers). */
  warm(): void {
    this.executor.warm();
  }

  /**
   * `sessions` FTP sessions are connected: with more than GROW_AT_TASKS of them, PREWARM_WORKERS
   * workers are started now, before their transfers come (a burst would otherwise wait for the boot).
   */
  expectSessions(sessions: number): void {
    if (sessions > GROW_AT_TASKS) this.executor.prewarm(PREWARM_WORKERS);
  }

  stats(): EngineStats {
    const w = this.words;
    const accounts: Record<string, AccountStats> = {};
    for (const acc of this.accounts.values()) {
      const p = readPacerStats(this.control, acc.slot);
      accounts[acc.name] = p;
    }
    return {
      threads: this.executor.threads,
      onlyMainThread: this.options.onlyMainThread,
      activeDownloads: this.budget.downloads,
      activeUploads: this.budget.uploads,
      memory: {
        budgetBytes: this.budget.budgetBytes,
        ringBytesInUse: this.budget.ringBytesInUse,
        pooledRingBytes: this.rings.idle(),
        chunkBytesInUse: this.budget.chunkBytesInUse(),
        uploadMemoryBytes: this.budget.uploadMemoryBytes(),
        newestRingBytes: Atomics.load(w, G.RING_BYTES),
        spareBytes: Atomics.load(w, G.SPARE_KIB) * 1024,
      },
      spool: {
        bytesInUse: Atomics.load(w, G.SPOOL_KIB_IN_USE) * 1024,
        limitBytes: this.options.spoolBytes,
        dir: this.spool.path,
        spooledBytes: (Atomics.load(w, G.SPOOLED_KIB) >>> 0) * 1024,
        spilledBytes: (Atomics.load(w, G.SPILLED_KIB) >>> 0) * 1024,
        readBackBytes: (Atomics.load(w, G.READ_BACK_KIB) >>> 0) * 1024,
        spillFailures: Atomics.load(w, G.SPILL_FAILURES) >>> 0,
      },
      accounts,
      retries: Atomics.load(w, G.RETRIES),
      throttles: Atomics.load(w, G.THROTTLES),
      workerCrashes: this.executor.crashes(),
      queuedTransfers: this.executor.queued(),
      ...(this.executor.utilization() !== null ? { workerUtilization: this.executor.utilization()! } : {}),
      commits: { calls: this.batcher.calls, committed: this.batcher.committed, backlog: this.batcher.backlog() },
      integrityFailures: { ...this.integrityFailures },
      requests: readRequestCounts(w),
      workerHeaps: readWorkerHeaps(w),
    };
  }

  /** Graceful: refuses new transfers, lets the running ones finish, then stops the workers. */
  async close(): Promise<void> {
    this.closing = true;
    if (this.active.size > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    this.trimRings();
    await this.batcher.close();
    this.stopWatching();
    await this.executor.close();
    await this.agent.close();
    await this.spool.close();
  }

  /** Abortive: every running transfer fails with `err` (default DROPFTP_ERR_SHUTTING_DOWN); nothing more is committed. */
  async destroy(err?: Error): Promise<void> {
    this.closing = true;
    this.stopWatching();
    const reason = err ?? new DropftpError('DROPFTP_ERR_SHUTTING_DOWN', 'transfer engine destroyed');
    this.batcher.destroy(reason instanceof DropftpError ? reason : new DropftpError('DROPFTP_ERR_SHUTTING_DOWN', reason.message));
    const results = [...this.active].map((a) => {
      a.stream.destroy(reason);
      return a.result;
    });
    // The rings are aborted: workers notice within one wait; do not hang on a stuck one.
    await Promise.race([Promise.all(results), new Promise((resolve) => setTimeout(resolve, 2000).unref())]);
    this.trimRings();
    await this.executor.destroy();
    await this.agent.destroy();
    await this.spool.close();
  }

  private admitAccount(name: string): AccountWire {
    if (this.closing) throw new DropftpError('DROPFTP_ERR_SHUTTING_DOWN', 'transfer engine is closing');
    const wire = this.accounts.get(name);
    if (!wire) throw new DropftpError('DROPFTP_ERR_CONFIG', `unknown engine account ${name}`);
    return wire;
  }

  private admitMemory(kind: 'download' | 'upload'): number {
    let ringBytes = this.budget.admit(kind);
    if (ringBytes === null && this.rings.idle() > 0) {
      // The pooled rings are what is in the way: let them go (to the GC) and ask again.
      this.trimRings();
      ringBytes = this.budget.admit(kind);
    }
    if (ringBytes === null) {
      throw new DropftpError('DROPFTP_ERR_OVERLOADED', `memory budget of ${this.budget.budgetBytes} B is taken by ${this.active.size} transfers`);
    }
    return ringBytes;
  }

  private acquireRing(ringBytes: number): RingHandle {
    const ring = this.rings.acquire(ringBytes);
    this.budget.setPooledRingBytes(this.rings.idle());
    return ring;
  }

  /** Lets every pooled ring go (the GC of each thread that held one frees it). */
  private trimRings(): void {
    if (this.ringTrim) clearTimeout(this.ringTrim);
    this.ringTrim = null;
    this.rings.trim();
    this.budget.setPooledRingBytes(0);
  }

  private track(stream: DownloadStream | UploadStream, result: Promise<TaskResult>, kind: 'download' | 'upload', ring: RingHandle, ringBytes: number): void {
    const entry: Active = { stream, result };
    this.active.add(entry);
    let pending = 2;
    const done = (): void => {
      if (--pending > 0) return;
      this.rings.release(ring);
      this.budget.release(kind, ringBytes, this.rings.idle());
      this.active.delete(entry);
      if (this.active.size > 0) return;
      for (const resolve of this.idleWaiters.splice(0)) resolve();
      if (this.ringTrim) this.ringTrim.refresh();
      else (this.ringTrim = setTimeout(() => this.active.size === 0 && this.trimRings(), RING_POOL_IDLE_MS)).unref();
    };
    result.then(done);
    stream.once('close', done);
  }
}
