// Dropbox's own limits, off unless asked for: a per-account call-rate limit (token bucket of `rate`
// calls/s holding up to `burst`; every authenticated call takes a token, refused ones too) and a
// per-namespace write lock held `holdMs` by each state-changing call. Runs in the local box child.
// Invariants: a refused call always gets a whole-second retry_after >= 1 after which its retry is
// admitted (if nothing else spent the tokens); the debt refused calls run up is bounded (one burst),
// so no setting refuses an account for ever; a lock is always released, whatever its holder does;
// calls that arrive inside a Retry-After window this limiter announced are counted (benchmarks).

import { badRequestRaw } from './api-errors.ts';

export interface RateLimit {
  rate: number; // calls per second, per account
  burst: number; // calls an idle account may make at once
}

export interface WriteLock {
  holdMs: number; // how long each state-changing call holds its namespace's lock
}

export interface LimitsSpec {
  rateLimit: RateLimit | null;
  writeLock: WriteLock | null;
}

export const NO_LIMITS: LimitsSpec = Object.freeze({ rateLimit: null, writeLock: null });
export const DEFAULT_HOLD_MS = 50;
const MAX_RATE = 1_000_000;
const MAX_BURST = 1_000_000;
const MAX_HOLD_MS = 60_000;

/** "RATE[:BURST]" (e.g. "12", "12:20", "0.5:1") → RateLimit; throws an Error naming neither option nor source. */
export function parseRateLimit(text: string): RateLimit {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(?::\s*(\d+)\s*)?$/.exec(text);
  if (!m) throw new Error(`expected RATE[:BURST] (calls per second, e.g. "12" or "12:20"), got ${JSON.stringify(text)}`);
  return checkRateLimit({ rate: Number(m[1]), burst: m[2] === undefined ? defaultBurst(Number(m[1])) : Number(m[2]) });
}

/** "[HOLD_MS]" ("" or "on": the default hold) → WriteLock. */
export function parseWriteLock(text: string): WriteLock {
  const t = text.trim();
  if (t === '' || t === 'on' || t === 'true') return { holdMs: DEFAULT_HOLD_MS };
  if (!/^\d+$/.test(t)) throw new Error(`expected a hold time in milliseconds 0..${MAX_HOLD_MS}, got ${JSON.stringify(text)}`);
  return checkWriteLock({ holdMs: Number(t) });
}

const defaultBurst = (rate: number): number => Math.max(1, Math.ceil(rate));

function checkRateLimit(r: RateLimit): RateLimit {
  if (!(Number.isFinite(r.rate) && r.rate >= 0.001 && r.rate <= MAX_RATE)) throw new Error(`rate must be a number of calls per second in 0.001..${MAX_RATE}, got ${r.rate}`);
  if (!(Number.isInteger(r.burst) && r.burst >= 1 && r.burst <= MAX_BURST)) throw new Error(`burst must be an integer 1..${MAX_BURST}, got ${r.burst}`);
  return { rate: r.rate, burst: r.burst };
}

function checkWriteLock(w: WriteLock): WriteLock {
  if (!(Number.isInteger(w.holdMs) && w.holdMs >= 0 && w.holdMs <= MAX_HOLD_MS)) throw new Error(`holdMs must be an integer 0..${MAX_HOLD_MS}, got ${w.holdMs}`);
  return { holdMs: w.holdMs };
}

/**
 * Validates a spec from JSON (admin body, child config): a missing key keeps `base`'s value, null
 * turns it off, `rateLimit` takes { rate, burst? } or "RATE[:BURST]", `writeLock` { holdMs? },
 * true, or a number of ms. Throws an Error whose message names the field.
 */
export function resolveLimits(input: unknown, base: LimitsSpec = NO_LIMITS): LimitsSpec {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) throw new Error('limits must be a JSON object');
  const o = input as Record<string, unknown>;
  for (const k of Object.keys(o)) if (k !== 'rateLimit' && k !== 'writeLock') throw new Error(`unknown limits field "${k}" (rateLimit, writeLock)`);
  const named = <T>(field: string, fn: () => T): T => {
    try {
      return fn();
    } catch (err) {
      throw new Error(`${field}: ${(err as Error).message}`);
    }
  };
  let { rateLimit, writeLock } = base;
  if ('rateLimit' in o) {
    rateLimit = named('rateLimit', () => {
      const v = o.rateLimit;
      if (v === null || v === false) return null;
      if (typeof v === 'string') return parseRateLimit(v);
      if (typeof v === 'number') return checkRateLimit({ rate: v, burst: defaultBurst(v) });
      if (typeof v !== 'object' || Array.isArray(v)) throw new Error('expected { rate, burst }, "RATE[:BURST]" or null');
      const r = v as Record<string, unknown>;
      if (typeof r.rate !== 'number') throw new Error('rate must be a number');
      if (r.burst !== undefined && typeof r.burst !== 'number') throw new Error('burst must be a number');
      return checkRateLimit({ rate: r.rate, burst: (r.burst as number | undefined) ?? defaultBurst(r.rate) });
    });
  }
  if ('writeLock' in o) {
    writeLock = named('writeLock', () => {
      const v = o.writeLock;
      if (v === null || v === false) return null;
      if (v === true) return { holdMs: DEFAULT_HOLD_MS };
      if (typeof v === 'number') return checkWriteLock({ holdMs: v });
      if (typeof v === 'string') return parseWriteLock(v);
      if (typeof v !== 'object' || Array.isArray(v)) throw new Error('expected { holdMs }, true, a number of ms or null');
      const h = (v as Record<string, unknown>).holdMs;
      if (h !== undefined && typeof h !== 'number') throw new Error('holdMs must be a number');
      return checkWriteLock({ holdMs: (h as number | undefined) ?? DEFAULT_HOLD_MS });
    });
  }
  return Object.freeze({ rateLimit, writeLock });
}

interface Bucket {
  tokens: number;
  atMs: number;
}

/**
 * Calls that arrived while their account's Retry-After window (announced with a 429) was open: a
 * client that honours Retry-After starts none. `late`: arrived at least WINDOW_GRACE_MS after the
 * 429 that opened the window was sent (earlier ones may have been on their way already).
 * A call that says when its client started it (dropftp's X-Dropftp-Call-Start header, ms since the
 * epoch) is also judged by that: `startedInside` counts those started after the first 429 of the
 * open window was sent, `startedInsideLate` those started WINDOW_GRACE_MS or more after it, and
 * `startedInsideMaxMs` is the longest such delay (a call started after its client could have read
 * the 429 is the client's fault; one that arrived late though started in time is the wire's or this
 * server's own event loop's).
 */
export interface RetryAfterWindowStats {
  windows: number;
  callsInside: number;
  callsInsideLate: number;
  startedInside: number;
  startedInsideLate: number;
  startedInsideMaxMs: number;
}

const NO_WINDOW_STATS: RetryAfterWindowStats = Object.freeze({ windows: 0, callsInside: 0, callsInsideLate: 0, startedInside: 0, startedInsideLate: 0, startedInsideMaxMs: 0 });

export const WINDOW_GRACE_MS = 100;

/** A held namespace lock: release() once the write is done (idempotent). */
export interface LockHold {
  /** Waits out the rest of the hold time (the commit latency it stands for), then releases. */
  finish(): Promise<void>;
  release(): void;
}

const NO_HOLD: LockHold = { finish: async () => {}, release: () => {} };

export class Limits {
  private spec: LimitsSpec = NO_LIMITS;
  private readonly buckets = new Map<string, Bucket>();
  private readonly lockedNs = new Set<number>();
  /** Per account: the last 429's time, the window's end, and when its first 429 was sent (epoch ms). */
  private readonly windows = new Map<string, { fromMs: number; untilMs: number; firstEpochMs: number }>();
  private windowStats: RetryAfterWindowStats = { ...NO_WINDOW_STATS };

  constructor(
    spec: LimitsSpec = NO_LIMITS,
    private readonly now: () => number = () => performance.now(),
    /** The same instant as ms since the epoch (compared with a client's call-start stamp). */
    private readonly epochNow: () => number = () => performance.timeOrigin + performance.now(),
  ) {
    this.set(spec);
  }

  get current(): LimitsSpec {
    return this.spec;
  }

  /** Replaces the limits; a new rate limit starts every account with a full bucket. 400 on a bad spec. */
  update(input: unknown): LimitsSpec {
    let next: LimitsSpec;
    try {
      next = resolveLimits(input, this.spec);
    } catch (err) {
      throw badRequestRaw(`invalid limits: ${(err as Error).message}`);
    }
    this.set(next);
    return next;
  }

  private set(spec: LimitsSpec): void {
    if (JSON.stringify(spec.rateLimit) !== JSON.stringify(this.spec.rateLimit)) this.buckets.clear();
    this.spec = spec;
  }

  /**
   * Takes one call from `account`'s bucket: 0 = admitted, else the whole seconds to wait.
   * `startedAtEpochMs`: when the client says it started the call (see RetryAfterWindowStats).
   */
  admit(account: string, startedAtEpochMs?: number): number {
    const limit = this.spec.rateLimit;
    if (!limit) return 0;
    const now = this.now();
    let open = this.windows.get(account);
    if (open && now >= open.untilMs) open = undefined;
    if (open) {
      this.windowStats.callsInside++;
      if (now - open.fromMs >= WINDOW_GRACE_MS) this.windowStats.callsInsideLate++;
      if (startedAtEpochMs !== undefined && Number.isFinite(startedAtEpochMs) && startedAtEpochMs > open.firstEpochMs) {
        const after = startedAtEpochMs - open.firstEpochMs;
        this.windowStats.startedInside++;
        if (after >= WINDOW_GRACE_MS) this.windowStats.startedInsideLate++;
        this.windowStats.startedInsideMaxMs = Math.max(this.windowStats.startedInsideMaxMs, Math.round(after * 10) / 10);
      }
    }
    let b = this.buckets.get(account);
    if (!b) this.buckets.set(account, (b = { tokens: limit.burst, atMs: now }));
    b.tokens = Math.min(limit.burst, b.tokens + ((now - b.atMs) * limit.rate) / 1000);
    b.atMs = now;
    b.tokens -= 1; // refused calls count too (reference/dropbox-limits.md)
    if (b.tokens >= 0) return 0;
    b.tokens = Math.max(b.tokens, -limit.burst);
    // the retry must find a whole token: (1 - tokens) / rate seconds from now
    const waitSec = Math.max(1, Math.ceil((1 - b.tokens) / limit.rate));
    this.windowStats.windows++;
    this.windows.set(account, { fromMs: now, untilMs: Math.max(open?.untilMs ?? 0, now + waitSec * 1000), firstEpochMs: open?.firstEpochMs ?? this.epochNow() });
    return waitSec;
  }

  /** Retry-After windows announced and calls that arrived inside one (GET /admin/calls). */
  retryAfterWindows(): RetryAfterWindowStats {
    return { ...this.windowStats };
  }

  resetRetryAfterWindows(): void {
    this.windowStats = { ...NO_WINDOW_STATS };
  }

  /**
   * Takes namespace `ns`'s write lock for one state-changing call; null when another call holds it
   * (the caller answers too_many_write_operations, retry_after 1). Off: a no-op hold.
   */
  tryLock(ns: number): LockHold | null {
    const lock = this.spec.writeLock;
    if (!lock) return NO_HOLD;
    if (this.lockedNs.has(ns)) return null;
    this.lockedNs.add(ns);
    const holdMs = lock.holdMs;
    const startedMs = this.now();
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      this.lockedNs.delete(ns);
    };
    return {
      release,
      finish: async () => {
        const leftMs = startedMs + holdMs - this.now();
        if (leftMs > 0) await new Promise((r) => setTimeout(r, leftMs));
        release();
      },
    };
  }
}
