// scrypt password hashes for FTP users: hashing, verification, and a short-lived cache of verified
// logins. Main thread (scrypt itself runs on the libuv pool: never blocks the event loop).
// Invariants: hashes are "scrypt$N$r$p$salt$hash" (base64); comparison is constant-time; the cache
// keys are HMACs under a per-process random key (no password is kept), so thousands of logins of
// one user cost one scrypt, and a changed hash invalidates its entries.

import { createHmac, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';

const N = 16384;
const R = 8;
const P = 1;
const KEY_BYTES = 32;

function scryptAsync(password: string, salt: Buffer, n: number, r: number, p: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(password, salt, KEY_BYTES, { N: n, r, p, maxmem: 256 * n * r + 1024 * 1024 }, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await scryptAsync(password, salt, N, R, P);
  return `scrypt$${N}$${R}$${P}$${salt.toString('base64')}$${key.toString('base64')}`;
}

export async function verifyPassword(password: string, encoded: string): Promise<boolean> {
  const parts = encoded.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const [n, r, p] = parts.slice(1, 4).map(Number) as [number, number, number];
  if (![n, r, p].every((v) => Number.isInteger(v) && v > 0) || n > 1 << 20) return false;
  const salt = Buffer.from(parts[4]!, 'base64');
  const expected = Buffer.from(parts[5]!, 'base64');
  const key = await scryptAsync(password, salt, n, r, p);
  return key.length === expected.length && timingSafeEqual(key, expected);
}

/** Caches successful verifications for ttlMs; concurrent checks of one login share one scrypt. */
export class LoginCache {
  readonly #key = randomBytes(32);
  readonly #verified = new Map<string, number>();
  readonly #inflight = new Map<string, Promise<boolean>>();
  readonly ttlMs: number;

  constructor(ttlMs = 600_000) {
    this.ttlMs = ttlMs;
  }

  verify(user: string, password: string, encoded: string): Promise<boolean> {
    const id = createHmac('sha256', this.#key).update(`${user}\0${encoded}\0${password}`).digest('base64');
    const until = this.#verified.get(id);
    if (until !== undefined && until > Date.now()) return Promise.resolve(true);
    const running = this.#inflight.get(id);
    if (running) return running;
    const check = verifyPassword(password, encoded)
      .then((ok) => {
        if (ok) {
          if (this.#verified.size > 100_000) this.#verified.clear();
          this.#verified.set(id, Date.now() + this.ttlMs);
        }
        return ok;
      })
      .finally(() => this.#inflight.delete(id));
    this.#inflight.set(id, check);
    return check;
  }
}
