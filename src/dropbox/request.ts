// The Dropbox request layer of one account: every call start is admitted by the account's pacer,
// every answer is classified once (classify.ts), then retried with jittered backoff, after a
// throttle's Retry-After, or after one token refresh on a 401 — or thrown as a DropboxCallError.
// Main thread (any thread that owns a fetch). Invariants: each admitted attempt reports exactly one
// outcome to the pacer; a call refreshes its token at most once, and concurrent 401s of one stale
// token share one refresh; a call that is not idempotent is sent again only when Dropbox did nothing
// (429, 401, a damaged body, a refused connection); every wait ends at once when the call's signal aborts.

import { setTimeout as sleep } from 'node:timers/promises';
import { Response, fetch as undiciFetch, type Dispatcher } from 'undici';
import { DropftpError, type ErrorCode } from '../errors.ts';
import { CALL_START_HEADER, callStartStamp } from './call-stamp.ts';
import { DEFAULT_MAX_RETRY_AFTER_MS, classifyAnswer, classifyThrown, type Classified } from './classify.ts';

/** What a pacer is told after each admitted call (the shape of src/dropbox/pacer.ts's). */
export type CallOutcome = { kind: 'ok' } | { kind: 'throttled'; retryAfterMs: number } | { kind: 'write-lock'; retryAfterMs: number } | { kind: 'failed' };

/** Spaces call starts of one account (engine.pacerFor(account) satisfies it). */
export interface CallPacer {
  /** Resolves true when the call may start; false when `cancelled()` became true while waiting. */
  admit(cancelled?: () => boolean): Promise<boolean>;
  report(outcome: CallOutcome): void;
}

/** The account's access tokens (src/auth TokenManager.provider(), or a fixed token). */
export interface TokenSource {
  get(): Promise<string>;
  /** After a 401 with `stale`: a newer token, or `stale` itself when there is none. */
  expired(stale: string): Promise<string>;
}

/** Told about every attempt's answer (status 0: none) and every retry (metrics, stats). */
export interface RequestObserver {
  request(route: string, status: number): void;
  retry(route: string): void;
}

export interface RequestLayerOptions {
  /** The account's name (logs). */
  account: string;
  /** null: calls carry no Authorization unless they set one themselves. */
  tokens?: TokenSource | null;
  /** Default: no pacing. */
  pacer?: CallPacer | null;
  /** Cap of a server-given delay; a larger, negative or non-numeric one is capped and logged. */
  maxRetryAfterMs?: number;
  /** Attempts of a call on 5xx and network failures. Default 4. */
  maxAttempts?: number;
  /** Attempts of a call answered 429 (either kind). Default 10. */
  maxThrottledAttempts?: number;
  /** First backoff after a failure, doubled per failure up to backoffMaxMs, jittered. Default 100 / 5,000. */
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  observer?: RequestObserver | null;
  /** Where a capped or invalid server delay is logged. Default: a process warning. */
  warn?: (message: string) => void;
  /** undici dispatcher for fetch() (a keep-alive pool). */
  dispatcher?: Dispatcher;
}

export interface CallSpec {
  /** 'files/list_folder', 'oauth2/token' … */
  route: string;
  /** May be sent again after an answer that leaves its effect unknown (5xx, reset). */
  idempotent: boolean;
  /** Started through the pacer (default true; longpoll and oauth2/token are not user API calls). */
  paced?: boolean;
  /** Sends the account's token (default true; a notify call such as longpoll sends none). */
  auth?: boolean;
  /** A 2xx body must be JSON (default true: RPC routes). The returned Response is then already read. */
  expectJson?: boolean;
  signal?: AbortSignal | null;
}

/** A call that failed for good: its classification's code, HTTP status (0: none) and route error tags. */
export class DropboxCallError extends DropftpError {
  readonly route: string;
  readonly status: number;
  readonly kind: Classified['kind'];
  readonly tags: readonly string[];
  /** The route error union (409), for callers that read more than tags. */
  readonly error: unknown;
  /** The wait Dropbox asked for when the call ran out of 429 attempts. */
  readonly retryAfterMs: number;
  constructor(code: ErrorCode, route: string, c: Classified, message: string) {
    super(code, message);
    this.name = 'DropboxCallError';
    this.route = route;
    this.status = c.status;
    this.kind = c.kind;
    this.tags = c.kind === 'fatal' ? c.tags : [];
    this.error = c.kind === 'fatal' ? c.error : null;
    this.retryAfterMs = c.kind === 'throttled' || c.kind === 'write-lock' ? c.retryAfterMs : 0;
  }
}

/** 401 tags a fresh token may cure (an unknown or missing tag too); missing_scope, user_suspended … not. */
const REFRESHABLE = new Set([null, 'expired_access_token', 'invalid_access_token']);

function outcomeOf(c: Classified): CallOutcome {
  if (c.kind === 'throttled' || c.kind === 'write-lock') return { kind: c.kind, retryAfterMs: c.retryAfterMs };
  if (c.kind === 'retry' || (c.kind === 'fatal' && (c.status === 0 || c.code === 'DROPFTP_ERR_UPSTREAM_MALFORMED'))) return { kind: 'failed' };
  return { kind: 'ok' }; // an answer: 2xx, a route error, 401
}

/** The Response of a fetch(); a read body is rebuilt into a fresh Response for the caller. */
type Sent = Awaited<ReturnType<typeof undiciFetch>>;

export class DropboxRequests {
  readonly account: string;
  readonly maxRetryAfterMs: number;
  readonly #tokens: TokenSource | null;
  readonly #pacer: CallPacer | null;
  readonly #maxAttempts: number;
  readonly #maxThrottled: number;
  readonly #baseMs: number;
  readonly #maxMs: number;
  readonly #observer: RequestObserver | null;
  readonly #warn: (message: string) => void;
  readonly #dispatcher: Dispatcher | undefined;
  /** Refreshes in flight or just done, by the stale token they replace. */
  readonly #refreshing = new Map<string, Promise<string>>();

  constructor(options: RequestLayerOptions) {
    this.account = options.account;
    this.maxRetryAfterMs = Math.max(0, options.maxRetryAfterMs ?? DEFAULT_MAX_RETRY_AFTER_MS);
    this.#tokens = options.tokens ?? null;
    this.#pacer = options.pacer ?? null;
    this.#maxAttempts = Math.max(1, options.maxAttempts ?? 4);
    this.#maxThrottled = Math.max(1, options.maxThrottledAttempts ?? 10);
    this.#baseMs = Math.max(1, options.backoffBaseMs ?? 100);
    this.#maxMs = Math.max(this.#baseMs, options.backoffMaxMs ?? 5000);
    this.#observer = options.observer ?? null;
    this.#warn = options.warn ?? ((message) => process.emitWarning(message, { code: 'DROPFTP_DROPBOX_DELAY' }));
    this.#dispatcher = options.dispatcher;
  }

  /** Backoff before retry `failures` (1-based): base doubling to max, drawn in [half, full]. */
  backoffMs(failures: number): number {
    const full = Math.min(this.#maxMs, this.#baseMs * 2 ** Math.min(failures - 1, 20));
    return Math.round(full / 2 + Math.random() * (full / 2));
  }

  /**
   * Runs one call: `send(authorization)` makes one HTTP attempt (`authorization` is 'Bearer …',
   * or null without a token source). Returns the 2xx Response (already read and rebuilt when
   * `expectJson`); throws DropboxCallError otherwise.
   */
  async run(spec: CallSpec, send: (authorization: string | null, signal: AbortSignal | null) => Promise<Sent>): Promise<Sent> {
    const { route } = spec;
    const signal = spec.signal ?? null;
    const expectJson = spec.expectJson ?? true;
    const cancelled = (): boolean => signal?.aborted === true;
    let failures = 0;
    let throttles = 0;
    let refreshed = false;
    let refreshedToken: string | null = null;
    for (;;) {
      if (cancelled()) throw this.#error(route, classifyThrown(signal?.reason, true, route));
      // The token first (it may wait for a refresh): an admitted call starts at once.
      const token: string | null = this.#tokens && spec.auth !== false ? (refreshedToken ?? (await this.#tokens.get())) : null;
      refreshedToken = null;
      const paced = spec.paced !== false && this.#pacer !== null;
      if (paced && !(await this.#pacer!.admit(cancelled))) throw this.#error(route, classifyThrown(signal?.reason, true, route));
      let c: Classified;
      let res: Sent | null = null;
      let text = '';
      try {
        res = await send(token === null ? null : `Bearer ${token}`, signal);
        const ok = res.status >= 200 && res.status < 300;
        if (ok && !expectJson) {
          c = { kind: 'ok', status: res.status, json: null };
        } else {
          text = await res.text();
          c = classifyAnswer({ status: res.status, header: (name) => res!.headers.get(name), text, expectJson, route }, this.maxRetryAfterMs);
        }
      } catch (err) {
        c = classifyThrown(err, cancelled(), route);
      }
      this.#observer?.request(route, res?.status ?? 0);
      if (paced) this.#pacer!.report(outcomeOf(c));
      if ((c.kind === 'retry' || c.kind === 'throttled' || c.kind === 'write-lock') && c.notice) this.notice(route, c.notice);
      switch (c.kind) {
        case 'ok':
          return expectJson ? new Response(text, { status: res!.status, statusText: res!.statusText, headers: res!.headers }) : res!;
        case 'auth': {
          if (refreshed || !this.#tokens || token === null || !REFRESHABLE.has(c.tag)) throw this.#error(route, c);
          refreshed = true;
          const next = await this.#refresh(token);
          if (next === token) throw this.#error(route, c); // a fixed token: nothing newer to try
          refreshedToken = next;
          this.#observer?.retry(route);
          continue;
        }
        case 'throttled':
        case 'write-lock': {
          if (++throttles >= this.#maxThrottled) throw this.#error(route, c);
          this.#observer?.retry(route);
          // With a pacer the account's window ends at the same time; never retry sooner than a backoff.
          await this.#wait(Math.max(c.retryAfterMs, this.backoffMs(throttles)), signal, route);
          continue;
        }
        case 'retry': {
          if (!(spec.idempotent || c.nothingDone) || ++failures >= this.#maxAttempts) throw this.#error(route, c);
          this.#observer?.retry(route);
          await this.#wait(Math.max(c.retryAfterMs, this.backoffMs(failures)), signal, route);
          continue;
        }
        case 'fatal':
          throw this.#error(route, c);
      }
    }
  }

  /**
   * A fetch for the `dropbox` SDK (and any fetch-shaped caller): the route comes from the URL path,
   * the Authorization header the SDK set is replaced by the account's current token, and the call
   * goes through run(). RPC answers are checked to be JSON before the SDK parses them.
   */
  fetch(options: { rewrite?: (url: string) => string; idempotent: (route: string) => boolean; paced?: (route: string) => boolean; dispatcherFor?: (route: string) => Dispatcher | undefined }): typeof fetch {
    const adapter = async (url: string, init: Record<string, unknown> = {}): Promise<Sent> => {
      const route = new URL(url).pathname.replace(/^\/2\//, '').replace(/^\//, '');
      const headers = { ...((init.headers as Record<string, string> | undefined) ?? {}) };
      const managed = typeof headers.Authorization === 'string' && headers.Authorization.startsWith('Bearer ');
      const target = options.rewrite ? options.rewrite(url) : url;
      const dispatcher = options.dispatcherFor?.(route) ?? this.#dispatcher;
      const isContent = headers['Dropbox-API-Arg'] !== undefined;
      return this.run(
        { route, auth: managed, idempotent: options.idempotent(route), paced: options.paced?.(route) ?? true, expectJson: !isContent, signal: (init.signal as AbortSignal | undefined) ?? null },
        (authorization, signal) => {
          if (managed && authorization !== null) headers.Authorization = authorization;
          headers[CALL_START_HEADER] = callStartStamp();
          return undiciFetch(target, { ...(init as object), headers, ...(signal ? { signal } : {}), ...(dispatcher ? { dispatcher } : {}) } as Parameters<typeof undiciFetch>[1]);
        },
      );
    };
    return adapter as unknown as typeof fetch;
  }

  /** Logs a server-given delay that was capped or invalid. */
  notice(route: string, message: string): void {
    this.#warn(`dropbox ${this.account} ${route}: ${message}`);
  }

  /**
   * One refresh per stale token, however many calls got 401 with it — also those whose 401 comes
   * after the refresh ended (the newest two results are kept; a failed refresh is forgotten so that
   * a later call may try again).
   */
  #refresh(stale: string): Promise<string> {
    let running = this.#refreshing.get(stale);
    if (!running) {
      running = this.#tokens!.expired(stale);
      running.catch(() => this.#refreshing.delete(stale));
      this.#refreshing.set(stale, running);
      if (this.#refreshing.size > 2) this.#refreshing.delete(this.#refreshing.keys().next().value!);
    }
    return running;
  }

  async #wait(ms: number, signal: AbortSignal | null, route: string): Promise<void> {
    if (ms <= 0) return;
    try {
      await sleep(ms, undefined, signal ? { signal } : undefined);
    } catch {
      throw this.#error(route, classifyThrown(signal?.reason, true, route));
    }
  }

  #error(route: string, c: Classified): DropboxCallError {
    switch (c.kind) {
      case 'fatal':
        return new DropboxCallError(c.code, route, c, `dropbox ${this.account}: ${c.reason}`);
      case 'throttled':
      case 'write-lock':
        return new DropboxCallError('DROPFTP_ERR_RATE_LIMITED', route, c, `dropbox ${this.account}: ${c.reason} (gave up after ${this.#maxThrottled} attempts)`);
      case 'auth':
        return new DropboxCallError('DROPFTP_ERR_UPSTREAM_AUTH', route, c, `dropbox ${this.account}: ${c.reason}`);
      case 'retry':
        return new DropboxCallError('DROPFTP_ERR_UPSTREAM', route, c, `dropbox ${this.account}: ${c.reason}`);
      default:
        return new DropboxCallError('DROPFTP_ERR_INTERNAL', route, c, `dropbox ${this.account}: ${route}: unexpected success`);
    }
  }
}
