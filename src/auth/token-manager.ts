// Short-lived Dropbox access tokens for every configured account, minted from refresh tokens.
// Main thread. Invariants: at most one refresh request in flight per account (concurrent callers
// share it); a token is refreshed before it expires (a timer at expiry minus a margin, and on use)
// and once more when a caller reports a 401 expired_access_token for the token it was given — unless
// another caller already replaced that token; listeners see every new token (the engine gets it).

import { DropftpError } from '../errors.ts';
import { refreshAccessToken } from './oauth.ts';

export interface ManagedAccount {
  name: string;
  apiUrl: string;
  contentUrl: string;
  appKey: string;
  appSecret?: string;
  refreshToken: string;
}

/** What an account's token looks like to its users (the engine, an RPC client). */
export interface FreshToken {
  name: string;
  apiUrl: string;
  contentUrl: string;
  accessToken: string;
  expiresAtMs: number;
}

/** Handed to one consumer of one account's tokens. */
export interface TokenProvider {
  /** A token valid for at least the refresh margin (refreshing first when needed). */
  get(): Promise<string>;
  /** After a 401 expired_access_token with `stale`: a newer token (one refresh at most). */
  expired(stale: string): Promise<string>;
}

export interface RefreshEvent {
  account: string;
  ok: boolean;
  reason: 'start' | 'expiry' | 'expired_access_token';
  durationMs: number;
}

export interface TokenManagerOptions {
  /** Refresh this long before expiry (capped at half the token's lifetime). Default 5 min, as the SDK. */
  refreshMarginMs?: number;
  /** Attempts per refresh on network errors and 5xx (the request layer's; 429s wait their Retry-After). Default 4. */
  maxAttempts?: number;
  /** After a failed timed refresh, try again after this long. Default 30 s. */
  retryDelayMs?: number;
  /** Called after every refresh (metrics). */
  onRefresh?: (event: RefreshEvent) => void;
  /** Called after every token endpoint request with its HTTP status (0: no answer) (metrics). */
  onRequest?: (route: string, status: number) => void;
  /** Wall clock in ms (tests move it forward to reach a token's expiry). Default Date.now. */
  clock?: () => number;
}

interface State {
  account: ManagedAccount;
  token: string | null;
  expiresAtMs: number;
  lifetimeMs: number;
  refreshing: Promise<string> | null;
  timer: NodeJS.Timeout | null;
}

export class TokenManager {
  readonly #accounts = new Map<string, State>();
  readonly #listeners = new Set<(token: FreshToken) => void>();
  readonly #marginMs: number;
  readonly #maxAttempts: number;
  readonly #retryDelayMs: number;
  readonly #onRefresh: ((event: RefreshEvent) => void) | undefined;
  readonly #onRequest: ((route: string, status: number) => void) | undefined;
  readonly #now: () => number;
  #closed = false;

  constructor(options: TokenManagerOptions = {}) {
    this.#marginMs = options.refreshMarginMs ?? 5 * 60_000;
    this.#maxAttempts = Math.max(1, options.maxAttempts ?? 4);
    this.#retryDelayMs = options.retryDelayMs ?? 30_000;
    this.#onRefresh = options.onRefresh;
    this.#onRequest = options.onRequest;
    this.#now = options.clock ?? Date.now;
  }

  /** Adds (or replaces) an account; its first token is fetched on first use or by start(). */
  add(account: ManagedAccount): void {
    const old = this.#accounts.get(account.name);
    if (old?.timer) clearTimeout(old.timer);
    this.#accounts.set(account.name, { account: { ...account }, token: null, expiresAtMs: 0, lifetimeMs: 0, refreshing: null, timer: null });
  }

  has(name: string): boolean {
    return this.#accounts.has(name);
  }

  names(): string[] {
    return [...this.#accounts.keys()];
  }

  account(name: string): ManagedAccount {
    return this.#state(name).account;
  }

  /** Fetches a first token for every account (fails when one refresh token is refused). */
  async start(): Promise<FreshToken[]> {
    return Promise.all(this.names().map(async (name) => {
      await this.accessToken(name, 'start');
      return this.#fresh(this.#state(name));
    }));
  }

  /** Listens for every new token of every account; returns the function that removes the listener. */
  onToken(listener: (token: FreshToken) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** The current token without refreshing (null before the first one). */
  current(name: string): string | null {
    return this.#state(name).token;
  }

  async accessToken(name: string, reason: RefreshEvent['reason'] = 'expiry'): Promise<string> {
    const state = this.#state(name);
    if (state.token !== null && this.#now() < state.expiresAtMs - this.#margin(state)) return state.token;
    return this.#refresh(state, state.token === null ? 'start' : reason);
  }

  /** After a 401 expired_access_token: refreshes once, however many callers held `stale`. */
  async refreshAfterExpired(name: string, stale: string): Promise<string> {
    const state = this.#state(name);
    if (state.refreshing) return state.refreshing;
    if (state.token !== null && state.token !== stale) return state.token;
    return this.#refresh(state, 'expired_access_token');
  }

  provider(name: string): TokenProvider {
    this.#state(name);
    return { get: () => this.accessToken(name), expired: (stale) => this.refreshAfterExpired(name, stale) };
  }

  close(): void {
    this.#closed = true;
    for (const state of this.#accounts.values()) {
      if (state.timer) clearTimeout(state.timer);
      state.timer = null;
    }
    this.#listeners.clear();
  }

  #state(name: string): State {
    const state = this.#accounts.get(name);
    if (!state) throw new DropftpError('DROPFTP_ERR_CONFIG', `no Dropbox account "${name}" (add it with \`dropftp auth --account ${name}\`)`);
    return state;
  }

  #margin(state: State): number {
    return Math.min(this.#marginMs, state.lifetimeMs / 2);
  }

  #fresh(state: State): FreshToken {
    const { name, apiUrl, contentUrl } = state.account;
    return { name, apiUrl, contentUrl, accessToken: state.token!, expiresAtMs: state.expiresAtMs };
  }

  #refresh(state: State, reason: RefreshEvent['reason']): Promise<string> {
    if (state.refreshing) return state.refreshing;
    const startedMs = performance.now();
    const running = this.#refreshOnce(state).then(
      (token) => {
        this.#onRefresh?.({ account: state.account.name, ok: true, reason, durationMs: performance.now() - startedMs });
        return token;
      },
      (err: unknown) => {
        this.#onRefresh?.({ account: state.account.name, ok: false, reason, durationMs: performance.now() - startedMs });
        throw err;
      },
    );
    state.refreshing = running;
    // Cleared in a separate step so that a caller arriving in the same tick still shares it.
    running.then(
      () => (state.refreshing = null),
      () => (state.refreshing = null),
    );
    return running;
  }

  /** One refresh through the request layer, which retries what is transient. */
  async #refreshOnce(state: State): Promise<string> {
    const { account } = state;
    let grant;
    try {
      const observer = { request: (route: string, status: number) => this.#onRequest?.(route, status), retry: () => {} };
      grant = await refreshAccessToken(account, account.refreshToken, { maxAttempts: this.#maxAttempts, observer });
    } catch (err) {
      throw new DropftpError('DROPFTP_ERR_UPSTREAM_AUTH', `account ${account.name}: ${(err as Error).message}`, { cause: err });
    }
    if (this.#accounts.get(account.name) !== state) return grant.accessToken; // replaced meanwhile
    state.token = grant.accessToken;
    state.lifetimeMs = grant.expiresInMs;
    state.expiresAtMs = this.#now() + grant.expiresInMs;
    this.#schedule(state, Number.isFinite(grant.expiresInMs) ? grant.expiresInMs - this.#margin(state) : null);
    const fresh = this.#fresh(state);
    for (const listener of this.#listeners) {
      try {
        listener(fresh);
      } catch {
        // A listener's failure is its own (the engine refuses only what it refused at setup).
      }
    }
    return grant.accessToken;
  }

  /** The timed refresh keeps the engine's copy fresh even when no RPC call asks for a token. */
  #schedule(state: State, inMs: number | null): void {
    if (state.timer) clearTimeout(state.timer);
    state.timer = null;
    if (this.#closed || inMs === null) return;
    state.timer = setTimeout(() => {
      state.timer = null;
      this.#refresh(state, 'expiry').catch(() => {
        if (state.timer === null) this.#schedule(state, this.#retryDelayMs);
      });
    }, Math.max(1000, Math.min(inMs, 2 ** 31 - 1)));
    state.timer.unref();
  }
}
