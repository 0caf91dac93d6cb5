// One account's current access token in shared memory: every transfer, on any thread, sends the newest
// one, and a thread whose request got 401 asks the main thread for a fresh one without a message.
// Written by the main thread only (a seqlock), read by every thread. Invariants: SEQ is even while the
// token is stable and odd while main rewrites it; readers retry until they see the same even SEQ
// before and after copying; WANTED and FAILED hold SEQ values, never a token.
//
//  word  writer   meaning
//   0 SEQ     main     +1 before and +1 after each rewrite (so +2 per token); notified after a rewrite
//   1 LENGTH  main     UTF-8 bytes of the token
//   2 WANTED  threads  the SEQ of a token a thread found expired (main refreshes when WANTED == SEQ)
//   3 FAILED  main     the SEQ whose refresh failed (threads waiting on it give up); notified on SEQ
//   bytes 16.. main    the token

import { waitWord } from 'native-free-ringbuf';
import { G } from './shared-layout.ts';

export const TOKEN_MAX_BYTES = 8192;
const HEADER_BYTES = 16;
const T = { SEQ: 0, LENGTH: 1, WANTED: 2, FAILED: 3 } as const;

export function createTokenCell(): SharedArrayBuffer {
  return new SharedArrayBuffer(HEADER_BYTES + TOKEN_MAX_BYTES);
}

/** Main thread: publishes `token` and wakes threads waiting for a fresh one. */
export function writeToken(cell: SharedArrayBuffer, token: string): void {
  const bytes = Buffer.from(token, 'utf8');
  if (bytes.length > TOKEN_MAX_BYTES) throw new RangeError(`access token longer than ${TOKEN_MAX_BYTES} bytes`);
  const words = new Int32Array(cell, 0, 4);
  Atomics.add(words, T.SEQ, 1);
  new Uint8Array(cell, HEADER_BYTES, bytes.length).set(bytes);
  Atomics.store(words, T.LENGTH, bytes.length);
  Atomics.add(words, T.SEQ, 1);
  Atomics.notify(words, T.SEQ);
}

const decoded = new WeakMap<SharedArrayBuffer, { seq: number; token: string }>();

/** Any thread: the current token and its SEQ (decoded once per SEQ and thread). */
export function readToken(cell: SharedArrayBuffer): { token: string; seq: number } {
  const words = new Int32Array(cell, 0, 4);
  for (;;) {
    const seq = Atomics.load(words, T.SEQ);
    const cached = decoded.get(cell);
    if (cached && cached.seq === seq) return cached;
    if (seq & 1) continue; // main is rewriting it (a few bytes: spin)
    const length = Atomics.load(words, T.LENGTH);
    const token = Buffer.from(new Uint8Array(cell, HEADER_BYTES, length)).toString('utf8');
    if (Atomics.load(words, T.SEQ) !== seq) continue;
    const entry = { seq, token };
    decoded.set(cell, entry);
    return entry;
  }
}

/** Main thread: is a fresh token wanted for the current one? Returns the stale token's SEQ, or -1. */
export function wantedSeq(cell: SharedArrayBuffer): number {
  const words = new Int32Array(cell, 0, 4);
  const seq = Atomics.load(words, T.SEQ);
  return Atomics.load(words, T.WANTED) === seq && Atomics.load(words, T.FAILED) !== seq ? seq : -1;
}

/** Main thread: the refresh of token `seq` failed; threads waiting for it give up. */
export function failRefresh(cell: SharedArrayBuffer, seq: number): void {
  const words = new Int32Array(cell, 0, 4);
  Atomics.store(words, T.FAILED, seq);
  Atomics.notify(words, T.SEQ);
}

/**
 * Any thread: token `seq` was refused with 401; asks main (REFRESH_BELL of the control block) for a
 * fresh one and waits until SEQ moves past it. 'failed' when main could not refresh it.
 */
export async function awaitFreshToken(cell: SharedArrayBuffer, control: Int32Array, seq: number, timeoutMs = 30_000): Promise<'fresh' | 'failed'> {
  const words = new Int32Array(cell, 0, 4);
  Atomics.store(words, T.WANTED, seq);
  Atomics.add(control, G.REFRESH_BELL, 1);
  Atomics.notify(control, G.REFRESH_BELL);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const now = Atomics.load(words, T.SEQ);
    if (now !== seq && (now & 1) === 0) return 'fresh';
    if (Atomics.load(words, T.FAILED) === seq) return 'failed';
    const left = deadline - Date.now();
    if (left <= 0) return 'failed';
    await waitWord(words, T.SEQ, now, Math.min(1000, left));
  }
}
