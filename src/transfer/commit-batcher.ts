// Commits finished upload sessions in batches with files/upload_session/finish_batch_v2: per account
// at most 1,000 entries per call and one call in flight (the namespace lock is taken once per batch,
// not once per file). A commit with no batch in flight goes at once; commits that arrive while one is
// in flight gather and go together when it returns (and, with a commitLingerMs, no sooner than that
// after the first of them: a wait after the flight is latency every file of the batch pays). Runs on the
// main thread: it sees every upload of every worker, and one small JSON call per batch costs the
// event loop little. Invariants: a session is committed only through commit(), which the engine calls
// only after the upload's ring ended cleanly; every call starts through the account's pacer.

import type { Dispatcher } from 'undici';
import { errorTags } from '../dropbox/classify.ts';
import { DropftpError } from '../errors.ts';
import type { ErrorCode } from '../errors.ts';
import { backoffMs, classifyResponse, classifyRouteError, classifyThrown, rpcRequest, sleep } from './dropbox-http.ts';
import type { Failure } from './dropbox-http.ts';
import type { SharedPacer } from '../dropbox/pacer.ts';
import { callOutcome } from './dropbox-http.ts';
import type { AccountWire, FileMetadata } from './task-wire.ts';
import { readToken } from './token-cell.ts';

/**
 * How a commit meets a file already at its path (Dropbox's WriteMode): replace it; only where none
 * is (a unique name, STOU); or only over the revision the new bytes were built on (APPE and REST n
 * copy the file's first bytes: a file replaced meanwhile must not be overwritten with a mix).
 */
export type CommitMode = 'overwrite' | 'add' | { update: string };

export interface CommitRequest {
  sessionId: string;
  byteLength: number;
  path: string;
  clientModified?: Date;
  /** Default 'overwrite'. */
  mode?: CommitMode;
}

function wireMode(mode: CommitMode | undefined): unknown {
  if (mode === undefined || mode === 'overwrite') return 'overwrite';
  if (mode === 'add') return 'add';
  return { '.tag': 'update', update: mode.update };
}

interface Pending extends CommitRequest {
  resolve: (meta: FileMetadata) => void;
  reject: (err: DropftpError) => void;
  lockRetries: number;
}

interface AccountQueue {
  pending: Pending[];
  inFlight: boolean;
  timer: ReturnType<typeof setTimeout> | null;
  /** When the oldest pending entry that arrived during a flight was queued (0: none did). */
  queuedInFlightAt: number;
}

const MAX_CALL_ATTEMPTS = 8;
const MAX_LOCK_RETRIES = 20;

export class CommitBatcher {
  private readonly queues = new Map<string, AccountQueue>();
  private closing: (() => void) | null = null;
  /** Calls made and entries committed (stats). */
  calls = 0;
  committed = 0;
  /** Told the size of every batch sent (metrics). */
  onBatch: ((entries: number) => void) | null = null;

  constructor(
    private readonly dispatcher: Dispatcher,
    private readonly pacer: SharedPacer,
    private readonly accountFor: (name: string) => AccountWire | undefined,
    private readonly options: {
      lingerMs: number;
      maxEntries: number;
      /** After a 401 on token `seq` of the account: a fresh token is published ('fresh') or not. */
      refresh: (account: string, seq: number) => Promise<'fresh' | 'failed'>;
    },
  ) {}

  commit(account: string, request: CommitRequest): Promise<FileMetadata> {
    return new Promise((resolve, reject) => {
      let q = this.queues.get(account);
      if (!q) this.queues.set(account, (q = { pending: [], inFlight: false, timer: null, queuedInFlightAt: 0 }));
      if (q.inFlight && q.queuedInFlightAt === 0) q.queuedInFlightAt = Date.now();
      q.pending.push({ ...request, resolve, reject, lockRetries: 0 });
      this.schedule(account, q);
    });
  }

  /**
   * Deletes revision `rev` of `path` (files/delete_v2 with parent_rev), through the account's pacer:
   * for a commit whose content_hash is not that of the bytes the client sent. 'deleted', or 'gone'
   * (nothing is there: an earlier try landed), or 'changed' (another revision is there now: it is left
   * alone); throws a DropftpError when it cannot tell. With parent_rev a repeat can delete only that
   * revision, so a reset or a 5xx is retried (with backoff) as for a commit.
   */
  async withdraw(accountName: string, path: string, rev: string): Promise<'deleted' | 'gone' | 'changed'> {
    const account = this.accountFor(accountName);
    if (!account) throw new DropftpError('DROPFTP_ERR_COMMIT_FAILED', `account ${accountName} is no longer configured`);
    const r = await this.paced(accountName, account, 'files/delete_v2', { path, parent_rev: rev }, (res) => res.body.dump());
    if (r.ok) return 'deleted';
    const failure = r.failure;
    if (failure.kind === 'fatal' && failure.code === 'DROPFTP_ERR_NOT_FOUND') return 'gone';
    if (failure.kind === 'fatal' && failure.code === 'DROPFTP_ERR_EXISTS') return 'changed';
    throw new DropftpError(failure.kind === 'auth' ? 'DROPFTP_ERR_UPSTREAM_AUTH' : 'DROPFTP_ERR_UPSTREAM', `delete_v2: ${failure.reason}`);
  }

  /**
   * One RPC call of the account through its pacer (commits and deletes), tried again while the
   * answer says to: after a 401 with a fresh token (twice at most), after a throttle (the pacer, or
   * settle() for a write lock, waited out retry_after), after any other retryable failure with
   * backoff (MAX_CALL_ATTEMPTS). `read` takes a 200's body; `onAttempt` is told of each request.
   * Resolves with what `read` gave, or the failure that ended the tries; rejects when the pacer
   * cancels.
   */
  private async paced<T>(
    accountName: string,
    account: AccountWire,
    route: string,
    arg: unknown,
    read: (res: Dispatcher.ResponseData) => Promise<T>,
    onAttempt: () => void = () => {},
  ): Promise<{ ok: true; value: T } | { ok: false; failure: Failure }> {
    let failedAttempts = 0;
    let authRefreshes = 0;
    for (;;) {
      const tokenSeq = readToken(account.tokenCell).seq;
      if (!(await this.pacer.admit(account.slot))) throw new DropftpError('DROPFTP_ERR_COMMIT_FAILED', `${route} cancelled`);
      let failure: Failure | null = null;
      let value: T | undefined;
      let status = 0;
      try {
        onAttempt();
        const res = await rpcRequest(this.dispatcher, account, route, arg);
        status = res.statusCode;
        if (res.statusCode === 200) value = await read(res);
        else failure = await classifyResponse(res);
      } catch (err) {
        failure = classifyThrown(err);
      }
      // too_many_requests: the pacer holds the next try until the account's window is over; a
      // write lock: settle() waits its retry_after.
      await this.pacer.settle(account.slot, callOutcome(status, failure));
      if (!failure) return { ok: true, value: value as T };
      if (failure.kind === 'auth' && ++authRefreshes <= 2 && (await this.options.refresh(accountName, tokenSeq)) === 'fresh') continue;
      if (failure.kind === 'retry') {
        if (failure.throttle) continue;
        if (++failedAttempts <= MAX_CALL_ATTEMPTS) {
          await sleep(backoffMs(failedAttempts));
          continue;
        }
      }
      return { ok: false, failure };
    }
  }

  /** Entries waiting or being committed. */
  backlog(): number {
    let n = 0;
    for (const q of this.queues.values()) n += q.pending.length + (q.inFlight ? 1 : 0);
    return n;
  }

  /** Waits for every queued commit to be settled. */
  async close(): Promise<void> {
    if (this.backlog() === 0) return;
    await new Promise<void>((resolve) => (this.closing = resolve));
  }

  /** Fails every commit not yet sent. */
  destroy(err: DropftpError): void {
    for (const q of this.queues.values()) {
      if (q.timer) clearTimeout(q.timer);
      q.timer = null;
      for (const p of q.pending.splice(0)) p.reject(err);
    }
  }

  private schedule(account: string, q: AccountQueue): void {
    if (q.inFlight || q.pending.length === 0) {
      if (this.closing && this.backlog() === 0) this.closing();
      return;
    }
    // Nothing in flight: commit now. Entries that gathered during a flight wait out the linger
    // (counted from the first of them) unless a batch is full.
    const lingerLeftMs = q.queuedInFlightAt === 0 ? 0 : q.queuedInFlightAt + this.options.lingerMs - Date.now();
    if (q.pending.length >= this.options.maxEntries || lingerLeftMs <= 0) {
      if (q.timer) clearTimeout(q.timer);
      q.timer = null;
      void this.flush(account, q);
    } else if (!q.timer) {
      q.timer = setTimeout(() => {
        q.timer = null;
        void this.flush(account, q);
      }, lingerLeftMs);
    }
  }

  private async flush(account: string, q: AccountQueue): Promise<void> {
    if (q.inFlight || q.pending.length === 0) return;
    q.inFlight = true;
    q.queuedInFlightAt = 0;
    const batch = q.pending.splice(0, this.options.maxEntries);
    if (q.pending.length > 0) q.queuedInFlightAt = Date.now();
    this.onBatch?.(batch.length);
    try {
      await this.commitBatch(account, q, batch);
    } catch (err) {
      const e = err instanceof DropftpError ? err : new DropftpError('DROPFTP_ERR_COMMIT_FAILED', String(err));
      for (const p of batch) p.reject(e);
    } finally {
      q.inFlight = false;
      this.schedule(account, q);
    }
  }

  private async commitBatch(accountName: string, q: AccountQueue, batch: Pending[]): Promise<void> {
    const account = this.accountFor(accountName);
    if (!account) throw new DropftpError('DROPFTP_ERR_COMMIT_FAILED', `account ${accountName} is no longer configured`);
    const entries = batch.map((p) => ({
      cursor: { session_id: p.sessionId, offset: p.byteLength },
      commit: {
        path: p.path,
        mode: wireMode(p.mode),
        autorename: false,
        mute: false,
        ...(p.clientModified ? { client_modified: p.clientModified.toISOString().replace(/\.\d+Z$/, 'Z') } : {}),
      },
    }));
    const r = await this.paced(accountName, account, 'files/upload_session/finish_batch_v2', { entries }, (res) => res.body.json(), () => this.calls++);
    if (r.ok) return this.settle(q, batch, r.value);
    const code: ErrorCode = r.failure.kind === 'auth' ? 'DROPFTP_ERR_UPSTREAM_AUTH' : 'DROPFTP_ERR_COMMIT_FAILED';
    throw new DropftpError(code, `finish_batch_v2: ${r.failure.reason}`);
  }

  private settle(q: AccountQueue, batch: Pending[], body: any): void {
    const results: any[] = Array.isArray(body?.entries) ? body.entries : [];
    batch.forEach((p, i) => {
      const r = results[i];
      if (r?.['.tag'] === 'success') {
        this.committed++;
        const { ['.tag']: _tag, ...meta } = r;
        p.resolve(meta as FileMetadata);
        return;
      }
      const failure = r ? classifyRouteError(r.failure) : null;
      if (failure?.kind === 'retry' && ++p.lockRetries <= MAX_LOCK_RETRIES) {
        q.pending.unshift(p); // namespace lock contention: into the next batch
        return;
      }
      // path/conflict/folder: the target is a folder (a plain STOR asks nothing before its bytes).
      const tags = r ? errorTags(r.failure) : [];
      const ontoFolder = failure?.kind === 'fatal' && tags.includes('conflict') && tags.includes('folder');
      // path/conflict/file under add or update: the name was taken, or the file replaced, meanwhile.
      const lostRace = !ontoFolder && p.mode !== undefined && p.mode !== 'overwrite' && failure?.kind === 'fatal' && tags.includes('conflict');
      const code: ErrorCode = ontoFolder
        ? 'DROPFTP_ERR_NOT_A_FILE'
        : failure?.kind === 'fatal' && failure.code !== 'DROPFTP_ERR_UPSTREAM' && failure.code !== 'DROPFTP_ERR_NOT_FOUND'
          ? failure.code
          : 'DROPFTP_ERR_COMMIT_FAILED';
      const message = `commit of ${p.path} failed: ${failure?.reason ?? 'no result entry'}`;
      const detail = p.mode === 'add' ? 'the name was taken meanwhile; nothing was saved' : 'the file changed meanwhile; nothing was saved';
      p.reject(lostRace ? new DropftpError('DROPFTP_ERR_EXISTS', message, { clientDetail: detail }) : new DropftpError(code, message));
    });
  }
}
