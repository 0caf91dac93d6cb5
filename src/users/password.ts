// scrypt password hashes for FTP users: hashing, verification, and a bounded cache of recently
// verified logins. Called on the main thread; the scrypt work itself runs off it, on libuv's thread
// pool (crypto.scrypt's async form; UV_THREADPOOL_SIZE threads, which bin/ sets from the CPU count),
// through one process-wide ScryptGate that bounds how many run and their memory (128·N·r each, 16 MiB
// for our hashes) whatever the pool size. Invariants: hashes are "scrypt$N$r$p$salt$hash" (base64);
// comparison is constant-time; cache keys are HMACs of user, hash and password under a per-process
// random key (no password is kept), so a wrong password never matches a cached entry, a changed
// hash invalidates its entries, and thousands of logins of one user cost one scrypt; the cache
// holds at most maxEntries (least recently used dropped first) for at most ttlMs each.

import { createHmac, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { ScryptGate, threadPoolSize } from './scrypt-gate.ts';

const N = 16384;
const R = 8;
const P = 1;
const KEY_BYTES = 32;
const MAX_P = 16;
const MAX_SCRYPT_BYTES = 64 * 1024 * 1024;
/** scrypt memory of all concurrent checks together: 16 of our 16 MiB hashes (a login storm's cap). */
const SCRYPT_BUDGET_BYTES = 256 * 1024 * 1024;

/** Process-wide: the pool and the memory are the process's. One pool thread stays for fs and DNS. */
export const scryptGate = new ScryptGate({ maxBytes: SCRYPT_BUDGET_BYTES, maxRunning: Math.max(1, threadPoolSize() - 1) });

function scryptAsync(password: string, salt: Buffer, n: number, r: number, p: number): Promise<Buffer> {
  return scryptGate.run(128 * n * r, () => new Promise((resolve, reject) => {
    scrypt(password, salt, KEY_BYTES, { N: n, r, p, maxmem: 256 * n * r + 1024 * 1024 }, (err, key) => (err ? reject(err) : resolve(key)));
  }));
}

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await scryptAsync(password, salt, N, R, P);
  return `scrypt$${N}$${R}$${P}$${salt.toString('base64')}$${key.toString('base64')}`;
}

/** Why a stored hash can never verify (malformed, or beyond the cost bounds); null when usable. */
export function passwordHashProblem(encoded: string): string | null {
  const parts = encoded.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return 'not of the form scrypt$N$r$p$salt$hash';
  const [n, r, p] = parts.slice(1, 4).map(Number) as [number, number, number];
  if (![n, r, p].every((v) => Number.isInteger(v) && v > 0)) return 'N, r and p must be positive integers';
  // scrypt's own rule (Node throws at the first login otherwise, and every login failed unexplained).
  if (n < 2 || (n & (n - 1)) !== 0) return 'N must be a power of two, at least 2';
  if (!parts[4] || !parts[5]) return 'the salt and the hash must not be empty';
  // Bounded cost: p is the number of passes (a users-file p of 5,000 held a libuv pool thread for
  // minutes per login) and 128·N·r the memory of each (N=2^20, r=64 asked for 8 GiB).
  if (n > 1 << 20 || p > MAX_P || 128 * n * r > MAX_SCRYPT_BYTES) return `N ≤ 2^20, p ≤ ${MAX_P} and 128·N·r ≤ ${MAX_SCRYPT_BYTES / 1024 / 1024} MiB`;
  return null;
}

export async function verifyPassword(password: string, encoded: string): Promise<boolean> {
  if (passwordHashProblem(encoded) !== null) return false;
  const parts = encoded.split('$');
  const [n, r, p] = parts.slice(1, 4).map(Number) as [number, number, number];
  const salt = Buffer.from(parts[4]!, 'base64');
  const expected = Buffer.from(parts[5]!, 'base64');
  const key = await scryptAsync(password, salt, n, r, p);
  return key.length === expected.length && timingSafeEqual(key, expected);
}

/** Caches successful verifications for ttlMs; concurrent checks of one login share one scrypt. */
export class LoginCache {
  readonly #key = randomBytes(32);
  /** HMAC → expiry; Map order is recency (a hit re-inserts), so the first key is the LRU one. */
  readonly #verified = new Map<string, number>();
  readonly #inflight = new Map<string, Promise<boolean>>();
  readonly ttlMs: number;
  readonly maxEntries: number;
  hits = 0;
  misses = 0;

  constructor(ttlMs = 600_000, maxEntries = 10_000) {
    this.ttlMs = ttlMs;
    this.maxEntries = maxEntries;
  }

  get size(): number {
    return this.#verified.size;
  }

  verify(user: string, password: string, encoded: string): Promise<boolean> {
    const id = createHmac('sha256', this.#key).update(`${user}\0${encoded}\0${password}`).digest('base64');
    const until = this.#verified.get(id);
    if (until !== undefined) {
      this.#verified.delete(id);
      if (until > Date.now()) {
        this.#verified.set(id, until);
        this.hits++;
        return Promise.resolve(true);
      }
    }
    const running = this.#inflight.get(id);
    if (running) return running;
    this.misses++;
    const check = verifyPassword(password, encoded)
      .then((ok) => {
        if (ok) {
          while (this.#verified.size >= this.maxEntries) this.#verified.delete(this.#verified.keys().next().value!);
          this.#verified.set(id, Date.now() + this.ttlMs);
        }
        return ok;
      })
      .finally(() => this.#inflight.delete(id));
    this.#inflight.set(id, check);
    return check;
  }
}
