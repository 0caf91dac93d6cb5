// The call-rate pacer of every Dropbox account, shared by all threads through the engine's control
// block (src/transfer/shared-layout.ts, account words and TAT_US): call *starts* are spaced by a token
// bucket (GCRA), served first come first served across threads, and the rate meets the account's
// unknown limit like TCP meets a link (slow start, multiplicative decrease on too_many_requests,
// additive increase). Runs on every thread that calls Dropbox (workers, and main for commits and RPC).
// Invariants: tickets are granted in the order they were taken, one token each (a cancelled ticket
// gives its token back, a dead thread's tickets are skipped); no call starts inside an account's
// Retry-After window; every admit() that resolved true is followed by exactly one report().
// Why calls and not concurrency: Dropbox limits calls per user (shared/reference/dropbox-limits.md).

import { waitWord } from 'native-free-ringbuf';
import { A, G, RUNNING_UNIT, TAT_BASE64, WK, accountWord, workerWord } from '../transfer/shared-layout.ts';
import type { ControlHandle } from '../transfer/shared-layout.ts';

export type CallOutcome = { kind: 'ok' } | { kind: 'throttled'; retryAfterMs: number } | { kind: 'write-lock'; retryAfterMs: number } | { kind: 'failed' };

export interface CallPacer {
  /** Resolves true when a call of this account may start now (FIFO, token bucket, outside any Retry-After window); false if cancelled() turned true while waiting. */
  admit(accountSlot: number, cancelled?: () => boolean): Promise<boolean>;
  /** How the call's answer (status line) came back. */
  report(accountSlot: number, outcome: CallOutcome): void;
}

/**
 * The rate an account starts with, calls/s: an initial burst of 8 (the bucket's depth at this rate),
 * then slow start (the rate grows by SLOW_START_GAIN calls/s per success while no 429 comes). Against
 * a limit near Dropbox's reported ~12 calls/s, 32 with a burst of 16 drew 20 refusals in the first
 * second of a 200-session storm (the calls granted while the first 429 was on its way back): 12 % of
 * the run's calls, where 16/8 drew 7. A low start with fast growth finds a low limit with few
 * refusals and a high one quickly.
 */
export const INITIAL_RATE = 16;
/**
 * Slow start: calls/s added per successful call while the rate limits (the rate grows e-fold every
 * 1/SLOW_START_GAIN s of answered calls). Only downloads answer early in a storm (an upload's start
 * call answers when its body ends) and a loaded box answers in 25–700 ms, so growth is slower than
 * that. Ten alternating pairs of the 200-session storm (dropftp alone, 2-core host, 2026-12-07):
 * at 3 with MAX_BURST 8 the longest stall (the last RETR's first byte) was 1.33–2.31 s (mean 1.67,
 * two over 2 s), at 6 with MAX_BURST 16 1.05–1.40 s (mean 1.23); the same storm against a box
 * limited to 12 calls/s (then 4, then 12) drew 2.8–11.7 % refusals against 3.8–8.4 % (both means
 * 6.0 %) and ended 1.6 s sooner on average. At 1 (doubling in ~0.7 s) the last first call came
 * ~2.6 s after the first.
 */
export const SLOW_START_GAIN = 6;
/**
 * Calls that may start back to back (the bucket's depth), at most; fewer at low rates (half a
 * second's worth: 8 at the initial 16 calls/s). A thread whose event loop is busy moving bytes
 * wakes its waiters late (by 100–350 ms in a storm on 2 cores) and finds at most this many tokens:
 * at 8, one storm's log showed 8 calls per wake-up every 290–350 ms at a rate of 43–61 calls/s,
 * about half of it.
 */
export const MAX_BURST = 16;
/** The rate never goes below this (calls/s) nor above ABSOLUTE_MAX_RATE. */
export const MIN_RATE = 1;
export const ABSOLUTE_MAX_RATE = 100_000;
/** Successes count towards growth only while the rate limited someone this recently. */
const LIMITED_RECENTLY_MS = 1000;
/**
 * A 429 that arrives after the account's Retry-After window ended (by more than this slack for the
 * event loop) answers a call started after the window — none starts inside one — so the lowered rate
 * is still too high: cut it again. 429s inside the window answer calls already on their way when it
 * opened, and 429s this close together are one burst reported by several threads: one cut.
 */
export const SAME_OVERLOAD_MS = 50;
/** Longest single wait before a waiter looks again (cancellation, a reclaimed thread). */
const POLL_MS = 250;
/** Dropbox's own default when a 429 names no (usable) retry_after (auth.stone RateLimitError). */
export const DEFAULT_RETRY_AFTER_MS = 1000;

interface Waiter {
  ticket: number;
  /** When admit() was called (ms since epochMs): the wait is counted at the start (WAITED_MS). */
  sinceMs: number;
  cancelled: () => boolean;
  /** null once resolved false (cancelled): the ticket still takes its turn and gives the token back. */
  resolve: ((admitted: boolean) => void) | null;
}

interface Queue {
  waiters: Waiter[];
  running: boolean;
}

/** One thread's view of the shared pacer; create one per thread (workerSlot: its control-block slot). */
export class SharedPacer implements CallPacer {
  private readonly words: Int32Array;
  private readonly tat: BigInt64Array;
  private readonly epochMs: number;
  private readonly queues = new Map<number, Queue>();
  /**
   * Per account, the rate (milli-calls/s) at which each of this thread's unanswered calls was
   * granted, oldest first: a 429 halves the rate its call started at, not the rate slow start has
   * grown to while the 429 was on its way back (TCP's ssthresh = FlightSize / 2).
   */
  private readonly grantRates = new Map<number, number[]>();
  /** Waiters in this thread's queues (serveDue's quick test). */
  private waiting = 0;

  constructor(
    control: ControlHandle,
    private readonly workerSlot: number,
  ) {
    this.words = new Int32Array(control.sab);
    this.tat = new BigInt64Array(control.sab);
    this.epochMs = control.epochMs;
  }

  nowMs(): number {
    return Date.now() - this.epochMs;
  }

  private nowUs(): number {
    return Math.round((performance.timeOrigin + performance.now() - this.epochMs) * 1000);
  }

  private word(slot: number, field: number): number {
    return accountWord(slot, field);
  }

  admit(accountSlot: number, cancelled: () => boolean = () => false): Promise<boolean> {
    const w = this.words;
    if (cancelled()) return Promise.resolve(false);
    const ticket = Atomics.add(w, this.word(accountSlot, A.NEXT_TICKET), 1);
    Atomics.add(w, workerWord(this.workerSlot, WK.HELD + accountSlot), 1);
    let q = this.queues.get(accountSlot);
    if (!q) this.queues.set(accountSlot, (q = { waiters: [], running: false }));
    const queue = q;
    return new Promise((resolve) => {
      queue.waiters.push({ ticket, sinceMs: this.nowMs(), cancelled, resolve });
      this.waiting++;
      if (!queue.running) void this.pump(accountSlot, queue);
    });
  }

  report(accountSlot: number, outcome: CallOutcome): void {
    const w = this.words;
    Atomics.sub(w, this.word(accountSlot, A.IN_FLIGHT), 1);
    Atomics.sub(w, workerWord(this.workerSlot, WK.HELD + accountSlot), RUNNING_UNIT);
    // Answers come back about in the order their calls started (an approximation across long calls).
    const grantedAtMilli = this.grantRates.get(accountSlot)?.shift() ?? Infinity;
    if (outcome.kind === 'ok') this.onSuccess(accountSlot);
    else if (outcome.kind === 'throttled') this.onThrottle(accountSlot, outcome.retryAfterMs, grantedAtMilli);
    else if (outcome.kind === 'write-lock') {
      Atomics.add(w, this.word(accountSlot, A.LOCK_RETRIES), 1);
      this.retryAfterMs(accountSlot, outcome.retryAfterMs); // counted and logged when out of bounds
    }
    this.ring(accountSlot);
  }

  /**
   * report(), then for a write-lock answer waits its (capped) retry_after: the caller retries that
   * call after it, and the rate is not cut (lock contention is not a rate signal).
   */
  async settle(accountSlot: number, outcome: CallOutcome): Promise<void> {
    this.report(accountSlot, outcome);
    if (outcome.kind === 'write-lock') await sleep(this.retryAfterMs(accountSlot, outcome.retryAfterMs, false));
  }

  /** Counts a retry of a call of this account (stats). */
  countRetry(accountSlot: number): void {
    Atomics.add(this.words, G.RETRIES, 1);
    Atomics.add(this.words, this.word(accountSlot, A.RETRIES), 1);
  }

  /**
   * A server's Retry-After made safe: negative or not a number → Dropbox's default 1 s; above
   * engine.maxRetryAfterSec → that cap. Out-of-bounds values are counted (and main logs them).
   */
  retryAfterMs(accountSlot: number, raw: number, record = true): number {
    const cap = Atomics.load(this.words, G.MAX_RETRY_AFTER_MS);
    const ok = Number.isFinite(raw) && raw >= 0;
    if (ok && raw <= cap) return raw;
    if (record) {
      Atomics.store(this.words, this.word(accountSlot, A.RA_LAST_RAW_MS), ok ? Math.min(0x7fffffff, Math.round(raw)) : -1);
      Atomics.add(this.words, this.word(accountSlot, A.RA_CAPPED), 1);
      Atomics.add(this.words, G.REFRESH_BELL, 1);
      Atomics.notify(this.words, G.REFRESH_BELL);
    }
    return ok ? cap : Math.min(cap, DEFAULT_RETRY_AFTER_MS);
  }

  private ring(slot: number): void {
    Atomics.add(this.words, this.word(slot, A.BELL), 1);
    Atomics.notify(this.words, this.word(slot, A.BELL));
  }

  private rateMilli(slot: number): number {
    const r = Atomics.load(this.words, this.word(slot, A.RATE_MILLI));
    return r > 0 ? r : INITIAL_RATE * 1000;
  }

  /** Microseconds between two call starts at the current rate, and the bucket's depth in µs. */
  private bucket(slot: number): { intervalUs: number; toleranceUs: number } {
    const rate = this.rateMilli(slot) / 1000;
    const intervalUs = 1e6 / rate;
    const burst = Math.max(1, Math.min(MAX_BURST, Math.floor(rate / 2)));
    return { intervalUs, toleranceUs: (burst - 1) * intervalUs };
  }

  /**
   * Issues one grant if a ticket waits and a token is there (GCRA on TAT_US, CAS from any thread);
   * returns 0 when it granted (or nothing waits), else the ms until the next token or window end.
   */
  private tryGrant(slot: number): number {
    const w = this.words;
    for (;;) {
      const granted = Atomics.load(w, this.word(slot, A.GRANTED));
      if (((Atomics.load(w, this.word(slot, A.NEXT_TICKET)) - granted) | 0) <= 0) return 0;
      const skip = Atomics.load(w, this.word(slot, A.SKIP));
      if (skip > 0) {
        // A dead thread's tickets: pass them (its grants would never be used) without a token.
        if (Atomics.compareExchange(w, this.word(slot, A.SKIP), skip, skip - 1) === skip) {
          Atomics.add(w, this.word(slot, A.GRANTED), 1);
          this.ring(slot);
          return 0;
        }
        continue;
      }
      const pausedMs = Atomics.load(w, this.word(slot, A.PAUSED_UNTIL_MS)) - this.nowMs();
      if (pausedMs > 0) return pausedMs;
      const { intervalUs, toleranceUs } = this.bucket(slot);
      const now = this.nowUs();
      const index = TAT_BASE64 + slot;
      const tat = Atomics.load(this.tat, index);
      const tatUs = Number(tat);
      if (tatUs - now > toleranceUs) {
        Atomics.store(w, this.word(slot, A.LAST_LIMITED_MS), this.nowMs());
        return Math.max(1, Math.ceil((tatUs - toleranceUs - now) / 1000));
      }
      const next = BigInt(Math.round(Math.max(tatUs, now) + intervalUs));
      if (Atomics.compareExchange(this.tat, index, tat, next) !== tat) continue;
      Atomics.add(w, this.word(slot, A.GRANTED), 1);
      this.ring(slot);
      return 0;
    }
  }

  /** A cancelled ticket's grant: its token goes back to the bucket. */
  private refund(slot: number): void {
    const index = TAT_BASE64 + slot;
    const { intervalUs } = this.bucket(slot);
    for (;;) {
      const tat = Atomics.load(this.tat, index);
      const back = BigInt(Math.round(Math.max(this.nowUs(), Number(tat) - intervalUs)));
      if (back >= tat || Atomics.compareExchange(this.tat, index, tat, back) === tat) break;
    }
    this.ring(slot);
  }

  private async pump(slot: number, q: Queue): Promise<void> {
    q.running = true;
    const w = this.words;
    try {
      while (q.waiters.length > 0) {
        const bell = Atomics.load(w, this.word(slot, A.BELL));
        for (const waiter of q.waiters) {
          if (waiter.resolve && waiter.cancelled()) {
            waiter.resolve(false);
            waiter.resolve = null;
          }
        }
        const waitMs = this.serve(slot, q);
        if (waitMs > 0) await waitWord(w, this.word(slot, A.BELL), bell, Math.min(waitMs, POLL_MS));
      }
    } finally {
      q.running = false;
    }
  }

  /**
   * Serves the head of `q` for as long as it can without waiting: a granted head starts (or, cancelled,
   * gives its token back), a head not yet granted takes the next token if the bucket has one. Returns
   * 0 once the queue is empty, else how long (ms) the head must wait for a token or a window's end.
   */
  private serve(slot: number, q: Queue): number {
    const w = this.words;
    const held = workerWord(this.workerSlot, WK.HELD + slot);
    for (;;) {
      const head = q.waiters[0];
      if (!head) return 0;
      if (head.resolve && head.cancelled()) {
        head.resolve(false);
        head.resolve = null;
      }
      if (((Atomics.load(w, this.word(slot, A.GRANTED)) - head.ticket) | 0) > 0) {
        if (!head.resolve) {
          q.waiters.shift();
          this.waiting--;
          Atomics.sub(w, held, 1);
          this.refund(slot);
          continue;
        }
        // A grant issued before a window opened still waits for its end.
        const pausedMs = Atomics.load(w, this.word(slot, A.PAUSED_UNTIL_MS)) - this.nowMs();
        if (pausedMs > 0) return pausedMs;
        q.waiters.shift();
        this.waiting--;
        Atomics.add(w, held, RUNNING_UNIT - 1);
        Atomics.add(w, this.word(slot, A.IN_FLIGHT), 1);
        Atomics.add(w, this.word(slot, A.CALLS), 1);
        Atomics.add(w, this.word(slot, A.WAITED_MS), Math.max(0, Math.round(this.nowMs() - head.sinceMs)));
        let rates = this.grantRates.get(slot);
        if (!rates) this.grantRates.set(slot, (rates = []));
        rates.push(this.rateMilli(slot));
        head.resolve(true);
        continue;
      }
      const waitMs = this.tryGrant(slot);
      if (waitMs > 0) return waitMs;
    }
  }

  /**
   * Starts now what this thread's waiters are due, without waiting for their wake-up: called from a
   * thread's byte loops (a download's socket reads), it admits a call whose token came due while the
   * event loop was busy. A thread moving bytes runs its timers and Atomics wake-ups late, by 100–350
   * ms in a storm on 2 cores, and the calls granted first ran with the link to themselves meanwhile.
   * Cheap when nothing waits (one comparison).
   */
  serveDue(): void {
    if (this.waiting === 0) return;
    for (const [slot, q] of this.queues) if (q.waiters.length > 0) this.serve(slot, q);
  }

  private onSuccess(slot: number): void {
    const w = this.words;
    if (this.nowMs() - Atomics.load(w, this.word(slot, A.LAST_LIMITED_MS)) > LIMITED_RECENTLY_MS) return;
    const rate = this.rateMilli(slot);
    const ssthresh = Atomics.load(w, this.word(slot, A.SSTHRESH_MILLI));
    // Slow start (below ssthresh, none before the first 429): +SLOW_START_GAIN calls/s per success;
    // congestion avoidance: +1 call/s per rate-many successes (about +1 call/s per second).
    const slowStart = ssthresh === 0 || rate < ssthresh;
    if (!slowStart) {
      const credit = Math.max(1, Math.round(1e9 / rate));
      const total = Atomics.add(w, this.word(slot, A.CREDIT_MILLI), credit) + credit;
      if (total < 1_000_000) return;
      Atomics.sub(w, this.word(slot, A.CREDIT_MILLI), 1_000_000);
    }
    const step = slowStart ? SLOW_START_GAIN * 1000 : 1000;
    const max = this.maxRateMilli();
    for (;;) {
      const raw = Atomics.load(w, this.word(slot, A.RATE_MILLI));
      const cur = raw || INITIAL_RATE * 1000;
      // Slow start stops at ssthresh; growth past it is additive.
      const grown = Math.min(max, slowStart && ssthresh > 0 ? Math.max(cur + 1000, Math.min(cur + step, ssthresh)) : cur + step);
      if (grown <= cur || Atomics.compareExchange(w, this.word(slot, A.RATE_MILLI), raw, grown) === raw) return;
    }
  }

  private maxRateMilli(): number {
    const configured = Atomics.load(this.words, G.MAX_RATE_MILLI);
    return configured > 0 ? Math.min(configured, ABSOLUTE_MAX_RATE * 1000) : ABSOLUTE_MAX_RATE * 1000;
  }

  /**
   * too_many_requests: the account's Retry-After window opens (no call starts before it ends) and the
   * rate halves — from the rate the refused call started at (slow start went on growing while its
   * 429 was on its way back: halving the grown rate left it above the limit, a second and third
   * overload followed) — once per overload: the 429s that arrive inside a window (or within SAME_OVERLOAD_MS
   * of its end) answer calls that started before it and do not halve it again; a 429 after that
   * answers a call started at the lowered rate, which is still too high.
   */
  private onThrottle(slot: number, rawRetryAfterMs: number, grantedAtMilli: number): void {
    const w = this.words;
    Atomics.add(w, this.word(slot, A.THROTTLES), 1);
    Atomics.add(w, G.THROTTLES, 1);
    const retryAfterMs = this.retryAfterMs(slot, rawRetryAfterMs);
    const now = this.nowMs();
    const until = Math.min(0x7fffffff, now + retryAfterMs);
    // The window in force before this answer: a 429 inside it (or just after) is the same overload.
    const before = Atomics.load(w, this.word(slot, A.PAUSED_UNTIL_MS));
    for (;;) {
      const cur = Atomics.load(w, this.word(slot, A.PAUSED_UNTIL_MS));
      if (cur >= until || Atomics.compareExchange(w, this.word(slot, A.PAUSED_UNTIL_MS), cur, until) === cur) break;
    }
    const last = Atomics.load(w, this.word(slot, A.LAST_DECREASE_MS));
    if (last !== 0 && (now < before + SAME_OVERLOAD_MS || now - last < SAME_OVERLOAD_MS)) return;
    if (Atomics.compareExchange(w, this.word(slot, A.LAST_DECREASE_MS), last, Math.max(1, now)) !== last) return;
    const rate = Math.min(this.rateMilli(slot), grantedAtMilli);
    const lowered = Math.max(MIN_RATE * 1000, Math.floor(rate / 2));
    Atomics.store(w, this.word(slot, A.SSTHRESH_MILLI), lowered);
    Atomics.store(w, this.word(slot, A.RATE_MILLI), lowered);
    Atomics.store(w, this.word(slot, A.CREDIT_MILLI), 0);
    // The bucket restarts empty after the window: no burst into a limit just met.
    const index = TAT_BASE64 + slot;
    const after = BigInt(Math.round((now + retryAfterMs) * 1000));
    for (;;) {
      const tat = Atomics.load(this.tat, index);
      if (tat >= after || Atomics.compareExchange(this.tat, index, tat, after) === tat) break;
    }
  }
}

/** What the stats read of one account's pacer. */
export interface PacerStats {
  /** Calls started since the engine started. */
  callsStarted: number;
  /**
   * Milliseconds those calls waited for their start (the queue, the bucket, Retry-After windows),
   * summed; a free-running 32-bit count that wraps after 2^32 ms. Divided by callsStarted: the mean
   * wait, the pacer's share of a transfer's time to first byte.
   */
  waitedMs: number;
  /** The current call rate, calls/s (what the bucket allows now). */
  callsPerSecond: number;
  /** Calls admitted and not yet answered. */
  inFlight: number;
  /** Calls waiting for their turn. */
  waiting: number;
  /** too_many_requests answers. */
  throttles: number;
  /** too_many_write_operations answers (each call retried after retry_after, the rate kept). */
  writeLockRetries: number;
  retries: number;
  /** No call of the account starts before this time (ms since the Unix epoch); null: none in force. */
  retryAfterUntilMs: number | null;
  /** Retry-After values capped (out of [0, engine.maxRetryAfterSec]). */
  retryAfterCapped: number;
}

export function readPacerStats(control: ControlHandle, slot: number): PacerStats {
  const w = new Int32Array(control.sab);
  const at = (field: number): number => Atomics.load(w, accountWord(slot, field));
  const nowMs = Date.now() - control.epochMs;
  const paused = at(A.PAUSED_UNTIL_MS);
  return {
    callsStarted: at(A.CALLS) >>> 0,
    waitedMs: at(A.WAITED_MS) >>> 0,
    callsPerSecond: (at(A.RATE_MILLI) || INITIAL_RATE * 1000) / 1000,
    inFlight: Math.max(0, at(A.IN_FLIGHT)),
    waiting: Math.max(0, (at(A.NEXT_TICKET) - at(A.GRANTED)) | 0),
    throttles: at(A.THROTTLES),
    writeLockRetries: at(A.LOCK_RETRIES),
    retries: at(A.RETRIES),
    retryAfterUntilMs: paused > nowMs ? control.epochMs + paused : null,
    retryAfterCapped: at(A.RA_CAPPED),
  };
}

/** Main thread: an account slot's pacer starts at INITIAL_RATE (within engine.maxCallsPerSecond). */
export function initPacerSlot(control: ControlHandle, slot: number): void {
  const w = new Int32Array(control.sab);
  if (Atomics.load(w, accountWord(slot, A.RATE_MILLI)) !== 0) return;
  const max = Atomics.load(w, G.MAX_RATE_MILLI);
  Atomics.store(w, accountWord(slot, A.RATE_MILLI), max > 0 ? Math.min(max, INITIAL_RATE * 1000) : INITIAL_RATE * 1000);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
