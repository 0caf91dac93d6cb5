// The global memory budget: ring sizes for new transfers and how much of its unacknowledged bytes an
// upload may retain in memory, derived from the number of transfers alive, with floors. Main thread.
// Invariants: admitted transfers' floors (ring + one retention piece for uploads) always fit in the
// budget — beyond that, opens are refused with DROPFTP_ERR_OVERLOADED; rings shrink for newcomers as
// the count grows, sized from what is left so that early rings leave room for later floors; the
// retention share (read by workers from the control block, recomputed on every open and close)
// divides what the rings leave among the uploads, capped by engine.appendMemoryBytes (beyond it an
// upload spools to disk). Ring memory counts while it is held: by a live transfer or idle in the
// engine's ring pool (pooledRingBytes), whose memory is still mapped until the pool lets it go.

import { ENGINE_DEFAULTS } from './options.ts';
import { G } from './shared-layout.ts';

/** Floors small enough that 2,000 transfers (half uploads) fit a 64 MiB budget: 2000 x 16 + 1000 x 16 KiB. */
export const MIN_RING_BYTES = 16 * 1024;
/** Enough for a download to stream at full speed (lent to its socket in views of half a ring). */
export const MAX_RING_BYTES = 256 * 1024;
/**
 * An upload's ring may be twice that: its data socket reads straight into the ring's free span
 * (socket-reader.ts) and its worker sends the ring's bytes on in pieces of what it finds there, so
 * a larger ring means fewer, larger reads, pauses and wake-ups on both threads; uploads retain their
 * unacknowledged bytes outside the ring. Alternating pairs of the cold storm of 200 x 10 MiB, dropftp
 * alone (the larger rings first in each pair): in the first ten the gateway took 2.31-2.83 against
 * 2.48-3.03 CPU-s/GiB (lower in nine), the main thread 0.51-0.64 against 0.53-0.68, 424-482 against
 * 393-462 MB/s, fairness within RETR 0.953-0.993 against 0.928-0.978; five more an hour later, when
 * the machine was slower (identical builds then differed by up to 0.56 CPU-s/GiB): 2.55-3.36
 * against 2.83-3.36, lower in two, higher in two. Download rings of 512 KiB too lowered fairness
 * within RETR (0.898-0.947 against 0.952-0.966, three pairs: the RETRs the pacer admits first run
 * further ahead); upload rings of 1 MiB gained nothing over 512 KiB. Only where the budget holds ~1,000 rings of that size
 * (a 512 MiB budget, the default): in a smaller one the first uploads' larger rings would take the
 * room later transfers' floors need (a 64 MiB budget admits exactly 2,000 transfers at once).
 */
export const MAX_UPLOAD_RING_BYTES = 512 * 1024;
/** The smallest retention share: one piece of 16 KiB. */
export const MIN_CHUNK_BYTES = 16 * 1024;

export function floorPow2(n: number): number {
  return n < 1 ? 1 : 2 ** Math.floor(Math.log2(n));
}

export class MemoryBudget {
  ringBytesInUse = 0;
  /**
   * Bytes of released rings the engine's pool keeps for reuse. They are still resident (and a ring
   * the pool drops is freed only when every thread's GC has let go of it), so they count as held:
   * the uploads' share does not grow into memory that is not free. Set by setPooledRingBytes().
   */
  pooledRingBytes = 0;
  downloads = 0;
  uploads = 0;
  /** The largest ring an upload gets: MAX_UPLOAD_RING_BYTES in a budget of 512 MiB or more. */
  readonly maxUploadRingBytes: number;

  constructor(
    readonly budgetBytes: number,
    private readonly words: Int32Array,
    /** engine.appendMemoryBytes: no upload retains more than this in memory. */
    private readonly appendMemoryBytes = ENGINE_DEFAULTS.appendMemoryBytes,
  ) {
    this.maxUploadRingBytes = Math.min(MAX_UPLOAD_RING_BYTES, Math.max(MAX_RING_BYTES, floorPow2(budgetBytes / 1024)));
    Atomics.store(this.words, G.BUDGET_KIB, Math.min(0x7fffffff, Math.floor(budgetBytes / 1024)));
    this.publishShare();
  }

  /** Ring bytes for a new transfer, or null when even the floors would not fit. */
  admit(kind: 'download' | 'upload'): number | null {
    const transfers = this.downloads + this.uploads + 1;
    const uploads = this.uploads + (kind === 'upload' ? 1 : 0);
    // A quarter of what is left per transfer once the floors of four times as many transfers are set
    // aside: the first transfers of a storm cannot take the room the later ones' floors need.
    const held = this.ringBytesInUse + this.pooledRingBytes;
    const free = this.budgetBytes - held - 4 * transfers * (MIN_RING_BYTES + MIN_CHUNK_BYTES);
    const most = kind === 'upload' ? this.maxUploadRingBytes : MAX_RING_BYTES;
    const ring = Math.min(most, Math.max(MIN_RING_BYTES, floorPow2(free / (4 * transfers))));
    // Null also when only the pooled rings are in the way: the engine then empties its pool and asks again.
    const floors = held + ring + uploads * MIN_CHUNK_BYTES;
    if (floors > this.budgetBytes) return null;
    this.ringBytesInUse += ring;
    if (kind === 'upload') this.uploads++;
    else this.downloads++;
    Atomics.store(this.words, G.RING_BYTES, ring);
    this.publishShare();
    return ring;
  }

  /** A transfer ended; its ring went to the engine's pool, which now keeps `pooledRingBytes`. */
  release(kind: 'download' | 'upload', ringBytes: number, pooledRingBytes = this.pooledRingBytes): void {
    this.ringBytesInUse -= ringBytes;
    this.pooledRingBytes = pooledRingBytes;
    if (kind === 'upload') this.uploads--;
    else this.downloads--;
    this.publishShare();
  }

  /** The engine's ring pool now keeps `bytes` of idle rings (after each acquire, release or trim). */
  setPooledRingBytes(bytes: number): void {
    if (bytes === this.pooledRingBytes) return;
    this.pooledRingBytes = bytes;
    this.publishShare();
  }

  /** Bytes of upload retention buffers allocated by workers right now. */
  chunkBytesInUse(): number {
    return Atomics.load(this.words, G.CHUNK_KIB_IN_USE) * 1024;
  }

  /** What each upload may retain in memory now. */
  uploadMemoryBytes(): number {
    return Atomics.load(this.words, G.UPLOAD_MEMORY_BYTES);
  }

  private publishShare(): void {
    const spare = Math.max(0, this.budgetBytes - this.ringBytesInUse - this.pooledRingBytes);
    const share = Math.min(this.appendMemoryBytes, Math.max(MIN_CHUNK_BYTES, floorPow2(spare / Math.max(1, this.uploads))));
    Atomics.store(this.words, G.UPLOAD_MEMORY_BYTES, share);
    Atomics.store(this.words, G.UPLOADS_ALIVE, this.uploads);
    // What the workers weigh their idle buffers against (thread-context.ts mayKeepIdle): every ring byte held.
    Atomics.store(this.words, G.RING_KIB_IN_USE, Math.ceil((this.ringBytesInUse + this.pooledRingBytes) / 1024));
  }
}
