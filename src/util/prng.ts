// The project's one seeded pseudo-random generator (mulberry32): the local box's probabilistic
// faults, the reliability suites and the load generator draw from it, so that a seed replays a run.
// Any thread; pure. Not for anything secret (use node:crypto).

/** mulberry32: a 32-bit state, uniform floats in [0, 1); the same seed gives the same sequence. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
