// Upload sessions kept after an interrupted STOR, so that REST n + STOR (or APPE) of the same path
// by the same user continues it instead of starting over. Main thread, one per server. Invariants:
// a kept session is handed out at most once (take()/takeIf() remove it); entries expire after ttlMs
// (checked lazily, no timer per entry); nothing here is ever committed by itself.

import type { ResumeToken } from './transfer-adapter.ts';

interface Kept {
  token: ResumeToken;
  expiresAtMs: number;
}

export class ResumeStore {
  readonly ttlMs: number;
  readonly maxEntries: number;
  readonly #kept = new Map<string, Kept>();

  constructor(ttlMs = 3_600_000, maxEntries = 10_000) {
    this.ttlMs = ttlMs;
    this.maxEntries = maxEntries;
  }

  static key(user: string, account: string, dropboxPath: string): string {
    return `${user}\0${account}\0${dropboxPath.toLowerCase()}`;
  }

  keep(key: string, token: ResumeToken): void {
    this.#kept.delete(key);
    if (this.#kept.size >= this.maxEntries) {
      const oldest = this.#kept.keys().next().value;
      if (oldest !== undefined) this.#kept.delete(oldest);
    }
    this.#kept.set(key, { token, expiresAtMs: Date.now() + this.ttlMs });
  }

  /** The kept session's offset, without taking it (SIZE reports it so clients resume there). */
  peekOffset(key: string): number | null {
    const kept = this.#fresh(key);
    return kept ? kept.token.offset : null;
  }

  /** The kept session, left in place (a caller checks first and takes it with takeIf()). */
  peek(key: string): ResumeToken | null {
    return this.#fresh(key)?.token ?? null;
  }

  /** Takes the kept session only if it is still `token` (no one else took or replaced it). */
  takeIf(key: string, token: ResumeToken): boolean {
    if (this.#fresh(key)?.token !== token) return false;
    this.#kept.delete(key);
    return true;
  }

  take(key: string): ResumeToken | null {
    const kept = this.#fresh(key);
    this.#kept.delete(key);
    return kept ? kept.token : null;
  }

  drop(key: string): void {
    this.#kept.delete(key);
  }

  get size(): number {
    return this.#kept.size;
  }

  #fresh(key: string): Kept | null {
    const kept = this.#kept.get(key);
    if (!kept) return null;
    if (kept.expiresAtMs <= Date.now()) {
      this.#kept.delete(key);
      return null;
    }
    return kept;
  }
}
