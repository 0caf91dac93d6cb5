// The memory of one thread's retention and scratch buffers (thread-context.ts takeChunk/giveChunk):
// slots carved from large ArrayBuffers (slabs), one slot size per slab, instead of one allocation per
// buffer. Runs on each thread that runs tasks; one instance per thread, never shared.
//
// Why: a buffer of 256 KiB or more is its own mmap under bin/with-tuned-malloc (its pages fault in
// one by one, zeroed, and are unmapped with a TLB shootdown at its free), and a smaller one comes
// from a per-thread malloc arena that fragments and never shrinks. A slab is one mapping, on huge
// pages where glibc.malloc.hugetlb is set (a fault per 2 MiB), handed back whole once no slot of it
// is in use.
//
// Invariants: a slot is either free-and-touched (`free`), never handed out (index >= `fresh`), in use
// or lost (dropped while something else may still read it: never handed out again); `used` counts
// in-use slots; a slab with no slot in use is either kept whole as idle memory or let go: at once
// (its ArrayBuffer detached, src/util/release-memory.ts) when none of its slots is lost, else by the
// GC once the last view of it, a lost slot's included, is gone.
//
// Why at once: a worker thread allocates little on its V8 heap, so its GC seldom runs, and a slab
// left to it stays resident. After a storm of 2,000 x 16 MiB the workers held 594 MiB of external
// memory with 1 MiB of slots in use and 65 MiB kept idle; the gateway's RSS stayed at 1,180 MiB.

import { releaseMemory } from '../src/util/release-memory.ts';

/**
 * Most bytes of one slab (a slot larger than this gets a slab of its own). A slot size's first slab
 * is MIN_SLAB_BYTES and each new one as large as all its live ones together, so a thread that uses
 * little holds little (a slab's length counts in full as V8 external memory, touched or not).
 */
export const SLAB_BYTES = 32 * 1024 * 1024;
export const MIN_SLAB_BYTES = 2 * 1024 * 1024;
/** The smallest slot: smaller requests get a slot of this size. */
export const MIN_SLOT_BYTES = 16 * 1024;

/** The slot size that serves a request of `bytes`: a power of two, at least MIN_SLOT_BYTES. */
export function slotBytesFor(bytes: number): number {
  let size = MIN_SLOT_BYTES;
  while (size < bytes) size *= 2;
  return size;
}

class Slab {
  readonly slots: number;
  /** Slots [fresh, slots) were never handed out. */
  fresh = 0;
  /** Slots handed out before and free now (their memory is touched). */
  readonly free: number[] = [];
  used = 0;
  lost = 0;

  constructor(
    readonly memory: ArrayBuffer,
    readonly slotBytes: number,
  ) {
    this.slots = Math.floor(memory.byteLength / slotBytes);
  }

  /** Bytes of this slab that were touched and are not in use. */
  idleBytes(): number {
    return this.free.length * this.slotBytes;
  }
}

export interface TakenChunk {
  readonly buf: Buffer;
  /** Bytes the slot occupies (what the buffer costs, charged to the memory budget). */
  readonly slotBytes: number;
  /** The slot's memory was never touched before (a first touch faults it in). */
  readonly fresh: boolean;
}

export class ChunkSlabs {
  /** Live slabs by slot size, oldest first. */
  private readonly bySize = new Map<number, Slab[]>();
  private readonly owners = new WeakMap<ArrayBuffer, Slab>();
  /** Bytes of touched slots not in use, in live slabs (memory the thread holds idle). */
  idleBytes = 0;
  /** Bytes of live slabs (virtual; only touched pages are resident). */
  slabBytes = 0;

  constructor(
    private readonly maxSlabBytes = SLAB_BYTES,
    private readonly minSlabBytes = Math.min(MIN_SLAB_BYTES, maxSlabBytes),
  ) {}

  /** A buffer of exactly `bytes` in a slot of slotBytesFor(bytes); a touched free slot first. */
  take(bytes: number): TakenChunk {
    const slotBytes = slotBytesFor(bytes);
    let list = this.bySize.get(slotBytes);
    if (!list) this.bySize.set(slotBytes, (list = []));
    // The oldest slab with a free touched slot, so that newer slabs empty out and can go.
    let slab = list.find((s) => s.free.length > 0);
    let index: number;
    let fresh = false;
    if (slab) {
      index = slab.free.pop()!;
      this.idleBytes -= slotBytes;
    } else {
      slab = list.find((s) => s.fresh < s.slots);
      if (!slab) {
        const live = list.reduce((sum, s) => sum + s.memory.byteLength, 0);
        const memory = new ArrayBuffer(Math.max(slotBytes, Math.min(this.maxSlabBytes, Math.max(this.minSlabBytes, live))));
        slab = new Slab(memory, slotBytes);
        this.owners.set(memory, slab);
        list.push(slab);
        this.slabBytes += memory.byteLength;
      }
      index = slab.fresh++;
      fresh = true;
    }
    slab.used++;
    return { buf: Buffer.from(slab.memory, index * slotBytes, bytes), slotBytes, fresh };
  }

  /** Whether take(bytes) would hand out a touched slot (no first touch). */
  hasIdle(bytes: number): boolean {
    return this.bySize.get(slotBytesFor(bytes))?.some((s) => s.free.length > 0) ?? false;
  }

  /**
   * Takes a slot back. `reuse` false: something may still read it, so it is never handed out again
   * (lost). Returns the slot's bytes (0 for a buffer that is not from this pool) and whether its slab
   * is now wholly unused (the caller decides, with trimEmpty, whether it stays).
   */
  give(buf: Buffer, reuse: boolean): { slotBytes: number; emptied: boolean } {
    const slab = this.owners.get(buf.buffer as ArrayBuffer);
    if (!slab) return { slotBytes: 0, emptied: false };
    const index = Math.floor(buf.byteOffset / slab.slotBytes);
    slab.used--;
    if (reuse) {
      slab.free.push(index);
      this.idleBytes += slab.slotBytes;
    } else slab.lost++;
    return { slotBytes: slab.slotBytes, emptied: slab.used === 0 };
  }

  /**
   * Lets go of slabs with no slot in use, except those `keep` accepts (asked with this pool's
   * idleBytes up to date); a slab with a lost slot always goes. A slab with no lost slot is freed at
   * once: every view of it, a free slot's buffer included, reads as empty afterwards. `onDrop` gets
   * the idle bytes of each slab let go, as it goes. Returns their sum.
   */
  trimEmpty(keep: () => boolean = () => false, onDrop: (idleBytes: number) => void = () => {}): number {
    let dropped = 0;
    for (const [size, list] of this.bySize) {
      for (let i = list.length - 1; i >= 0; i--) {
        const slab = list[i]!;
        if (slab.used > 0) continue;
        const idle = slab.idleBytes();
        if (slab.lost === 0 && keep()) continue;
        list.splice(i, 1);
        this.owners.delete(slab.memory);
        this.slabBytes -= slab.memory.byteLength;
        this.idleBytes -= idle;
        if (slab.lost === 0) releaseMemory(new Uint8Array(slab.memory));
        dropped += idle;
        onDrop(idle);
      }
      if (list.length === 0) this.bySize.delete(size);
    }
    return dropped;
  }
}
