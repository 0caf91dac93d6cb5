// Per-user bandwidth caps: one TokenBucket per (user, direction), shared by every session and
// transfer of that user, created on first use. Main thread. Invariants: a user without a cap gets
// null (no pacing, no cost); the same user and direction always get the same bucket until close().

import { resolveLimits, type BandwidthCap, type LimitsOptions, type ResolvedLimits } from './options.ts';
import { TokenBucket } from './token-bucket.ts';

export type Direction = 'download' | 'upload';

export class BandwidthLimits {
  readonly limits: ResolvedLimits;
  readonly #buckets = new Map<string, TokenBucket>();

  constructor(options: LimitsOptions = {}) {
    this.limits = resolveLimits(options);
  }

  /** The cap that applies to a user (its own entry, else the default). */
  capOf(user: string): BandwidthCap {
    return this.limits.userBandwidth[user] ?? this.limits.bandwidth;
  }

  /** The user's shared bucket for one direction, or null when uncapped. */
  bucket(user: string, direction: Direction): TokenBucket | null {
    const cap = this.capOf(user);
    const bytesPerSec = direction === 'download' ? cap.downloadBytesPerSec : cap.uploadBytesPerSec;
    if (bytesPerSec === undefined) return null;
    const key = `${direction}\0${user}`;
    let bucket = this.#buckets.get(key);
    if (!bucket) {
      bucket = new TokenBucket({ bytesPerSec });
      this.#buckets.set(key, bucket);
    }
    return bucket;
  }

  close(): void {
    for (const bucket of this.#buckets.values()) bucket.close();
    this.#buckets.clear();
  }
}
