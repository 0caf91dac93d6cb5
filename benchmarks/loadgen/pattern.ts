// Payload of the load generator: a fixed pseudo-random pattern that every session streams from its
// own offset, so uploads differ (no block dedup) yet cost no copy. Runs in each load generator process.
// Invariant: a slice is a view of one shared buffer (zero-copy); session i's byte k is
// PATTERN[(offsetOf(i) + k) mod PERIOD], the same in every process.

/** Period of the pattern: not a multiple of 4 MiB, so 4 MiB blocks of different offsets differ. */
export const PERIOD_BYTES = 4 * 1024 * 1024 + 4093;

let doubled: Buffer | null = null;

function pattern(): Buffer {
  if (doubled) return doubled;
  const once = Buffer.alloc(PERIOD_BYTES);
  let x = 0x2545f491;
  for (let o = 0; o + 4 <= PERIOD_BYTES; o += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    once.writeUInt32LE(x >>> 0, o);
  }
  // Twice over, so any window of up to PERIOD_BYTES is one contiguous view.
  doubled = Buffer.concat([once, once]);
  return doubled;
}

export function offsetOf(sessionId: number): number {
  return Number((BigInt(sessionId + 1) * 2654435761n) % BigInt(PERIOD_BYTES));
}

/** Bytes [position, position + length) of session `sessionId`'s stream; length ≤ PERIOD_BYTES. */
export function slice(sessionId: number, position: number, length: number): Buffer {
  const start = (offsetOf(sessionId) + position) % PERIOD_BYTES;
  return pattern().subarray(start, start + length);
}

/**
 * Where the load generator's downloads land: every data connection of the process reads into this
 * one buffer (net's `onread`), counts the bytes and lets the next read overwrite them; nothing is
 * allocated per read. Why: with a fresh buffer per read (Node's default), a storm's downloads at a
 * GB/s kept the load generator busy with page faults and garbage collection (17.7 % of the machine's
 * samples in pyftpdlib's storm of 200), CPU taken from the server it measured on a 2-core machine.
 */
export const READ_SINK = Buffer.allocUnsafe(256 * 1024);
