// The change-feed calls of one account (list_folder recursive from the root, continue, longpoll)
// through the official `dropbox` SDK, and the classification of their failures. Main thread.
// Invariants: every failure becomes a FeedError whose kind decides what the loop does (reset →
// rebuild, retry → wait `delayMs` and repeat the same call, aborted → stop, fatal → long backoff);
// longpolls use their own connection pool so that thousands of parked polls never starve the
// bounded pool of ordinary calls (on real Dropbox they go to another host anyway).
// Why not src/dropbox/rpc.ts: it hides cursors (listFolder returns all pages at once), retries
// and maps errors itself (losing the `reset` tag and retry_after to its own policy), and has no
// abort signal or longpoll — the feed loop needs all four.

import { Dropbox } from 'dropbox';
import { Agent, fetch as undiciFetch } from 'undici';
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
  tokens?: { get(): Promise<string> } | null;
  pageLimit: number;
  /** Longpoll timeout sent to the server (30..480 s). */
  longpollTimeoutSec: number;
}

function tagsOf(value: unknown, depth = 0, out: string[] = []): string[] {
  if (depth > 6 || value === null || typeof value !== 'object') return out;
  const tag = (value as Record<string, unknown>)['.tag'];
  if (typeof tag === 'string') out.push(tag);
  for (const [key, child] of Object.entries(value)) if (key !== '.tag') tagsOf(child, depth + 1, out);
  return out;
}

/** The longest wait a server may impose on the feed (a longpoll backoff, a 429's retry_after). */
export const MAX_SERVER_DELAY_MS = 300_000;

/**
 * A server-given delay in seconds as milliseconds, validated: only a finite number > 0 counts
 * (a string, null, NaN, a negative value is 0) and it is capped at MAX_SERVER_DELAY_MS — beyond
 * 2^31-1 ms Node fires a timer at once, which turned a huge backoff into a request loop.
 */
export function serverDelayMs(seconds: unknown): number {
  if (typeof seconds !== 'number' || !Number.isFinite(seconds) || seconds <= 0) return 0;
  return Math.min(seconds * 1000, MAX_SERVER_DELAY_MS);
}

export function classify(err: unknown, what: string, signal: AbortSignal): FeedError {
  if (err instanceof FeedError) return err;
  if (signal.aborted) return new FeedError('aborted', `${what}: aborted`);
  const status = typeof (err as { status?: unknown })?.status === 'number' ? (err as { status: number }).status : null;
  if (status === null) {
    // fetch network failure (TypeError), a reset socket, or a timeout of our own: retry.
    return new FeedError('retry', `${what}: ${err instanceof Error ? err.message : String(err)}`, 0, null, err);
  }
  const body = (err as { error?: unknown }).error;
  const summary = typeof (body as { error_summary?: unknown })?.error_summary === 'string' ? (body as { error_summary: string }).error_summary : '';
  const message = `${what}: HTTP ${status} ${summary}`.trim();
  if (status === 409 && tagsOf((body as { error?: unknown })?.error).includes('reset')) return new FeedError('reset', message, 0, status, err);
  if (status === 429) {
    const seconds = (body as { error?: { retry_after?: unknown } })?.error?.retry_after;
    const header = Number((err as { headers?: { get?(k: string): string | null } }).headers?.get?.('retry-after'));
    const delayMs = serverDelayMs(seconds) || serverDelayMs(header) || 1000;
    return new FeedError('retry', message, delayMs, status, err);
  }
  if (status >= 500) return new FeedError('retry', message, 0, status, err);
  return new FeedError('fatal', message, 0, status, err);
}

export class FeedClient {
  readonly #sdk: Dropbox;
  readonly #agent = new Agent({ connections: 4, keepAliveTimeout: 10_000 });
  readonly #pollAgent = new Agent({ connections: 2, keepAliveTimeout: 1_000, bodyTimeout: 0, headersTimeout: 0 });
  readonly #options: FeedClientOptions;

  constructor(options: FeedClientOptions) {
    this.#options = options;
    const base = options.apiUrl.replace(/\/+$/, '');
    // The local box serves every route on one port: rewrite the SDK's hosts to it. Real Dropbox
    // serves longpoll on notify.dropboxapi.com only, so its URLs stay as the SDK builds them.
    const rewrite = base === 'https://api.dropboxapi.com' ? null : /^https:\/\/[^/]+/;
    const tokens = options.tokens ?? null;
    const customFetch = async (url: string, init: Record<string, unknown>) => {
      let headers = init.headers as Record<string, string> | undefined;
      // Short-lived tokens expire (4 h on Dropbox): a feed that runs for days asks for a current one
      // per request. Longpoll carries no Authorization (it is a notify endpoint) and gets none.
      if (tokens && headers && typeof headers.Authorization === 'string') headers = { ...headers, Authorization: `Bearer ${await tokens.get()}` };
      return undiciFetch(rewrite ? url.replace(rewrite, base) : url, {
        ...(init as object),
        ...(headers ? { headers } : {}),
        dispatcher: url.endsWith('/list_folder/longpoll') ? this.#pollAgent : this.#agent,
      } as Parameters<typeof undiciFetch>[1]);
    };
    this.#sdk = new Dropbox({ accessToken: options.accessToken, fetch: customFetch as unknown as typeof fetch });
  }

  /** First page of the recursive listing of the whole account. */
  async listRoot(signal: AbortSignal): Promise<FeedPage> {
    try {
      const res = await this.#sdk.filesListFolder({ path: '', recursive: true, include_deleted: false, limit: this.#options.pageLimit }, { signal });
      return { entries: res.result.entries as RawMetadata[], cursor: res.result.cursor, hasMore: res.result.has_more };
    } catch (err) {
      throw classify(err, 'list_folder', signal);
    }
  }

  async continue(cursor: string, signal: AbortSignal): Promise<FeedPage> {
    try {
      const res = await this.#sdk.filesListFolderContinue({ cursor }, { signal });
      return { entries: res.result.entries as RawMetadata[], cursor: res.result.cursor, hasMore: res.result.has_more };
    } catch (err) {
      throw classify(err, 'list_folder/continue', signal);
    }
  }

  /** Waits for changes after `cursor`: { changes, backoffMs } (backoffMs validated, 0..MAX_SERVER_DELAY_MS). */
  async longpoll(cursor: string, signal: AbortSignal): Promise<{ changes: boolean; backoffMs: number }> {
    const timeoutSec = this.#options.longpollTimeoutSec;
    try {
      // Dropbox may hold a longpoll up to 90 s past its timeout (reference §3.6); beyond that, give up and retry.
      const res = await this.#sdk.filesListFolderLongpoll({ cursor, timeout: timeoutSec }, { signal, timeout: (timeoutSec + 100) * 1000 });
      return { changes: res.result.changes === true, backoffMs: serverDelayMs(res.result.backoff) };
    } catch (err) {
      throw classify(err, 'list_folder/longpoll', signal);
    }
  }

  async close(): Promise<void> {
    await Promise.all([this.#agent.destroy(), this.#pollAgent.destroy()]);
  }
}
