// Fan-out of cache changes to whoever watches a subtree (FTP sessions, mounts). Main thread.
// Invariants: a change reaches the watchers of its path and of every ancestor (O(depth) map
// lookups, whatever the number of watchers); a removal also reaches watchers below the removed
// path (its subtree is gone); `reset` reaches everyone; a throwing callback is reported through
// onError and never stops the feed or the other callbacks.

import { within, type CacheEntry } from './entry.ts';

export type CacheChange =
  | { kind: 'upsert'; pathLower: string; entry: CacheEntry }
  | { kind: 'delete'; pathLower: string }
  /** The cache was rebuilt (Dropbox reset the cursor): anything may have changed; list again. */
  | { kind: 'reset' };

export type ChangeListener = (change: CacheChange) => void;

export class Subscribers {
  readonly #byPrefix = new Map<string, Set<ChangeListener>>();
  readonly #onError: (err: unknown) => void;

  constructor(onError: (err: unknown) => void) {
    this.#onError = onError;
  }

  get size(): number {
    let n = 0;
    for (const set of this.#byPrefix.values()) n += set.size;
    return n;
  }

  /** Watches `prefix` ("" = the whole account); returns the function that stops watching. */
  add(prefix: string, listener: ChangeListener): () => void {
    let set = this.#byPrefix.get(prefix);
    if (!set) this.#byPrefix.set(prefix, (set = new Set()));
    // A wrapper, so that subscribing one function twice gives two independent subscriptions.
    const entry: ChangeListener = (change) => listener(change);
    set.add(entry);
    return () => {
      const current = this.#byPrefix.get(prefix);
      if (!current?.delete(entry)) return;
      if (current.size === 0) this.#byPrefix.delete(prefix);
    };
  }

  emit(change: CacheChange): void {
    if (this.#byPrefix.size === 0) return;
    if (change.kind === 'reset') {
      for (const set of this.#byPrefix.values()) this.#call(set, change);
      return;
    }
    let q = change.pathLower;
    for (;;) {
      const set = this.#byPrefix.get(q);
      if (set) this.#call(set, change);
      if (q === '') break;
      q = q.slice(0, q.lastIndexOf('/'));
    }
    if (change.kind === 'delete') {
      for (const [prefix, set] of this.#byPrefix) if (prefix !== change.pathLower && within(prefix, change.pathLower)) this.#call(set, change);
    }
  }

  #call(set: Set<ChangeListener>, change: CacheChange): void {
    for (const listener of [...set]) {
      try {
        listener(change);
      } catch (err) {
        this.#onError(err);
      }
    }
  }
}
