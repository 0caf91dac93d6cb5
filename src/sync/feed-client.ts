// The change-feed calls of one account (list_folder recursive from the root, continue, longpoll)
// through the official `dropbox` SDK over the account's request layer (src/dropbox/request.ts: it
// classifies, retries 429/5xx/resets, honours and caps Retry-After, refreshes the token on 401), and
// the mapping of what still fails to what the feed loop does. Main thread. Invariants: every failure
// becomes a FeedError whose kind decides what the loop does (reset → rebuild, retry → wait `delayMs`
// and repeat the same call, aborted → stop, fatal → long backoff); longpolls use their own
// connection pool so that thousands of parked polls never starve the bounded pool of ordinary
// calls (on real Dropbox they go to another host anyway), and are not paced (a notify call).
// Why not src/dropbox/rpc.ts: it hides cursors (listFolder returns all pages at once) and has no
// abort signal or longpoll — the feed loop needs all three.

import { Dropbox } from 'dropbox';
import { Agent } from 'undici';
import { DEFAULT_MAX_RETRY_AFTER_MS, serverDelay } from '../dropbox/classify.ts';
import { DropboxCallError, DropboxRequests, type CallPacer } from '../dropbox/request.ts';
import type { RawMetadata } from './entry.ts';

export interface FeedPage {
  entries: RawMetadata[];
  cursor: string;
  hasMore: boolean;
}

export type FeedErrorKind = 'reset' | 'retry' | 'aborted' | 'fatal';

export class FeedError extends Error {
  readonly kind: FeedErrorKind;
  /** For `retry`: the server's retry_after (429) or 0 (the loop picks an exponential backoff). */
  readonly delayMs: number;
  readonly status: number | null;
  constructor(kind: FeedErrorKind, message: string, delayMs = 0, status: number | null = null, cause?: unknown) {
    super(message, { cause });
    this.name = 'FeedError';
    this.kind = kind;
    this.delayMs = delayMs;
    this.status = status;
  }
}

export interface FeedClientOptions {
  /** 'https://api.dropboxapi.com' or the local box's URL. */
  apiUrl: string;
  accessToken: string;
  /** Rotating tokens (src/auth): each request asks for a current one; `accessToken` is then unused. */
  tokens?: { get(): Promise<string>; expired?(stale: string): Promise<string> } | null;
  pageLimit: number;
  /** Longpoll timeout sent to the server (30..480 s). */
  longpollTimeoutSec: number;
  /** The account's name (logs). */
  name?: string;
  /** Paces list_folder and continue starts of the account (engine.pacerFor(name)); default none. */
  pacer?: CallPacer | null;
  /** Cap of a server-given delay (Retry-After, longpoll backoff); default 300 s. */
  maxRetryAfterMs?: number;
  /** Told about every retry the request layer makes (stats). */
  onRetry?: (route: string) => void;
  /** Where a capped or invalid server delay is logged (default: a process warning). */
  warn?: (message: string) => void;
}

/** What the feed loop does with a failure that the request layer did not (or could not) retry away. */
export function feedError(err: unknown, what: string, signal: AbortSignal): FeedError {
  if (err instanceof FeedError) return err;
  if (signal.aborted) return new FeedError('aborted', `${what}: aborted`);
  if (!(err instanceof DropboxCallError)) return new FeedError('fatal', `${what}: ${err instanceof Error ? err.message : String(err)}`, 0, null, err);
  const status = err.status === 0 ? null : err.status;
  if (err.tags.includes('reset')) return new FeedError('reset', err.message, 0, status, err);
  // Aborted without our signal: the longpoll's own timeout. Out of attempts: the loop backs off and repeats.
  if (err.code === 'DROPFTP_ERR_ABORTED' || err.kind === 'retry' || err.kind === 'throttled' || err.kind === 'write-lock') {
    return new FeedError('retry', err.message, err.retryAfterMs, status, err);
  }
  return new FeedError('fatal', err.message, 0, status, err);
}

/** A page as the feed loop needs it; anything else is a fatal answer (the loop backs off and asks again). */
function pageOf(result: unknown, what: string): FeedPage {
  const page = result as { entries?: unknown; cursor?: unknown; has_more?: unknown } | null;
  if (page === null || typeof page !== 'object' || !Array.isArray(page.entries) || typeof page.cursor !== 'string' || typeof page.has_more !== 'boolean') {
    throw new FeedError('fatal', `${what}: DROPFTP_ERR_UPSTREAM_MALFORMED: not a page of entries (entries, cursor, has_more)`);
  }
  if (!page.entries.every((e) => e !== null && typeof e === 'object')) throw new FeedError('fatal', `${what}: DROPFTP_ERR_UPSTREAM_MALFORMED: an entry that is not an object`);
  return { entries: page.entries as RawMetadata[], cursor: page.cursor, hasMore: page.has_more };
}

export class FeedClient {
  readonly #sdk: Dropbox;
  readonly #agent = new Agent({ connections: 4, keepAliveTimeout: 10_000 });
  readonly #pollAgent = new Agent({ connections: 2, keepAliveTimeout: 1_000, bodyTimeout: 0, headersTimeout: 0 });
  readonly #options: FeedClientOptions;

  readonly #requests: DropboxRequests;

  constructor(options: FeedClientOptions) {
    this.#options = options;
    const base = options.apiUrl.replace(/\/+$/, '');
    // The local box serves every route on one port: rewrite the SDK's hosts to it. Real Dropbox
    // serves longpoll on notify.dropboxapi.com only, so its URLs stay as the SDK builds them.
    const rewrite = base === 'https://api.dropboxapi.com' ? null : /^https:\/\/[^/]+/;
    const tokens = options.tokens ?? null;
    const fixed = options.accessToken;
    this.#requests = new DropboxRequests({
      account: options.name ?? 'account',
      // Short-lived tokens expire (4 h on Dropbox): a feed that runs for days asks for a current one per request.
      tokens: tokens ? { get: () => tokens.get(), expired: (stale) => tokens.expired?.(stale) ?? Promise.resolve(stale) } : { get: async () => fixed, expired: async () => fixed },
      pacer: options.pacer ?? null,
      maxRetryAfterMs: options.maxRetryAfterMs ?? DEFAULT_MAX_RETRY_AFTER_MS,
      observer: { request: () => {}, retry: (route) => options.onRetry?.(route) },
      ...(options.warn ? { warn: options.warn } : {}),
    });
    const longpoll = (route: string): boolean => route === 'files/list_folder/longpoll';
    const fetch = this.#requests.fetch({
      ...(rewrite ? { rewrite: (url: string) => url.replace(rewrite, base) } : {}),
      idempotent: () => true, // every feed call reads
      paced: (route) => !longpoll(route),
      dispatcherFor: (route) => (longpoll(route) ? this.#pollAgent : this.#agent),
    });
    // Longpoll carries no Authorization (a notify endpoint): the layer adds none where the SDK set none.
    this.#sdk = new Dropbox({ accessToken: 'managed-by-the-request-layer', fetch });
  }

  /** The cap the request layer puts on a server-given delay. */
  get maxServerDelayMs(): number {
    return this.#requests.maxRetryAfterMs;
  }

  /** First page of the recursive listing of the whole account. */
  async listRoot(signal: AbortSignal): Promise<FeedPage> {
    try {
      const res = await this.#sdk.filesListFolder({ path: '', recursive: true, include_deleted: false, limit: this.#options.pageLimit }, { signal });
      return pageOf(res.result, 'list_folder');
    } catch (err) {
      throw feedError(err, 'list_folder', signal);
    }
  }

  async continue(cursor: string, signal: AbortSignal): Promise<FeedPage> {
    try {
      const res = await this.#sdk.filesListFolderContinue({ cursor }, { signal });
      return pageOf(res.result, 'list_folder/continue');
    } catch (err) {
      throw feedError(err, 'list_folder/continue', signal);
    }
  }

  /** Waits for changes after `cursor`: { changes, backoffMs } (backoffMs validated and capped as a Retry-After is). */
  async longpoll(cursor: string, signal: AbortSignal): Promise<{ changes: boolean; backoffMs: number }> {
    const timeoutSec = this.#options.longpollTimeoutSec;
    try {
      // Dropbox may hold a longpoll up to 90 s past its timeout (reference §3.6); beyond that, give up and retry.
      const res = await this.#sdk.filesListFolderLongpoll({ cursor, timeout: timeoutSec }, { signal, timeout: (timeoutSec + 100) * 1000 });
      const backoff = serverDelay(res.result.backoff, this.maxServerDelayMs, 'longpoll backoff');
      if (backoff?.notice) this.#requests.notice('files/list_folder/longpoll', backoff.notice);
      return { changes: res.result.changes === true, backoffMs: backoff?.ms ?? 0 };
    } catch (err) {
      throw feedError(err, 'list_folder/longpoll', signal);
    }
  }

  async close(): Promise<void> {
    await Promise.all([this.#agent.destroy(), this.#pollAgent.destroy()]);
  }
}
