// A pool of rings, so that a transfer takes a ring that is already allocated instead of a new
// SharedArrayBuffer each time. Runs on the thread that hands rings out (the main thread).
// Invariants: a ring is released only when neither side will touch it again; a released ring gets
// a fresh header and a new generation before it is handed out again; idle bytes stay ≤ maxIdleBytes.

import { ringByteLength } from './layout.ts';
import { initRing, ringCapacity } from './ring.ts';
import type { RingHandle } from './ring.ts';

export interface RingPoolOptions {
  /** Bytes of released rings kept for reuse; beyond it they are dropped to the GC (default 64 MiB). */
  maxIdleBytes?: number;
}

export class RingPool {
  private readonly free = new Map<number, RingHandle[]>();
  private readonly generations = new WeakMap<SharedArrayBuffer, number>();
  private idleBytes = 0;
  private readonly maxIdleBytes: number;
  /** Rings handed out and not yet released. */
  inUse = 0;
  /** Rings ever allocated (a reused ring does not count again). */
  allocated = 0;

  constructor(options: RingPoolOptions = {}) {
    this.maxIdleBytes = options.maxIdleBytes ?? 64 * 1024 * 1024;
  }

  /** A ring with a fresh header and exactly `capacity` bytes (a power of two). */
  acquire(capacity: number): RingHandle {
    const list = this.free.get(capacity);
    let handle = list?.pop();
    if (handle) {
      this.idleBytes -= ringByteLength(capacity);
    } else {
      handle = { sab: new SharedArrayBuffer(ringByteLength(capacity)), byteOffset: 0 };
      this.allocated++;
    }
    const generation = ((this.generations.get(handle.sab) ?? 0) + 1) | 0;
    this.generations.set(handle.sab, generation);
    initRing(handle.sab, handle.byteOffset, capacity, generation);
    this.inUse++;
    return handle;
  }

  /** Gives a ring back; both of its sides must be finished with it. */
  release(handle: RingHandle): void {
    this.inUse--;
    const capacity = ringCapacity(handle);
    const bytes = ringByteLength(capacity);
    if (this.idleBytes + bytes > this.maxIdleBytes) return;
    let list = this.free.get(capacity);
    if (!list) this.free.set(capacity, (list = []));
    list.push(handle);
    this.idleBytes += bytes;
  }

  /** Bytes held by released rings waiting for reuse. */
  idle(): number {
    return this.idleBytes;
  }

  /**
   * Drops idle rings (to the GC) until at most `keepBytes` of them remain; returns the bytes
   * dropped. A dropped ring is never handed out again.
   */
  trim(keepBytes = 0): number {
    let dropped = 0;
    for (const [capacity, list] of this.free) {
      const bytes = ringByteLength(capacity);
      while (list.length > 0 && this.idleBytes > keepBytes) {
        list.pop();
        this.idleBytes -= bytes;
        dropped += bytes;
      }
      if (list.length === 0) this.free.delete(capacity);
    }
    return dropped;
  }

  /** Drops every idle ring. */
  clear(): void {
    this.trim(0);
  }
}
