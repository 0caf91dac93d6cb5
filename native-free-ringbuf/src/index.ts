// native-free-ringbuf: a lock-free SPSC byte ring over a SharedArrayBuffer, in pure TypeScript.
// Public surface only; see layout.ts for the shared-memory layout and README.md for usage.

export { HEADER_BYTES, MAX_CAPACITY, MIN_CAPACITY, STATE, isValidCapacity, ringByteLength } from './layout.ts';
export type { SideState } from './layout.ts';
export { RingReader, RingWriter, createRing, initRing, ringCapacity } from './ring.ts';
export type { RingHandle, WaitResult } from './ring.ts';
export { RingPool } from './pool.ts';
export type { RingPoolOptions } from './pool.ts';
export { DEFAULT_FALLBACK_MS, pendingWaits, waitBell, waitWord } from './wait.ts';
