// Every offset of the ring's shared memory lives in this file, and nowhere else.
// Runs on both sides (any thread). Invariant: each Int32 word below has exactly one writer.
//
//   byte   Int32 word   name               written by   meaning
//   ------ ------------ ------------------ ------------ -------------------------------------------
//     0      0          MAGIC              creator      0x52494e47 ("RING") once the header is set
//     4      1          CAPACITY           creator      data bytes, a power of two
//     8      2          GENERATION         creator      bumped each time a pool hands the ring out
//    64     16          WRITE_POS          producer     bytes ever written, mod 2^32 (free-running)
//    68     17          PRODUCER_STATE     producer     OPEN | ENDED | ABORTED
//    72     18          PRODUCER_ERROR     producer     error code when ABORTED (0 = none)
//    76     19          CONSUMER_BELL      producer     bumped after every publish/state change;
//                                                       the consumer waits on it (waitAsync)
//    80     20          PRODUCER_WAITING   producer     while the producer waits: the free bytes it
//                                                       waits for (the consumer rings only then); 0 else
//   128     32          READ_POS           consumer     bytes ever read, mod 2^32 (free-running)
//   132     33          CONSUMER_STATE     consumer     OPEN | ABORTED (consumer has gone)
//   136     34          CONSUMER_ERROR     consumer     error code when ABORTED (0 = none)
//   140     35          PRODUCER_BELL      consumer     bumped after every consume/state change;
//                                                       the producer waits on it (waitAsync)
//   144     36          CONSUMER_WAITING   consumer     while the consumer waits: the readable bytes
//                                                       it waits for (the producer rings only then); 0 else
//   192     --          DATA               both         CAPACITY bytes; producer fills
//                                                       [READ_POS..WRITE_POS) is the consumer's
//
// The producer's words and the consumer's words sit on separate 64-byte cache lines so that the
// two threads do not false-share. Positions are free-running 32-bit counters: with a power-of-two
// capacity, `(write - read) >>> 0` is the number of bytes in the ring even across the 2^32 wrap,
// and no slot is wasted to tell full from empty.

export const MAGIC = 0x52494e47;

export const W = {
  MAGIC: 0,
  CAPACITY: 1,
  GENERATION: 2,
  WRITE_POS: 16,
  PRODUCER_STATE: 17,
  PRODUCER_ERROR: 18,
  CONSUMER_BELL: 19,
  PRODUCER_WAITING: 20,
  READ_POS: 32,
  CONSUMER_STATE: 33,
  CONSUMER_ERROR: 34,
  PRODUCER_BELL: 35,
  CONSUMER_WAITING: 36,
} as const;

export const HEADER_BYTES = 192;
export const HEADER_WORDS = HEADER_BYTES / 4;

export const STATE = {
  OPEN: 0,
  ENDED: 1,
  ABORTED: 2,
} as const;
export type SideState = (typeof STATE)[keyof typeof STATE];

export const MIN_CAPACITY = 16;
export const MAX_CAPACITY = 1 << 30;

/** Bytes of shared memory one ring of `capacity` data bytes occupies (header + data). */
export function ringByteLength(capacity: number): number {
  return HEADER_BYTES + capacity;
}

export function isValidCapacity(capacity: number): boolean {
  return (
    Number.isInteger(capacity) &&
    capacity >= MIN_CAPACITY &&
    capacity <= MAX_CAPACITY &&
    (capacity & (capacity - 1)) === 0
  );
}
