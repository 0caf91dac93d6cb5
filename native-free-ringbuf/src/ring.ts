// The single-producer/single-consumer byte ring: RingWriter (producer side) and RingReader
// (consumer side) over one SharedArrayBuffer region laid out in layout.ts.
// Runs on any thread, one side per thread. Invariants: the writer stores only producer words and
// the reader only consumer words; data is copied before the position that publishes it is stored
// with Atomics.store; write/read/peek/peekAt/commit/consume never throw and never allocate (but for
// one 64 KiB staging buffer per thread, made at the first copy that needs it); a side belongs to the
// generation it attached to: once a pool hands the ring out again, a stale side is inert (writes and
// reads move nothing, its aborts and ends touch nothing, its waits return 'closed').

import { HEADER_BYTES, MAGIC, STATE, W, isValidCapacity, ringByteLength } from './layout.ts';
import type { SideState } from './layout.ts';
import { DEFAULT_FALLBACK_MS, waitBell } from './wait.ts';

/**
 * Copies into or out of shared memory. V8's own copy (TypedArray.prototype.set) treats shared memory
 * with relaxed atomics: whole words only when source and destination are aligned alike (their
 * addresses equal mod 8), single bytes otherwise: 3.5 GB/s against 22 for 64 KiB pieces (a
 * microbenchmark on the 2-core machine). Stream positions rarely line up with where a socket's
 * buffer starts (an HTTP header before the body, a read of odd length). Where Node's Buffer is there,
 * a copy goes through Buffer.prototype.fill with a buffer value, which Node does as one memcpy in C++
 * whatever the alignment or the memory (10-11 GB/s for 16-64 KiB pieces into a 4 MiB shared ring,
 * aligned or not, against 8.6-8.9 for V8's aligned copy and 6.2-8.7 for the staging below; in a
 * storm of 200 the relaxed copy was a tenth of the gateway's main-thread samples). Elsewhere, a
 * misaligned copy is staged through a plain buffer placed to match the shared side: a plain-to-plain
 * copy (a memmove, any alignment) plus an aligned one. One staging buffer per thread, made at its
 * first use. Visibility is the ring's: a plain copy before the Atomics.store that publishes it.
 */
const STAGE_BYTES = 64 * 1024;
const STAGE_MIN_BYTES = 1024;
let stage: Uint8Array | null = null;

type FillFn = (this: Uint8Array, value: Uint8Array, offset: number, end: number) => unknown;
const NODE_FILL: FillFn | undefined = (globalThis as { Buffer?: { prototype: { fill: FillFn } } }).Buffer?.prototype.fill;
let nodeFill = NODE_FILL;

/** Whether copies use Node's Buffer (the default where it is there); off, the portable path (tests). */
export function useNodeCopy(on: boolean): void {
  nodeFill = on ? NODE_FILL : undefined;
}

function copyBytes(dst: Uint8Array, dstAt: number, src: Uint8Array, srcAt: number, n: number): void {
  if (n >= STAGE_MIN_BYTES && nodeFill) {
    nodeFill.call(dst, src.subarray(srcAt, srcAt + n), dstAt, dstAt + n);
    return;
  }
  if (n < STAGE_MIN_BYTES || ((dst.byteOffset + dstAt - (src.byteOffset + srcAt)) & 7) === 0) {
    dst.set(src.subarray(srcAt, srcAt + n), dstAt);
    return;
  }
  const buf = (stage ??= new Uint8Array(STAGE_BYTES + 8));
  // The staged piece starts where the shared side's address lines up with it (words both ways).
  const shared = dst.buffer instanceof SharedArrayBuffer ? dst.byteOffset + dstAt : src.byteOffset + srcAt;
  const at = (shared - buf.byteOffset) & 7;
  for (let done = 0; done < n; ) {
    const k = Math.min(n - done, STAGE_BYTES);
    buf.set(src.subarray(srcAt + done, srcAt + done + k), at);
    dst.set(buf.subarray(at, at + k), dstAt + done);
    done += k;
  }
}

/** What is posted to another thread to attach to a ring: structured clone shares the buffer. */
export interface RingHandle {
  readonly sab: SharedArrayBuffer;
  readonly byteOffset: number;
}

/** Outcome of a wait: the condition holds; either side closed; or the caller's timeout passed. */
export type WaitResult = 'ready' | 'closed' | 'timeout';

/** Allocates a ring of `capacity` bytes (a power of two) in a new SharedArrayBuffer. */
export function createRing(capacity: number): RingHandle {
  const sab = new SharedArrayBuffer(ringByteLength(capacity));
  initRing(sab, 0, capacity);
  return { sab, byteOffset: 0 };
}

/** Writes a fresh header for a ring at `byteOffset` of `sab` (both sides must be detached). */
export function initRing(sab: SharedArrayBuffer, byteOffset: number, capacity: number, generation = 0): void {
  if (!isValidCapacity(capacity)) {
    throw new RangeError(`ring capacity must be a power of two between 16 B and 1 GiB, got ${capacity}`);
  }
  if (byteOffset % 64 !== 0) throw new RangeError(`ring byteOffset must be a multiple of 64, got ${byteOffset}`);
  if (byteOffset + ringByteLength(capacity) > sab.byteLength) {
    throw new RangeError(`ring of ${capacity} B at ${byteOffset} does not fit in ${sab.byteLength} B`);
  }
  const words = new Int32Array(sab, byteOffset, HEADER_BYTES / 4);
  words.fill(0);
  Atomics.store(words, W.CAPACITY, capacity);
  Atomics.store(words, W.GENERATION, generation);
  Atomics.store(words, W.MAGIC, MAGIC);
}

/** Capacity of an initialised ring (throws on a region that holds no ring). */
export function ringCapacity(handle: RingHandle): number {
  const words = new Int32Array(handle.sab, handle.byteOffset, HEADER_BYTES / 4);
  if (Atomics.load(words, W.MAGIC) !== MAGIC) throw new TypeError('no ring at this offset (bad magic)');
  return Atomics.load(words, W.CAPACITY);
}

abstract class RingSide {
  /** The data region; exposed for zero-copy peek/reserve users. */
  readonly storage: Uint8Array;
  readonly capacity: number;
  protected readonly words: Int32Array;
  protected readonly mask: number;
  /** The generation this side attached to. */
  protected readonly attachedGeneration: number;
  fallbackMs = DEFAULT_FALLBACK_MS;

  constructor(handle: RingHandle) {
    const capacity = ringCapacity(handle);
    this.capacity = capacity;
    this.mask = capacity - 1;
    this.words = new Int32Array(handle.sab, handle.byteOffset, HEADER_BYTES / 4);
    this.storage = new Uint8Array(handle.sab, handle.byteOffset + HEADER_BYTES, capacity);
    this.attachedGeneration = Atomics.load(this.words, W.GENERATION);
  }

  /** True once the ring was re-initialised for another transfer: this side must not touch it. */
  stale(): boolean {
    return Atomics.load(this.words, W.GENERATION) !== this.attachedGeneration;
  }

  /** Bytes published by the producer and not yet consumed. */
  readable(): number {
    return (Atomics.load(this.words, W.WRITE_POS) - Atomics.load(this.words, W.READ_POS)) >>> 0;
  }

  /** Bytes the producer may write now. */
  writable(): number {
    return this.capacity - this.readable();
  }

  producerState(): SideState {
    return Atomics.load(this.words, W.PRODUCER_STATE) as SideState;
  }

  consumerState(): SideState {
    return Atomics.load(this.words, W.CONSUMER_STATE) as SideState;
  }

  /** Error code left by the producer's abort (0 if none). */
  producerError(): number {
    return Atomics.load(this.words, W.PRODUCER_ERROR);
  }

  /** Error code left by the consumer's abort (0 if none). */
  consumerError(): number {
    return Atomics.load(this.words, W.CONSUMER_ERROR);
  }

  generation(): number {
    return Atomics.load(this.words, W.GENERATION);
  }
}

/** The producer's side. Exactly one thread may hold a RingWriter for a ring at a time. */
export class RingWriter extends RingSide {
  /** Copies up to `length` bytes of `src` from `offset`; returns the bytes accepted (0 when full or closed). */
  write(src: Uint8Array, offset = 0, length = src.length - offset): number {
    const words = this.words;
    if (this.stale()) return 0;
    if (Atomics.load(words, W.PRODUCER_STATE) !== STATE.OPEN) return 0;
    if (Atomics.load(words, W.CONSUMER_STATE) !== STATE.OPEN) return 0;
    const writePos = Atomics.load(words, W.WRITE_POS);
    const free = this.capacity - ((writePos - Atomics.load(words, W.READ_POS)) >>> 0);
    const n = length < free ? length : free;
    if (n <= 0) return 0;
    const start = writePos & this.mask;
    const first = this.capacity - start;
    if (n <= first) {
      copyBytes(this.storage, start, src, offset, n);
    } else {
      copyBytes(this.storage, start, src, offset, first);
      copyBytes(this.storage, 0, src, offset + first, n - first);
    }
    this.publish((writePos + n) | 0);
    return n;
  }

  /**
   * Zero-copy: the length of the contiguous free span at `reserveIndex()` in `storage`.
   * Fill `storage[reserveIndex() .. + n)` and call commit(n).
   */
  reserve(): number {
    const words = this.words;
    if (this.stale()) return 0;
    if (Atomics.load(words, W.PRODUCER_STATE) !== STATE.OPEN) return 0;
    if (Atomics.load(words, W.CONSUMER_STATE) !== STATE.OPEN) return 0;
    const writePos = Atomics.load(words, W.WRITE_POS);
    const free = this.capacity - ((writePos - Atomics.load(words, W.READ_POS)) >>> 0);
    const untilEnd = this.capacity - (writePos & this.mask);
    return free < untilEnd ? free : untilEnd;
  }

  reserveIndex(): number {
    return Atomics.load(this.words, W.WRITE_POS) & this.mask;
  }

  /** Publishes `n` bytes written in place after reserve(); n larger than reserve() is clamped. */
  commit(n: number): number {
    const max = this.reserve();
    const count = n < max ? n : max;
    if (count <= 0) return 0;
    this.publish((Atomics.load(this.words, W.WRITE_POS) + count) | 0);
    return count;
  }

  /** No more data: the consumer reads what is left, then sees the end. Idempotent. */
  end(): void {
    if (this.stale() || Atomics.load(this.words, W.PRODUCER_STATE) !== STATE.OPEN) return;
    Atomics.store(this.words, W.PRODUCER_STATE, STATE.ENDED);
    this.ringConsumer(true);
  }

  /** The producer gives up; `code` (non-zero) tells the consumer why. Unread data is dropped. */
  abort(code = 1): void {
    if (this.stale() || Atomics.load(this.words, W.PRODUCER_STATE) === STATE.ABORTED) return;
    Atomics.store(this.words, W.PRODUCER_ERROR, code | 0 || 1);
    Atomics.store(this.words, W.PRODUCER_STATE, STATE.ABORTED);
    this.ringConsumer(true);
  }

  /** True once the consumer aborted: nothing written from now on will be read. */
  consumerGone(): boolean {
    return this.stale() || Atomics.load(this.words, W.CONSUMER_STATE) !== STATE.OPEN;
  }

  /** Resolves 'ready' once at least `minBytes` (clamped to capacity) may be written, 'closed' if either side closed. */
  async waitWritable(minBytes = 1, timeoutMs = Infinity): Promise<WaitResult> {
    const want = Math.min(Math.max(1, minBytes), this.capacity);
    const words = this.words;
    const deadline = timeoutMs === Infinity ? Infinity : Date.now() + timeoutMs;
    for (;;) {
      if (this.stale()) return 'closed'; // the header (waiting flag included) belongs to the next transfer
      // The amount waited for, so that the consumer rings only once it is there (layout.ts).
      Atomics.store(words, W.PRODUCER_WAITING, want);
      const bell = Atomics.load(words, W.PRODUCER_BELL);
      if (this.consumerGone() || Atomics.load(words, W.PRODUCER_STATE) !== STATE.OPEN) {
        Atomics.store(words, W.PRODUCER_WAITING, 0);
        return 'closed';
      }
      if (this.writable() >= want) {
        Atomics.store(words, W.PRODUCER_WAITING, 0);
        return 'ready';
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        Atomics.store(words, W.PRODUCER_WAITING, 0);
        return 'timeout';
      }
      await waitBell(words, W.PRODUCER_BELL, bell, Math.min(this.fallbackMs, left));
    }
  }

  private publish(writePos: number): void {
    Atomics.store(this.words, W.WRITE_POS, writePos);
    this.ringConsumer();
  }

  /**
   * Bumps the consumer's bell; wakes a waiting consumer on a state change, or once the bytes it
   * waits for are readable (a wake-up per publish would cost a cross-thread notify each).
   */
  private ringConsumer(stateChanged = false): void {
    Atomics.add(this.words, W.CONSUMER_BELL, 1);
    const want = Atomics.load(this.words, W.CONSUMER_WAITING);
    if (want !== 0 && (stateChanged || this.readable() >= want)) Atomics.notify(this.words, W.CONSUMER_BELL);
  }
}

/** The consumer's side. Exactly one thread may hold a RingReader for a ring at a time. */
export class RingReader extends RingSide {
  /** Copies up to `length` bytes into `dst` at `offset`; returns the bytes copied (0 when empty). */
  read(dst: Uint8Array, offset = 0, length = dst.length - offset): number {
    const words = this.words;
    if (this.stale()) return 0;
    if (Atomics.load(words, W.CONSUMER_STATE) !== STATE.OPEN) return 0;
    const readPos = Atomics.load(words, W.READ_POS);
    const available = (Atomics.load(words, W.WRITE_POS) - readPos) >>> 0;
    const n = length < available ? length : available;
    if (n <= 0) return 0;
    const start = readPos & this.mask;
    const first = this.capacity - start;
    if (n <= first) {
      copyBytes(dst, offset, this.storage, start, n);
    } else {
      copyBytes(dst, offset, this.storage, start, first);
      copyBytes(dst, offset + first, this.storage, 0, n - first);
    }
    this.release((readPos + n) | 0);
    return n;
  }

  /** Zero-copy: the length of the contiguous readable span at `peekIndex()` in `storage`. */
  peek(): number {
    const words = this.words;
    if (this.stale()) return 0;
    if (Atomics.load(words, W.CONSUMER_STATE) !== STATE.OPEN) return 0;
    const readPos = Atomics.load(words, W.READ_POS);
    const available = (Atomics.load(words, W.WRITE_POS) - readPos) >>> 0;
    const untilEnd = this.capacity - (readPos & this.mask);
    return available < untilEnd ? available : untilEnd;
  }

  peekIndex(): number {
    return Atomics.load(this.words, W.READ_POS) & this.mask;
  }

  /**
   * Zero-copy lookahead for a consumer that lends views out before it consumes them (a socket
   * write still reading ring memory): the length of the contiguous readable span that starts
   * `skip` bytes past the read position, at `peekIndexAt(skip)` in `storage`; 0 when `skip` is
   * outside [0, readable()). Bytes before it stay the consumer's until consume() releases them, in
   * order; the producer cannot overwrite them meanwhile.
   */
  peekAt(skip: number): number {
    const words = this.words;
    if (this.stale()) return 0;
    if (Atomics.load(words, W.CONSUMER_STATE) !== STATE.OPEN) return 0;
    const readPos = Atomics.load(words, W.READ_POS);
    const available = (Atomics.load(words, W.WRITE_POS) - readPos) >>> 0;
    if (!(skip >= 0 && skip < available)) return 0;
    const from = (readPos + skip) & this.mask;
    const untilEnd = this.capacity - from;
    const left = available - skip;
    return left < untilEnd ? left : untilEnd;
  }

  peekIndexAt(skip: number): number {
    return (Atomics.load(this.words, W.READ_POS) + skip) & this.mask;
  }

  /** Releases `n` bytes seen through peek(); n larger than peek() is clamped. */
  consume(n: number): number {
    const max = this.peek();
    const count = n < max ? n : max;
    if (count <= 0) return 0;
    this.release((Atomics.load(this.words, W.READ_POS) + count) | 0);
    return count;
  }

  /** True when the producer ended cleanly and every byte has been read. */
  isEnded(): boolean {
    return !this.stale() && Atomics.load(this.words, W.PRODUCER_STATE) === STATE.ENDED && this.readable() === 0;
  }

  /** True when the producer aborted. */
  producerAborted(): boolean {
    return this.stale() || Atomics.load(this.words, W.PRODUCER_STATE) === STATE.ABORTED;
  }

  /** The consumer gives up; `code` (non-zero) tells the producer why. Idempotent. */
  abort(code = 1): void {
    if (this.stale() || Atomics.load(this.words, W.CONSUMER_STATE) === STATE.ABORTED) return;
    Atomics.store(this.words, W.CONSUMER_ERROR, code | 0 || 1);
    Atomics.store(this.words, W.CONSUMER_STATE, STATE.ABORTED);
    this.ringProducer(true);
  }

  /**
   * Resolves 'ready' once at least `minBytes` (clamped to capacity) are readable, or the producer
   * ended (check isEnded()); 'closed' if the producer aborted or this side aborted. `minBytes` may
   * be a function, read at each check: a consumer that lends views (peekAt) and consumes them while
   * it waits keeps one wait whose target follows its consumes, rather than starting another (waits
   * left behind would hold the waiting flag's place and end only by their fallback timer).
   */
  async waitReadable(minBytes: number | (() => number) = 1, timeoutMs = Infinity): Promise<WaitResult> {
    const words = this.words;
    const deadline = timeoutMs === Infinity ? Infinity : Date.now() + timeoutMs;
    for (;;) {
      if (this.stale()) return 'closed'; // the header (waiting flag included) belongs to the next transfer
      const want = Math.min(Math.max(1, typeof minBytes === 'function' ? minBytes() : minBytes), this.capacity);
      Atomics.store(words, W.CONSUMER_WAITING, want);
      const bell = Atomics.load(words, W.CONSUMER_BELL);
      const producer = Atomics.load(words, W.PRODUCER_STATE);
      if (producer === STATE.ABORTED || Atomics.load(words, W.CONSUMER_STATE) !== STATE.OPEN) {
        Atomics.store(words, W.CONSUMER_WAITING, 0);
        return 'closed';
      }
      if (this.readable() >= want || producer === STATE.ENDED) {
        Atomics.store(words, W.CONSUMER_WAITING, 0);
        return 'ready';
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        Atomics.store(words, W.CONSUMER_WAITING, 0);
        return 'timeout';
      }
      await waitBell(words, W.CONSUMER_BELL, bell, Math.min(this.fallbackMs, left));
    }
  }

  private release(readPos: number): void {
    Atomics.store(this.words, W.READ_POS, readPos);
    this.ringProducer();
  }

  /** Bumps the producer's bell; wakes a waiting producer on a state change or once its room is free. */
  private ringProducer(stateChanged = false): void {
    Atomics.add(this.words, W.PRODUCER_BELL, 1);
    const want = Atomics.load(this.words, W.PRODUCER_WAITING);
    if (want !== 0 && (stateChanged || this.writable() >= want)) Atomics.notify(this.words, W.PRODUCER_BELL);
  }
}
