// Reusable I/O buffers of the local box, by size, for downloads' reads (block-reader.ts). Runs in the
// local box child's main thread.
// Invariants: a buffer is in the free list or lent, never both; at most MAX_FREE_BYTES sit free, and
// none after IDLE_TRIM_MS without a take() (an idle box gives the memory back). Why pool: a fresh
// ArrayBuffer per chunk is V8 external memory, and chunks that outlive two scavenges (queued behind
// a slow socket) are freed only by a full mark-compact.

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

/** Gives back a buffer from takeBuffer() (or a view of it) once no I/O uses its bytes any more. */
export function giveBuffer(buf: Buffer): void {
  const ab = buf.buffer as ArrayBuffer;
  if (freeBytes + ab.byteLength > MAX_FREE_BYTES) return;
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
