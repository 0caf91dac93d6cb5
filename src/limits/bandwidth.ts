// Per-user bandwidth caps: one TokenBucket per (user, direction), shared by every session and
// transfer of that user, created on first use. Main thread. Invariants: a user without a cap gets
// null (no pacing, no cost); the same user and direction always get the same bucket until close().

import { resolveLimits, type BandwidthCap, type LimitsOptions, type ResolvedLimits } from './options.ts';
import { TokenBucket } from './token-bucket.ts';

export type Direction = 'download' | 'upload';

/** The rate a bucket gets when its cap is lifted while sessions still hold it: no pacing in practice. */
const UNCAPPED_BYTES_PER_SEC = 2 ** 40;

export class BandwidthLimits {
  limits: ResolvedLimits;
  readonly #buckets = new Map<string, TokenBucket>();

  constructor(options: LimitsOptions = {}) {
    this.limits = resolveLimits(options);
  }

  /**
   * New caps (SIGHUP): buckets already handed out follow the new rate at once (a lifted cap
   * becomes a rate too high to matter); sessions that logged in uncapped stay uncapped until they
   * log in again. Throws on bad options, leaving the old caps in force.
   */
  reconfigure(options: LimitsOptions): void {
    this.limits = resolveLimits(options);
    for (const [key, bucket] of this.#buckets) {
      const [direction, user] = key.split('\0') as [Direction, string];
      const cap = this.capOf(user);
      const rate = direction === 'download' ? cap.downloadBytesPerSec : cap.uploadBytesPerSec;
      bucket.setRate(rate ?? UNCAPPED_BYTES_PER_SEC);
    }
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
