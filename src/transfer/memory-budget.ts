// The global memory budget: ring sizes for new transfers and the append-chunk size, derived from
// the number of transfers alive, with floors. Main thread. Invariants: admitted transfers' floors
// (ring + one chunk for uploads) always fit in the budget — beyond that, opens are refused with
// DROPFTP_ERR_OVERLOADED; rings shrink for newcomers as the count grows; append buffers exist only
// while an upload holds a request permit, so the chunk size (read by workers from the control block,
// recomputed on every open and close) divides the spare budget among at most that many appends.

import { G } from './shared-layout.ts';

export const MIN_RING_BYTES = 64 * 1024;
/** Enough to stream at full speed; uploads gather their appends in a separate buffer per permit. */
export const MAX_RING_BYTES = 256 * 1024;
export const MIN_CHUNK_BYTES = 64 * 1024;
/** One 4 MiB block: larger appends would not be faster, and this keeps appends block-aligned. */
export const MAX_CHUNK_BYTES = 4 * 1024 * 1024;

export function floorPow2(n: number): number {
  return n < 1 ? 1 : 2 ** Math.floor(Math.log2(n));
}

export class MemoryBudget {
  ringBytesInUse = 0;
  downloads = 0;
  uploads = 0;
  /** Most appends that can run at once: the sum of the accounts' request budgets. */
  private appendSlots = 16;

  constructor(
    readonly budgetBytes: number,
    private readonly words: Int32Array,
  ) {
    this.publishChunk();
  }

  /** Ring bytes for a new transfer, or null when even the floors would not fit. */
  admit(kind: 'download' | 'upload'): number | null {
    const transfers = this.downloads + this.uploads + 1;
    const uploads = this.uploads + (kind === 'upload' ? 1 : 0);
    const share = this.budgetBytes / transfers;
    const ring = Math.min(MAX_RING_BYTES, Math.max(MIN_RING_BYTES, floorPow2(share / 4)));
    const floors = this.ringBytesInUse + ring + uploads * MIN_CHUNK_BYTES;
    if (floors > this.budgetBytes) return null;
    this.ringBytesInUse += ring;
    if (kind === 'upload') this.uploads++;
    else this.downloads++;
    Atomics.store(this.words, G.RING_BYTES, ring);
    this.publishChunk();
    return ring;
  }

  release(kind: 'download' | 'upload', ringBytes: number): void {
    this.ringBytesInUse -= ringBytes;
    if (kind === 'upload') this.uploads--;
    else this.downloads--;
    this.publishChunk();
  }

  /** Sets the number of requests that may run at once over all accounts. */
  setAppendSlots(slots: number): void {
    this.appendSlots = Math.max(1, slots);
    this.publishChunk();
  }

  /** Bytes of append buffers allocated by workers right now. */
  chunkBytesInUse(): number {
    return Atomics.load(this.words, G.CHUNK_KIB_IN_USE) * 1024;
  }

  chunkBytes(): number {
    return Atomics.load(this.words, G.UPLOAD_CHUNK_BYTES);
  }

  private publishChunk(): void {
    const spare = Math.max(0, this.budgetBytes - this.ringBytesInUse);
    const chunk = Math.min(MAX_CHUNK_BYTES, Math.max(MIN_CHUNK_BYTES, floorPow2(spare / Math.max(1, Math.min(this.uploads, this.appendSlots)))));
    Atomics.store(this.words, G.UPLOAD_CHUNK_BYTES, chunk);
  }
}
