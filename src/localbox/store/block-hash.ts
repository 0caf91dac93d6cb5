// SHA-256 of stored blocks, computed off the local box's event loop. Runs in the local box child's
// main thread; the hashing runs in worker threads (their code is the WORKER_SOURCE script below,
// evaluated, so that it needs no loader whether the box runs from TypeScript or from dist/).
// Why: hashing is most of what an upload costs the box (SHA-256 ran at ~1 GB/s on our machines), and
// on the event loop it capped one upload stream at what one core hashes while the other core idled.
// Invariants: update() copies its bytes into slot memory before it returns (the caller may free or
// reuse them at once); a hash sees its bytes in update() order, and peek()/digest() answer for
// exactly the bytes updated before them; a slot belongs to one thread at a time: main fills it,
// transfers it with its 'hash' message, and the worker transfers it back with 'done'; a hash whose
// thread died answers every later peek()/digest() with a rejection (never a wrong digest).
// Slots are plain ArrayBuffers moved back and forth, not SharedArrayBuffers: V8 copies into shared
// memory with relaxed atomic stores (v8::internal::relaxed_memmove), which cost an upload stream
// as much CPU as its SHA-256.

import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

/**
 * Slot memory handed to the worker in one message: a slot is posted when full, or when a digest
 * needs its bytes (each message wakes the other thread, dear on the paravirtual VMs we run on).
 */
const SLOT_BYTES = 1024 * 1024;
/**
 * Bytes copied for hashing and not hashed yet above which writers are asked to wait: ~8 ms of the
 * thread's work, enough to keep it busy between two turns of the event loop.
 */
export const PRESSURE_BYTES = 8 * 1024 * 1024;
/** What a writer let go is expected to add before it checks again (an HTTP body chunk). */
const WAKE_CHUNK_BYTES = 64 * 1024;
/** Free slots kept for reuse, enough for the whole backlog; more (after a burst) are let go. */
const MAX_FREE_SLOTS = PRESSURE_BYTES / SLOT_BYTES + 8;

// main -> worker: { t: 'hash', buf, bytes, entries: [id, offset, length, ...] }  (buf transferred)
//                 { t: 'digest', id, req, keep }   (keep: the hash goes on, a copy is digested)
//                 { t: 'drop', id }
// worker -> main: { t: 'done', buf, bytes } (buf transferred back) | { t: 'digest', req, hex }
const WORKER_SOURCE = `
'use strict';
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const hashes = new Map();
const hashOf = (id) => {
  let h = hashes.get(id);
  if (!h) hashes.set(id, (h = createHash('sha256')));
  return h;
};
parentPort.on('message', (m) => {
  switch (m.t) {
    case 'hash': {
      const e = m.entries;
      for (let i = 0; i < e.length; i += 3) hashOf(e[i]).update(new Uint8Array(m.buf, e[i + 1], e[i + 2]));
      parentPort.postMessage({ t: 'done', buf: m.buf, bytes: m.bytes }, [m.buf]);
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
    default:
      throw new Error('block-hash worker: unknown message ' + String(m && m.t));
  }
});
`;

/** Slot memory main fills; posted (transferred) when full or when a digest needs its bytes. */
interface Slot {
  readonly buf: ArrayBuffer;
  readonly bytes: Uint8Array;
  used: number;
}

type WorkerMessage = { t: 'done'; buf: ArrayBuffer; bytes: number } | { t: 'digest'; req: number; hex: string };

class HashThread {
  private readonly worker: Worker;
  private readonly free: Slot[] = [];
  private cur: Slot | null = null;
  private entries: number[] = [];
  private nextId = 1;
  private nextReq = 1;
  private readonly replies = new Map<number, { resolve(hex: string): void; reject(err: Error): void }>();
  private readonly waiters: (() => void)[] = [];
  /** Bytes copied into slots and not yet hashed. */
  outstanding = 0;
  /** Slots posted whose 'done' has not come back. */
  private inFlight = 0;
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
      const slot = (this.cur ??= this.takeSlot()); // a full slot was posted (below): never current
      const n = Math.min(src.length - off, SLOT_BYTES - slot.used);
      slot.bytes.set(off === 0 && n === src.length ? src : src.subarray(off, off + n), slot.used);
      this.entries.push(id, slot.used, n);
      slot.used += n;
      this.outstanding += n;
      off += n;
      if (slot.used === SLOT_BYTES) this.post();
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
      this.ensureProgress();
    });
  }

  /**
   * A writer waits only for a 'done' that will come: with nothing posted, the bytes of the current
   * slot go now, and with nothing at all to hash there is nothing to wait for. (Writers of small
   * chunks let go in turn could otherwise fill no slot, post nothing and wait for each other.)
   */
  private ensureProgress(): void {
    if (this.waiters.length === 0 || this.dead || this.inFlight > 0) return;
    if (this.entries.length > 0) {
      this.post();
      return;
    }
    for (const w of this.waiters.splice(0)) w();
    this.holdAlive();
  }

  private takeSlot(): Slot {
    const reused = this.free.pop();
    if (reused) return reused;
    const buf = new ArrayBuffer(SLOT_BYTES);
    return { buf, bytes: new Uint8Array(buf), used: 0 };
  }

  /** Hands the current slot and its entries to the worker (the slot is theirs until 'done'). */
  private post(): void {
    const slot = this.cur;
    if (!slot) return;
    this.cur = null;
    const entries = this.entries;
    this.entries = [];
    if (this.dead || entries.length === 0) {
      slot.used = 0;
      if (!this.dead) this.free.push(slot);
      return;
    }
    this.worker.postMessage({ t: 'hash', buf: slot.buf, bytes: slot.used, entries }, [slot.buf]);
    this.inFlight++;
  }

  private onMessage(m: WorkerMessage): void {
    if (m.t === 'done') {
      this.inFlight--;
      this.outstanding -= m.bytes;
      if (this.free.length < MAX_FREE_SLOTS) this.free.push({ buf: m.buf, bytes: new Uint8Array(m.buf), used: 0 });
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
    if (this.dead) return;
    this.holdAlive();
    this.ensureProgress();
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
