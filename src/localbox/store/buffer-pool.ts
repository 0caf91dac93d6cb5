// Reusable I/O buffers of the local box, by size, for downloads' reads (block-reader.ts). Runs in the
// local box child's main thread.
// Invariants: a buffer is in the free list or lent, never both; at most MAX_FREE_BYTES sit free, and
// none after IDLE_TRIM_MS without a take() (an idle box gives the memory back); a buffer the pool
// lets go has its memory freed at once (release-memory.ts). Why pool: a fresh ArrayBuffer per chunk
// is V8 external memory, and chunks that outlive two scavenges (queued behind a slow socket) are freed
// only by a full mark-compact.
// Why make room: the read size follows the number of downloads (block-reader.ts), so the free lists
// fill with the size of one moment. A buffer of the size now read, given back to full lists, pushes
// out buffers of other sizes; before, it was dropped, and a storm of 200 that began with 1 MiB reads
// went on with 64 MiB of idle 1 MiB buffers and a fresh 256 KiB allocation for every read (3,394
// misses, no hit), about one scavenge per 32 MiB served and a mark-compact every few of them.

import { releaseMemory } from '../../util/release-memory.ts';

const MAX_FREE_BYTES = 64 * 1024 * 1024;
const IDLE_TRIM_MS = 10_000;

const free = new Map<number, ArrayBuffer[]>();
let freeBytes = 0;
let takenSinceTrim = false;
let trimTimer: NodeJS.Timeout | null = null;

function trim(): void {
  if (takenSinceTrim) {
    takenSinceTrim = false;
    return;
  }
  for (const list of free.values()) for (const ab of list) releaseMemory(new Uint8Array(ab));
  free.clear();
  freeBytes = 0;
  clearInterval(trimTimer!);
  trimTimer = null;
}

/** A buffer of exactly `byteLength` bytes (contents undefined), its own whole ArrayBuffer. */
export function takeBuffer(byteLength: number): Buffer {
  takenSinceTrim = true;
  const ab = free.get(byteLength)?.pop();
  if (ab) {
    freeBytes -= byteLength;
    return Buffer.from(ab);
  }
  return Buffer.allocUnsafeSlow(byteLength);
}

/** Frees free buffers of sizes other than `size` until one more of `size` fits; says whether it does. */
function makeRoom(size: number): boolean {
  for (const [other, list] of free) {
    if (freeBytes + size <= MAX_FREE_BYTES) break;
    if (other === size) continue;
    while (list.length > 0 && freeBytes + size > MAX_FREE_BYTES) {
      releaseMemory(new Uint8Array(list.pop()!));
      freeBytes -= other;
    }
    if (list.length === 0) free.delete(other);
  }
  return freeBytes + size <= MAX_FREE_BYTES;
}

/** Gives back a buffer from takeBuffer() (or a view of it) once no I/O uses its bytes any more. */
export function giveBuffer(buf: Buffer): void {
  const ab = buf.buffer as ArrayBuffer;
  if (!makeRoom(ab.byteLength)) {
    releaseMemory(new Uint8Array(ab));
    return;
  }
  let list = free.get(ab.byteLength);
  if (!list) free.set(ab.byteLength, (list = []));
  list.push(ab);
  freeBytes += ab.byteLength;
  if (!trimTimer) {
    trimTimer = setInterval(trim, IDLE_TRIM_MS);
    trimTimer.unref();
  }
}

/** Bytes sitting in the free lists (tests). */
export function pooledFreeBytes(): number {
  return freeBytes;
}
