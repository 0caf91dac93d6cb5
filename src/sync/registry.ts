// One DirectoryCache per Dropbox account, shared by every session and mount that uses the account.
// Main thread. Invariants: acquire() returns the same started cache for the same account name
// until its last holder released it and `lingerMs` passed (a user reconnecting does not pay a full
// listing again); close() closes every cache.

import type { CallPacer } from '../dropbox/request.ts';
import { DirectoryCache, type DirectoryCacheOptions, type DirectoryCacheStats } from './directory-cache.ts';

export interface SyncAccount {
  name: string;
  apiUrl: string;
  accessToken: string;
  /** Rotating tokens (src/auth); without it `accessToken` is used for ever. */
  tokens?: { get(): Promise<string>; expired?(stale: string): Promise<string> } | null;
  /** Cap of the feed's server-given delays (engine.maxRetryAfterSec); default the cache's own. */
  maxRetryAfterMs?: number;
}

export interface SyncRegistryOptions extends Omit<DirectoryCacheOptions, 'apiUrl' | 'accessToken' | 'tokens' | 'name' | 'pacer'> {
  /** How long a cache nobody holds keeps following its feed (default 60,000). */
  lingerMs?: number;
  /** The call pacer of an account (engine.pacerFor); default none. */
  pacerFor?: ((account: string) => CallPacer | null) | null;
}

interface Held {
  cache: DirectoryCache;
  holders: number;
  timer: NodeJS.Timeout | null;
}

export class SyncRegistry {
  readonly #held = new Map<string, Held>();
  readonly #options: SyncRegistryOptions;
  #closed = false;

  constructor(options: SyncRegistryOptions = {}) {
    this.#options = options;
  }

  /** The account's cache (started); call the returned release() when done with it. */
  acquire(account: SyncAccount): { cache: DirectoryCache; release: () => void } {
    if (this.#closed) throw new Error('SyncRegistry closed');
    let held = this.#held.get(account.name);
    if (!held) {
      const { lingerMs: _l, pacerFor, ...cacheOptions } = this.#options;
      const cache = new DirectoryCache({ ...cacheOptions, ...account, pacer: pacerFor?.(account.name) ?? null }).start();
      held = { cache, holders: 0, timer: null };
      this.#held.set(account.name, held);
    }
    if (held.timer) clearTimeout(held.timer);
    held.timer = null;
    held.holders++;
    const h = held;
    let released = false;
    return {
      cache: held.cache,
      release: () => {
        if (released) return;
        released = true;
        if (--h.holders > 0) return;
        h.timer = setTimeout(() => {
          if (h.holders > 0 || this.#held.get(account.name) !== h) return;
          this.#held.delete(account.name);
          void h.cache.close();
        }, this.#options.lingerMs ?? 60_000);
        h.timer.unref();
      },
    };
  }

  stats(): DirectoryCacheStats[] {
    return [...this.#held.values()].map((h) => h.cache.stats());
  }

  async close(): Promise<void> {
    this.#closed = true;
    const all = [...this.#held.values()];
    this.#held.clear();
    for (const h of all) if (h.timer) clearTimeout(h.timer);
    await Promise.all(all.map((h) => h.cache.close()));
  }
}
