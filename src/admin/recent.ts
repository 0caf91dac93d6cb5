// Bounded memories of what just happened, for the status page: the last errors (failed transfers,
// listener errors, worker crashes), the last finished transfers and the last commit batch sizes.
// Main thread. Invariants: each ring holds at most its capacity (oldest dropped first); nothing
// here holds a password, a token or file contents — error entries carry a registry code and the
// text an FTP client would see, never an internal message (which may name server paths).

export interface ErrorSeen {
  atMs: number;
  kind: string;
  user: string | null;
  client: string | null;
  path: string | null;
  code: string;
  message: string;
}

export interface TransferDone {
  atMs: number;
  user: string | null;
  path: string;
  direction: 'download' | 'upload';
  bytes: number;
  durationMs: number;
  /** 'ok' or the registry code of the failure. */
  result: string;
}

export class Ring<T> {
  readonly #items: T[] = [];
  readonly capacity: number;
  #pushed = 0;

  constructor(capacity: number) {
    this.capacity = capacity;
  }

  push(item: T): void {
    this.#items.push(item);
    this.#pushed++;
    if (this.#items.length > this.capacity) this.#items.shift();
  }

  /** Newest first. */
  newestFirst(): T[] {
    return this.#items.slice().reverse();
  }

  /** Items pushed since the start: changes whenever the contents do (a reader's cache key). */
  get pushed(): number {
    return this.#pushed;
  }

  get size(): number {
    return this.#items.length;
  }
}

export class RecentActivity {
  readonly errors = new Ring<ErrorSeen>(20);
  readonly transfers = new Ring<TransferDone>(20);
  readonly commitBatches = new Ring<number>(20);
}
