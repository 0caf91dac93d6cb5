// SHA-256 of stored blocks, computed off the local box's event loop. Runs in the local box child's
// main thread; the hashing runs in worker threads (their code is the WORKER_SOURCE script below,
// evaluated, so that it needs no loader whether the box runs from TypeScript or from dist/).
// Why: hashing is most of what an upload costs the box (SHA-256 ran at ~1 GB/s on our machines), and
// on the event loop it capped one upload stream at what one core hashes while the other core idled.
// Invariants: update() copies its bytes into shared slot memory before it returns (the caller may
// free or reuse them at once); a hash sees its bytes in update() order, and peek()/digest() answer
// for exactly the bytes updated before them; a slot is written by main only while it is free and
// read by the worker only between its 'hash' message and the worker's 'done'; a hash whose thread
// died answers every later peek()/digest() with a rejection (never a wrong digest).

import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

/** Slot memory handed to the worker in one message. */
const SLOT_BYTES = 256 * 1024;
/**
 * Bytes copied for hashing and not hashed yet above which writers are asked to wait: ~8 ms of the
 * thread's work, enough to keep it busy between two turns of the event loop.
 */
export const PRESSURE_BYTES = 8 * 1024 * 1024;
/** What a writer let go is expected to add before it checks again (an HTTP body chunk). */
const WAKE_CHUNK_BYTES = 64 * 1024;
/**
 * Free slots kept for reuse, enough for the whole backlog; more (after a burst) are let go. Their
 * memory is freed only after both threads' collectors dropped them, and the hashing thread's seldom
 * runs: a slot table that churned grew the box's heap by ~100 MiB in 10 s of one upload stream.
 */
const MAX_FREE_SLOTS = PRESSURE_BYTES / SLOT_BYTES + 8;

// main -> worker: { t: 'hash', slot, sab?, entries: [id, offset, length, ...] }
//                 { t: 'digest', id, req, keep }   (keep: the hash goes on, a copy is digested)
//                 { t: 'drop', id }
//                 { t: 'forget', slot }            (a slot let go: the worker drops its memory too)
// worker -> main: { t: 'done', slot } | { t: 'digest', req, hex }
const WORKER_SOURCE = `
'use strict';
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const slots = new Map();
const hashes = new Map();
const hashOf = (id) => {
  let h = hashes.get(id);
  if (!h) hashes.set(id, (h = createHash('sha256')));
  return h;
};
parentPort.on('message', (m) => {
  switch (m.t) {
    case 'hash': {
      if (m.sab) slots.set(m.slot, m.sab);
      const sab = slots.get(m.slot);
      const e = m.entries;
      for (let i = 0; i < e.length; i += 3) hashOf(e[i]).update(new Uint8Array(sab, e[i + 1], e[i + 2]));
      parentPort.postMessage({ t: 'done', slot: m.slot });
      break;
    }
    case 'digest': {
      const h = hashOf(m.id);
      if (!m.keep) hashes.delete(m.id);
      parentPort.postMessage({ t: 'digest', req: m.req, hex: (m.keep ? h.copy() : h).digest('hex') });
      break;
    }
    case 'drop':
      hashes.delete(m.id);
      break;
    case 'forget':
      slots.delete(m.slot);
      break;
    default:
      throw new Error('block-hash worker: unknown message ' + String(m && m.t));
  }
});
`;

/**
 * A slot fills from 0 to SLOT_BYTES; each post hands the worker the part written since the last
 * one, and main writes only past what it posted. It is free again once full and every post of it
 * came back.
 */
interface Slot {
  readonly index: number;
  readonly sab: SharedArrayBuffer;
  readonly bytes: Uint8Array;
  /** Whether the worker has been sent this slot's memory. */
  known: boolean;
  used: number;
  /** Bytes of each post the worker has not answered yet, oldest first. */
  readonly inFlight: number[];
}

type WorkerMessage = { t: 'done'; slot: number } | { t: 'digest'; req: number; hex: string };

class HashThread {
  private readonly worker: Worker;
  /** Slots handed out or posted (by index); free ones are also in `free`. */
  private readonly slots = new Map<number, Slot>();
  private nextSlot = 0;
  private readonly free: Slot[] = [];
  private cur: Slot | null = null;
  private entries: number[] = [];
  private flushQueued = false;
  private nextId = 1;
  private nextReq = 1;
  private readonly replies = new Map<number, { resolve(hex: string): void; reject(err: Error): void }>();
  private readonly waiters: (() => void)[] = [];
  /** Bytes copied into slots and not yet hashed. */
  outstanding = 0;
  dead = false;

  constructor() {
    this.worker = new Worker(WORKER_SOURCE, { eval: true, name: 'localbox-block-hash' });
    this.worker.on('message', (m: WorkerMessage) => this.onMessage(m));
    this.worker.on('error', () => this.die());
    this.worker.on('exit', () => this.die());
    this.worker.unref(); // after the listeners, which would ref it again
  }

  /** The worker keeps the process alive only while someone awaits it (a digest, a writer held back). */
  private holdAlive(): void {
    if (this.replies.size > 0 || this.waiters.length > 0) this.worker.ref();
    else this.worker.unref();
  }

  newId(): number {
    return this.nextId++;
  }

  update(id: number, src: Uint8Array): void {
    if (this.dead) return; // its digest rejects: nothing to hash
    for (let off = 0; off < src.length; ) {
      let slot = this.cur;
      if (!slot || slot.used === SLOT_BYTES) {
        if (slot) this.post(); // and lets it go: it is full
        slot = this.cur = this.takeSlot();
      }
      const n = Math.min(src.length - off, SLOT_BYTES - slot.used);
      slot.bytes.set(off === 0 && n === src.length ? src : src.subarray(off, off + n), slot.used);
      this.entries.push(id, slot.used, n);
      slot.used += n;
      this.outstanding += n;
      off += n;
    }
    if (!this.flushQueued && this.cur) {
      this.flushQueued = true;
      setImmediate(() => {
        this.flushQueued = false;
        this.post();
      });
    }
  }

  digest(id: number, keep: boolean): Promise<string> {
    if (this.dead) return Promise.reject(new Error('block hash: its thread is gone'));
    this.post();
    const req = this.nextReq++;
    return new Promise<string>((resolve, reject) => {
      this.replies.set(req, { resolve, reject });
      this.worker.postMessage({ t: 'digest', id, req, keep });
      this.holdAlive();
    });
  }

  drop(id: number): void {
    if (this.dead) return;
    this.post();
    this.worker.postMessage({ t: 'drop', id });
  }

  /**
   * undefined, or a promise that resolves when the writer may go on: writers wait in arrival order
   * while the thread is behind or others wait before them.
   */
  pressure(): Promise<void> | undefined {
    if ((this.outstanding < PRESSURE_BYTES && this.waiters.length === 0) || this.dead) return undefined;
    return new Promise((resolve) => {
      this.waiters.push(resolve);
      this.holdAlive();
    });
  }

  private takeSlot(): Slot {
    const reused = this.free.pop();
    if (reused) {
      reused.used = 0;
      return reused;
    }
    const sab = new SharedArrayBuffer(SLOT_BYTES);
    const slot: Slot = { index: this.nextSlot++, sab, bytes: new Uint8Array(sab), known: false, used: 0, inFlight: [] };
    this.slots.set(slot.index, slot);
    return slot;
  }

  /** Sends the entries written into the current slot since its last post; a full slot is let go. */
  private post(): void {
    const slot = this.cur;
    if (!slot) return;
    if (slot.used === SLOT_BYTES) this.cur = null;
    if (this.entries.length === 0) return;
    const entries = this.entries;
    this.entries = [];
    if (this.dead) return;
    let bytes = 0;
    for (let i = 2; i < entries.length; i += 3) bytes += entries[i]!;
    this.worker.postMessage({ t: 'hash', slot: slot.index, sab: slot.known ? undefined : slot.sab, entries });
    slot.known = true;
    slot.inFlight.push(bytes);
  }

  private onMessage(m: WorkerMessage): void {
    if (m.t === 'done') {
      const slot = this.slots.get(m.slot)!;
      this.outstanding -= slot.inFlight.shift()!;
      if (slot.inFlight.length > 0 || slot === this.cur) {
        // more of it is posted, or main is still filling it
      } else if (this.free.length < MAX_FREE_SLOTS) this.free.push(slot);
      else {
        // a burst is over: its memory goes, here and in the worker
        this.slots.delete(slot.index);
        this.worker.postMessage({ t: 'forget', slot: slot.index });
      }
      this.wake();
    } else {
      const r = this.replies.get(m.req);
      this.replies.delete(m.req);
      r?.resolve(m.hex);
      this.holdAlive();
    }
  }

  /**
   * Lets waiting writers go, oldest first, as many as the room below the mark holds at a typical
   * chunk each: a thousand uploads woken at once would each add a chunk and overshoot the mark by
   * tens of MiB (all of them, when the thread died).
   */
  private wake(): void {
    if (this.waiters.length === 0) return;
    let room = this.dead ? Infinity : PRESSURE_BYTES - this.outstanding;
    while (room > 0 && this.waiters.length > 0) {
      this.waiters.shift()!();
      room -= WAKE_CHUNK_BYTES;
    }
    if (!this.dead) this.holdAlive();
  }

  private die(): void {
    if (this.dead) return;
    this.dead = true;
    this.outstanding = 0;
    for (const r of this.replies.values()) r.reject(new Error('block hash: its thread is gone'));
    this.replies.clear();
    this.wake();
  }
}

/**
 * Hashing threads: one per core beyond the event loop's, at most 4 (each hashes ~1 GB/s; the event
 * loop parses no more than that). A hash stays on the thread it was given; new ones go round.
 */
let threadCount = Math.min(4, Math.max(1, availableParallelism() - 1));
const threads: (HashThread | null)[] = [];
let nextThread = 0;

function hashThread(): HashThread {
  const i = nextThread++ % threadCount;
  let t = threads[i];
  if (!t || t.dead) t = threads[i] = new HashThread();
  return t;
}

/** Sets how many hashing threads new hashes are spread over (tests; hashes already made keep theirs). */
export function setHashThreads(n: number): void {
  threadCount = Math.max(1, Math.floor(n));
}

/** An incremental SHA-256, computed by the box's hashing thread. */
export class BlockHash {
  private readonly thread = hashThread();
  private readonly id = this.thread.newId();
  private finished = false;

  /** False once its thread died or digest()/dispose() ended it: it can no longer answer. */
  get live(): boolean {
    return !this.finished && !this.thread.dead;
  }

  /** Adds `bytes` (copied before this returns). */
  update(bytes: Uint8Array): this {
    if (this.finished) throw new Error('block hash: update after digest');
    if (bytes.length > 0) this.thread.update(this.id, bytes);
    return this;
  }

  /** Hex digest of the bytes so far; the hash goes on. */
  peek(): Promise<string> {
    if (this.finished) return Promise.reject(new Error('block hash: peek after digest'));
    return this.thread.digest(this.id, true);
  }

  /** Hex digest of all the bytes; ends the hash. */
  digest(): Promise<string> {
    if (this.finished) return Promise.reject(new Error('block hash: digest twice'));
    this.finished = true;
    return this.thread.digest(this.id, false);
  }

  /** Abandons the hash (frees its state in the worker). */
  dispose(): void {
    if (this.finished) return;
    this.finished = true;
    this.thread.drop(this.id);
  }
}

/** undefined while writers may go on; else a promise to await first (the hashing thread lags). */
export function hashBackpressure(): Promise<void> | undefined {
  let wait: Promise<void> | undefined;
  for (const t of threads) wait = bothWaits(wait, t?.pressure());
  return wait;
}

/** Both waits at once: undefined when neither holds the caller back. */
export function bothWaits(a: Promise<void> | undefined, b: Promise<void> | undefined): Promise<void> | undefined {
  if (!a) return b;
  if (!b) return a;
  return Promise.all([a, b]).then(() => undefined);
}
