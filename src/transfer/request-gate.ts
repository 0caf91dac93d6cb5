// The per-account request budget shared by every thread: a FIFO counting semaphore over the control
// block (shared-layout.ts) with AIMD on 429s. Runs on every thread that makes HTTP requests (workers,
// or main in onlyMainThread mode). Invariants: a request runs only while it holds a permit; tickets
// are served in the order they were taken, across all threads, so a transfer that finished a chunk
// and asks again goes to the back of the line (round robin); every ticket taken is released exactly
// once (cancelled waiters release theirs when they reach the head); a request throttled by a 429
// keeps its permit and retries (it does not lose its turn), and only repeated throttling pauses the
// whole account for retry_after.

import { waitWord } from 'native-free-ringbuf';
import { A, G, RUNNING_UNIT, WK, accountWord, workerWord } from './shared-layout.ts';
import type { ControlHandle } from './shared-layout.ts';

/** After a 429, the limit may grow past the halved value only this long after the last 429. */
export const PROBE_MS = 20_000;
const FALLBACK_WAIT_MS = 250;
/** 429s this soon after a decrease are attributed to the overload that caused it. */
const ECHO_MS = 1000;
/** A decrease within this long of the previous one (or 2 × retry_after) also pauses the account. */
const REPEAT_WINDOW_MS = 2000;

export interface Permit {
  readonly accountSlot: number;
  /** -1 for a priority permit (it took no ticket). */
  readonly ticket: number;
}

export type Outcome =
  | { kind: 'ok'; bytes?: number }
  | { kind: 'throttled'; retryAfterMs: number; lock: boolean } // lock: too_many_write_operations
  | { kind: 'failed' };

interface Waiter {
  ticket: number;
  cancelled: () => boolean;
  resolve: (permit: Permit | null) => void;
}

interface Gate {
  queue: Waiter[];
  head: number;
  running: boolean;
}

export class RequestGates {
  private readonly words: Int32Array;
  private readonly epochMs: number;
  private readonly gates = new Map<number, Gate>();
  private readonly rates = new Map<number, { atMs: number; kib: number; rate: number }>();

  constructor(
    control: ControlHandle,
    private readonly workerSlot: number,
  ) {
    this.words = new Int32Array(control.sab);
    this.epochMs = control.epochMs;
  }

  nowMs(): number {
    return Date.now() - this.epochMs;
  }

  /** Tickets of this account not yet released, minus its limit: > 0 means transfers are waiting. */
  contention(accountSlot: number): number {
    const w = this.words;
    const outstanding = (Atomics.load(w, accountWord(accountSlot, A.NEXT_TICKET)) - Atomics.load(w, accountWord(accountSlot, A.RELEASED))) | 0;
    return outstanding - Atomics.load(w, accountWord(accountSlot, A.LIMIT));
  }

  /**
   * The account's throughput (bytes/s, all threads), from the shared MOVED_KIB counter sampled at
   * most every 200 ms and smoothed; 0 until known.
   */
  rateBytesPerSec(accountSlot: number): number {
    let r = this.rates.get(accountSlot);
    const now = Date.now();
    const kib = Atomics.load(this.words, accountWord(accountSlot, A.MOVED_KIB));
    if (!r) {
      this.rates.set(accountSlot, { atMs: now, kib, rate: 0 });
      return 0;
    }
    const dt = now - r.atMs;
    if (dt >= 200) {
      const sample = (((kib - r.kib) | 0) * 1024 * 1000) / dt;
      // A long idle gap says nothing about the rate under load: restart the estimate.
      r.rate = dt > 2000 ? 0 : r.rate === 0 ? sample : r.rate * 0.6 + sample * 0.4;
      r.atMs = now;
      r.kib = kib;
    }
    return r.rate;
  }

  /** Tickets taken and not released for this account (waiting + running). */
  outstanding(accountSlot: number): number {
    const w = this.words;
    return (Atomics.load(w, accountWord(accountSlot, A.NEXT_TICKET)) - Atomics.load(w, accountWord(accountSlot, A.RELEASED))) | 0;
  }

  /**
   * Waits for this account's turn. Resolves null (the ticket given back) once `cancelled()` turns true
   * while waiting; it is polled on every release and at least every 250 ms.
   */
  acquire(accountSlot: number, cancelled: () => boolean = () => false): Promise<Permit | null> {
    const w = this.words;
    const ticket = Atomics.add(w, accountWord(accountSlot, A.NEXT_TICKET), 1);
    Atomics.add(w, workerWord(this.workerSlot, WK.HELD + accountSlot), 1);
    let gate = this.gates.get(accountSlot);
    if (!gate) this.gates.set(accountSlot, (gate = { queue: [], head: 0, running: false }));
    const g = gate;
    return new Promise((resolve) => {
      g.queue.push({ ticket, cancelled, resolve });
      if (!g.running) void this.pump(accountSlot, g);
    });
  }

  /**
   * A permit ahead of every ticket: granted as soon as fewer than LIMIT permits run, and ticketed
   * grants hold back while one waits. For the per-account commit (one at a time): uploads that sent
   * their last byte must not wait a whole round of the queue to be committed.
   */
  async acquirePriority(accountSlot: number): Promise<Permit> {
    const w = this.words;
    Atomics.add(w, accountWord(accountSlot, A.PRIORITY_WAITING), 1);
    try {
      for (;;) {
        const bell = Atomics.load(w, accountWord(accountSlot, A.BELL));
        const pausedMs = Atomics.load(w, accountWord(accountSlot, A.PAUSED_UNTIL_MS)) - this.nowMs();
        if (pausedMs > 0) {
          await sleep(Math.min(pausedMs, FALLBACK_WAIT_MS));
          continue;
        }
        if (this.tryRun(accountSlot, 0)) return { accountSlot, ticket: -1 };
        await waitWord(w, accountWord(accountSlot, A.BELL), bell, FALLBACK_WAIT_MS);
      }
    } finally {
      Atomics.sub(w, accountWord(accountSlot, A.PRIORITY_WAITING), 1);
      this.ring(accountSlot);
    }
  }

  /** Gives the permit back and feeds the outcome to AIMD. */
  release(permit: Permit, outcome: Outcome): void {
    const slot = permit.accountSlot;
    if (outcome.kind === 'ok' && outcome.bytes) Atomics.add(this.words, accountWord(slot, A.MOVED_KIB), Math.round(outcome.bytes / 1024));
    if (outcome.kind === 'ok') this.onSuccess(slot);
    else if (outcome.kind === 'throttled') this.onThrottle(slot, permit.ticket, outcome.retryAfterMs, outcome.lock);
    const w = this.words;
    Atomics.sub(w, accountWord(slot, A.RUNNING), 1);
    if (permit.ticket === -1) {
      Atomics.sub(w, workerWord(this.workerSlot, WK.HELD + slot), RUNNING_UNIT);
      this.ring(slot);
    } else {
      Atomics.sub(w, workerWord(this.workerSlot, WK.HELD + slot), RUNNING_UNIT);
      this.giveBack(slot);
    }
  }

  /** Takes a running slot if fewer than LIMIT − `reserve` permits run (CAS, any thread). */
  private tryRun(slot: number, reserve: number): boolean {
    const w = this.words;
    for (;;) {
      const running = Atomics.load(w, accountWord(slot, A.RUNNING));
      if (running >= Atomics.load(w, accountWord(slot, A.LIMIT)) - reserve) return false;
      if (Atomics.compareExchange(w, accountWord(slot, A.RUNNING), running, running + 1) === running) {
        Atomics.add(w, workerWord(this.workerSlot, WK.HELD + slot), RUNNING_UNIT);
        return true;
      }
    }
  }

  /**
   * A request on `permit` got a 429: feeds AIMD and resolves when the same permit may try again
   * (`attempt` counts this request's 429s, from 1). The permit stays held, so the transfer keeps its
   * place in the round: after a decrease the gate grants nothing new until enough permits are back,
   * and the throttled few retry with a short backoff. A repeated decrease pauses the account for
   * retry_after (honoured in full). Namespace-lock 429s wait retry_after for this request only.
   */
  async retryAfterThrottle(permit: Permit, retryAfterMs: number, lock: boolean, attempt: number): Promise<void> {
    const effect = this.onThrottle(permit.accountSlot, permit.ticket, retryAfterMs, lock);
    const cap = Math.max(10, retryAfterMs);
    const backoff = Math.min(cap, 20 * 2 ** Math.min(attempt - 1, 8));
    const waitMs = effect === 'pause' || lock ? retryAfterMs : Math.round(backoff / 2 + Math.random() * (backoff / 2));
    if (waitMs > 0) await sleep(waitMs);
  }

  private giveBack(slot: number): void {
    const w = this.words;
    Atomics.add(w, accountWord(slot, A.RELEASED), 1);
    Atomics.sub(w, workerWord(this.workerSlot, WK.HELD + slot), 1);
    this.ring(slot);
  }

  private ring(slot: number): void {
    Atomics.add(this.words, accountWord(slot, A.BELL), 1);
    Atomics.notify(this.words, accountWord(slot, A.BELL));
  }

  private onSuccess(slot: number): void {
    const w = this.words;
    const limit = Atomics.load(w, accountWord(slot, A.LIMIT));
    // `limit` successes while the account was saturated (all permits out) and no 429 since the last
    // decrease: that many requests at once are fine — remember it as known good.
    if (this.outstanding(slot) >= limit && Atomics.add(w, accountWord(slot, A.SATURATED_OK), 1) + 1 >= limit) {
      Atomics.store(w, accountWord(slot, A.SATURATED_OK), 0);
      Atomics.store(w, accountWord(slot, A.NOISE), 0);
      for (;;) {
        const known = Atomics.load(w, accountWord(slot, A.KNOWN_GOOD));
        if (known >= limit || Atomics.compareExchange(w, accountWord(slot, A.KNOWN_GOOD), known, limit) === known) break;
      }
    }
    const successes = Atomics.add(w, accountWord(slot, A.SUCCESSES), 1) + 1;
    if (successes < limit) return;
    Atomics.store(w, accountWord(slot, A.SUCCESSES), 0);
    const max = Atomics.load(w, accountWord(slot, A.MAX_LIMIT));
    let ceiling = Atomics.load(w, accountWord(slot, A.CEILING));
    if (limit >= ceiling && ceiling < max && this.nowMs() - Atomics.load(w, accountWord(slot, A.LAST_THROTTLE_MS)) > PROBE_MS) {
      Atomics.compareExchange(w, accountWord(slot, A.CEILING), ceiling, ceiling + 1);
      ceiling += 1;
    }
    if (limit < ceiling && Atomics.compareExchange(w, accountWord(slot, A.LIMIT), limit, limit + 1) === limit) this.ring(slot);
  }

  /**
   * AIMD on a 429. 'stale': the request was granted before the last decrease (the decrease already
   * answers it); 'decrease': the limit went down — back to KNOWN_GOOD when a probe above it failed
   * (the account's cap is known: nobody pauses), else halved; 'pause': halved again soon after the
   * previous decrease, so fewer requests did not help — the account also pauses for retry_after.
   */
  private onThrottle(slot: number, ticket: number, retryAfterMs: number, lock: boolean): 'stale' | 'decrease' | 'pause' {
    const w = this.words;
    Atomics.add(w, accountWord(slot, A.THROTTLES), 1);
    Atomics.add(w, G.THROTTLES, 1);
    const now = this.nowMs();
    Atomics.store(w, accountWord(slot, A.LAST_THROTTLE_MS), now);
    if (lock) return 'stale'; // namespace lock contention is not a request-rate signal
    // Multiplicative decrease, at most once per window: only a request granted after the last
    // decrease (its ticket is above the newest ticket granted then) may lower the limit again.
    const last = Atomics.load(w, accountWord(slot, A.LAST_DECREASE_TICKET));
    if (((ticket - last) | 0) <= 0) return 'stale';
    // Echoes: for a while after a decrease the backend still counts requests that the client already
    // finished or cut (a cut response frees its slot only when the server sees the socket close).
    const lastDecreaseMs = Atomics.load(w, accountWord(slot, A.LAST_DECREASE_MS));
    if (lastDecreaseMs > 0 && now - lastDecreaseMs < ECHO_MS) return 'stale';
    Atomics.store(w, accountWord(slot, A.SATURATED_OK), 0);
    const limit = Atomics.load(w, accountWord(slot, A.LIMIT));
    // At or below a proven level the cap is about here, and running at it draws the odd 429 (the
    // backend frees a slot a moment after the client saw the reply end, later still when it is
    // loaded): those requests just retry. Only `limit` 429s before the next clean window step down.
    const proven = Atomics.load(w, accountWord(slot, A.KNOWN_GOOD));
    if (proven > 0 && limit <= proven && Atomics.add(w, accountWord(slot, A.NOISE), 1) + 1 < limit) return 'stale';
    const newestGranted = (Atomics.load(w, accountWord(slot, A.RELEASED)) + limit - 1) | 0;
    if (Atomics.compareExchange(w, accountWord(slot, A.LAST_DECREASE_TICKET), last, newestGranted) !== last) return 'stale';
    // Three cases. Above a limit that ran a whole saturated window cleanly (KNOWN_GOOD): a probe
    // failed — back to it. At or below it, after `limit` 429s without a clean window: one step down,
    // and that becomes the known-good level. Nothing known: halve (multiplicative decrease).
    const known = Atomics.load(w, accountWord(slot, A.KNOWN_GOOD));
    let lowered: number;
    let halved = false;
    if (known > 0 && limit > known) lowered = known;
    else if (known > 0) {
      lowered = Math.max(1, limit - 1);
      Atomics.store(w, accountWord(slot, A.KNOWN_GOOD), lowered);
    } else {
      lowered = Math.max(1, Math.floor(limit / 2));
      halved = true;
    }
    Atomics.store(w, accountWord(slot, A.LIMIT), lowered);
    Atomics.store(w, accountWord(slot, A.CEILING), lowered);
    Atomics.store(w, accountWord(slot, A.SUCCESSES), 0);
    Atomics.store(w, accountWord(slot, A.NOISE), 0);
    const previousDecreaseMs = Atomics.exchange(w, accountWord(slot, A.LAST_DECREASE_MS), Math.max(1, now));
    let effect: 'decrease' | 'pause' = 'decrease';
    // Halving again soon after a decrease, or nothing left to lower: fewer requests did not help, so
    // this is a rate limit — the account pauses for retry_after.
    const repeated = previousDecreaseMs > 0 && now - previousDecreaseMs < Math.max(REPEAT_WINDOW_MS, 2 * retryAfterMs);
    if ((halved && repeated) || limit === 1) {
      effect = 'pause';
      const until = now + Math.max(0, retryAfterMs);
      for (;;) {
        const cur = Atomics.load(w, accountWord(slot, A.PAUSED_UNTIL_MS));
        if (cur >= until || Atomics.compareExchange(w, accountWord(slot, A.PAUSED_UNTIL_MS), cur, until) === cur) break;
      }
    }
    this.ring(slot);
    return effect;
  }

  private async pump(slot: number, g: Gate): Promise<void> {
    g.running = true;
    const w = this.words;
    try {
      while (g.head < g.queue.length) {
        const waiter = g.queue[g.head]!;
        if (waiter.cancelled()) {
          this.shift(g);
          this.giveBack(slot);
          waiter.resolve(null);
          continue;
        }
        const bell = Atomics.load(w, accountWord(slot, A.BELL));
        const pausedMs = Atomics.load(w, accountWord(slot, A.PAUSED_UNTIL_MS)) - this.nowMs();
        if (pausedMs > 0) {
          await sleep(Math.min(pausedMs, FALLBACK_WAIT_MS));
          continue;
        }
        const ahead = (waiter.ticket - Atomics.load(w, accountWord(slot, A.RELEASED))) | 0;
        const reserve = Atomics.load(w, accountWord(slot, A.PRIORITY_WAITING));
        if (ahead < Atomics.load(w, accountWord(slot, A.LIMIT)) - reserve && this.tryRun(slot, reserve)) {
          this.shift(g);
          waiter.resolve({ accountSlot: slot, ticket: waiter.ticket });
          continue;
        }
        // Cancelled waiters behind the head keep their place; they are released when they reach it.
        await waitWord(w, accountWord(slot, A.BELL), bell, FALLBACK_WAIT_MS);
      }
    } finally {
      g.running = false;
    }
  }

  private shift(g: Gate): void {
    g.head++;
    if (g.head > 1024 && g.head * 2 > g.queue.length) {
      g.queue.splice(0, g.head);
      g.head = 0;
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Main thread: sets up or updates an account slot's limits. */
export function initAccountSlot(control: ControlHandle, slot: number, maxConcurrentRequests: number): void {
  const w = new Int32Array(control.sab);
  Atomics.store(w, accountWord(slot, A.MAX_LIMIT), maxConcurrentRequests);
  Atomics.store(w, accountWord(slot, A.CEILING), maxConcurrentRequests);
  if (Atomics.load(w, accountWord(slot, A.LIMIT)) === 0 || Atomics.load(w, accountWord(slot, A.LIMIT)) > maxConcurrentRequests) {
    Atomics.store(w, accountWord(slot, A.LIMIT), maxConcurrentRequests);
  }
  Atomics.add(w, accountWord(slot, A.BELL), 1);
  Atomics.notify(w, accountWord(slot, A.BELL));
}
