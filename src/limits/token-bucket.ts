// A token bucket that paces bytes: `take(n)` resolves once n bytes may pass; `throttle()` is the
// same as a Transform stream. One bucket is shared by all transfers of one user and direction.
// Main thread. Invariants: waiters are served round robin in quanta of `quantumBytes`, so two
// transfers of one user get equal shares whatever their chunk sizes; the rate is never exceeded
// beyond `burstBytes`; a timer exists only while someone waits (an idle bucket keeps nothing alive);
// an aborted take leaves the queue at once and consumes nothing more.

import { Transform, type TransformCallback } from 'node:stream';
import { DropftpError } from '../errors.ts';

export interface TokenBucketOptions {
  bytesPerSec: number;
  /** Bytes that may pass at once after idling (default: a tenth of a second's worth, ≥ quantum). */
  burstBytes?: number;
  /** Grant size when several transfers wait (default 16 KiB). */
  quantumBytes?: number;
}

interface Waiter {
  remaining: number;
  resolve: () => void;
  reject: (err: Error) => void;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | null;
}

export class TokenBucket {
  bytesPerSec: number;
  burstBytes: number;
  readonly quantumBytes: number;
  #tokens: number;
  #lastRefillMs = performance.now();
  #queue: Waiter[] = [];
  #timer: NodeJS.Timeout | null = null;
  #closed = false;

  constructor(options: TokenBucketOptions) {
    if (!(options.bytesPerSec > 0 && Number.isFinite(options.bytesPerSec))) throw new RangeError('TokenBucket: bytesPerSec must be a positive number');
    this.bytesPerSec = options.bytesPerSec;
    this.quantumBytes = Math.max(1, Math.floor(options.quantumBytes ?? 16 * 1024));
    this.burstBytes = Math.max(this.quantumBytes, Math.floor(options.burstBytes ?? this.bytesPerSec / 10));
    this.#tokens = this.burstBytes;
  }

  /** Changes the rate (and a burst that was derived from it) for everyone using this bucket. */
  setRate(bytesPerSec: number, burstBytes?: number): void {
    if (!(bytesPerSec > 0 && Number.isFinite(bytesPerSec))) throw new RangeError('TokenBucket: bytesPerSec must be a positive number');
    this.#refill();
    this.bytesPerSec = bytesPerSec;
    this.burstBytes = Math.max(this.quantumBytes, Math.floor(burstBytes ?? bytesPerSec / 10));
    this.#tokens = Math.min(this.#tokens, this.burstBytes);
    if (this.#timer) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
    if (this.#queue.length > 0) this.#pump();
  }

  /** Transfers waiting right now. */
  get waiting(): number {
    return this.#queue.length;
  }

  /** Resolves when `byteLength` bytes may pass; rejects with the signal's reason if aborted first. */
  take(byteLength: number, signal?: AbortSignal): Promise<void> {
    if (this.#closed) return Promise.reject(new DropftpError('DROPFTP_ERR_SHUTTING_DOWN', 'TokenBucket closed'));
    if (signal?.aborted) return Promise.reject(signal.reason as Error);
    if (byteLength <= 0) return Promise.resolve();
    this.#refill();
    // Fast path: nobody waits and the bucket holds enough.
    if (this.#queue.length === 0 && this.#tokens >= byteLength) {
      this.#tokens -= byteLength;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = { remaining: byteLength, resolve, reject, signal, onAbort: null };
      if (signal) {
        waiter.onAbort = () => {
          this.#remove(waiter);
          reject(signal.reason as Error);
        };
        signal.addEventListener('abort', waiter.onAbort, { once: true });
      }
      this.#queue.push(waiter);
      this.#pump();
    });
  }

  /** A Transform that lets each chunk through once the bucket allows its bytes. */
  throttle(): Transform {
    const abort = new AbortController();
    const take = (n: number) => this.take(n, abort.signal);
    return new Transform({
      transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback) {
        take(chunk.length).then(
          () => callback(null, chunk),
          (err: Error) => callback(err),
        );
      },
      destroy(err: Error | null, callback: (error: Error | null) => void) {
        abort.abort(err ?? new DropftpError('DROPFTP_ERR_ABORTED', 'throttle destroyed'));
        callback(err);
      },
    });
  }

  /** Rejects every waiter and refuses further takes. */
  close(): void {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    const queue = this.#queue;
    this.#queue = [];
    for (const w of queue) {
      this.#detach(w);
      w.reject(new DropftpError('DROPFTP_ERR_SHUTTING_DOWN', 'TokenBucket closed'));
    }
  }

  #refill(): void {
    const now = performance.now();
    this.#tokens = Math.min(this.burstBytes, this.#tokens + ((now - this.#lastRefillMs) * this.bytesPerSec) / 1000);
    this.#lastRefillMs = now;
  }

  #pump(): void {
    if (this.#timer) return; // a wake-up is already due
    this.#refill();
    while (this.#queue.length > 0) {
      const head = this.#queue[0]!;
      const grant = Math.min(head.remaining, this.quantumBytes);
      if (this.#tokens < grant) {
        const waitMs = Math.max(1, Math.ceil(((grant - this.#tokens) * 1000) / this.bytesPerSec));
        this.#timer = setTimeout(() => {
          this.#timer = null;
          this.#pump();
        }, waitMs);
        return;
      }
      this.#tokens -= grant;
      head.remaining -= grant;
      this.#queue.shift();
      if (head.remaining > 0) this.#queue.push(head); // round robin: back of the line
      else {
        this.#detach(head);
        head.resolve();
      }
    }
  }

  #remove(waiter: Waiter): void {
    const i = this.#queue.indexOf(waiter);
    if (i >= 0) this.#queue.splice(i, 1);
    this.#detach(waiter);
    if (this.#queue.length === 0 && this.#timer) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
  }

  #detach(waiter: Waiter): void {
    if (waiter.signal && waiter.onAbort) waiter.signal.removeEventListener('abort', waiter.onAbort);
    waiter.onAbort = null;
  }
}
